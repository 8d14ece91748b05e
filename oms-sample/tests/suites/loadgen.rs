//! `oms loadgen` against `oms up`, as a user runs it.

use std::process::Command;

use crate::common::Oms;

#[tokio::test]
async fn loadgen_holds_the_arrival_rate_and_reports_json() {
    let oms = Oms::start(&[]).await;
    let output = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args([
            "loadgen",
            "--target",
            &oms.url("orders"),
            "--rate",
            "100",
            "--duration",
            "3",
            "--json",
        ])
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a last line")).expect("JSON last line");
    for key in [
        "achieved_rps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "errors",
        "orders_confirmed",
        "orders_rejected",
    ] {
        assert!(report.get(key).is_some(), "missing {key}: {report}");
    }
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["requests"], 300, "{report}");
    let achieved = report["achieved_rps"].as_f64().expect("number");
    assert!((achieved - 100.0).abs() < 5.0, "{report}");
    assert!(
        report["orders_confirmed"].as_u64().is_some_and(|n| n > 150),
        "{report}"
    );
    // The server saw what the generator says it sent.
    let metrics = oms.metrics("orders").await;
    let confirmed = format!(
        r#"oms_outcomes_total{{service="orders",outcome="confirmed",reason=""}} {}"#,
        report["orders_confirmed"]
    );
    assert!(
        metrics.contains(&confirmed),
        "{confirmed} not in orders metrics"
    );
}
