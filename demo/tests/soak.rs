//! The soak as CI runs it (`cargo xtask soak --quick`): five minutes of
//! checkout traffic on the local stack with a slow payment provider and then
//! a slow tax, judged by the demo's `--soak`: no process's resident memory
//! grows 10% or more after warm-up and its tokio task count stays flat,
//! every report resolves and every action is undone.

mod local;

#[test]
fn under_load_and_repeated_faults_nothing_grows_and_everything_is_undone() {
    let run = local::play("soak", "ci-soak.yaml", &["--soak"]);
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
    // Both faults drew a step, and every step was undone.
    assert_eq!(soak["faults"], 2, "{context}");
    assert!(
        soak["actions_done"].as_u64().expect("actions") >= 2,
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
