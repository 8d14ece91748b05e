//! Compute resources of an OMS container: CPU and memory only, each a
//! Kubernetes quantity checked by the schema, requests never above limits.
//!
//! Narrower than a Pod's `ResourceRequirements` on purpose: every value the
//! API server accepts here is one the Deployment will accept too, so a typo
//! is refused when the OrderSystem is written, not when a pod fails to start.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// An amount of bytes: digits with an optional binary or decimal suffix.
pub(crate) const BYTES_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$";

/// Requests and limits of one container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.requests) || !has(self.limits) || !has(self.requests.cpu) || !has(self.limits.cpu) || quantity(self.requests.cpu).compareTo(quantity(self.limits.cpu)) <= 0").message("resources.requests.cpu must not exceed resources.limits.cpu"))]
#[x_kube(validation = Rule::new("!has(self.requests) || !has(self.limits) || !has(self.requests.memory) || !has(self.limits.memory) || quantity(self.requests.memory).compareTo(quantity(self.limits.memory)) <= 0").message("resources.requests.memory must not exceed resources.limits.memory"))]
pub struct ContainerResources {
    /// What the scheduler reserves for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Compute>,

    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Compute>,
}

/// An amount of CPU and of memory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Compute {
    /// CPU in cores or millicores, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 16),
        regex(pattern = r"^[0-9]+(\.[0-9]{1,3})?m?$")
    )]
    pub cpu: Option<String>,

    /// Memory in bytes with an optional suffix, e.g. `256Mi` or `1G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 24),
        regex(pattern = BYTES_PATTERN)
    )]
    pub memory: Option<String>,
}

impl Compute {
    fn quantities(&self) -> Option<BTreeMap<String, Quantity>> {
        let pairs: BTreeMap<String, Quantity> = [("cpu", &self.cpu), ("memory", &self.memory)]
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), Quantity(value.clone()?))))
            .collect();
        (!pairs.is_empty()).then_some(pairs)
    }
}

impl From<&ContainerResources> for ResourceRequirements {
    fn from(resources: &ContainerResources) -> Self {
        ResourceRequirements {
            requests: resources.requests.as_ref().and_then(Compute::quantities),
            limits: resources.limits.as_ref().and_then(Compute::quantities),
            ..ResourceRequirements::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn becomes_the_containers_requirements_leaving_out_what_is_unset() {
        let resources = ContainerResources {
            requests: Some(Compute {
                cpu: Some("100m".into()),
                memory: Some("64Mi".into()),
            }),
            limits: Some(Compute {
                cpu: None,
                memory: Some("256Mi".into()),
            }),
        };
        let requirements = ResourceRequirements::from(&resources);
        let requests = requirements.requests.expect("requests");
        assert_eq!(requests["cpu"], Quantity("100m".into()));
        assert_eq!(requests["memory"], Quantity("64Mi".into()));
        let limits = requirements.limits.expect("limits");
        assert_eq!(limits.len(), 1);
        assert_eq!(limits["memory"], Quantity("256Mi".into()));

        let empty = ResourceRequirements::from(&ContainerResources {
            requests: Some(Compute::default()),
            limits: None,
        });
        assert_eq!(empty.requests, None);
        assert_eq!(empty.limits, None);
    }
}
