//! deploy/overlays/local on the one-node cluster, as the demo applied it
//! (the CRDs, then the overlay, as the README says) and after the demo's
//! scenario played on it: every pod of homeostat and of the sample OMS runs
//! under Pod Security `restricted` with the shipped RBAC; the OMS takes
//! orders; drills need the admin token; Prometheus finds and scrapes the OMS
//! pods, also through the API server's proxy; the operator and the detector
//! were never refused by the API server. The kind overlay is accepted by the
//! same API server (server-side dry run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use homeostat_api::OrderSystem;
use homeostat_test_support::cluster::Cluster;
use homeostat_test_support::{TestAssets, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::Api;
use kube::api::{ListParams, LogParams};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(300);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kubectl(cluster: &Cluster, args: &[&str]) -> String {
    let assets = TestAssets::locate().expect("test assets");
    let out = Command::new(assets.kubectl().expect("kubectl"))
        .env("KUBECONFIG", cluster.kubeconfig())
        .current_dir(root())
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pods of `pods` that are not Ready, a line each with their
/// containers' states.
fn describe(pods: &[Pod]) -> String {
    pods.iter()
        .filter(|p| !ready(p))
        .map(|p| {
            let statuses = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|s| {
                    s.iter()
                        .map(|c| format!("{:?}", c.state))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_else(|| format!("{:?}", p.status.as_ref().map(|s| &s.conditions)));
            format!(
                "{}: {statuses}",
                p.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn check(cluster: &Cluster) {
    let client = cluster.client().await.expect("client");
    // The OrderSystem is Ready: every service's replicas and its own
    // PostgreSQL and NATS, on volumes of the cluster's StorageClass.
    let systems: Api<OrderSystem> = Api::namespaced(client.clone(), "shop");
    let shop_pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let system_pods: Api<Pod> = Api::namespaced(client.clone(), "homeostat-system");
    wait_until(
        "the sample OrderSystem Ready",
        SETTLE,
        Duration::from_secs(1),
        || async {
            let os = systems.get("shop").await.map_err(|e| e.to_string())?;
            let condition = os
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
            match condition {
                Some(c) if c.status == "True" => Ok(()),
                other => {
                    let pods = shop_pods
                        .list(&ListParams::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    Err(format!(
                        "{}\n{}",
                        other.map(|c| c.message).unwrap_or_default(),
                        describe(&pods.items)
                    ))
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // homeostat's own Deployments are available.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "homeostat-system");
    wait_until(
        "homeostat's pods Ready",
        SETTLE,
        Duration::from_secs(1),
        || async {
            let pods = system_pods
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            // Operator (2), detector, Prometheus.
            if pods.items.len() == 4 && pods.items.iter().all(ready) {
                Ok(())
            } else {
                Err(describe(&pods.items))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for name in ["homeostat-operator", "homeostat-detector", "prometheus"] {
        deployments.get(name).await.expect(name);
    }

    // The OMS takes an order through its Service.
    let orders_ip = service_ip(&client, "shop", "orders").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let order = json!({
        "customer_id": "cluster-test",
        "lines": [{"sku": "SKU-MUG", "quantity": 1}],
        "region": "CENTRAL",
        "card_token": "tok_visa",
    });
    let placed: Value = wait_until(
        "an order confirmed",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let response = http
                .post(format!("http://{orders_ip}:8080/v1/orders"))
                .header("Idempotency-Key", "cluster-test-1")
                .json(&order)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body: Value = response.json().await.map_err(|e| e.to_string())?;
            if status.as_u16() == 201 {
                Ok(body)
            } else {
                Err(format!("{status}: {body}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placed["state"], "confirmed", "{placed}");

    // Drills go through the admin token the operator made for the shop.
    let secret = Api::<Secret>::namespaced(client.clone(), "shop")
        .get("shop-oms-admin")
        .await
        .expect("the admin Secret");
    let token = String::from_utf8(secret.data.expect("data")["token"].0.clone()).expect("utf-8");
    let tax_ip = service_ip(&client, "shop", "tax").await;
    let faults = format!("http://{tax_ip}:8080/admin/faults");
    let refused = http.get(&faults).send().await.expect("tax answers");
    assert_eq!(refused.status().as_u16(), 401, "no token, no faults");
    let injected = http
        .post(&faults)
        .bearer_auth(&token)
        .json(&json!({"kind": "latency", "latency_ms": 5, "duration_seconds": 5}))
        .send()
        .await
        .expect("tax answers");
    assert!(injected.status().is_success(), "{}", injected.status());

    // Prometheus found the OMS pods and labels their series by service.
    let prometheus_ip = service_ip(&client, "homeostat-system", "prometheus").await;
    wait_until(
        "Prometheus scrapes every OMS service",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || async {
            let answer: Value = http
                .get(format!("http://{prometheus_ip}:9090/api/v1/query"))
                .query(&[("query", r#"count by (service) (up{namespace="shop"} == 1)"#)])
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let services = answer["data"]["result"]
                .as_array()
                .map(|r| r.len())
                .unwrap_or_default();
            // The eight services; the load generator has no port.
            if services == 8 {
                Ok(())
            } else {
                Err(answer.to_string())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // `homeostat report` reaches the same Prometheus through the API
    // server's service proxy, with the kubeconfig's credentials: the same
    // eight services up.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let through_proxy = homeostat_oncall::history::query_range(
        &client,
        &homeostat_oncall::history::Source::in_cluster(),
        r#"count(count by (service) (up{namespace="shop"} == 1))"#,
        now - 30,
        now,
        2,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        through_proxy.values().any(|v| *v == 8.0),
        "{through_proxy:?}"
    );

    // Neither controller was refused anything under the shipped RBAC.
    for pod in system_pods
        .list(&ListParams::default().labels("app.kubernetes.io/part-of=homeostat"))
        .await
        .expect("pods")
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if name.starts_with("prometheus") {
            continue;
        }
        let logs = system_pods
            .logs(&name, &LogParams::default())
            .await
            .expect("logs");
        // The API server's refusal reads `… is forbidden: User … cannot …`.
        assert!(
            !logs.to_lowercase().contains("forbidden"),
            "{name} was refused:\n{logs}"
        );
    }

    // The kind overlay: every object accepted by this API server (admission,
    // schema, CEL). A field manager of its own, forced: as the local
    // overlay's manager it would take away the fields only that overlay sets.
    let rendered = kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=kind-overlay-check",
            "--force-conflicts",
            "-k",
            "deploy/overlays/kind",
        ],
    );
    assert!(
        rendered.contains("ordersystem.homeostat.dev/shop"),
        "{rendered}"
    );
}

async fn service_ip(client: &kube::Client, namespace: &str, name: &str) -> String {
    Api::<Service>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Service {namespace}/{name}: {e}"))
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP")
}
