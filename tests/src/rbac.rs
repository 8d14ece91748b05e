//! The RBAC homeostat ships, as grants to one ServiceAccount, checked
//! against what the API server's audit log says that account did.
//!
//! A grant that was used, and is the only grant allowing what it allows,
//! cannot be removed without the same run being refused: so a run that
//! uses every grant, with none refused and none overlapping, shows the
//! shipped RBAC holds no unused permission and lacks none.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Deserialize;

use crate::audit::AuditEvent;
use crate::{ControlPlane, SupportError};

/// The RBAC manifests homeostat ships: the base's accounts and roles, the
/// sample bindings that let them write in namespace `shop`, and Prometheus's
/// discovery Roles.
pub fn shipped_manifests() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    vec![
        root.join("deploy/base/rbac.yaml"),
        root.join("deploy/samples/access.yaml"),
        root.join("deploy/samples/prometheus.yaml"),
    ]
}

/// Applies `files` with `kubectl apply --server-side` (their namespaces must exist).
pub fn apply(plane: &ControlPlane, files: &[PathBuf]) -> Result<(), SupportError> {
    let mut kubectl = plane.kubectl()?;
    kubectl.args(["apply", "--server-side"]);
    for file in files {
        kubectl.arg("-f").arg(file);
    }
    let out = kubectl
        .output()
        .map_err(SupportError::io("run kubectl apply"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SupportError::Failed(format!(
            "kubectl apply: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Where a grant holds: everywhere (a ClusterRoleBinding) or in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Cluster,
    Namespace(String),
}

impl Scope {
    fn overlaps(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Namespace(a), Scope::Namespace(b)) => a == b,
            _ => true,
        }
    }

    fn holds_in(&self, namespace: Option<&str>) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Namespace(ns) => namespace == Some(ns.as_str()),
        }
    }
}

/// One verb on one resource, as one rule of one role grants it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub api_group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    pub verb: String,
    /// Empty: any object.
    pub resource_names: Vec<String>,
    pub scope: Scope,
    /// `ClusterRole/NAME` and how it is bound, for messages.
    pub from: String,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {}.{}", self.verb, self.resource, group)?;
        if !self.resource_names.is_empty() {
            write!(f, " {:?}", self.resource_names)?;
        }
        match &self.scope {
            Scope::Cluster => write!(f, " everywhere")?,
            Scope::Namespace(ns) => write!(f, " in {ns}")?,
        }
        write!(f, " ({})", self.from)
    }
}

impl Grant {
    /// Whether this grant is what allowed `event`. An apply that created
    /// its object (a `patch` answered 201) is authorised as `create` too.
    pub fn allowed(&self, event: &AuditEvent) -> bool {
        let Some(object) = &event.object_ref else {
            return false;
        };
        let verb_matches = event.verb == self.verb
            || (self.verb == "create" && event.verb == "patch" && event.code() == Some(201));
        verb_matches
            && event.decision() == Some("allow")
            && object.api_group == self.api_group
            && event.resource().as_deref() == Some(self.resource.as_str())
            && self.scope.holds_in(object.namespace.as_deref())
            && (self.resource_names.is_empty()
                || object
                    .name
                    .as_ref()
                    .is_some_and(|n| self.resource_names.contains(n)))
    }

    fn overlaps(&self, other: &Grant) -> bool {
        self.api_group == other.api_group
            && self.resource == other.resource
            && self.verb == other.verb
            && self.scope.overlaps(&other.scope)
            && (self.resource_names.is_empty()
                || other.resource_names.is_empty()
                || self
                    .resource_names
                    .iter()
                    .any(|n| other.resource_names.contains(n)))
    }
}

/// A person for a test: ServiceAccount `namespace/name`, bound in its
/// namespace to the ClusterRole `role` when one is given.
pub async fn person(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    role: Option<&str>,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::Api;
    use kube::api::PostParams;
    let account = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &account)
        .await?;
    if let Some(role) = role {
        let binding = RoleBinding {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            role_ref: k8s_openapi::api::rbac::v1::RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.to_owned(),
            },
            subjects: Some(vec![k8s_openapi::api::rbac::v1::Subject {
                kind: "ServiceAccount".into(),
                name: name.to_owned(),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            }]),
        };
        Api::<RoleBinding>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await?;
    }
    Ok(())
}

/// A ServiceAccount's user name, `system:serviceaccount:NS:NAME`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

#[derive(Deserialize)]
struct Kind {
    kind: String,
}

/// Every grant the manifests `files` give the ServiceAccount `namespace/name`.
pub fn grants_to(files: &[PathBuf], namespace: &str, name: &str) -> Result<Vec<Grant>, String> {
    let mut cluster_roles: BTreeMap<String, Vec<PolicyRule>> = BTreeMap::new();
    let mut roles: BTreeMap<(String, String), Vec<PolicyRule>> = BTreeMap::new();
    let mut bindings: Vec<Binding> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = serde_norway::Value::deserialize(document)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            if value.is_null() {
                continue;
            }
            let kind: Kind = serde_norway::from_value(value.clone())
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let parse_error =
                |e: serde_norway::Error| format!("{}: {}: {e}", file.display(), kind.kind);
            match kind.kind.as_str() {
                "ClusterRole" => {
                    let role: ClusterRole = serde_norway::from_value(value).map_err(parse_error)?;
                    cluster_roles.insert(
                        role.metadata.name.unwrap_or_default(),
                        role.rules.unwrap_or_default(),
                    );
                }
                "Role" => {
                    let role: Role = serde_norway::from_value(value).map_err(parse_error)?;
                    roles.insert(
                        (
                            role.metadata.namespace.unwrap_or_default(),
                            role.metadata.name.unwrap_or_default(),
                        ),
                        role.rules.unwrap_or_default(),
                    );
                }
                "ClusterRoleBinding" => {
                    let b: ClusterRoleBinding =
                        serde_norway::from_value(value).map_err(parse_error)?;
                    bindings.push(Binding {
                        scope: Scope::Cluster,
                        role_kind: b.role_ref.kind,
                        role_name: b.role_ref.name,
                        accounts: accounts(b.subjects.unwrap_or_default()),
                    });
                }
                "RoleBinding" => {
                    let b: RoleBinding = serde_norway::from_value(value).map_err(parse_error)?;
                    bindings.push(Binding {
                        scope: Scope::Namespace(b.metadata.namespace.unwrap_or_default()),
                        role_kind: b.role_ref.kind,
                        role_name: b.role_ref.name,
                        accounts: accounts(b.subjects.unwrap_or_default()),
                    });
                }
                _ => {}
            }
        }
    }

    let mut grants = Vec::new();
    for Binding {
        scope,
        role_kind,
        role_name,
        accounts,
    } in bindings
    {
        if !accounts.contains(&(namespace.to_owned(), name.to_owned())) {
            continue;
        }
        let rules = match (&scope, role_kind.as_str()) {
            (_, "ClusterRole") => cluster_roles.get(&role_name),
            (Scope::Namespace(ns), "Role") => roles.get(&(ns.clone(), role_name.clone())),
            _ => None,
        }
        .ok_or_else(|| {
            format!("a binding refers to {role_kind} {role_name}, which is not shipped")
        })?;
        let from = match &scope {
            Scope::Cluster => format!("{role_kind}/{role_name} bound cluster-wide"),
            Scope::Namespace(ns) => format!("{role_kind}/{role_name} bound in {ns}"),
        };
        for rule in rules {
            if rule.non_resource_urls.is_some() {
                return Err(format!("{from}: non-resource URLs are not checked"));
            }
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        if [group, resource, verb].iter().any(|s| s.contains('*')) {
                            return Err(format!("{from}: a wildcard grants more than is used"));
                        }
                        grants.push(Grant {
                            api_group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            resource_names: rule.resource_names.clone().unwrap_or_default(),
                            scope: scope.clone(),
                            from: from.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(grants)
}

/// A RoleBinding or ClusterRoleBinding, reduced to what grants need.
struct Binding {
    scope: Scope,
    role_kind: String,
    role_name: String,
    /// The ServiceAccounts bound, as (namespace, name).
    accounts: Vec<(String, String)>,
}

fn accounts(subjects: Vec<k8s_openapi::api::rbac::v1::Subject>) -> Vec<(String, String)> {
    subjects
        .into_iter()
        .filter(|s| s.kind == "ServiceAccount")
        .map(|s| (s.namespace.unwrap_or_default(), s.name))
        .collect()
}

/// What is wrong with `grants` given what `user` did in `events`: requests
/// refused, grants never used, grants that allow what another allows too.
/// Empty when the grants are exactly what the run needed.
pub fn least_privilege_findings(
    grants: &[Grant],
    events: &[AuditEvent],
    user: &str,
) -> Vec<String> {
    let mine: Vec<&AuditEvent> = events.iter().filter(|e| e.acting_user() == user).collect();
    let mut findings = Vec::new();
    if mine.is_empty() {
        findings.push(format!("{user} made no request at all"));
    }
    // Each refused request once, however often it was retried.
    let refused: std::collections::BTreeSet<String> = mine
        .iter()
        .filter(|e| e.refused())
        .map(|e| format!("refused: {}", e.summary()))
        .collect();
    findings.extend(refused);
    for grant in grants {
        if !mine.iter().any(|e| grant.allowed(e)) {
            findings.push(format!("never used: {grant}"));
        }
    }
    for (i, a) in grants.iter().enumerate() {
        for b in &grants[i + 1..] {
            if a.overlaps(b) {
                findings.push(format!("granted twice: {a} and {b}"));
            }
        }
    }
    findings
}

/// Reads the control plane's audit log and checks the shipped grants to the
/// ServiceAccount `namespace/name` against it; the error lists every finding.
pub fn check_least_privilege(
    plane: &ControlPlane,
    namespace: &str,
    name: &str,
) -> Result<usize, String> {
    let grants = grants_to(&shipped_manifests(), namespace, name)?;
    if grants.is_empty() {
        return Err(format!(
            "the shipped RBAC grants {namespace}/{name} nothing"
        ));
    }
    let events = crate::audit::read(&plane.audit_log_path()).map_err(|e| e.to_string())?;
    let findings =
        least_privilege_findings(&grants, &events, &service_account_user(namespace, name));
    if findings.is_empty() {
        Ok(grants.len())
    } else {
        Err(format!(
            "{namespace}/{name} under the shipped RBAC:\n  {}",
            findings.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
        code: u16,
        decision: &str,
    ) -> AuditEvent {
        serde_json::from_value(serde_json::json!({
            "verb": verb, "requestURI": "/x",
            "user": {"username": "system:serviceaccount:s:op"},
            "objectRef": {"apiGroup": group, "resource": resource, "namespace": ns},
            "responseStatus": {"code": code},
            "annotations": {"authorization.k8s.io/decision": decision}
        }))
        .expect("event")
    }

    fn grant(verb: &str, resource: &str, scope: Scope) -> Grant {
        Grant {
            api_group: "apps".into(),
            resource: resource.into(),
            verb: verb.into(),
            resource_names: vec![],
            scope,
            from: "test".into(),
        }
    }

    #[test]
    fn a_used_grant_a_refusal_an_unused_and_a_doubled_grant_are_told_apart() {
        let shop = || Scope::Namespace("shop".into());
        let grants = [
            grant("patch", "deployments", shop()),
            grant("create", "deployments", shop()),
            grant("get", "deployments", Scope::Cluster),
            grant("get", "deployments", shop()),
            grant("delete", "deployments", shop()),
        ];
        let events = [
            event("patch", "apps", "deployments", "shop", 201, "allow"),
            event("get", "apps", "deployments", "other", 200, "allow"),
            event("update", "apps", "deployments", "shop", 403, "forbid"),
        ];
        let findings = least_privilege_findings(&grants, &events, "system:serviceaccount:s:op");
        assert_eq!(findings.len(), 4, "{findings:#?}");
        assert!(findings[0].starts_with("refused: "), "{findings:#?}");
        // The apply that created a Deployment used both patch and create;
        // the cluster-wide get was used in namespace other.
        assert!(findings[1].starts_with("never used: get deployments.apps in shop"));
        assert!(findings[2].starts_with("never used: delete"));
        assert!(findings[3].starts_with("granted twice: get deployments.apps everywhere"));
    }

    #[test]
    fn the_shipped_rbac_parses_into_grants_for_both_accounts() {
        let files = shipped_manifests();
        let operator =
            grants_to(&files, "homeostat-system", "homeostat-operator").expect("operator");
        let detector =
            grants_to(&files, "homeostat-system", "homeostat-detector").expect("detector");
        assert!(operator.iter().any(|g| g.resource == "deployments/scale"
            && g.verb == "patch"
            && g.scope == Scope::Namespace("shop".into())));
        assert!(detector.iter().all(|g| g.api_group == "homeostat.dev"));
    }
}
