//! `homeostat reports` and `homeostat policies` against a real
//! kube-apiserver, through the kubeconfig, as an on-call engineer runs them.

use std::process::Command;
use std::time::Duration;

use homeostat_api::{AnomalyReport, RemediationPolicy};
use homeostat_test_support::{ControlPlane, wait_until};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

fn homeostat(plane: &ControlPlane, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .env("KUBECONFIG", plane.kubeconfig_path())
        .args(args)
        .output()
        .expect("run homeostat");
    assert!(
        out.status.success(),
        "homeostat {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_and_policies_list_as_a_table_json_and_yaml() {
    homeostat_test_support::install_crypto_provider();
    let plane = ControlPlane::start().await.expect("control plane");
    let client = plane.client().await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in homeostat_api::all_crds() {
        crds.patch(
            crd.metadata.name.as_deref().expect("name"),
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD");
    }
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "shop"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");

    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    let report: AnomalyReport = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
        "metadata": {"name": "tax-latency-p99-1"},
        "spec": {"service": "tax", "signal": "latency_p99"}
    }))
    .expect("report");
    // The CRDs are served a moment after they are stored.
    wait_until(
        "the CRDs served",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            reports
                .create(&PostParams::default(), &report)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await
    .expect("create the report");
    reports
        .patch_status(
            "tax-latency-p99-1",
            &PatchParams::apply("homeostat-detector").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {
                    "state": "Open", "score": 0.93, "peakScore": 0.97, "severity": "Critical",
                    "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                    "culprit": {"service": "tax", "evidence": ["tax latency_p99 up 20x"], "confidence": 0.9},
                    "openedAt": "2026-11-30T00:00:00Z"
                }
            })),
        )
        .await
        .expect("report status");
    let policy: RemediationPolicy = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
        "metadata": {"name": "scale-tax"},
        "spec": {
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"scale": {"maxReplicas": 4}}],
            "guards": {"dryRun": true}
        }
    }))
    .expect("policy");
    Api::<RemediationPolicy>::namespaced(client.clone(), "shop")
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");

    // A table: the report's row says what a person needs first.
    let table = homeostat(&plane, &["reports", "-n", "shop"]);
    let row = table
        .lines()
        .find(|l| l.contains("tax-latency-p99-1"))
        .unwrap_or_else(|| panic!("{table}"));
    for cell in ["tax", "latency_p99", "Open", "Critical", "0.93"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(table.starts_with("NAMESPACE"), "{table}");

    // JSON and YAML, as kubectl shapes a list.
    let json: serde_json::Value =
        serde_json::from_str(&homeostat(&plane, &["reports", "-A", "-o", "json"])).expect("JSON");
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["metadata"]["name"], "tax-latency-p99-1");
    assert_eq!(json["items"][0]["status"]["culprit"]["service"], "tax");
    let yaml = homeostat(&plane, &["policies", "-n", "shop", "-o", "yaml"]);
    let parsed: serde_json::Value = serde_norway::from_str(&yaml).expect("YAML");
    assert_eq!(parsed["items"][0]["metadata"]["name"], "scale-tax");

    let policies = homeostat(&plane, &["policies", "-A"]);
    let row = policies
        .lines()
        .find(|l| l.contains("scale-tax"))
        .unwrap_or_else(|| panic!("{policies}"));
    assert!(row.contains("dry-run"), "{row}");

    // An empty namespace lists nothing but the header.
    let empty = homeostat(&plane, &["reports", "-n", "default"]);
    assert_eq!(empty.lines().count(), 1, "{empty}");

    // One report in detail: the culprit's evidence and the band gauge.
    let detail = homeostat(&plane, &["report", "tax-latency-p99-1", "-n", "shop"]);
    assert!(detail.contains("shop/tax-latency-p99-1"), "{detail}");
    assert!(detail.contains("- tax latency_p99 up 20x"), "{detail}");
    assert!(detail.contains('●'), "{detail}");
    let json: serde_json::Value = serde_json::from_str(&homeostat(
        &plane,
        &["report", "tax-latency-p99-1", "-n", "shop", "-o", "json"],
    ))
    .expect("JSON");
    assert_eq!(json["kind"], "AnomalyReport");
    // A name that is not there: a clear error, not a panic.
    let missing = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .env("KUBECONFIG", plane.kubeconfig_path())
        .args(["report", "nothing-here", "-n", "shop"])
        .output()
        .expect("run homeostat");
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(
        error.contains("no AnomalyReport nothing-here in namespace shop"),
        "{error}"
    );
}
