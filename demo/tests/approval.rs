//! A remediation that waits for a person, end to end on the local stack
//! (tests/scenarios/ci-approval.yaml): the reroute policy's steps need
//! approval; the demo's on-call stand-in approves each through the write
//! `homeostat approve` makes, and only then is traffic moved. The run also
//! asks every query of the shipped Grafana dashboards: none may draw an
//! empty panel. A test binary of its own, so it never runs beside another
//! demo.

mod local;

fn time_of(value: &serde_json::Value) -> Option<jiff::Timestamp> {
    value.as_str()?.parse().ok()
}

#[test]
fn a_step_that_needs_approval_waits_for_the_person_then_reroutes() {
    let dashboards = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards");
    let run = local::play(
        "e2e-approval",
        "ci-approval.yaml",
        &["--check-dashboards", dashboards],
    );
    let (outcome, context) = run.one_true_report("payment-primary");
    // Steps a guard (the cooldown) stopped before anyone was asked are
    // recorded too; every other step waited for a person, was approved by
    // the demo's identity, and was carried out.
    let actions: Vec<&serde_json::Value> = outcome["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["blocked_by"].is_null())
        .collect();
    assert!(actions.len() >= 2, "{context}");
    for action in &actions {
        let approval = &action["approval"];
        assert_eq!(approval["state"], "Approved", "{context}");
        assert!(
            approval["by"].as_str().is_some_and(|by| !by.is_empty()),
            "{context}"
        );
    }
    // Done no sooner than the stand-in's 4 s after the report opened:
    // nothing moved before someone approved it.
    let opened = time_of(&outcome["reports"][0]["opened_at"]).expect("opened");
    let first = time_of(&actions[0]["at"]).expect("done");
    let waited = first.duration_since(opened).as_secs_f64();
    assert!(
        waited >= 4.0,
        "done {waited} s after the report opened: {context}"
    );
    assert!(
        actions.iter().any(|a| a["to"]
            .as_str()
            .is_some_and(|to| to.contains("payment-secondary=100"))),
        "both steps approved and done: {context}"
    );

    // Every panel of the OMS and homeostat dashboards has data from the
    // real OMS, detector and operator: steps, a guard block and a report
    // happened, so their panels and annotations are drawn too.
    let check = &outcome["dashboards"];
    assert!(
        check["queries"].as_u64().is_some_and(|n| n >= 30),
        "{context}"
    );
    assert_eq!(check["empty"], serde_json::json!([]), "{context}");
}
