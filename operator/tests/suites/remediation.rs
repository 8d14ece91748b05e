//! The RemediationPolicy controller against a real kube-apiserver, with the
//! operator running as its own process.

use crate::common::*;
use homeostat_api::ReportState;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

fn scale_spec(service: &str, max: i32, cooldown: &str) -> serde_json::Value {
    json!({
        "services": {"names": [service]},
        "trigger": {"signals": ["latency_p99"], "minScore": 0.8},
        "actions": [{"scale": {"step": 1, "minReplicas": 1, "maxReplicas": max}}],
        "guards": {"cooldown": cooldown, "maxActionsPerHour": 10},
        "stableFor": "2s"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_report_scales_within_bounds_and_back_after_resolution() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    deployment(&client, ns, "inventory", 1).await;
    policy(&client, ns, "scale-tax", scale_spec("tax", 3, "1s")).await;
    let operator = Operator::start(&plane, "a", &[]);

    // A report no policy covers changes nothing.
    let unrelated = open_report(&client, ns, "inventory").await;
    let report = open_report(&client, ns, "tax").await;
    wait_replicas(&client, ns, "tax", 3).await;
    operator.wait_reconciles(5.0).await;
    assert_eq!(
        replicas(&client, ns, "tax").await,
        3,
        "never above maxReplicas"
    );
    assert_eq!(replicas(&client, ns, "inventory").await, 1);
    assert!(
        get_report(&client, ns, &unrelated)
            .await
            .status
            .expect("status")
            .actions
            .is_empty()
    );

    let status = get_report(&client, ns, &report)
        .await
        .status
        .expect("status");
    assert_eq!(status.state, ReportState::Remediating);
    let done: Vec<_> = status
        .actions
        .iter()
        .filter(|a| a.done_at.is_some())
        .collect();
    assert_eq!(done.len(), 2, "{:#?}", status.actions);
    assert_eq!(done[0].target, "deployment/tax 1→2");
    // The same as values, for tools: nothing parses the text back.
    assert_eq!(done[0].kind, homeostat_api::ActionKind::Scale);
    assert_eq!(
        done[0].object,
        Some(homeostat_api::Target::Deployment("tax".into()))
    );
    assert_eq!(
        (
            done[0].before.as_ref().and_then(|b| b.replicas),
            done[0].after.as_ref().and_then(|a| a.replicas)
        ),
        (Some(1), Some(2))
    );
    assert!(
        status.timeline.iter().any(|t| t.id == "opened"),
        "the detector's entries stay"
    );
    assert!(
        status
            .timeline
            .iter()
            .any(|t| t.id == "scale-tax-0-1-planned")
    );
    let policy_status = get_policy(&client, ns, "scale-tax")
        .await
        .status
        .expect("policy status");
    assert_eq!(policy_status.actions_taken, 2);
    assert_eq!(policy_status.active[0].original_replicas, Some(1));

    resolve(&client, ns, &report).await;
    wait_replicas(&client, ns, "tax", 1).await;
    // The operator scales back first and records it on the report after.
    let status = eventually("the restorations on the report", 30, || async {
        let status = get_report(&client, ns, &report)
            .await
            .status
            .expect("status");
        let restored = status
            .actions
            .iter()
            .filter(|a| a.done_at.is_some())
            .all(|a| a.restored_at.is_some());
        if restored {
            Ok(status)
        } else {
            Err(format!("{:#?}", status.actions))
        }
    })
    .await;
    assert_eq!(
        status.state,
        ReportState::Resolved,
        "restoring does not reopen the report"
    );
    eventually("Events on the policy", 30, || async {
        let reasons = event_reasons(&client, ns, "scale-tax").await;
        let all = ["Planned", "Scaled", "Restored"]
            .iter()
            .all(|r| reasons.iter().any(|x| x == r));
        if all {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    assert!(
        event_reasons(&client, ns, &report)
            .await
            .iter()
            .any(|r| r == "Scaled")
    );
    holds_nothing(&client, ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_scaling_during_a_remediation_is_left_alone_and_not_undone() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    // One step, then the cooldown holds the next one back.
    policy(&client, ns, "scale-tax", scale_spec("tax", 4, "1h")).await;
    let operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "tax").await;
    wait_replicas(&client, ns, "tax", 2).await;

    // A person scales tax to 6 in the middle of the incident.
    deployment_scale(&client, ns, "tax", 6).await;
    let noticed = eventually("the change recorded as someone else's", 30, || async {
        let status = get_policy(&client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        status
            .active
            .first()
            .and_then(|a| a.changed_by_others.clone())
            .ok_or_else(|| format!("{:#?}", status.active))
    })
    .await;
    assert_eq!(
        (noticed.expected.as_str(), noticed.found.as_str()),
        ("2", "6")
    );
    eventually("a ChangedByOthers Event", 30, || async {
        let reasons = event_reasons(&client, ns, "scale-tax").await;
        if reasons.iter().any(|r| r == "ChangedByOthers") {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    let timeline = get_report(&client, ns, &report)
        .await
        .status
        .expect("status")
        .timeline;
    assert!(
        timeline
            .iter()
            .any(|t| t.id.ends_with("changed-by-others") && t.message.contains("found 6")),
        "{timeline:#?}"
    );

    // Resolved and stable: the hold goes, and the person's 6 stays.
    resolve(&client, ns, &report).await;
    eventually("the hold dropped", 30, || async {
        let active = get_policy(&client, ns, "scale-tax")
            .await
            .status
            .map(|s| s.active)
            .unwrap_or_default();
        if active.is_empty() {
            Ok(())
        } else {
            Err(format!("{active:#?}"))
        }
    })
    .await;
    operator.wait_reconciles(3.0).await;
    assert_eq!(
        replicas(&client, ns, "tax").await,
        6,
        "never restored over a person's change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_an_hpa_scales_is_never_scaled_and_the_policy_says_why() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 2).await;
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "tax"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tax"},
            "minReplicas": 2,
            "maxReplicas": 5
        }
    }))
    .expect("hpa");
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &hpa)
        .await
        .expect("create the HPA");
    policy(&client, ns, "scale-tax", scale_spec("tax", 4, "1s")).await;
    let operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "tax").await;

    let blocked = eventually("the step blocked as autoscaled", 30, || async {
        let actions = get_report(&client, ns, &report)
            .await
            .status
            .map(|s| s.actions)
            .unwrap_or_default();
        actions
            .into_iter()
            .find(|a| a.blocked_by.as_deref() == Some("autoscaled"))
            .ok_or("not yet".to_owned())
    })
    .await;
    assert_eq!(blocked.target, "deployment/tax 2→3");
    operator.wait_reconciles(3.0).await;
    assert_eq!(replicas(&client, ns, "tax").await, 2, "the HPA's number");
    assert!(
        event_reasons(&client, ns, "scale-tax")
            .await
            .iter()
            .any(|r| r == "Blocked")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_deleted_mid_remediation_restores_before_it_goes() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    policy(&client, ns, "scale-tax", scale_spec("tax", 2, "1s")).await;
    let _operator = Operator::start(&plane, "a", &[]);
    let _report = open_report(&client, ns, "tax").await;
    wait_replicas(&client, ns, "tax", 2).await;
    let policies: Api<homeostat_api::RemediationPolicy> = Api::namespaced(client.clone(), ns);
    let held = policies.get("scale-tax").await.expect("policy");
    assert!(
        held.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "homeostat.dev/restore"),
        "{:?}",
        held.metadata.finalizers
    );

    // Deleted while the report is still open: tax goes back to 1 first.
    policies
        .delete("scale-tax", &Default::default())
        .await
        .expect("delete");
    wait_replicas(&client, ns, "tax", 1).await;
    eventually("the policy gone", 30, || async {
        match policies
            .get_opt("scale-tax")
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(p) => Err(format!("{:?}", p.metadata.finalizers)),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_policies_on_one_workload_only_the_first_holds_it() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    policy(&client, ns, "scale-tax", scale_spec("tax", 2, "1h")).await;
    let _operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "tax").await;
    wait_replicas(&client, ns, "tax", 2).await;

    // A second policy covering tax is told why it does nothing.
    policy(&client, ns, "scale-tax-too", scale_spec("tax", 4, "1s")).await;
    let blocked = eventually("the second policy blocked", 30, || async {
        get_report(&client, ns, &report)
            .await
            .status
            .map(|s| s.actions)
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.policy == "scale-tax-too")
            .ok_or("no action of scale-tax-too yet".to_owned())
    })
    .await;
    assert_eq!(
        blocked.blocked_by.as_deref(),
        Some("held-by-another-policy")
    );
    assert_eq!(replicas(&client, ns, "tax").await, 2);
}

fn reroute_spec(kind: &str, name: &str, max: i32) -> serde_json::Value {
    json!({
        "services": {"names": ["payment-primary"]},
        "trigger": {"signals": ["latency_p99"]},
        "actions": [{"reroute": {"router": {"kind": kind, "name": name},
            "from": "payment-primary", "to": "payment-secondary", "weightStep": 50, "maxWeight": max}}],
        "guards": {"cooldown": "1s"},
        "stableFor": "2s"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reroute_steps_through_the_oms_configmap_and_restores() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    routing_configmap(&client, ns, 100).await;
    policy(
        &client,
        ns,
        "reroute-payment",
        reroute_spec("OmsConfigMap", "oms-routing", 100),
    )
    .await;
    let history = WeightHistory::start(&client, ns).await;
    let _operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "payment-primary").await;

    eventually("all payment traffic on the secondary", 60, || async {
        let w = configmap_weights(&client, ns).await;
        if w == ("0".into(), "100".into()) {
            Ok(())
        } else {
            Err(format!("{w:?}"))
        }
    })
    .await;
    let seen = eventually("the watch to see the last step", 10, || async {
        let seen = history.seen();
        if seen.last() == Some(&("0".to_owned(), "100".to_owned())) {
            Ok(seen)
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
    assert_eq!(
        seen,
        [("100", "0"), ("50", "50"), ("0", "100")].map(|(a, b)| (a.to_owned(), b.to_owned())),
        "moved in steps of 50"
    );

    resolve(&client, ns, &report).await;
    eventually("weights restored", 60, || async {
        let w = configmap_weights(&client, ns).await;
        if w == ("100".into(), "0".into()) {
            Ok(())
        } else {
            Err(format!("{w:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reroute_through_a_gateway_api_httproute_and_restore() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    let routes = payments_route(&client, ns).await;
    policy(
        &client,
        ns,
        "reroute-payment",
        reroute_spec("HTTPRoute", "payments", 50),
    )
    .await;
    let operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "payment-primary").await;

    let weights = || route_weights(&routes);
    eventually("half the traffic on the secondary", 60, || async {
        let w = weights().await?;
        if w == [Some(50), Some(50)] {
            Ok(())
        } else {
            Err(format!("{w:?}"))
        }
    })
    .await;
    operator.wait_reconciles(4.0).await;
    assert_eq!(
        weights().await.expect("weights"),
        [Some(50), Some(50)],
        "maxWeight 50 holds"
    );
    let route = routes.get("payments").await.expect("route");
    assert_eq!(
        route.spec.hostnames,
        ["payments.shop"],
        "other fields untouched"
    );

    resolve(&client, ns, &report).await;
    eventually("route weights restored", 60, || async {
        let w = weights().await?;
        if w == [Some(100), Some(0)] {
            Ok(())
        } else {
            Err(format!("{w:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_block_what_they_should_and_say_so() {
    let (plane, client) = plane().await;
    // One namespace per guard, each with its own policy and report.
    let cases = [
        ("dry", json!({"dryRun": true}), "DryRun"),
        ("suspended", json!({"suspend": true}), "Blocked"),
        ("cooldown", json!({"cooldown": "1h"}), "Blocked"),
        (
            "ratelimit",
            json!({"cooldown": "1s", "maxActionsPerHour": 1}),
            "Blocked",
        ),
    ];
    for (ns, guards, _) in &cases {
        namespace(&client, ns).await;
        deployment(&client, ns, "tax", 1).await;
        let mut spec = scale_spec("tax", 5, "1s");
        spec["guards"] = guards.clone();
        policy(&client, ns, "scale-tax", spec).await;
    }
    let operator = Operator::start(&plane, "a", &[]);
    let mut reports = Vec::new();
    for (ns, _, _) in &cases {
        reports.push(open_report(&client, ns, "tax").await);
    }
    for ((ns, _, reason), report) in cases.iter().zip(&reports) {
        eventually(&format!("{ns}: {reason} Event"), 60, || async {
            let reasons = event_reasons(&client, ns, "scale-tax").await;
            if reasons.iter().any(|r| r == reason) {
                Ok(())
            } else {
                Err(format!("{reasons:?}"))
            }
        })
        .await;
        let _ = report;
    }
    operator.wait_reconciles(8.0).await;
    let expect = [
        ("dry", 1, None),
        ("suspended", 1, Some("suspended")),
        ("cooldown", 2, Some("cooldown")),
        ("ratelimit", 2, Some("rate-limit")),
    ];
    for ((ns, want_replicas, blocked_by), report) in expect.iter().zip(&reports) {
        assert_eq!(replicas(&client, ns, "tax").await, *want_replicas, "{ns}");
        let status = get_report(&client, ns, report)
            .await
            .status
            .expect("status");
        let guarded: Vec<_> = status
            .actions
            .iter()
            .filter(|a| a.done_at.is_none())
            .collect();
        assert_eq!(
            guarded.len(),
            1,
            "{ns}: recorded once, not once per pass: {:#?}",
            status.actions
        );
        assert_eq!(guarded[0].blocked_by.as_deref(), *blocked_by, "{ns}");
        assert_eq!(guarded[0].dry_run, *ns == "dry", "{ns}");
        let policy_status = get_policy(&client, ns, "scale-tax")
            .await
            .status
            .expect("status");
        assert_eq!(policy_status.actions_blocked, 1, "{ns}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_stops_every_action() {
    let (plane, client) = plane().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            OPERATOR_NAMESPACE,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"homeostat.dev/kill-switch": "true"}}}),
            ),
        )
        .await
        .expect("annotate");
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    policy(&client, ns, "scale-tax", scale_spec("tax", 5, "1s")).await;
    let operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "tax").await;
    eventually("kill-switch recorded", 60, || async {
        let status = get_report(&client, ns, &report)
            .await
            .status
            .ok_or("no status")?;
        let blocked = status
            .actions
            .iter()
            .any(|a| a.blocked_by.as_deref() == Some("kill-switch"));
        if blocked {
            Ok(())
        } else {
            Err(format!("{:?}", status.actions))
        }
    })
    .await;
    operator.wait_reconciles(4.0).await;
    assert_eq!(replicas(&client, ns, "tax").await, 1);
    assert!(
        event_reasons(&client, ns, "scale-tax")
            .await
            .iter()
            .any(|r| r == "Blocked")
    );

    // Switched off, the policy acts.
    namespaces
        .patch(
            OPERATOR_NAMESPACE,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"homeostat.dev/kill-switch": null}}}),
            ),
        )
        .await
        .expect("annotate");
    eventually("scaled once the switch is off", 60, || async {
        match replicas(&client, ns, "tax").await {
            1 => Err("still 1".to_owned()),
            n => Ok(n),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_target_marks_the_policy_invalid_and_does_nothing() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    policy(
        &client,
        ns,
        "scale-fulfillment",
        scale_spec("fulfillment", 3, "1s"),
    )
    .await;
    let _operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "fulfillment").await;
    let condition = eventually("Invalid condition", 60, || async {
        let status = get_policy(&client, ns, "scale-fulfillment")
            .await
            .status
            .ok_or("no status")?;
        status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Invalid" && c.status == "True")
            .ok_or_else(|| "not invalid yet".to_owned())
    })
    .await;
    assert_eq!(
        condition.message,
        "scale target deployment/fulfillment does not exist"
    );
    assert!(
        get_report(&client, ns, &report)
            .await
            .status
            .expect("status")
            .actions
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_neither_doubles_nor_forgets_an_action() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    // A long cooldown: one step, then nothing until the report resolves.
    policy(&client, ns, "scale-tax", scale_spec("tax", 5, "1h")).await;
    let mut first = Operator::start(&plane, "first", &[]);
    let report = open_report(&client, ns, "tax").await;
    wait_replicas(&client, ns, "tax", 2).await;
    first.kill();

    let second = Operator::start(&plane, "second", &[]);
    second.wait_reconciles(5.0).await;
    assert_eq!(replicas(&client, ns, "tax").await, 2, "not doubled");
    assert_eq!(
        get_policy(&client, ns, "scale-tax")
            .await
            .status
            .expect("status")
            .actions_taken,
        1
    );

    // Killed between deciding a step and confirming it: the pending step is
    // finished as recorded, not planned again.
    let api: Api<homeostat_api::RemediationPolicy> = Api::namespaced(client.clone(), ns);
    let mut status = get_policy(&client, ns, "scale-tax")
        .await
        .status
        .expect("status");
    status.active[0].pending = Some(homeostat_api::PendingChange {
        id: "scale-tax-0-2".into(),
        replicas: Some(3),
        weights: vec![],
        planned_at: status.active[0].started_at.clone(),
    });
    drop(second);
    api.patch_status(
        "scale-tax",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("status");
    let third = Operator::start(&plane, "third", &[]);
    eventually("pending step finished", 60, || async {
        let s = get_policy(&client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        if s.active
            .first()
            .is_some_and(|a| a.pending.is_none() && a.steps == 2)
        {
            Ok(())
        } else {
            Err(format!("{:?}", s.active))
        }
    })
    .await;
    third.wait_reconciles(5.0).await;
    assert_eq!(replicas(&client, ns, "tax").await, 3, "finished once");

    // And the restore is not forgotten.
    resolve(&client, ns, &report).await;
    wait_replicas(&client, ns, "tax", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_operators_only_the_leader_acts() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    policy(&client, ns, "scale-tax", scale_spec("tax", 2, "1s")).await;
    let mut a = Operator::start(&plane, "a", &[]);
    let mut b = Operator::start(&plane, "b", &[]);
    let leader = eventually("one leader", 60, || async {
        let la = a.metric("homeostat_operator_leader").await.unwrap_or(0.0);
        let lb = b.metric("homeostat_operator_leader").await.unwrap_or(0.0);
        match (la, lb) {
            (1.0, 0.0) => Ok("a"),
            (0.0, 1.0) => Ok("b"),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let report = open_report(&client, ns, "tax").await;
    wait_replicas(&client, ns, "tax", 2).await;
    let (leading, standby) = if leader == "a" { (&a, &b) } else { (&b, &a) };
    leading.wait_reconciles(3.0).await;
    assert_eq!(
        standby
            .metric(r#"homeostat_operator_reconciles_total{controller="remediationpolicy"}"#)
            .await,
        Ok(0.0)
    );
    assert_eq!(
        get_policy(&client, ns, "scale-tax")
            .await
            .status
            .expect("status")
            .actions_taken,
        1
    );

    // The leader goes away: the other takes over and does the restore.
    let survivor = if leader == "a" {
        a.kill();
        &b
    } else {
        b.kill();
        &a
    };
    resolve(&client, ns, &report).await;
    eventually(
        "the other operator takes over and scales back",
        90,
        || async {
            match replicas(&client, ns, "tax").await {
                1 => Ok(()),
                n => Err(format!("{n}")),
            }
        },
    )
    .await;
    assert_eq!(survivor.metric("homeostat_operator_leader").await, Ok(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_and_exits() {
    let (plane, client) = plane().await;
    namespace(&client, OPERATOR_NAMESPACE).await;
    let mut operator = Operator::start(&plane, "a", &[]);
    eventually("the operator leads", 60, || async {
        match operator.metric("homeostat_operator_leader").await {
            Ok(1.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let holder = |lease: Lease| lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(leases.get("homeostat-operator").await.expect("lease")).as_deref(),
        Some("a")
    );

    let status = operator
        .terminate(Duration::from_secs(15))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status}");
    // Released, so a successor need not wait out the lease.
    let after = holder(leases.get("homeostat-operator").await.expect("lease"));
    assert!(
        after.as_deref().is_none_or(str::is_empty),
        "still held by {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_report_on_a_held_workload_is_undone_with_the_first_back_to_the_original() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    // The cooldown gives the test time to resolve the first report before
    // it would take a second step itself (a 1 s cooldown, counted in whole
    // seconds, can be over within a moment and race the test).
    let mut spec = scale_spec("tax", 3, "5s");
    // Long enough that the first report's restore waits for the second.
    spec["stableFor"] = json!("30s");
    policy(&client, ns, "scale-tax", spec).await;
    let _operator = Operator::start(&plane, "a", &[]);

    let first = open_report(&client, ns, "tax").await;
    wait_replicas(&client, ns, "tax", 2).await;
    resolve(&client, ns, &first).await;
    // Another anomaly on tax before the first's stable time is up.
    let second = "tax-errors-1";
    let report: homeostat_api::AnomalyReport = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
        "metadata": {"name": second}, "spec": {"service": "tax", "signal": "latency_p99"}
    }))
    .expect("report");
    Api::<homeostat_api::AnomalyReport>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &report)
        .await
        .expect("second report");
    detector_status(&client, ns, second, "Open", None).await;
    wait_replicas(&client, ns, "tax", 3).await;

    // Both resolved a minute ago: back to 1, not to the 2 the second found,
    // and both reports say their steps were undone.
    let a_minute_ago = unix_now() - 59;
    detector_status(&client, ns, &first, "Resolved", Some(a_minute_ago)).await;
    detector_status(&client, ns, second, "Resolved", Some(a_minute_ago)).await;
    wait_replicas(&client, ns, "tax", 1).await;
    for name in [first.as_str(), second] {
        eventually(&format!("{name}'s step undone"), 30, || async {
            let actions = get_report(&client, ns, name)
                .await
                .status
                .map(|s| s.actions)
                .unwrap_or_default();
            let done: Vec<_> = actions.iter().filter(|a| a.done_at.is_some()).collect();
            if !done.is_empty() && done.iter().all(|a| a.restored_at.is_some()) {
                Ok(())
            } else {
                Err(format!("{actions:#?}"))
            }
        })
        .await;
    }
    holds_nothing(&client, ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_service_is_left_alone_until_the_silence_ends() {
    let (plane, client) = plane().await;
    let ns = "shop";
    namespace(&client, ns).await;
    deployment(&client, ns, "tax", 1).await;
    policy(&client, ns, "scale-tax", scale_spec("tax", 2, "1s")).await;
    // A person silences tax for a few seconds, as `homeostat silence` does.
    let until = jiff::Timestamp::from_second(unix_now() + 8).expect("time");
    let silence: homeostat_api::Silence = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "Silence",
        "metadata": {"name": "tax-deploy"},
        "spec": {"services": ["tax"], "until": until.to_string(), "createdBy": "alice"}
    }))
    .expect("silence");
    Api::<homeostat_api::Silence>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &silence)
        .await
        .expect("create the silence");
    let _operator = Operator::start(&plane, "a", &[]);

    let report = open_report(&client, ns, "tax").await;
    let blocked = eventually("the step blocked by the silence", 30, || async {
        let status = get_report(&client, ns, &report)
            .await
            .status
            .ok_or("no status")?;
        status
            .actions
            .iter()
            .find(|a| a.blocked_by.as_deref() == Some("silenced"))
            .cloned()
            .ok_or_else(|| format!("{:#?}", status.actions))
    })
    .await;
    assert!(blocked.done_at.is_none());
    assert_eq!(
        replicas(&client, ns, "tax").await,
        1,
        "left alone while silenced"
    );
    // Once it ends, the same step is taken, and not before.
    wait_replicas(&client, ns, "tax", 2).await;
    assert!(
        jiff::Timestamp::now() >= until,
        "not before the silence ended"
    );
}
