//! The shipped Grafana dashboards: every panel's and annotation's query is
//! parsed by Debian's `promtool` (as a recording rule), so a typo in a
//! dashboard fails here, not in front of someone paged at night. That the
//! queries return data from the real OMS, detector and operator is checked
//! end to end by the demo (`--check-dashboards`, demo/tests/approval.rs).

use std::path::Path;
use std::process::Command;

use homeostat_test_support::assets::promtool_binary;
use homeostat_test_support::dashboards::{PanelQuery, as_rule_file, queries};

fn promtool_check(rules: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboards.rules.yaml");
    std::fs::write(&file, rules).expect("write rules");
    let out = Command::new(promtool_binary().unwrap_or_else(|e| panic!("{e}")))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn every_dashboard_query_parses_with_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let queries = queries(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (parsed, said) = promtool_check(&as_rule_file(&queries, "1m"));
    assert!(parsed, "{said}");
    assert!(
        said.contains(&format!("{} rules found", queries.len())),
        "{said}"
    );

    // And promtool does refuse a broken one.
    let broken = PanelQuery {
        dashboard: "broken.json".into(),
        panel: "typo".into(),
        expr:
            "sum by (service) (rate(http_server_request_duration_seconds_count[$__rate_interval])"
                .into(),
    };
    let (parsed, said) = promtool_check(&as_rule_file(&[broken], "1m"));
    assert!(!parsed, "{said}");
}

/// `kubectl kustomize deploy/overlays/kind`, as documents.
fn kind_overlay() -> Vec<serde_json::Value> {
    let kubectl = homeostat_test_support::TestAssets::locate()
        .and_then(|a| a.kubectl())
        .unwrap_or_else(|e| panic!("{e}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(kubectl)
        .args(["kustomize", "deploy/overlays/kind"])
        .current_dir(&root)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    text.split("\n---\n")
        .map(|doc| serde_norway::from_str(doc).expect("a YAML document"))
        .collect()
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the kind overlay"))
}

#[test]
fn the_kind_overlay_provisions_grafana_with_every_dashboard_and_the_prometheus() {
    let docs = kind_overlay();
    // Every dashboard file, as it is, in the ConfigMap Grafana reads.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let files =
        homeostat_test_support::dashboards::files(&shipped).unwrap_or_else(|e| panic!("{e}"));
    let dashboards = find(&docs, "ConfigMap", "grafana-dashboards");
    let keys: Vec<&String> = dashboards["data"]
        .as_object()
        .expect("data")
        .keys()
        .collect();
    assert_eq!(keys.len(), files.len(), "{keys:?}");
    for file in &files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let in_map: serde_json::Value =
            serde_json::from_str(dashboards["data"][&name].as_str().expect("a dashboard"))
                .expect("JSON");
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("JSON");
        assert_eq!(in_map, on_disk, "{name}");
    }

    // Grafana mounts it where its provider reads, and its data source is
    // the Prometheus Service of the same overlay.
    let grafana = find(&docs, "Deployment", "grafana");
    let provisioning = find(&docs, "ConfigMap", "grafana-provisioning");
    let provider = provisioning["data"]["dashboards.yaml"]
        .as_str()
        .expect("provider");
    let mounts = &grafana["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    let dashboards_mount = mounts
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "dashboards")
        .expect("the dashboards mounted");
    let path = dashboards_mount["mountPath"].as_str().expect("path");
    assert!(provider.contains(&format!("path: {path}")), "{provider}");
    let source = provisioning["data"]["datasources.yaml"]
        .as_str()
        .expect("datasource");
    let prometheus = find(&docs, "Service", "prometheus");
    let port = &prometheus["spec"]["ports"][0]["port"];
    assert!(
        source.contains(&format!(
            "url: http://prometheus.{}.svc:{port}",
            prometheus["metadata"]["namespace"]
                .as_str()
                .expect("namespace")
        )),
        "{source}"
    );
    // Pod Security `restricted` in homeostat-system: non-root, no privilege.
    let pod = &grafana["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
        false
    );
}
