//! The self-healing loop end to end, as `cargo xtask demo` runs it: the
//! shortened default scenario (tests/scenarios/ci-payment-latency.yaml) on a
//! real kube-apiserver, Prometheus, OMS, operator and detector, judged on
//! the JSON outcome the demo writes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn time_of(value: &serde_json::Value) -> Option<jiff::Timestamp> {
    value.as_str()?.parse().ok()
}

#[test]
fn a_slow_payment_provider_is_named_rerouted_around_and_restored() {
    let demo = PathBuf::from(env!("CARGO_BIN_EXE_homeostat-demo"));
    // The processes under test: release builds when given (cargo xtask test
    // gives them, as the demo runs them), else the ones beside this test.
    let bin_dir = std::env::var_os("HOMEOSTAT_DEMO_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| demo.parent().expect("target dir").to_owned());
    for binary in ["oms", "homeostat-operator", "homeostat-detector"] {
        assert!(
            bin_dir.join(binary).is_file(),
            "{} is missing: build it first (`cargo build --release --bins -p homeostat-oms \
             -p homeostat-operator -p homeostat-detector`, with HOMEOSTAT_DEMO_BIN_DIR=target/release; \
             cargo xtask test does both)",
            bin_dir.join(binary).display()
        );
    }
    let out = tempfile::tempdir().expect("tempdir");
    let json_path = out.path().join("outcome.json");
    let status = Command::new(&demo)
        .env("HOMEOSTAT_ROOT", root())
        .arg("--scenario")
        .arg(root().join("tests/scenarios/ci-payment-latency.yaml"))
        .arg("--json")
        .arg(&json_path)
        .arg("--out-dir")
        .arg(out.path())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .status()
        .expect("run homeostat-demo");
    let logs = out.path().join("logs");
    let keep = || {
        // Keep the logs for a failure's post-mortem.
        let kept = std::env::temp_dir().join("homeostat-e2e-logs");
        let _ = std::fs::remove_dir_all(&kept);
        let _ = Command::new("cp").arg("-r").arg(&logs).arg(&kept).status();
        kept
    };
    assert!(
        status.success(),
        "demo failed; logs in {}",
        keep().display()
    );
    let text = std::fs::read_to_string(&json_path).expect("outcome JSON");
    let outcome: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let context = format!("{text}\nlogs in {}", keep().display());

    // Detected, with the provider named: one report, no false ones.
    let reports = outcome["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), 1, "{context}");
    assert_eq!(reports[0]["culprit"], "payment-primary", "{context}");
    assert_eq!(outcome["false_reports"], 0, "{context}");
    assert_eq!(outcome["false_actions"], 0, "{context}");
    let ttd = outcome["ttd_seconds"].as_f64().expect("detected");
    let ttr = outcome["ttr_seconds"].as_f64().expect("remediated");
    assert!(ttd <= 30.0 && ttr >= ttd && ttr <= 40.0, "{context}");

    // Rerouted: payment traffic fully on the secondary, so orders recovered
    // while the fault was still on.
    let actions = outcome["actions"].as_array().expect("actions");
    let done: Vec<&serde_json::Value> = actions
        .iter()
        .filter(|a| a["blocked_by"].is_null() && a["dry_run"] == false)
        .collect();
    assert!(!done.is_empty(), "{context}");
    assert!(done.iter().all(|a| a["kind"] == "reroute"), "{context}");
    assert!(
        done.iter().any(|a| a["to"]
            .as_str()
            .is_some_and(|to| to.contains("payment-secondary=100"))),
        "{context}"
    );
    let recovery = outcome["recovery_seconds"].as_f64().expect("recovered");
    assert!(recovery <= 60.0, "{context}");

    // After the fault: the report resolved, then the weights were restored.
    let fault_end = time_of(&outcome["faults"][0]["ended_at"]).expect("fault ended");
    let resolved = time_of(&reports[0]["resolved_at"]).expect("resolved");
    assert!(resolved > fault_end, "{context}");
    for action in &done {
        let restored = time_of(&action["restored_at"]).expect("restored");
        assert!(restored > resolved, "{context}");
    }
    assert!(out.path().join("report.html").is_file());
}
