//! Gateway API HTTPRoute backend weights.
//!
//! The first rule that references the backends carries the split. Weights are
//! relative in Gateway API; the router reads them as percent shares of the
//! rule and writes percent values, which keep the same meaning.

use kube::Api;
use kube::api::Patch;
use serde_json::json;

use super::gateway::HTTPRoute;
use super::{RouterError, TrafficRouter, Weights};

pub struct HttpRouteRouter {
    api: Api<HTTPRoute>,
    name: String,
}

impl HttpRouteRouter {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }
}

/// Percent shares of the first rule with backends.
pub fn shares(route: &HTTPRoute) -> Option<(usize, Weights)> {
    let (index, rule) = route
        .spec
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| !r.backend_refs.is_empty())?;
    let raw: Vec<(String, i64)> = rule
        .backend_refs
        .iter()
        .map(|b| (b.name.clone(), i64::from(b.weight.unwrap_or(1).max(0))))
        .collect();
    let total: i64 = raw.iter().map(|(_, w)| w).sum();
    let weights = raw
        .into_iter()
        .map(|(name, w)| {
            let share = if total == 0 {
                0
            } else {
                (w * 100 + total / 2) / total
            };
            (name, share as i32)
        })
        .collect();
    Some((index, weights))
}

impl TrafficRouter for HttpRouteRouter {
    async fn weights(&self) -> Result<Option<Weights>, RouterError> {
        let Some(route) = self.api.get_opt(&self.name).await? else {
            return Ok(None);
        };
        Ok(Some(shares(&route).map(|(_, w)| w).unwrap_or_default()))
    }

    async fn set_weights(&self, expected: &Weights, weights: &Weights) -> Result<(), RouterError> {
        let route = self.api.get(&self.name).await?;
        let (index, now) = shares(&route).ok_or_else(|| {
            RouterError::Invalid(format!("httproute {} has no backends", self.name))
        })?;
        let moved: Vec<String> = expected
            .iter()
            .filter(|(b, w)| now.get(*b) != Some(*w))
            .map(|(b, w)| format!("{b} {w}→{}", now.get(b).copied().unwrap_or(0)))
            .collect();
        if !moved.is_empty() {
            return Err(RouterError::Changed(format!(
                "httproute {}: {}",
                self.name,
                moved.join(", ")
            )));
        }
        let backends = &route.spec.rules[index].backend_refs;
        // The route as read, or nothing: a change since the read fails the
        // whole patch (422), like one of the names below moving.
        let mut ops = vec![json!({
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": route.metadata.resource_version,
        })];
        for (backend, weight) in weights {
            let position = backends
                .iter()
                .position(|b| &b.name == backend)
                .ok_or_else(|| {
                    RouterError::Invalid(format!(
                        "backend {backend} is not in httproute {}",
                        self.name
                    ))
                })?;
            let path = format!("/spec/rules/{index}/backendRefs/{position}");
            // Fails the whole patch if the route changed under us.
            ops.push(json!({"op": "test", "path": format!("{path}/name"), "value": backend}));
            ops.push(json!({"op": "add", "path": format!("{path}/weight"), "value": weight}));
        }
        let patch: json_patch::Patch = serde_json::from_value(json!(ops))
            .map_err(|e| RouterError::Invalid(format!("JSON patch: {e}")))?;
        self.api
            .patch(
                &self.name,
                &crate::writes::patch(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(|e| match e {
                kube::Error::Api(ref status)
                    if status.code == 422 && status.message.contains("Testing value") =>
                {
                    RouterError::Changed(format!("httproute {}: {}", self.name, status.message))
                }
                other => RouterError::Api(other),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::gateway::{HTTPBackendRef, HTTPRouteRule, HTTPRouteSpec};

    fn route(weights: &[(&str, Option<i32>)]) -> HTTPRoute {
        HTTPRoute::new(
            "payments",
            HTTPRouteSpec {
                parent_refs: vec![],
                hostnames: vec![],
                rules: vec![
                    HTTPRouteRule {
                        backend_refs: vec![],
                    },
                    HTTPRouteRule {
                        backend_refs: weights
                            .iter()
                            .map(|(n, w)| HTTPBackendRef {
                                name: (*n).into(),
                                port: Some(8080),
                                weight: *w,
                            })
                            .collect(),
                    },
                ],
            },
        )
    }

    #[test]
    fn shares_are_percent_of_the_first_rule_with_backends() {
        let (index, w) = shares(&route(&[("a", Some(3)), ("b", Some(1))])).expect("shares");
        assert_eq!(index, 1);
        assert_eq!(w["a"], 75);
        assert_eq!(w["b"], 25);
        // Unset weights are 1 each.
        let (_, w) = shares(&route(&[("a", None), ("b", None)])).expect("shares");
        assert_eq!((w["a"], w["b"]), (50, 50));
        let (_, w) = shares(&route(&[("a", Some(0)), ("b", Some(0))])).expect("shares");
        assert_eq!((w["a"], w["b"]), (0, 0));
    }
}
