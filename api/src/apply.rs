//! Bodies for writing a resource's status, as typed structs: the part of a
//! status a writer owns is a struct that serialises, never JSON put
//! together by hand.

use kube::Resource;
use serde::Serialize;

/// `apiVersion`, `kind`, an optional `metadata.resourceVersion` and a
/// status: a server-side apply (or merge patch) body for the status
/// subresource of `K`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusWrite<S> {
    api_version: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Precondition>,
    status: S,
}

/// The write applies only to the version read: a conflict (409) otherwise.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Precondition {
    resource_version: String,
}

impl<S: Serialize> StatusWrite<S> {
    /// `status` for a `K`, whatever version is stored.
    pub fn of<K: Resource<DynamicType = ()>>(status: S) -> Self {
        Self::new(
            K::api_version(&()).into_owned(),
            K::kind(&()).into_owned(),
            status,
        )
    }

    /// `status` for an object known by its `apiVersion` and `kind` only.
    pub fn new(api_version: String, kind: String, status: S) -> Self {
        Self {
            api_version,
            kind,
            metadata: None,
            status,
        }
    }

    /// Only if the stored object is still at `resource_version` (when known).
    pub fn if_at(mut self, resource_version: Option<String>) -> Self {
        self.metadata = resource_version.map(|resource_version| Precondition { resource_version });
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RemediationPolicy;

    #[test]
    fn serialises_as_an_apply_body_with_an_optional_precondition() {
        let body = StatusWrite::of::<RemediationPolicy>(json!({"actionsTaken": 1}));
        assert_eq!(
            serde_json::to_value(&body).expect("json"),
            json!({
                "apiVersion": "homeostat.dev/v1alpha1",
                "kind": "RemediationPolicy",
                "status": {"actionsTaken": 1},
            })
        );
        let body = body.if_at(Some("42".into()));
        assert_eq!(
            serde_json::to_value(&body).expect("json")["metadata"],
            json!({"resourceVersion": "42"})
        );
    }
}
