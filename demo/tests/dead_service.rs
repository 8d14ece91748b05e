//! A payment provider that dies for good, end to end on the local stack
//! (tests/scenarios/ci-payment-down.yaml): it sends no data, so the detector
//! must read the outage from its callers and its scrape target. A test
//! binary of its own, so it never runs beside the other demo runs (two
//! demos at once on two cores slow every service).

mod local;

#[test]
fn a_dead_payment_provider_is_named_within_20_seconds_and_rerouted_around() {
    let run = local::play("e2e-down", "ci-payment-down.yaml", &[]);
    // It sends no data at all: the report is an availability one, from its
    // callers' refused calls and its target's `up`, naming it.
    let (outcome, context) = run.one_true_report("payment-primary");
    assert_eq!(outcome["reports"][0]["signal"], "availability", "{context}");
    let ttd = outcome["ttd_seconds"].as_f64().expect("detected");
    assert!(ttd <= 20.0, "detected after {ttd} s: {context}");

    // Rerouted all the way to the secondary while it stays dead.
    let actions = outcome["actions"].as_array().expect("actions");
    assert!(
        actions.iter().any(|a| a["kind"] == "reroute"
            && a["blocked_by"].is_null()
            && a["to"]
                .as_str()
                .is_some_and(|to| to.contains("payment-secondary=100"))),
        "{context}"
    );
}
