//! The self-healing loop end to end, as `cargo xtask demo` runs it: the
//! shortened default scenario (tests/scenarios/ci-payment-latency.yaml) on a
//! real kube-apiserver, Prometheus, OMS, operator and detector, judged on
//! the JSON outcome the demo writes.

mod local;

fn time_of(value: &serde_json::Value) -> Option<jiff::Timestamp> {
    value.as_str()?.parse().ok()
}

#[test]
fn a_slow_payment_provider_is_named_rerouted_around_and_restored() {
    let run = local::play("e2e", "ci-payment-latency.yaml", &[]);
    // Detected, with the provider named: one report, no false ones.
    let (outcome, context) = run.one_true_report("payment-primary");
    let reports = outcome["reports"].as_array().expect("reports");
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
    assert!(run.out.path().join("report.html").is_file());
}
