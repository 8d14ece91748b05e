//! A routing-table change shifts payment traffic within a second: from a
//! file, and from a ConfigMap on a real API server (the path a reroute
//! remediation takes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{Oms, histogram_count, observations_above};
use homeostat_api::routing::{payment_routing, render_routing_data};
use homeostat_test_support::{ControlPlane, wait_until};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// Places `n` orders and counts the providers that took them.
async fn providers(oms: &Oms, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let order = oms.order("SKU-MUG", "tok_visa").await;
        *counts
            .entry(
                order["payment_provider"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned(),
            )
            .or_default() += 1;
    }
    counts
}

/// Waits until `orders` routes by the new table (payment-secondary only) and
/// returns how long that took; then checks the traffic itself moved.
async fn time_to_shift(oms: &Oms, since: Instant) -> Duration {
    wait_until(
        "orders to follow the new routing table",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || async {
            let (_, routing) = oms.get("orders", "/v1/routing/payment").await;
            let weights = &routing["weights"];
            if weights["payment-primary"] == 0 && weights["payment-secondary"] == 100 {
                Ok(())
            } else {
                Err(routing)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let shifted = since.elapsed();
    // Every order from then on goes to the new backend.
    assert_eq!(
        providers(oms, 10).await,
        BTreeMap::from([("payment-secondary".to_owned(), 10)])
    );
    shifted
}

#[tokio::test]
async fn routing_file_change_shifts_payment_traffic_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("routing");
    std::fs::write(
        &file,
        "payment.payment-primary=50\npayment.payment-secondary=50\n",
    )
    .expect("write");
    let oms = Oms::start(&["--routing-file", file.to_str().expect("utf-8 path")]).await;

    // Smooth weighted round-robin: exactly half each over an even window.
    let split = providers(&oms, 10).await;
    assert_eq!(split.get("payment-primary"), Some(&5), "{split:?}");
    assert_eq!(split.get("payment-secondary"), Some(&5), "{split:?}");

    // Replace the file atomically, as configuration tools do.
    let staged = dir.path().join("routing.new");
    std::fs::write(
        &staged,
        "payment.payment-primary=0\npayment.payment-secondary=100\n",
    )
    .expect("write");
    let changed = Instant::now();
    std::fs::rename(&staged, &file).expect("rename");
    let took = time_to_shift(&oms, changed).await;
    assert!(took < Duration::from_secs(1), "shift took {took:?}");
}

#[tokio::test]
async fn routing_configmap_change_shifts_payment_traffic_within_a_second() {
    let plane = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("control plane: {e}"));
    let client = plane.client().await.unwrap_or_else(|e| panic!("{e}"));
    let configmaps: Api<ConfigMap> = Api::default_namespaced(client);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("oms-routing".to_owned());
    cm.data = Some(render_routing_data(&payment_routing(100)));
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");

    let kubeconfig = plane
        .kubeconfig_path()
        .to_str()
        .expect("utf-8 path")
        .to_owned();
    let oms = Oms::start_with_env(
        &[
            "--routing-configmap",
            "default/oms-routing",
            "--primary-weight",
            "0",
        ],
        &[("KUBECONFIG", &kubeconfig)],
    )
    .await;
    // The ConfigMap, not the --primary-weight default, decides once it has been read.
    wait_until(
        "ConfigMap weights applied",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let (_, routing) = oms.get("orders", "/v1/routing/payment").await;
            if routing["weights"]["payment-primary"] == 100 {
                Ok(())
            } else {
                Err(routing)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", oms.log()));
    assert_eq!(
        providers(&oms, 5).await,
        BTreeMap::from([("payment-primary".to_owned(), 5)])
    );

    // What a reroute remediation does: one small patch of one key.
    let changed = Instant::now();
    let patch = serde_json::json!({ "data": { "payment.payment-primary": "0", "payment.payment-secondary": "100" } });
    configmaps
        .patch(
            "oms-routing",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch ConfigMap");
    let took = time_to_shift(&oms, changed).await;
    assert!(took < Duration::from_secs(1), "shift took {took:?}");

    // A bad table is ignored: traffic keeps the last good weights.
    let bad = serde_json::json!({ "data": { "payment.payment-primary": "lots" } });
    configmaps
        .patch("oms-routing", &PatchParams::default(), &Patch::Merge(&bad))
        .await
        .expect("patch ConfigMap");
    wait_until(
        "invalid table reported",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            if oms.log().contains("ignoring invalid routing table") {
                Ok(())
            } else {
                Err(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        providers(&oms, 5).await,
        BTreeMap::from([("payment-secondary".to_owned(), 5)])
    );
}

#[tokio::test]
async fn a_drained_provider_keeps_being_probed_so_its_health_stays_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("routing");
    std::fs::write(
        &file,
        "payment.payment-primary=0\npayment.payment-secondary=100\n",
    )
    .expect("write");
    let oms = Oms::start(&["--routing-file", file.to_str().expect("utf-8 path")]).await;
    // Slow the drained provider: the probes must show it, as customers would see it.
    let fault = oms
        .http
        .post(format!("{}/admin/faults", oms.url("payment-primary")))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .json(&serde_json::json!({"kind": "latency", "latency_ms": 200, "jitter": 0, "duration_seconds": 60}))
        .send()
        .await
        .expect("post");
    assert_eq!(fault.status().as_u16(), 201);
    assert_eq!(
        providers(&oms, 10).await,
        BTreeMap::from([("payment-secondary".to_owned(), 10)]),
        "no customer order goes to the drained provider"
    );

    let probe = ["service=\"payment-primary\"", "http_route=\"/v1/status\""];
    wait_until(
        "orders to probe the drained provider several times, each slowed by its fault",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let metrics = oms.metrics("payment-primary").await;
            let probes = histogram_count(&metrics, "http_server_request_duration_seconds", &probe);
            if probes < 6.0 {
                return Err(format!("{probes} probes"));
            }
            let slow = observations_above(
                &metrics,
                "http_server_request_duration_seconds",
                0.15,
                &probe,
            );
            if probes >= 6.0 && slow >= 6.0 {
                Ok(())
            } else {
                Err(format!("{probes} probes, {slow} slow"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // And orders records them as calls to that provider, which is what the
    // detector reads to tell its health.
    let orders = oms.metrics("orders").await;
    assert!(
        histogram_count(
            &orders,
            "http_client_request_duration_seconds",
            &[
                "peer_service=\"payment-primary\"",
                "http_route=\"/v1/status\""
            ],
        ) >= 6.0,
        "{orders}"
    );
}
