//! homeostat's alerts (deploy/monitoring/prometheusrule.yaml), unit-tested
//! with Debian's `promtool test rules` against
//! tests/monitoring/rules.test.yaml: each fires when it should and not
//! before, every alert has a test there, and a rule changed to fire early
//! fails them.

use std::path::{Path, PathBuf};
use std::process::Command;

use homeostat_test_support::assets::promtool_binary;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The PrometheusRule's spec: a Prometheus rule file's content.
fn rules() -> Value {
    yaml("deploy/monitoring/prometheusrule.yaml")["spec"].clone()
}

/// `promtool test rules` of the test file against `rules`: (passed, what
/// promtool said).
fn promtool_test(rules: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("homeostat.rules.yaml"),
        serde_norway::to_string(rules).expect("rules as YAML"),
    )
    .expect("write the rules");
    let tests = dir.path().join("rules.test.yaml");
    std::fs::copy(root().join("tests/monitoring/rules.test.yaml"), &tests).expect("copy the tests");
    let out = Command::new(promtool_binary().unwrap_or_else(|e| panic!("{e}")))
        .args(["test", "rules"])
        .arg(&tests)
        .current_dir(dir.path())
        .output()
        .expect("run promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn alerts(rules: &Value) -> Vec<String> {
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_alert_fires_when_it_should_and_not_before() {
    let (passed, said) = promtool_test(&rules());
    assert!(passed, "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn every_alert_the_rule_raises_is_tested_and_the_four_the_install_promises_are_there() {
    let rules = rules();
    let raised = alerts(&rules);
    for promised in [
        "HomeostatDetectorDegraded",
        "HomeostatNoOperatorLeader",
        "HomeostatReconcileErrors",
        "HomeostatReportOpenTooLong",
    ] {
        assert!(
            raised.iter().any(|a| a == promised),
            "{promised}: {raised:?}"
        );
    }
    let tests = yaml("tests/monitoring/rules.test.yaml");
    let tested: Vec<&str> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .filter(|case| {
            // A case that expects the alert to fire, not only its absence.
            case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty())
        })
        .filter_map(|case| case["alertname"].as_str())
        .collect();
    for alert in &raised {
        assert!(
            tested.contains(&alert.as_str()),
            "{alert} is never seen firing in tests/monitoring/rules.test.yaml"
        );
    }
}

#[test]
fn a_rule_that_fires_too_early_fails_its_tests() {
    let mut rules = rules();
    let degraded = rules["groups"][0]["rules"]
        .as_array_mut()
        .expect("rules")
        .iter_mut()
        .find(|r| r["alert"] == "HomeostatDetectorDegraded")
        .expect("the degraded alert");
    degraded["for"] = "1m".into();
    let (passed, said) = promtool_test(&rules);
    assert!(!passed, "{said}");
    assert!(said.contains("HomeostatDetectorDegraded"), "{said}");
}
