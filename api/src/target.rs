//! What a remediation step changes: a workload through its scale
//! subresource, or a traffic router's weights. On the wire it is
//! `kind/name` in lowercase (`deployment/tax`, `omsconfigmap/oms-routing`),
//! as `kubectl` names objects; in code it is this enum, so nothing splits
//! strings to find out what it is.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ActionKind, RouterKind};

/// `kind/name`, the kind one of those below, the name a DNS subdomain.
pub const TARGET_PATTERN: &str =
    r"^(deployment|statefulset|omsconfigmap|httproute)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

/// An object a remediation step changes, in the policy's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// An apps/v1 Deployment, scaled.
    Deployment(String),
    /// An apps/v1 StatefulSet, scaled.
    StatefulSet(String),
    /// The reference OMS's routing ConfigMap, rerouted.
    OmsConfigMap(String),
    /// A Gateway API HTTPRoute, rerouted.
    HttpRoute(String),
}

impl Target {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Deployment(name)
            | Target::StatefulSet(name)
            | Target::OmsConfigMap(name)
            | Target::HttpRoute(name) => name,
        }
    }

    /// The kind of step that changes it.
    pub fn action_kind(&self) -> ActionKind {
        match self {
            Target::Deployment(_) | Target::StatefulSet(_) => ActionKind::Scale,
            Target::OmsConfigMap(_) | Target::HttpRoute(_) => ActionKind::Reroute,
        }
    }

    /// The router of `kind` named `name`.
    pub fn router(kind: RouterKind, name: &str) -> Self {
        match kind {
            RouterKind::OmsConfigMap => Target::OmsConfigMap(name.to_owned()),
            RouterKind::HttpRoute => Target::HttpRoute(name.to_owned()),
        }
    }

    /// The router kind, for a router.
    pub fn router_kind(&self) -> Option<RouterKind> {
        match self {
            Target::OmsConfigMap(_) => Some(RouterKind::OmsConfigMap),
            Target::HttpRoute(_) => Some(RouterKind::HttpRoute),
            Target::Deployment(_) | Target::StatefulSet(_) => None,
        }
    }

    fn wire_kind(&self) -> &'static str {
        match self {
            Target::Deployment(_) => "deployment",
            Target::StatefulSet(_) => "statefulset",
            Target::OmsConfigMap(_) => "omsconfigmap",
            Target::HttpRoute(_) => "httproute",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.wire_kind(), self.name())
    }
}

/// A string that is not `kind/name` of a known kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a target: expected deployment/NAME, statefulset/NAME, omsconfigmap/NAME or httproute/NAME"
)]
pub struct ParseTargetError(String);

impl FromStr for Target {
    type Err = ParseTargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || ParseTargetError(s.to_owned());
        let (kind, name) = s.split_once('/').ok_or_else(error)?;
        if name.is_empty() || name.contains('/') {
            return Err(error());
        }
        let name = name.to_owned();
        match kind {
            "deployment" => Ok(Target::Deployment(name)),
            "statefulset" => Ok(Target::StatefulSet(name)),
            "omsconfigmap" => Ok(Target::OmsConfigMap(name)),
            "httproute" => Ok(Target::HttpRoute(name)),
            _ => Err(error()),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Target {
    fn schema_name() -> Cow<'static, str> {
        "Target".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": TARGET_PATTERN,
            "maxLength": 270,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_kind_slash_name() {
        for (target, wire) in [
            (Target::Deployment("tax".into()), "deployment/tax"),
            (Target::StatefulSet("db".into()), "statefulset/db"),
            (
                Target::OmsConfigMap("oms-routing".into()),
                "omsconfigmap/oms-routing",
            ),
            (Target::HttpRoute("payments".into()), "httproute/payments"),
        ] {
            assert_eq!(serde_json::to_value(&target).expect("serialize"), wire);
            assert_eq!(
                serde_json::from_value::<Target>(wire.into()).expect(wire),
                target
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_input_named() {
        for bad in [
            "tax",
            "pod/tax-0",
            "deployment/",
            "deployment/a/b",
            "Deployment/tax",
            "",
        ] {
            let error = bad.parse::<Target>().expect_err(bad);
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
        }
    }

    #[test]
    fn scale_targets_are_workloads_and_reroute_targets_routers() {
        assert_eq!(
            Target::Deployment("tax".into()).action_kind(),
            ActionKind::Scale
        );
        assert_eq!(
            Target::StatefulSet("db".into()).action_kind(),
            ActionKind::Scale
        );
        let router = Target::router(RouterKind::HttpRoute, "payments");
        assert_eq!(router.action_kind(), ActionKind::Reroute);
        assert_eq!(router.router_kind(), Some(RouterKind::HttpRoute));
        assert_eq!(Target::Deployment("tax".into()).router_kind(), None);
    }
}
