//! The control plane's audit log: one event per request, saying who asked
//! for what and whether the authorizer allowed it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::SupportError;

/// One request as the API server recorded it (audit.k8s.io/v1 Event, the
/// fields the tests read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user: UserInfo,
    #[serde(default)]
    pub impersonated_user: Option<UserInfo>,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    pub username: String,
}

/// The object a request was about; absent for non-resource URLs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: Option<u16>,
}

impl AuditEvent {
    /// Who the request acted as (the impersonated user, if any).
    pub fn acting_user(&self) -> &str {
        self.impersonated_user
            .as_ref()
            .unwrap_or(&self.user)
            .username
            .as_str()
    }

    /// The authorizer's decision, `allow` or `forbid`; None before authorization.
    pub fn decision(&self) -> Option<&str> {
        self.annotations
            .get("authorization.k8s.io/decision")
            .map(String::as_str)
    }

    /// Refused for want of identity or permission (401 or 403).
    pub fn refused(&self) -> bool {
        self.decision() == Some("forbid") || matches!(self.code(), Some(401 | 403))
    }

    pub fn code(&self) -> Option<u16> {
        self.response_status.as_ref().and_then(|s| s.code)
    }

    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn resource(&self) -> Option<String> {
        let object = self.object_ref.as_ref()?;
        Some(match &object.subresource {
            Some(sub) => format!("{}/{sub}", object.resource),
            None => object.resource.clone(),
        })
    }

    /// One line for a failure message.
    pub fn summary(&self) -> String {
        format!(
            "{} {} {} -> {}",
            self.acting_user(),
            self.verb,
            self.request_uri,
            self.code().map_or("?".to_owned(), |c| c.to_string())
        )
    }
}

/// Every event in the log at `path`, in the order written.
pub fn read(path: &Path) -> Result<Vec<AuditEvent>, SupportError> {
    let text = std::fs::read_to_string(path)
        .map_err(SupportError::io(format!("read {}", path.display())))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| SupportError::Failed(format!("audit event {line}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_scale_patch_and_a_refused_get() {
        let allowed = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/shop/deployments/tax/scale","verb":"patch","user":{"username":"system:serviceaccount:homeostat-system:homeostat-operator"},"objectRef":{"resource":"deployments","namespace":"shop","name":"tax","apiGroup":"apps","apiVersion":"v1","subresource":"scale"},"responseStatus":{"metadata":{},"code":200},"annotations":{"authorization.k8s.io/decision":"allow"}}"#;
        let refused = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets/x","verb":"get","user":{"username":"system:serviceaccount:homeostat-system:homeostat-operator"},"objectRef":{"resource":"secrets","namespace":"shop","name":"x","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":403},"annotations":{"authorization.k8s.io/decision":"forbid"}}"#;
        let a: AuditEvent = serde_json::from_str(allowed).expect("allowed");
        let r: AuditEvent = serde_json::from_str(refused).expect("refused");
        assert_eq!(a.resource().as_deref(), Some("deployments/scale"));
        assert_eq!(
            a.object_ref.as_ref().map(|o| o.api_group.as_str()),
            Some("apps")
        );
        assert!(!a.refused());
        assert!(r.refused());
        assert_eq!(
            r.object_ref.as_ref().map(|o| o.api_group.as_str()),
            Some("")
        );
    }
}
