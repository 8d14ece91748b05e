//! Steps waiting for a person, as part of the pure decision: what becomes
//! of each step the policy holds as awaiting approval.
//!
//! In order, for each: its report resolved or gone, it is withdrawn; a
//! person rejected it, it is not done; past its time, it has lapsed (even
//! approved: a guard held it too long); approved, it is carried out as
//! planned — unless its target no longer holds what it held then (what
//! was approved is not what it would do now), or a guard stops it (recorded
//! once; it keeps waiting for the guard to lift until its time is up). A
//! step the report does not show yet is recorded there again: nobody can
//! approve what they cannot see.

use homeostat_api::{ApprovalState, AwaitingApproval, ReportState, StepApproval, VerdictKind};

use super::kinds;
use super::plan::{self, Change, Decision, Policy, Report, State, Step, World};

/// Why a step that awaited approval is not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotApproved {
    /// A person said no.
    Rejected { by: String },
    /// Nobody approved it in time, or a guard held it until its time ran out.
    Expired,
    /// Its report resolved (or was deleted) first.
    ReportResolved,
    /// Its target no longer holds what it held when the step was planned.
    TargetChanged { found: String },
    /// The action that planned it is no longer in the policy.
    ActionRemoved,
    /// The policy is being deleted.
    PolicyDeleted,
}

impl NotApproved {
    /// The state the step's record is left in.
    pub fn state(&self) -> ApprovalState {
        match self {
            NotApproved::Rejected { .. } => ApprovalState::Rejected,
            NotApproved::Expired => ApprovalState::Expired,
            NotApproved::ReportResolved
            | NotApproved::TargetChanged { .. }
            | NotApproved::ActionRemoved
            | NotApproved::PolicyDeleted => ApprovalState::Withdrawn,
        }
    }

    /// Who decided, when a person did.
    pub fn by(&self) -> Option<&str> {
        match self {
            NotApproved::Rejected { by } => Some(by),
            _ => None,
        }
    }

    /// For a person, after "not done: ".
    pub fn describe(&self) -> String {
        match self {
            NotApproved::Rejected { by } => format!("rejected by {by}"),
            NotApproved::Expired => "not approved in time".to_owned(),
            NotApproved::ReportResolved => "the report resolved before it was approved".to_owned(),
            NotApproved::TargetChanged { found } => {
                format!("its target changed before it was carried out (found {found})")
            }
            NotApproved::ActionRemoved => "its action is no longer in the policy".to_owned(),
            NotApproved::PolicyDeleted => "the policy is being deleted".to_owned(),
        }
    }
}

/// The decisions for the steps awaiting approval; `None` when none awaits.
/// `Some` of nothing: they are still waiting, and the policy plans no other.
pub fn awaiting(policy: Policy<'_>, reports: &[Report], world: &World) -> Option<Vec<Decision>> {
    let waiting = &policy.status.awaiting_approval;
    if waiting.is_empty() {
        return None;
    }
    Some(
        waiting
            .iter()
            .filter_map(|a| settle(policy, a, reports, world))
            .collect(),
    )
}

fn settle(
    policy: Policy<'_>,
    awaiting: &AwaitingApproval,
    reports: &[Report],
    world: &World,
) -> Option<Decision> {
    let report = plan::report_named(reports, &awaiting.report);
    let not_done = |why: NotApproved| {
        Some(Decision::NotDone {
            step: step(awaiting, report, None, None),
            why,
        })
    };
    if policy.deleting {
        return not_done(NotApproved::PolicyDeleted);
    }
    let Some(report) = report.filter(|r| r.state != ReportState::Resolved) else {
        return not_done(NotApproved::ReportResolved);
    };
    let verdict = report.verdicts.iter().find(|v| v.step == awaiting.id);
    if let Some(v) = verdict.filter(|v| v.verdict == VerdictKind::Rejected) {
        return not_done(NotApproved::Rejected { by: v.by.clone() });
    }
    if world.now >= awaiting.expires_at.0.as_second() {
        return not_done(NotApproved::Expired);
    }
    if verdict.is_none() && !report.recorded.contains(&awaiting.id) {
        // Written to the policy, not yet to the report (a restart between
        // the two): nobody can see it to approve it, so record it again.
        return Some(Decision::Propose(step(awaiting, Some(report), None, None)));
    }
    let by = verdict?.by.clone();
    let Some(kind) = action_of(policy, awaiting) else {
        return not_done(NotApproved::ActionRemoved);
    };
    let now = world.states.get(&awaiting.target);
    let found = State::from_recorded(awaiting.before.replicas, &awaiting.before.weights);
    let recreated = awaiting
        .target_uid
        .as_ref()
        .is_some_and(|uid| world.uids.get(&awaiting.target) != Some(uid));
    match (now, found) {
        (Some(now), Some(found)) if found.holds_in(now) && !recreated => {
            let step = step(awaiting, Some(report), Some(now.clone()), Some(by));
            match plan::guard(policy, kind, report, &step, world) {
                None => Some(Decision::Act(step)),
                Some(guard) => {
                    let blocked = format!("{}-{}", step.id, guard.as_str());
                    (!report.recorded.contains(&blocked)).then_some(Decision::Block { step, guard })
                }
            }
        }
        (now, _) => not_done(NotApproved::TargetChanged {
            found: now.map_or_else(|| "it gone".to_owned(), State::text),
        }),
    }
}

/// The action that planned `awaiting`: the one whose kind changes its target.
fn action_of<'p>(
    policy: Policy<'p>,
    awaiting: &AwaitingApproval,
) -> Option<&'p dyn kinds::StepKind> {
    policy.spec.actions.iter().find_map(|action| {
        let kind = kinds::of(action)?;
        (action.require_approval && kind.restores(&awaiting.target).is_some()).then_some(kind)
    })
}

/// The awaiting step as a [`Step`]: from what the target holds `now`
/// (what it held when planned, when not known) to what it sets.
fn step(
    awaiting: &AwaitingApproval,
    report: Option<&Report>,
    now: Option<State>,
    approved_by: Option<String>,
) -> Step {
    let recorded = |c: &homeostat_api::ChangedState| State::from_recorded(c.replicas, &c.weights);
    let after = recorded(&awaiting.after).unwrap_or(State::Replicas(0));
    let before = now
        .or_else(|| recorded(&awaiting.before))
        .unwrap_or_else(|| after.clone());
    Step {
        id: awaiting.id.clone(),
        report: awaiting.report.clone(),
        service: report.map_or_else(String::new, |r| r.service.clone()),
        change: Change {
            target: awaiting.target.clone(),
            before,
            after,
        },
        target_uid: awaiting.target_uid.clone(),
        approval: Some(StepApproval {
            state: if approved_by.is_some() {
                ApprovalState::Approved
            } else {
                ApprovalState::Awaiting
            },
            expires_at: awaiting.expires_at.clone(),
            by: approved_by,
            reason: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use homeostat_api::{
        ChangedState, RemediationPolicySpec, RemediationPolicyStatus, Target, Verdict,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;
    use crate::remediation::plan::{Guard, plan};

    const NOW: i64 = 1_800_000_000;

    fn time(unix: i64) -> Time {
        Time(jiff::Timestamp::from_second(unix).expect("time"))
    }

    fn spec() -> RemediationPolicySpec {
        serde_json::from_value(json!({
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"], "minScore": 0.8},
            "actions": [{
                "scale": {"step": 1, "minReplicas": 1, "maxReplicas": 4},
                "requireApproval": true, "approvalTimeout": "10m"
            }],
            "guards": {"cooldown": "60s"},
        }))
        .expect("policy")
    }

    fn tax() -> Target {
        Target::Deployment("tax".into())
    }

    fn world(replicas: i32) -> World {
        World {
            now: NOW,
            states: BTreeMap::from([(tax(), State::Replicas(replicas))]),
            uids: BTreeMap::from([(tax(), "uid-1".to_owned())]),
            ..World::default()
        }
    }

    /// The policy's status while step `p-0-1` (tax 2→3) awaits approval.
    fn awaiting(planned_at: i64) -> RemediationPolicyStatus {
        RemediationPolicyStatus {
            awaiting_approval: vec![AwaitingApproval {
                id: "p-0-1".into(),
                report: "tax-latency-p99-1".into(),
                target: tax(),
                target_uid: Some("uid-1".into()),
                before: ChangedState {
                    replicas: Some(2),
                    weights: vec![],
                },
                after: ChangedState {
                    replicas: Some(3),
                    weights: vec![],
                },
                planned_at: time(planned_at),
                expires_at: time(planned_at + 600),
            }],
            ..RemediationPolicyStatus::default()
        }
    }

    /// The tax report, showing step `p-0-1`, with `verdict` on it.
    fn report(verdict: Option<(VerdictKind, &str)>) -> Report {
        let mut report = crate::remediation::testing::open_report("tax", NOW - 120);
        report.recorded.insert("p-0-1".into());
        report.verdicts = verdict
            .into_iter()
            .map(|(verdict, by)| Verdict {
                step: "p-0-1".into(),
                verdict,
                by: by.into(),
                at: time(NOW - 5),
                note: String::new(),
            })
            .collect();
        report
    }

    fn run(status: &RemediationPolicyStatus, reports: &[Report], world: &World) -> Vec<Decision> {
        let spec = spec();
        let services = BTreeSet::from(["tax".to_owned()]);
        plan(
            Policy {
                name: "p",
                spec: &spec,
                status,
                services: &services,
                deleting: false,
            },
            reports,
            world,
        )
    }

    fn only_not_done(decisions: &[Decision]) -> &NotApproved {
        match decisions {
            [Decision::NotDone { why, step }] => {
                assert_eq!(step.id, "p-0-1");
                why
            }
            other => panic!("expected one NotDone, got {other:?}"),
        }
    }

    #[test]
    fn a_step_that_needs_approval_is_proposed_and_nothing_is_changed() {
        let mut fresh = crate::remediation::testing::open_report("tax", NOW - 30);
        fresh.recorded.clear();
        let decisions = run(&RemediationPolicyStatus::default(), &[fresh], &world(2));
        let [Decision::Propose(step)] = decisions.as_slice() else {
            panic!("expected one Propose, got {decisions:?}");
        };
        assert_eq!(step.id, "p-0-1");
        assert_eq!(
            (&step.change.before, &step.change.after),
            (&State::Replicas(2), &State::Replicas(3))
        );
        let approval = step.approval.as_ref().expect("approval");
        assert_eq!(approval.state, ApprovalState::Awaiting);
        assert_eq!(approval.expires_at, time(NOW + 600), "approvalTimeout 10m");
    }

    #[test]
    fn a_step_a_guard_stops_before_anyone_is_asked_awaits_nobody() {
        let mut fresh = crate::remediation::testing::open_report("tax", NOW - 30);
        fresh.recorded.clear();
        let status = RemediationPolicyStatus {
            last_action_time: Some(time(NOW - 10)),
            ..RemediationPolicyStatus::default()
        };
        let decisions = run(&status, &[fresh], &world(2));
        let [Decision::Block { step, guard }] = decisions.as_slice() else {
            panic!("expected one Block, got {decisions:?}");
        };
        assert_eq!(*guard, Guard::Cooldown);
        assert_eq!(step.approval, None, "nothing to approve on a blocked step");
    }

    #[test]
    fn while_a_step_awaits_a_person_the_policy_plans_nothing_else() {
        let decisions = run(&awaiting(NOW - 60), &[report(None)], &world(2));
        assert_eq!(decisions, vec![]);
    }

    #[test]
    fn an_approved_step_is_carried_out_exactly_as_planned_naming_who_approved() {
        let decisions = run(
            &awaiting(NOW - 60),
            &[report(Some((VerdictKind::Approved, "alice")))],
            &world(2),
        );
        let [Decision::Act(step)] = decisions.as_slice() else {
            panic!("expected one Act, got {decisions:?}");
        };
        assert_eq!(step.id, "p-0-1");
        assert_eq!(step.change.after, State::Replicas(3));
        let approval = step.approval.as_ref().expect("approval");
        assert_eq!(
            (approval.state, approval.by.as_deref()),
            (ApprovalState::Approved, Some("alice"))
        );
    }

    #[test]
    fn a_rejected_step_is_not_done_and_says_who_rejected_it() {
        let decisions = run(
            &awaiting(NOW - 60),
            &[report(Some((VerdictKind::Rejected, "bob")))],
            &world(2),
        );
        let why = only_not_done(&decisions);
        assert_eq!(why, &NotApproved::Rejected { by: "bob".into() });
        assert_eq!(why.state(), ApprovalState::Rejected);
    }

    #[test]
    fn a_step_past_its_time_lapses_even_if_approved_late() {
        let status = awaiting(NOW - 600);
        assert_eq!(
            only_not_done(&run(&status, &[report(None)], &world(2))),
            &NotApproved::Expired
        );
        assert_eq!(
            only_not_done(&run(
                &status,
                &[report(Some((VerdictKind::Approved, "alice")))],
                &world(2)
            )),
            &NotApproved::Expired
        );
    }

    #[test]
    fn an_approved_step_whose_target_changed_meanwhile_is_withdrawn() {
        let approved = [report(Some((VerdictKind::Approved, "alice")))];
        let decisions = run(&awaiting(NOW - 60), &approved, &world(4));
        let why = only_not_done(&decisions);
        assert_eq!(why, &NotApproved::TargetChanged { found: "4".into() });
        assert_eq!(why.state(), ApprovalState::Withdrawn);
        // The same count on a workload made again is someone else's.
        let mut recreated = world(2);
        recreated.uids.insert(tax(), "uid-2".into());
        assert!(matches!(
            only_not_done(&run(&awaiting(NOW - 60), &approved, &recreated)),
            NotApproved::TargetChanged { .. }
        ));
    }

    #[test]
    fn a_step_whose_report_resolved_first_is_withdrawn() {
        let mut resolved = report(None);
        resolved.state = homeostat_api::ReportState::Resolved;
        resolved.resolved_at = Some(NOW - 10);
        assert_eq!(
            only_not_done(&run(&awaiting(NOW - 60), &[resolved], &world(2))),
            &NotApproved::ReportResolved
        );
        assert_eq!(
            only_not_done(&run(&awaiting(NOW - 60), &[], &world(2))),
            &NotApproved::ReportResolved
        );
    }

    #[test]
    fn a_step_once_not_done_is_never_proposed_again_for_that_report() {
        // p-0-1 is on the report and no longer awaits: it was not done.
        let decisions = run(
            &RemediationPolicyStatus::default(),
            &[report(None)],
            &world(2),
        );
        assert_eq!(decisions, vec![]);
    }

    #[test]
    fn an_approved_step_a_guard_stops_is_recorded_blocked_once_and_keeps_waiting() {
        let mut stopped = world(2);
        stopped.kill_switch = true;
        let mut approved = report(Some((VerdictKind::Approved, "alice")));
        let decisions = run(&awaiting(NOW - 60), &[approved.clone()], &stopped);
        assert!(
            matches!(
                decisions.as_slice(),
                [Decision::Block {
                    guard: Guard::KillSwitch,
                    ..
                }]
            ),
            "{decisions:?}"
        );
        approved.recorded.insert("p-0-1-kill-switch".into());
        assert_eq!(run(&awaiting(NOW - 60), &[approved], &stopped), vec![]);
    }

    #[test]
    fn a_step_the_report_does_not_show_is_recorded_there_again() {
        let mut unseen = report(None);
        unseen.recorded.clear();
        let decisions = run(&awaiting(NOW - 60), &[unseen], &world(2));
        assert!(
            matches!(decisions.as_slice(), [Decision::Propose(step)] if step.id == "p-0-1"),
            "{decisions:?}"
        );
    }
}
