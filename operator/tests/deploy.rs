//! The kustomize base in deploy/ against a real kube-apiserver: it applies,
//! the samples pass the CRDs' validation, and RBAC grants what the binaries
//! use and nothing more.

mod common;

use common::*;

fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_apply_and_rbac_is_least_privilege() {
    let (plane, _client) = plane().await;
    let dir = deploy_dir();
    let mut kubectl = plane.kubectl().unwrap_or_else(|e| panic!("kubectl: {e}"));
    // The base, as every overlay includes it (the CRDs are installed).
    let out = kubectl
        .args(["apply", "--server-side", "-k"])
        .arg(dir.join("base"))
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let can_as = |account: &str, verb: &str, what: &str, ns: &str| {
        let mut kubectl = plane.kubectl().unwrap_or_else(|e| panic!("kubectl: {e}"));
        let (resource, subresource) = match what.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (what, None),
        };
        kubectl.args(["auth", "can-i", verb, resource, "-n", ns]);
        if let Some(sub) = subresource {
            kubectl.arg(format!("--subresource={sub}"));
        }
        let out = kubectl
            .arg(format!(
                "--as=system:serviceaccount:homeostat-system:{account}"
            ))
            .output()
            .expect("run kubectl");
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    let can = |who: &str, verb: &str, what: &str, ns: &str| {
        can_as(&format!("homeostat-{who}"), verb, what, ns)
    };
    // What the operator does.
    assert!(can("operator", "patch", "deployments.apps/scale", "shop"));
    assert!(can("operator", "patch", "configmaps", "shop"));
    assert!(can(
        "operator",
        "patch",
        "httproutes.gateway.networking.k8s.io",
        "shop"
    ));
    assert!(can(
        "operator",
        "patch",
        "remediationpolicies.homeostat.dev/status",
        "shop"
    ));
    assert!(can(
        "operator",
        "patch",
        "anomalyreports.homeostat.dev/status",
        "shop"
    ));
    assert!(can("operator", "create", "events.events.k8s.io", "shop"));
    assert!(can(
        "operator",
        "update",
        "leases.coordination.k8s.io",
        "homeostat-system"
    ));
    // ... and what it must not.
    assert!(!can("operator", "delete", "deployments.apps", "shop"));
    assert!(
        can("operator", "patch", "deployments.apps", "shop"),
        "applies the OMS Deployments"
    );
    assert!(can(
        "operator",
        "patch",
        "ordersystems.homeostat.dev/status",
        "shop"
    ));
    assert!(
        !can("operator", "delete", "services", "shop"),
        "garbage collection deletes, not the operator"
    );
    assert!(!can(
        "operator",
        "update",
        "leases.coordination.k8s.io",
        "shop"
    ));
    assert!(!can("operator", "get", "secrets", "shop"));
    assert!(
        can("operator", "create", "secrets", "shop"),
        "creates the URL Secret of an in-cluster database once"
    );
    assert!(!can("operator", "patch", "secrets", "shop"));
    assert!(can("operator", "patch", "statefulsets.apps", "shop"));
    // The policy's spec is the SRE's: the operator's own patches of a policy
    // touch only /metadata/finalizers (remediation/finalizer.rs), which RBAC
    // cannot single out; it can neither create nor delete one.
    assert!(can(
        "operator",
        "patch",
        "remediationpolicies.homeostat.dev",
        "shop"
    ));
    for verb in ["create", "delete", "update"] {
        assert!(
            !can(
                "operator",
                verb,
                "remediationpolicies.homeostat.dev",
                "shop"
            ),
            "{verb}"
        );
    }
    assert!(can(
        "operator",
        "list",
        "horizontalpodautoscalers.autoscaling",
        "shop"
    ));
    assert!(!can(
        "operator",
        "patch",
        "horizontalpodautoscalers.autoscaling",
        "shop"
    ));
    // The detector writes reports and nothing else.
    assert!(can(
        "detector",
        "create",
        "anomalyreports.homeostat.dev",
        "shop"
    ));
    assert!(can(
        "detector",
        "patch",
        "anomalyreports.homeostat.dev/status",
        "shop"
    ));
    assert!(!can(
        "detector",
        "delete",
        "anomalyreports.homeostat.dev",
        "shop"
    ));
    assert!(!can("detector", "patch", "deployments.apps/scale", "shop"));
    // Writes only where homeostat manages (shop): nothing in kube-system, in
    // default or in a namespace made later; reads everywhere.
    for ns in ["kube-system", "default", "elsewhere"] {
        for (verb, what) in [
            ("patch", "deployments.apps/scale"),
            ("create", "deployments.apps"),
            ("patch", "configmaps"),
            ("create", "secrets"),
            ("create", "roles.rbac.authorization.k8s.io"),
            ("create", "rolebindings.rbac.authorization.k8s.io"),
            ("patch", "remediationpolicies.homeostat.dev/status"),
            ("create", "events.events.k8s.io"),
        ] {
            assert!(
                !can("operator", verb, what, ns),
                "operator {verb} {what} in {ns}"
            );
        }
        assert!(
            !can("detector", "create", "anomalyreports.homeostat.dev", ns),
            "detector in {ns}"
        );
        assert!(can("operator", "watch", "deployments.apps", ns), "{ns}");
    }
    // Prometheus discovers pods in the two namespaces it scrapes, and
    // reads nothing else.
    for ns in ["shop", "homeostat-system"] {
        assert!(can_as("prometheus", "list", "pods", ns), "{ns}");
        assert!(can_as("prometheus", "watch", "pods", ns), "{ns}");
    }
    assert!(!can_as("prometheus", "list", "pods", "kube-system"));
    assert!(!can_as("prometheus", "get", "secrets", "shop"));
    assert!(!can_as("prometheus", "list", "services", "shop"));
}
