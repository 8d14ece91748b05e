//! Steps that wait for a person (`requireApproval`) against a real
//! kube-apiserver, with the operator running as its own process: nothing
//! changes until a verdict is written to the report, as `homeostat
//! approve|reject` and the console write it.

use crate::common::*;
use homeostat_api::{ApprovalState, ReportState};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn approval_spec(services: &[&str], timeout: &str) -> serde_json::Value {
    json!({
        "services": {"names": services},
        "trigger": {"signals": ["latency_p99"], "minScore": 0.8},
        "actions": [{
            "scale": {"step": 1, "minReplicas": 1, "maxReplicas": 3},
            "requireApproval": true, "approvalTimeout": timeout
        }],
        "guards": {"cooldown": "1s", "maxActionsPerHour": 10},
        "stableFor": "2s"
    })
}

/// The step awaiting approval on `report` (waits for it).
async fn awaiting_step(client: &kube::Client, ns: &str, report: &str) -> String {
    step_where(
        client,
        ns,
        report,
        &format!("a step awaiting approval on {report}"),
        |a| approval_state(a) == Some(ApprovalState::Awaiting),
    )
    .await
    .id
}

fn approval_state(action: &homeostat_api::ActionRecord) -> Option<ApprovalState> {
    action.approval.as_ref().map(|p| p.state)
}

/// The first action record on `report` that `wanted` picks (waits for it).
async fn step_where(
    client: &kube::Client,
    ns: &str,
    report: &str,
    what: &str,
    wanted: impl Fn(&homeostat_api::ActionRecord) -> bool,
) -> homeostat_api::ActionRecord {
    eventually(what, 60, || async {
        let status = get_report(client, ns, report)
            .await
            .status
            .ok_or("no status")?;
        status
            .actions
            .iter()
            .find(|a| wanted(a))
            .cloned()
            .ok_or_else(|| format!("{:#?}", status.actions))
    })
    .await
}

/// Writes a person's verdict as `homeostat approve|reject` does.
async fn verdict(client: &kube::Client, ns: &str, report: &str, step: &str, verdict: &str) {
    Api::<homeostat_api::AnomalyReport>::namespaced(client.clone(), ns)
        .patch_status(
            report,
            &PatchParams::apply("homeostat-approval").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {"approvals": [{
                    "step": step, "verdict": verdict, "by": "alice",
                    "at": jiff::Timestamp::now().to_string()
                }]}
            })),
        )
        .await
        .expect("verdict");
}

/// Step `id`'s record on `report`, once its approval is `state`.
async fn approval_once(
    client: &kube::Client,
    ns: &str,
    report: &str,
    id: &str,
    state: ApprovalState,
) -> homeostat_api::ActionRecord {
    step_where(client, ns, report, &format!("{id} {state}"), |a| {
        a.id == id && approval_state(a) == Some(state)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_waits_for_approval_and_is_carried_out_once_approved() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    policy(&client, ns, "scale-tax", approval_spec(&["tax"], "10m")).await;
    let operator = Operator::start(&plane, "a", &[]);

    let report = open_report(&client, ns, "tax").await;
    let step = awaiting_step(&client, ns, &report).await;
    assert_eq!(step, "scale-tax-0-1");
    // Passes go by and nothing changes, nor is a second step planned.
    operator.wait_reconciles(5.0).await;
    assert_eq!(replicas(&client, ns, "tax").await, 1);
    let status = get_report(&client, ns, &report)
        .await
        .status
        .expect("status");
    assert_eq!(status.actions.len(), 1, "{:#?}", status.actions);
    assert_eq!(status.state, ReportState::Open);
    let held = get_policy(&client, ns, "scale-tax")
        .await
        .status
        .expect("status");
    assert_eq!(held.awaiting_approval.len(), 1);
    assert!(
        held.active.is_empty(),
        "nothing is in force before approval"
    );

    verdict(&client, ns, &report, &step, "Approved").await;
    wait_replicas(&client, ns, "tax", 2).await;
    let done = eventually("the approved step done", 60, || async {
        let record = approval_once(&client, ns, &report, &step, ApprovalState::Approved).await;
        if record.done_at.is_some() {
            Ok(record)
        } else {
            Err(format!("{record:#?}"))
        }
    })
    .await;
    assert_eq!(done.approval.and_then(|a| a.by).as_deref(), Some("alice"));
    // No longer held as awaiting (the policy's status is written after the
    // report's; the next step may be awaiting already, once the cooldown
    // is over).
    eventually(
        "the policy no longer holding it as awaiting",
        30,
        || async {
            let held = get_policy(&client, ns, "scale-tax")
                .await
                .status
                .unwrap_or_default();
            if held.awaiting_approval.iter().all(|a| a.id != step) {
                Ok(())
            } else {
                Err(format!("{:?}", held.awaiting_approval))
            }
        },
    )
    .await;
    // The next step waits for a person too, from where the first left.
    let next = step_where(&client, ns, &report, "the second step", |a| {
        a.id == "scale-tax-0-2"
    })
    .await;
    assert_eq!(
        next.approval.map(|a| a.state),
        Some(ApprovalState::Awaiting)
    );
    assert_eq!(next.after.and_then(|a| a.replicas), Some(3));
    assert_eq!(replicas(&client, ns, "tax").await, 2);
    eventually("Events", 30, || async {
        let reasons = event_reasons(&client, ns, "scale-tax").await;
        if ["AwaitingApproval", "Scaled"]
            .iter()
            .all(|r| reasons.iter().any(|x| x == r))
        {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;

    // Resolved before the second is approved: withdrawn, never done; the
    // first is put back.
    resolve(&client, ns, &report).await;
    let withdrawn = approval_once(
        &client,
        ns,
        &report,
        "scale-tax-0-2",
        ApprovalState::Withdrawn,
    )
    .await;
    assert!(withdrawn.done_at.is_none());
    wait_replicas(&client, ns, "tax", 1).await;
    holds_nothing(&client, ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_or_unanswered_step_is_recorded_not_done_and_changes_nothing() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    deployment(&client, ns, "inventory", 1).await;
    policy(
        &client,
        ns,
        "scale-tax",
        approval_spec(&["tax", "inventory"], "10s"),
    )
    .await;
    let operator = Operator::start(&plane, "a", &[]);

    let tax = open_report(&client, ns, "tax").await;
    let step = awaiting_step(&client, ns, &tax).await;
    verdict(&client, ns, &tax, &step, "Rejected").await;
    let rejected = approval_once(&client, ns, &tax, &step, ApprovalState::Rejected).await;
    assert_eq!(
        rejected.approval.and_then(|a| a.by).as_deref(),
        Some("alice")
    );
    assert!(rejected.done_at.is_none());

    // Nobody answers inventory's step: it lapses after approvalTimeout.
    let inventory = open_report(&client, ns, "inventory").await;
    let lapsing = awaiting_step(&client, ns, &inventory).await;
    approval_once(&client, ns, &inventory, &lapsing, ApprovalState::Expired).await;

    operator.wait_reconciles(5.0).await;
    assert_eq!(replicas(&client, ns, "tax").await, 1);
    assert_eq!(replicas(&client, ns, "inventory").await, 1);
    for report in [&tax, &inventory] {
        let status = get_report(&client, ns, report)
            .await
            .status
            .expect("status");
        assert_eq!(
            status.actions.len(),
            1,
            "a step not done is not planned again: {:#?}",
            status.actions
        );
    }
    let status = get_policy(&client, ns, "scale-tax")
        .await
        .status
        .expect("status");
    assert!(status.awaiting_approval.is_empty() && status.active.is_empty());
    assert_eq!(status.actions_taken, 0);
    let reasons = event_reasons(&client, ns, "scale-tax").await;
    assert!(reasons.iter().any(|r| r == "NotApproved"), "{reasons:?}");
}
