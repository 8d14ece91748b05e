//! The kustomize base in deploy/ against a real kube-apiserver: it applies,
//! the samples pass the CRDs' validation, and RBAC grants what the binaries
//! use and nothing more: writes only where homeostat manages, and every
//! rule used by the operator running under it (the audit log says so).

use std::time::Duration;

use crate::common::*;
use homeostat_api::{OrderSystem, RemediationPolicy};
use homeostat_test_support::{free_port, rbac};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_apply_and_rbac_is_least_privilege() {
    let (plane, _client) = plane().await;
    let dir = deploy_dir();
    let apply = |kustomization: &str| {
        let mut kubectl = plane.kubectl().unwrap_or_else(|e| panic!("kubectl: {e}"));
        let out = kubectl
            .args(["apply", "--server-side", "-k"])
            .arg(dir.join(kustomization))
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl apply -k {kustomization}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
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
    // homeostat alone (the CRDs are installed): it writes nowhere until a
    // namespace binds its roles, and brings no Prometheus.
    apply("base");
    assert!(!can("operator", "patch", "deployments.apps/scale", "shop"));
    assert!(!can(
        "detector",
        "create",
        "anomalyreports.homeostat.dev",
        "shop"
    ));
    assert!(can("operator", "watch", "deployments.apps", "shop"));
    assert!(!can_as("prometheus", "list", "pods", "shop"));
    // The base with the sample beside it, as the overlays compose them.
    apply("overlays/local");
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
        "patch",
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
        "patch",
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

/// A StatefulSet of `replicas` (no pods run here; only its scale matters).
async fn statefulset(client: &kube::Client, ns: &str, name: &str, replicas: i32) {
    let set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {"containers": [{"name": name, "image": "ledger:test"}]}
            }
        }
    }))
    .expect("statefulset");
    Api::<StatefulSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &set)
        .await
        .expect("create the StatefulSet");
}

fn statefulset_replicas(set: &StatefulSet) -> Option<i32> {
    set.spec.as_ref().and_then(|s| s.replicas)
}

/// The operator runs as its ServiceAccount with the shipped RBAC and does
/// everything it does: an OrderSystem with its own database and broker
/// (every kind of child, Secrets, a ServiceMonitor), each kind of step
/// (Deployment and StatefulSet scale, the OMS ConfigMap and an HTTPRoute),
/// a policy deleted mid-remediation (its finalizer), restores, Events and
/// the Lease, released on SIGTERM. The audit log then shows nothing refused,
/// every granted verb used, and none granted twice: so no rule of the
/// shipped RBAC can go without this test failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_uses_every_permission_it_is_granted_and_needs_no_other() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    servicemonitor_crd(&client).await;
    rbac::apply(&plane, &rbac::shipped_manifests()).unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = plane
        .service_account_kubeconfig(OPERATOR_NAMESPACE, "homeostat-operator")
        .await
        .unwrap_or_else(|e| panic!("token: {e}"));

    // What an SRE creates: the OMS with its own PostgreSQL and NATS, a
    // StatefulSet and an HTTPRoute of their own, and four policies.
    let systems: Api<OrderSystem> = Api::namespaced(client.clone(), ns);
    let system: OrderSystem = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "OrderSystem",
        "metadata": {"name": "shop"},
        "spec": {"database": {"inCluster": {}}, "events": {"inCluster": {}},
                 "paymentPrimaryWeight": 100}
    }))
    .expect("order system");
    systems
        .create(&PostParams::default(), &system)
        .await
        .expect("create the OrderSystem");
    statefulset(&client, ns, "ledger", 1).await;
    let routes = payments_route(&client, ns).await;
    let scale = |service: &str, target: serde_json::Value| {
        json!({
            "services": {"names": [service]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"scale": {"target": target, "step": 1, "minReplicas": 1, "maxReplicas": 2}}],
            "guards": {"cooldown": "1s"},
            "stableFor": "2s"
        })
    };
    let reroute = |kind: &str, name: &str| {
        json!({
            "services": {"names": ["payment-primary"]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"reroute": {"router": {"kind": kind, "name": name},
                "from": "payment-primary", "to": "payment-secondary", "weightStep": 50, "maxWeight": 50}}],
            "guards": {"cooldown": "1s"},
            "stableFor": "2s"
        })
    };
    let tax = json!({"kind": "Deployment", "name": "tax"});
    let ledger = json!({"kind": "StatefulSet", "name": "ledger"});
    policy(&client, ns, "scale-tax", scale("tax", tax)).await;
    policy(&client, ns, "scale-ledger", scale("ledger", ledger)).await;
    policy(
        &client,
        ns,
        "reroute-configmap",
        reroute("OmsConfigMap", "oms-routing"),
    )
    .await;
    policy(
        &client,
        ns,
        "reroute-route",
        reroute("HTTPRoute", "payments"),
    )
    .await;

    let console_port = free_port().expect("port");
    let console = format!("127.0.0.1:{console_port}");
    let mut operator = Operator::start_full(
        &plane,
        &kubeconfig,
        "a",
        &["--console-listen", &console],
        &[],
    );

    // The OrderSystem, every kind of child.
    let monitors = servicemonitors(&client, ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    eventually(
        "the OMS with its database, broker and ServiceMonitor",
        90,
        || async {
            monitors
                .get("shop-oms")
                .await
                .map_err(|e| format!("ServiceMonitor: {e}"))?;
            let listed = sets
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            if listed.items.len() < 3 {
                return Err(format!("{} StatefulSets", listed.items.len()));
            }
            let status = systems.get("shop").await.map_err(|e| e.to_string())?.status;
            match status {
                Some(s) if s.services.len() == 8 => Ok(()),
                other => Err(format!("status {other:?}")),
            }
        },
    )
    .await;

    // Each kind of step.
    for service in ["tax", "ledger", "payment-primary"] {
        open_report(&client, ns, service).await;
    }
    wait_replicas(&client, ns, "tax", 2).await;
    let ledger_at = |n: i32| {
        let sets = sets.clone();
        async move {
            let set = sets.get("ledger").await.map_err(|e| e.to_string())?;
            match statefulset_replicas(&set) {
                Some(got) if got == n => Ok(()),
                got => Err(format!("ledger at {got:?}")),
            }
        }
    };
    eventually("ledger at 2", 60, || ledger_at(2)).await;
    let weights_are = |configmap: (&'static str, &'static str), route: [i32; 2]| {
        let client = client.clone();
        let routes = &routes;
        async move {
            let got = configmap_weights(&client, ns).await;
            let from_route = route_weights(routes).await?;
            let want_route: Vec<Option<i32>> = route.iter().copied().map(Some).collect();
            if (got.0.as_str(), got.1.as_str()) == configmap && from_route == want_route {
                Ok(())
            } else {
                Err(format!("ConfigMap {got:?}, HTTPRoute {from_route:?}"))
            }
        }
    };
    eventually("half the payments rerouted twice over", 60, || {
        weights_are(("50", "50"), [50, 50])
    })
    .await;

    // A policy deleted while it holds tax: restored, then gone.
    Api::<RemediationPolicy>::namespaced(client.clone(), ns)
        .delete("scale-tax", &Default::default())
        .await
        .expect("delete the policy");
    wait_replicas(&client, ns, "tax", 1).await;
    eventually("scale-tax gone", 60, || async {
        match Api::<RemediationPolicy>::namespaced(client.clone(), ns)
            .get_opt("scale-tax")
            .await
        {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Resolved: everything put back.
    resolve(&client, ns, "ledger-latency-p99-1").await;
    resolve(&client, ns, "payment-primary-latency-p99-1").await;
    eventually("ledger back at 1", 60, || ledger_at(1)).await;
    eventually("the payments back on the primary", 60, || {
        weights_are(("100", "0"), [100, 0])
    })
    .await;

    // The console answers a person the API server vouches for (here the
    // operator's own ServiceAccount, which may list reports).
    let token = plane
        .service_account_token(OPERATOR_NAMESPACE, "homeostat-operator")
        .await
        .expect("token");
    let page = eventually("the console's reports page", 30, || async {
        let answer = reqwest::Client::new()
            .get(format!("http://{console}/reports?namespace={ns}"))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if answer.status().is_success() {
            answer.text().await.map_err(|e| e.to_string())
        } else {
            Err(answer.status().to_string())
        }
    })
    .await;
    assert!(page.contains("tax-latency-p99-1"), "{page}");
    // A person's act through the console is written with the operator's
    // own client (after a SubjectAccessReview of the person; here the
    // operator's identity again, which may create Silences).
    let silenced = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!(
            "http://{console}/reports/{ns}/tax-latency-p99-1/silence"
        ))
        .bearer_auth(&token)
        .form(&[("for", "5m"), ("note", "deploy test")])
        .send()
        .await
        .expect("answer");
    assert_eq!(silenced.status(), 303);

    // SIGTERM: the Lease released.
    let exit = operator.terminate(Duration::from_secs(20));
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");

    let checked = rbac::check_least_privilege(&plane, OPERATOR_NAMESPACE, "homeostat-operator")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(checked > 30, "{checked} grants checked");

    // It reads only the children it made, not every Deployment, Service
    // and ConfigMap in the cluster: each list and watch of those kinds
    // selects its label.
    let operator_user = rbac::service_account_user(OPERATOR_NAMESPACE, "homeostat-operator");
    let events = homeostat_test_support::audit::read(&plane.audit_log_path())
        .unwrap_or_else(|e| panic!("{e}"));
    let reads: Vec<_> = events
        .iter()
        .filter(|e| e.acting_user() == operator_user)
        .filter(|e| e.verb == "list" || e.verb == "watch")
        .filter(|e| {
            e.object_ref.as_ref().is_some_and(|o| {
                ["deployments", "statefulsets", "services", "configmaps"]
                    .contains(&o.resource.as_str())
            })
        })
        .collect();
    assert!(reads.len() >= 4, "the owned watches: {}", reads.len());
    for read in reads {
        assert!(
            read.request_uri
                .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dhomeostat-operator"),
            "an unselected read: {}",
            read.summary()
        );
    }
}
