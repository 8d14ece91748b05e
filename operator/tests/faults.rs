//! The fault suite, on a real API server: the operator killed at each point
//! of a step, and the API server and etcd restarted in the middle of a
//! remediation. Each time the outcome is checked, not a counter: the
//! workload is scaled exactly once (a doubled step would leave it one
//! replica higher) and put back after the report resolves.

mod common;

use common::*;
use homeostat_operator::crash::{CRASH_AT_ENV, CrashPoint};
use serde_json::json;

/// One step of one replica up to at most 5, then nothing for an hour: a
/// second step could only come from a step done twice.
fn one_step_policy() -> serde_json::Value {
    json!({
        "services": {"names": ["tax"]},
        "trigger": {"signals": ["latency_p99"], "minScore": 0.8},
        "actions": [{"scale": {"step": 1, "minReplicas": 1, "maxReplicas": 5}}],
        "guards": {"cooldown": "1h", "maxActionsPerHour": 10},
        "stableFor": "2s"
    })
}

/// The step done once, recorded once, nothing pending: in the workload, the
/// policy and the report.
async fn stepped_once(client: &kube::Client, ns: &str, report: &str, operator: &Operator) {
    wait_replicas(client, ns, "tax", 3).await;
    eventually("the step recorded done", 60, || async {
        let status = get_policy(client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        match status.active.as_slice() {
            [active] if active.pending.is_none() && active.steps == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually("the report tells of one step done", 60, || async {
        let actions = get_report(client, ns, report)
            .await
            .status
            .map(|s| s.actions)
            .unwrap_or_default();
        let done: Vec<_> = actions.iter().filter(|a| a.done_at.is_some()).collect();
        match done.as_slice() {
            [one] if one.target == "deployment/tax 2→3" => Ok(()),
            _ => Err(format!("{actions:?}")),
        }
    })
    .await;
    // Passes after the step change nothing more.
    operator.wait_reconciles(5.0).await;
    assert_eq!(replicas(client, ns, "tax").await, 3, "the step was doubled");
    let status = get_policy(client, ns, "scale-tax")
        .await
        .status
        .expect("status");
    assert_eq!(status.actions_taken, 1, "{status:?}");
}

/// Resolved: tax back at 2, the policy holds nothing, the report says restored.
async fn restored(client: &kube::Client, ns: &str, report: &str) {
    wait_replicas(client, ns, "tax", 2).await;
    eventually("the policy holds nothing", 60, || async {
        let status = get_policy(client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        if status.active.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", status.active))
        }
    })
    .await;
    eventually("the report says restored", 60, || async {
        let actions = get_report(client, ns, report)
            .await
            .status
            .map(|s| s.actions)
            .unwrap_or_default();
        if actions
            .iter()
            .filter(|a| a.done_at.is_some())
            .all(|a| a.restored_at.is_some())
        {
            Ok(())
        } else {
            Err(format!("{actions:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_each_point_of_a_step_the_operator_neither_doubles_nor_loses_it() {
    let (plane, client) = plane().await;
    namespace(&client, OPERATOR_NAMESPACE).await;
    for point in CrashPoint::ALL {
        let ns = format!("crash-{}", point.name());
        namespace(&client, &ns).await;
        deployment(&client, &ns, "tax", 2).await;
        policy(&client, &ns, "scale-tax", one_step_policy()).await;

        let mut doomed = Operator::start_with_env(
            &plane,
            &format!("doomed-{}", point.name()),
            &[(CRASH_AT_ENV, point.name())],
        );
        let report = open_report(&client, &ns, "tax").await;
        let exit = doomed.exited(60).await;
        assert!(!exit.success(), "{}: {exit:?}", point.name());
        let expected = match point {
            CrashPoint::BeforeChange => 2,
            CrashPoint::AfterChange | CrashPoint::AfterReport => 3,
        };
        assert_eq!(
            replicas(&client, &ns, "tax").await,
            expected,
            "killed {}",
            point.name()
        );

        // Another operator takes over once the dead one's Lease runs out.
        let survivor = Operator::start(&plane, &format!("survivor-{}", point.name()), &[]);
        stepped_once(&client, &ns, &report, &survivor).await;
        resolve(&client, &ns, &report).await;
        restored(&client, &ns, &report).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_and_etcd_restarting_mid_remediation_lose_nothing() {
    let (mut plane, client) = plane().await;
    namespace(&client, OPERATOR_NAMESPACE).await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 2).await;
    policy(&client, ns, "scale-tax", one_step_policy()).await;
    let operator = Operator::start(&plane, "a", &[]);
    operator.wait_reconciles(2.0).await;

    // The API server goes away as the step begins.
    let report = open_report(&client, ns, "tax").await;
    plane
        .restart_apiserver()
        .await
        .unwrap_or_else(|e| panic!("restart kube-apiserver: {e}"));
    stepped_once(&client, ns, &report, &operator).await;

    // etcd goes away as the restore begins.
    resolve(&client, ns, &report).await;
    plane
        .restart_etcd()
        .await
        .unwrap_or_else(|e| panic!("restart etcd: {e}"));
    restored(&client, ns, &report).await;
    assert_eq!(
        get_policy(&client, ns, "scale-tax")
            .await
            .status
            .expect("status")
            .actions_taken,
        1
    );
}
