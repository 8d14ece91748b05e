//! The soak as CI runs it (`cargo xtask soak --quick`, tests/scenarios/ci-soak.yaml):
//! six minutes of checkout traffic on the local stack with a slow payment
//! provider, then a slow tax, then the payment provider dead, on a real
//! kube-apiserver, Prometheus, OMS, operator and detector. One run, one
//! warm-up, judged four times:
//! - as the self-healing loop end to end (what `cargo xtask demo` shows):
//!   the slow provider is named, rerouted around and restored;
//! - as a remediation that waits for a person: tax's scale steps need
//!   approval, the demo's on-call stand-in approves each through the write
//!   `homeostat approve` makes, and only then is tax scaled; and every query
//!   of the shipped Grafana dashboards has data from the run;
//! - as a dead service: named by its availability within 20 s, rerouted
//!   around while it is down;
//! - as a soak, by the demo's `--soak`: no process's resident memory grows
//!   10% or more after warm-up and its tokio task count stays flat, every
//!   report resolves and every action is undone.

use std::sync::OnceLock;

mod local;

/// The one run both tests judge: whichever asks first plays it, the other
/// waits for it.
fn run() -> &'static local::Run {
    static RUN: OnceLock<local::Run> = OnceLock::new();
    let dashboards = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards");
    RUN.get_or_init(|| {
        local::play(
            "soak",
            "ci-soak.yaml",
            &["--soak", "--check-dashboards", dashboards],
        )
    })
}

fn time_of(value: &serde_json::Value) -> Option<jiff::Timestamp> {
    value.as_str()?.parse().ok()
}

#[test]
fn a_slow_payment_provider_is_named_rerouted_around_and_restored() {
    let run = run();
    let outcome = run.outcome();
    let context = run.context();
    assert!(run.status.success(), "demo failed: {context}");
    // The first fault is the slow provider: the run's detection and
    // recovery figures are its.
    let fault = &outcome["faults"][0];
    assert_eq!(fault["service"], "payment-primary", "{context}");
    // Detected, with the provider named: one report, and nothing else
    // reported or done before the second fault (the soak's tax) began.
    let second_fault = time_of(&outcome["faults"][1]["started_at"]).expect("a second fault");
    let before_second = |at: &serde_json::Value| time_of(at).is_some_and(|t| t < second_fault);
    let reports: Vec<&serde_json::Value> = outcome["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .filter(|r| before_second(&r["opened_at"]))
        .collect();
    assert_eq!(reports.len(), 1, "{context}");
    assert_eq!(reports[0]["culprit"], "payment-primary", "{context}");
    let acted_elsewhere = outcome["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| before_second(&a["at"]) && a["blocked_by"].is_null() && a["dry_run"] == false)
        .any(|a| a["target"] != "payment-primary");
    assert!(!acted_elsewhere, "{context}");
    let ttd = outcome["ttd_seconds"].as_f64().expect("detected");
    let ttr = outcome["ttr_seconds"].as_f64().expect("remediated");
    assert!(ttd <= 30.0 && ttr >= ttd && ttr <= 40.0, "{context}");

    // Rerouted: payment traffic fully on the secondary, so orders recovered
    // while the fault was still on.
    let done: Vec<&serde_json::Value> = outcome["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| {
            a["target"] == "payment-primary" && a["blocked_by"].is_null() && a["dry_run"] == false
        })
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
    let fault_end = time_of(&fault["ended_at"]).expect("fault ended");
    let resolved = time_of(&reports[0]["resolved_at"]).expect("resolved");
    assert!(resolved > fault_end, "{context}");
    for action in &done {
        let restored = time_of(&action["restored_at"]).expect("restored");
        assert!(restored > resolved, "{context}");
    }
    assert!(run.out.path().join("report.html").is_file());
}

#[test]
fn a_step_that_needs_approval_waits_for_the_person_then_scales() {
    let run = run();
    let outcome = run.outcome();
    let context = run.context();
    assert!(run.status.success(), "demo failed: {context}");
    let fault = &outcome["faults"][1];
    assert_eq!(fault["service"], "tax", "{context}");
    let report = outcome["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .find(|r| r["culprit"] == "tax")
        .unwrap_or_else(|| panic!("tax was not reported: {context}"));
    let opened = time_of(&report["opened_at"]).expect("opened");
    // Steps a guard (the cooldown) stopped before anyone was asked are
    // recorded too; every other step on tax waited for a person, was
    // approved by the demo's identity, and was carried out.
    let steps: Vec<&serde_json::Value> = outcome["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["target"] == "tax" && a["blocked_by"].is_null())
        .collect();
    assert!(!steps.is_empty(), "{context}");
    for step in &steps {
        assert_eq!(step["kind"], "scale", "{context}");
        let approval = &step["approval"];
        assert_eq!(approval["state"], "Approved", "{context}");
        assert!(
            approval["by"].as_str().is_some_and(|by| !by.is_empty()),
            "{context}"
        );
        // Done no sooner than the stand-in's 4 s after the report opened:
        // nothing moved before someone approved it.
        let done = time_of(&step["at"]).expect("done");
        let waited = done.duration_since(opened).as_secs_f64();
        assert!(
            waited >= 4.0,
            "done {waited} s after the report opened: {context}"
        );
    }
    assert_eq!(
        (&steps[0]["from"], &steps[0]["to"]),
        (&"2".into(), &"3".into()),
        "{context}"
    );

    // Every panel of the OMS and homeostat dashboards has data from the
    // real OMS, detector and operator: steps, a guard block, approvals and
    // reports happened, so their panels and annotations are drawn too.
    let check = &outcome["dashboards"];
    assert!(
        check["queries"].as_u64().is_some_and(|n| n >= 30),
        "{context}"
    );
    assert_eq!(check["empty"], serde_json::json!([]), "{context}");
}

#[test]
fn a_dead_payment_provider_is_named_within_20_seconds_and_rerouted_around() {
    let run = run();
    let outcome = run.outcome();
    let context = run.context();
    assert!(run.status.success(), "demo failed: {context}");
    let fault = &outcome["faults"][2];
    assert_eq!(
        (&fault["service"], &fault["kind"]),
        (&"payment-primary".into(), &"down".into()),
        "{context}"
    );
    let down = time_of(&fault["started_at"]).expect("started");
    let up = time_of(&fault["ended_at"]).expect("ended");
    // It sends no data at all: the report is an availability one, from its
    // callers' refused calls and its target's `up`, naming it.
    let report = outcome["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .find(|r| time_of(&r["opened_at"]).is_some_and(|at| at >= down))
        .unwrap_or_else(|| panic!("nothing reported the outage: {context}"));
    assert_eq!(report["culprit"], "payment-primary", "{context}");
    assert_eq!(report["signal"], "availability", "{context}");
    let opened = time_of(&report["opened_at"]).expect("opened");
    let ttd = opened.duration_since(down).as_secs_f64();
    assert!(ttd <= 20.0, "detected after {ttd} s: {context}");

    // Rerouted all the way to the secondary while it was down.
    let rerouted = outcome["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .any(|a| {
            a["kind"] == "reroute"
                && a["blocked_by"].is_null()
                && time_of(&a["at"]).is_some_and(|at| at >= down && at < up)
                && a["to"]
                    .as_str()
                    .is_some_and(|to| to.contains("payment-secondary=100"))
        });
    assert!(rerouted, "{context}");
}

#[test]
fn under_load_and_repeated_faults_nothing_grows_and_everything_is_undone() {
    let run = run();
    let outcome = run.outcome();
    let context = run.context();
    let soak = &outcome["soak"];
    assert!(
        run.status.success() && soak["failures"].as_array().is_some_and(|f| f.is_empty()),
        "the soak failed: {context}"
    );
    // Judged on every process, from their own metrics.
    let processes: Vec<&str> = soak["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|p| p["process"].as_str())
        .collect();
    assert_eq!(
        processes,
        ["oms", "homeostat-operator", "homeostat-detector"],
        "{context}"
    );
    for p in soak["processes"].as_array().expect("processes") {
        assert!(
            p["resident_growth"].as_f64().expect("growth") < 0.10,
            "{context}"
        );
        assert!(
            p["tasks_baseline"].as_f64().expect("tasks") >= 1.0,
            "{context}"
        );
    }
    // Every fault drew a step, and every step was undone.
    assert_eq!(soak["faults"], 3, "{context}");
    assert!(
        soak["actions_done"].as_u64().expect("actions") >= 3,
        "{context}"
    );
    assert_eq!(
        soak["unrestored_actions"],
        serde_json::json!([]),
        "{context}"
    );
    assert_eq!(
        soak["unresolved_reports"],
        serde_json::json!([]),
        "{context}"
    );
}
