//! Prometheus's discovery under the Roles it is shipped with: the scrape
//! configuration of `deploy/samples/prometheus.yaml`, pointed at a real API
//! server with the `prometheus` ServiceAccount's token, finds the pods of both
//! namespaces; the audit log shows nothing refused and every granted verb
//! used. (The operator's and the detector's runs are checked the same way in
//! operator/tests/deploy.rs and detector.rs.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use homeostat_test_support::{ManagedProcess, TestAssets, free_port, rbac, wait_until};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::json;

use crate::common::control_plane;

const NAMESPACES: [&str; 2] = ["shop", "homeostat-system"];

/// The `prometheus.yml` of the shipped ConfigMap, with each Kubernetes
/// discovery given the API server's address and credentials (in a pod they
/// come from the ServiceAccount's mounted token and CA).
fn shipped_config(api_server: &str, token_file: &Path, ca_file: &Path) -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/samples/prometheus.yaml");
    let text = std::fs::read_to_string(&manifest).expect("read prometheus.yaml");
    let config = serde_norway::Deserializer::from_str(&text)
        .map(|document| serde_norway::Value::deserialize(document).expect("YAML"))
        .find(|doc| doc["kind"].as_str() == Some("ConfigMap"))
        .and_then(|map| map["data"]["prometheus.yml"].as_str().map(str::to_owned))
        .expect("the ConfigMap's prometheus.yml");
    let mut config: serde_json::Value = serde_norway::from_str(&config).expect("prometheus.yml");
    let jobs = config["scrape_configs"]
        .as_array_mut()
        .expect("scrape_configs");
    for job in jobs {
        for discovery in job["kubernetes_sd_configs"]
            .as_array_mut()
            .expect("every job discovers through Kubernetes")
        {
            discovery["api_server"] = json!(api_server);
            discovery["authorization"] = json!({"credentials_file": token_file});
            discovery["tls_config"] = json!({"ca_file": ca_file});
        }
    }
    serde_norway::to_string(&config).expect("prometheus.yml")
}

/// A pod object with an address but still Pending (no kubelet runs it):
/// discovery lists it, relabelling drops it, nothing is scraped.
async fn pod(client: &kube::Client, ns: &str, name: &str, port: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "spec": {"containers": [{"name": name, "image": "example:test",
            "ports": [{"name": port, "containerPort": 8080}]}]}
    }))
    .expect("pod");
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("pod {ns}/{name}: {e}"));
    // Discovery makes no target of a pod without an address.
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Pending", "podIP": "127.0.0.1"}})),
    )
    .await
    .unwrap_or_else(|e| panic!("pod {ns}/{name} status: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_discovers_both_namespaces_with_exactly_its_shipped_roles() {
    let (plane, client) = control_plane().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in NAMESPACES {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    }
    // The CRDs are not needed for the Roles; the samples' bindings apply
    // without them.
    rbac::apply(&plane, &rbac::shipped_manifests()).unwrap_or_else(|e| panic!("{e}"));
    pod(&client, "shop", "orders", "http").await;
    pod(&client, "homeostat-system", "homeostat-detector", "metrics").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let token = plane
        .service_account_token("homeostat-system", "prometheus")
        .await
        .unwrap_or_else(|e| panic!("token: {e}"));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).expect("token file");
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(
        &config_file,
        shipped_config(plane.server_url(), &token_file, &plane.ca_path()),
    )
    .expect("config");

    // The release the kind overlay runs, built by `cargo xtask test-assets`
    // (Debian's has no Kubernetes discovery).
    let binary = TestAssets::locate()
        .and_then(|a| a.binary("prometheus"))
        .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port().expect("port");
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let prometheus =
        ManagedProcess::spawn("prometheus", command, &dir.path().join("prometheus.log"))
            .unwrap_or_else(|e| panic!("{e}"));

    // Discovered: the pods show among the targets (dropped, since no
    // kubelet makes them Running).
    let targets = format!("http://127.0.0.1:{port}/api/v1/targets?state=any");
    wait_until(
        "both pods discovered",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let body: serde_json::Value = reqwest::get(&targets)
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let seen: Vec<String> = body["data"]["droppedTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(
                    body["data"]["activeTargets"]
                        .as_array()
                        .into_iter()
                        .flatten(),
                )
                .filter_map(|t| t["discoveredLabels"]["__meta_kubernetes_pod_name"].as_str())
                .map(str::to_owned)
                .collect();
            if ["orders", "homeostat-detector"]
                .iter()
                .all(|p| seen.iter().any(|s| s == p))
            {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nprometheus log:\n{}", prometheus.log_tail(20)));

    rbac::check_least_privilege(&plane, "homeostat-system", "prometheus")
        .unwrap_or_else(|e| panic!("{e}"));
}
