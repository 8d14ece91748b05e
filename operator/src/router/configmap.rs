//! The reference OMS's routing ConfigMap (`payment.payment-primary: "90"`),
//! which `orders` follows live.

use std::collections::BTreeMap;

use homeostat_api::routing::{parse_routing_data, routing_key};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::Patch;
use serde_json::json;

use super::{RouterError, TrafficRouter, Weights};

pub struct OmsConfigMapRouter {
    api: Api<ConfigMap>,
    name: String,
}

impl OmsConfigMapRouter {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }

    /// route → backends, as the ConfigMap has them.
    async fn table(&self) -> Result<Option<BTreeMap<String, BTreeMap<String, u32>>>, RouterError> {
        let Some(map) = self.api.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let data = map.data.unwrap_or_default();
        parse_routing_data(&data)
            .map(Some)
            .map_err(|e| RouterError::Invalid(format!("configmap {}: {e}", self.name)))
    }
}

impl TrafficRouter for OmsConfigMapRouter {
    async fn weights(&self) -> Result<Option<Weights>, RouterError> {
        Ok(self.table().await?.map(|table| {
            table
                .into_values()
                .flat_map(|backends| backends.into_iter().map(|(b, w)| (b, w as i32)))
                .collect()
        }))
    }

    async fn set_weights(&self, expected: &Weights, weights: &Weights) -> Result<(), RouterError> {
        let table = self.table().await?.ok_or_else(|| {
            RouterError::Invalid(format!("configmap {} does not exist", self.name))
        })?;
        let mut ops = Vec::new();
        for (backend, weight) in weights {
            let route = table
                .iter()
                .find(|(_, backends)| backends.contains_key(backend))
                .map(|(route, _)| route)
                .ok_or_else(|| {
                    RouterError::Invalid(format!(
                        "backend {backend} is not in configmap {}",
                        self.name
                    ))
                })?;
            let path = format!("/data/{}", pointer_escape(&routing_key(route, backend)));
            if let Some(before) = expected.get(backend) {
                ops.push(json!({"op": "test", "path": path, "value": before.to_string()}));
            }
            ops.push(
                json!({"op": "replace", "path": path, "value": weight.clamp(&0, &100).to_string()}),
            );
        }
        // The changed keys only, each tested first: the patch applies whole
        // or not at all, and nothing else in the map moves.
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
                    RouterError::Changed(format!("configmap {}: {}", self.name, status.message))
                }
                other => RouterError::Api(other),
            })?;
        Ok(())
    }
}

/// A key as a JSON Pointer segment (RFC 6901).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
