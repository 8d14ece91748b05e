//! The remediation decision, as one pure function: given a policy, the
//! reports, what the cluster looks like now and what the policy did before,
//! what happens next?
//!
//! Nothing here talks to Kubernetes. The controller gathers a [`World`],
//! calls [`plan`], and carries out the [`Decision`]s in order. What differs
//! between kinds of step (scale, reroute) is in [`kinds`](super::kinds);
//! what a target holds is a [`State`], whatever its kind.
//!
//! Rules, in the order they apply:
//! 1. A policy whose targets do not exist is `Invalid` and does nothing.
//! 2. A step recorded as pending (decided before a restart) is finished
//!    first, exactly as recorded: its target is absolute, so finishing it
//!    twice changes nothing.
//! 3. A target someone else changed since the policy's last step there (a
//!    person's `kubectl scale`, an HPA, another controller) is theirs: the
//!    policy records that, takes no more steps on it and never restores it
//!    (the entry is dropped once its report has resolved). Never fight a
//!    human.
//! 4. Changes in force whose report has been resolved for `stableFor` (or is
//!    gone) are restored to what was there before them.
//! 5. An open report that matches the policy (service, signal, score,
//!    severity, held for `trigger.for`) gets the next step of the first action
//!    that can still do something, unless a guard stops it: the kill switch,
//!    `suspend`, a person's `Silence` on the report's service (the report
//!    stays, the policy keeps its hands off), the report's metrics unavailable (the detector marks it
//!    `Degraded`: its score is stale), the kind's own guard (a scale of a workload a
//!    HorizontalPodAutoscaler scales; a reroute towards a backend that is
//!    itself anomalous), a target another policy holds (one policy per target
//!    at a time), `maxActionsPerHour`, the cooldown (erring long: a second more than it
//!    says, as times are whole seconds), or `dryRun` (planned and
//!    recorded only). At most one step per policy per pass: the cooldown
//!    paces the rest.

use std::collections::{BTreeMap, BTreeSet};

use homeostat_api::{
    ActionKind, ActiveRemediation, ApprovalState, RemediationPolicySpec, RemediationPolicyStatus,
    ReportState, Severity, Signal, StepApproval, Target, Verdict,
};

use super::approval::{self, NotApproved};
use super::kinds;
pub use super::state::{State, Weights};

/// An AnomalyReport, as the decision needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub name: String,
    pub service: String,
    pub signal: Signal,
    pub state: ReportState,
    pub score: f64,
    pub severity: Severity,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    /// Ids of the actions already recorded on the report.
    pub recorded: BTreeSet<String>,
    /// The detector has no current data for its series (condition
    /// `Degraded`): its score is the last one seen, not what is true now.
    pub degraded: bool,
    /// People's verdicts on its steps that await approval.
    pub verdicts: Vec<Verdict>,
}

/// The cluster now, as far as the policy is concerned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    /// Unix seconds.
    pub now: i64,
    /// What each target that exists holds now: replicas or weights.
    pub states: BTreeMap<Target, State>,
    /// The uid of each workload that exists: a new uid under an old name
    /// is an object someone else made.
    pub uids: BTreeMap<Target, String>,
    /// Services with an open anomaly now.
    pub anomalous: BTreeSet<String>,
    /// The cluster-wide kill switch is on.
    pub kill_switch: bool,
    /// Workloads a HorizontalPodAutoscaler scales, with the HPA's name:
    /// homeostat never scales them (two writers of one number).
    pub autoscaled: BTreeMap<Target, String>,
    /// Targets other policies hold (a change in force), with the policy:
    /// one target is held by one policy at a time.
    pub held_elsewhere: BTreeMap<Target, String>,
    /// Services a person silenced (a `Silence` in force), with the Silence:
    /// reported, but no policy acts for them.
    pub silenced: BTreeMap<String, String>,
}

/// What a step changes: its target, from the state it found to the state
/// it sets (both absolute).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub target: Target,
    pub before: State,
    pub after: State,
}

impl Change {
    pub fn kind(&self) -> ActionKind {
        self.target.action_kind()
    }

    /// For a person: `deployment/tax 2→3`, `omsconfigmap/oms-routing payment-primary 100→50, payment-secondary 0→50`.
    pub fn describe(&self) -> String {
        let target = &self.target;
        match (&self.before, &self.after) {
            (State::Replicas(from), State::Replicas(to)) => format!("{target} {from}→{to}"),
            (State::Weights(before), State::Weights(after)) => {
                let moves: Vec<String> = after
                    .iter()
                    .map(|(b, w)| format!("{b} {}→{w}", before.get(b).copied().unwrap_or(0)))
                    .collect();
                format!("{target} {}", moves.join(", "))
            }
            (before, after) => format!("{target} {}→{}", before.text(), after.text()),
        }
    }
}

/// Why an action was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    KillSwitch,
    Suspended,
    /// A person silenced the report's service.
    Silenced,
    Cooldown,
    RateLimit,
    /// The reroute's `to` backend is itself anomalous.
    TargetAnomalous,
    /// A HorizontalPodAutoscaler owns the workload's replicas.
    Autoscaled,
    /// Another policy holds the target.
    HeldByAnotherPolicy,
    /// The detector cannot read the report's series now: no step on a
    /// stale score.
    MetricsUnavailable,
    DryRun,
}

impl Guard {
    /// Every guard, so that each one's counter exists (at 0) before it
    /// first blocks: a rise from 0 is what `increase()` sees.
    pub const ALL: [Guard; 10] = [
        Guard::KillSwitch,
        Guard::Suspended,
        Guard::Silenced,
        Guard::Cooldown,
        Guard::RateLimit,
        Guard::TargetAnomalous,
        Guard::Autoscaled,
        Guard::HeldByAnotherPolicy,
        Guard::MetricsUnavailable,
        Guard::DryRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Guard::KillSwitch => "kill-switch",
            Guard::Suspended => "suspended",
            Guard::Silenced => "silenced",
            Guard::Cooldown => "cooldown",
            Guard::RateLimit => "rate-limit",
            Guard::TargetAnomalous => "target-anomalous",
            Guard::Autoscaled => "autoscaled",
            Guard::HeldByAnotherPolicy => "held-by-another-policy",
            Guard::MetricsUnavailable => "metrics-unavailable",
            Guard::DryRun => "dry-run",
        }
    }
}

/// One step for one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unique per policy, report and step: the action's id in the report.
    pub id: String,
    pub report: String,
    pub service: String,
    pub change: Change,
    /// The target's uid as the step found it (workloads), recorded with the
    /// policy's first step on it.
    pub target_uid: Option<String>,
    /// Its action sets `requireApproval`: where it stands with people.
    pub approval: Option<StepApproval>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The policy cannot work as written; nothing else is done.
    Invalid(String),
    /// Carry out a step: record it pending, do it, record it done.
    Act(Step),
    /// Finish a step that was recorded pending before a restart.
    Finish(Step),
    /// Record that `guard` stopped (or, for dry-run, only planned) a step.
    Block { step: Step, guard: Guard },
    /// Record a step as planned and awaiting a person's approval; nothing
    /// is changed.
    Propose(Step),
    /// A step that awaited approval is not done, and why.
    NotDone { step: Step, why: NotApproved },
    /// Put back what was there before the policy acted for `report`.
    Restore { report: String, change: Change },
    /// Drop a change in force without undoing it.
    Forget {
        report: String,
        target: Target,
        why: Forgotten,
    },
    /// Someone else changed `target` since the policy's last step there:
    /// it had set `expected` and finds `found`.
    Yield {
        report: String,
        target: Target,
        expected: String,
        found: String,
    },
}

/// Why a change in force is dropped rather than undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgotten {
    /// `scaleBack` or `restore` is off.
    NotRestoring,
    /// Someone else changed the target meanwhile: it is theirs.
    ChangedByOthers,
    /// The workload or router no longer exists.
    TargetGone,
}

impl Forgotten {
    /// For the report's timeline, after "`target` ".
    pub fn describe(self) -> &'static str {
        match self {
            Forgotten::NotRestoring => "left as it is (the policy does not restore it)",
            Forgotten::ChangedByOthers => "left to whoever changed it",
            Forgotten::TargetGone => "no longer exists: nothing to restore",
        }
    }
}

/// The policy and what it did so far.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub name: &'a str,
    pub spec: &'a RemediationPolicySpec,
    pub status: &'a RemediationPolicyStatus,
    /// The services it covers (names, and services whose workloads the
    /// selector selects), resolved by the caller.
    pub services: &'a BTreeSet<String>,
    /// It is being deleted: everything it changed is put back now, and it
    /// takes no new step.
    pub deleting: bool,
}

impl Policy<'_> {
    pub(super) fn kinds(&self) -> impl Iterator<Item = &dyn kinds::StepKind> {
        self.spec.actions.iter().filter_map(kinds::of)
    }

    fn listed_services(&self) -> Vec<&str> {
        self.spec
            .services
            .names
            .iter()
            .map(String::as_str)
            .collect()
    }
}

const HOUR: i64 = 3600;

/// The decisions for one pass over one policy.
pub fn plan(policy: Policy<'_>, reports: &[Report], world: &World) -> Vec<Decision> {
    if let Some(reason) = invalid(policy, world) {
        // What it changed elsewhere is still put back: one missing target
        // never holds up the restores of the others.
        let mut decisions = restores(policy, reports, world);
        decisions.push(Decision::Invalid(reason));
        return decisions;
    }
    let mut decisions = Vec::new();
    for active in policy.status.active.iter().filter(|_| !policy.deleting) {
        if let Some(decision) = pending_step(active, reports, world) {
            decisions.push(decision);
        }
    }
    if !decisions.is_empty() {
        return decisions;
    }
    // Recorded before anything else acts on what the others changed.
    let yields = changed_by_others(policy, world);
    if !yields.is_empty() {
        return yields;
    }
    decisions.extend(restores(policy, reports, world));
    if let Some(settled) = approval::awaiting(policy, reports, world) {
        // While a step waits for a person the policy plans no other.
        decisions.extend(settled);
        return decisions;
    }
    if policy.deleting {
        return decisions;
    }
    if let Some(d) = next_step(policy, reports, world) {
        decisions.push(d);
    }
    decisions
}

/// Every object `policy` may change for reports on `services`: what the
/// caller reads into the [`World`].
pub fn targets(spec: &RemediationPolicySpec, services: &[&str]) -> BTreeSet<Target> {
    spec.actions
        .iter()
        .filter_map(kinds::of)
        .flat_map(|kind| kind.targets(services))
        .collect()
}

fn invalid(policy: Policy<'_>, world: &World) -> Option<String> {
    let services = policy.listed_services();
    policy
        .kinds()
        .find_map(|kind| kind.invalid(&services, world))
}

pub(super) fn report_named<'r>(reports: &'r [Report], name: &str) -> Option<&'r Report> {
    reports.iter().find(|r| r.name == name)
}

/// A step recorded pending before a restart: finished as recorded, unless
/// the target is neither as the step found it nor as it leaves it — then
/// someone else changed it meanwhile, and it is theirs — or is gone.
fn pending_step(active: &ActiveRemediation, reports: &[Report], world: &World) -> Option<Decision> {
    let after = State::pending(active.pending.as_ref()?)?;
    let Some(now) = world.states.get(&active.target) else {
        return Some(Decision::Forget {
            report: active.report.clone(),
            target: active.target.clone(),
            why: Forgotten::TargetGone,
        });
    };
    if let Some(yielded) = recreated(active, world) {
        return Some(yielded);
    }
    let before = if active.steps == 0 {
        State::original(active)
    } else {
        State::applied(active)
    };
    if let Some(before) = before
        && !before.holds_in(now)
        && !after.holds_in(now)
    {
        return Some(Decision::Yield {
            report: active.report.clone(),
            target: active.target.clone(),
            expected: format!("{} or {}", before.text(), after.text()),
            found: now.text(),
        });
    }
    let service =
        report_named(reports, &active.report).map_or_else(String::new, |r| r.service.clone());
    let id = active.pending.as_ref()?.id.clone();
    Some(Decision::Finish(Step {
        id,
        report: active.report.clone(),
        service,
        change: Change {
            target: active.target.clone(),
            before: now.clone(),
            after,
        },
        target_uid: active.target_uid.clone(),
        approval: None,
    }))
}

/// Changes in force whose target no longer holds what the policy's last
/// step set there. A step still pending is the policy's own, to finish first.
fn changed_by_others(policy: Policy<'_>, world: &World) -> Vec<Decision> {
    policy
        .status
        .active
        .iter()
        .filter(|a| a.pending.is_none() && a.changed_by_others.is_none())
        // The policy's own later step on the same target (for another
        // report) is not someone else's: judge the latest one alone.
        .filter(|a| {
            on_target(policy, &a.target)
                .first()
                .is_some_and(|l| std::ptr::eq(*l, *a))
        })
        .filter_map(|a| {
            if let Some(yielded) = recreated(a, world) {
                return Some(yielded);
            }
            let applied = State::applied(a)?;
            let now = world.states.get(&a.target)?;
            (!applied.holds_in(now)).then(|| Decision::Yield {
                report: a.report.clone(),
                target: a.target.clone(),
                expected: applied.text(),
                found: now.text(),
            })
        })
        .collect()
}

/// The target was deleted and made again since the policy changed it (its
/// uid is not the one recorded): someone else's object, even at the very
/// count the policy left.
fn recreated(active: &ActiveRemediation, world: &World) -> Option<Decision> {
    let recorded = active.target_uid.as_ref()?;
    let now = world.uids.get(&active.target)?;
    (recorded != now).then(|| Decision::Yield {
        report: active.report.clone(),
        target: active.target.clone(),
        expected: format!("the object with uid {recorded}"),
        found: format!("a new object of that name (uid {now})"),
    })
}

/// A target someone else changed while the policy held it: the policy
/// leaves it alone, for every report.
fn yielded(policy: Policy<'_>, target: &Target) -> bool {
    policy
        .status
        .active
        .iter()
        .any(|a| a.target == *target && a.changed_by_others.is_some())
}

fn restores(policy: Policy<'_>, reports: &[Report], world: &World) -> Vec<Decision> {
    let stable_for = policy.spec.stable_for.0.as_secs() as i64;
    let recovered = |active: &ActiveRemediation| match report_named(reports, &active.report) {
        _ if policy.deleting => true,
        None => true,
        Some(r) => {
            r.state == ReportState::Resolved
                && r.resolved_at.is_some_and(|at| world.now - at >= stable_for)
        }
    };
    let mut out = Vec::new();
    let mut done: BTreeSet<&Target> = BTreeSet::new();
    for first in &policy.status.active {
        if !done.insert(&first.target) {
            continue;
        }
        // Every change the policy holds on this target, for one report or
        // several, the latest first: undone together, each back to where
        // the one before it left the target, only once all are recovered.
        let held = on_target(policy, &first.target);
        if !held.iter().all(|a| recovered(a)) || world.kill_switch {
            continue;
        }
        let forget = |active: &ActiveRemediation, why| Decision::Forget {
            report: active.report.clone(),
            target: active.target.clone(),
            why,
        };
        if held.iter().any(|a| a.changed_by_others.is_some()) {
            // Theirs now: dropped, never put back over their change.
            out.extend(held.iter().map(|a| forget(a, Forgotten::ChangedByOthers)));
            continue;
        }
        let Some(now) = world.states.get(&first.target) else {
            out.extend(held.iter().map(|a| forget(a, Forgotten::TargetGone)));
            continue;
        };
        // The action that made the change says whether it is undone; one
        // no longer in the spec was still the policy's doing: undone.
        let restoring = policy
            .kinds()
            .find_map(|kind| kind.restores(&first.target))
            .unwrap_or(true);
        let mut before = now.clone();
        for active in held {
            out.push(match State::original(active) {
                Some(original) if restoring => {
                    let change = Change {
                        target: active.target.clone(),
                        before: std::mem::replace(&mut before, original.clone()),
                        after: original,
                    };
                    Decision::Restore {
                        report: active.report.clone(),
                        change,
                    }
                }
                _ => forget(active, Forgotten::NotRestoring),
            });
        }
    }
    out
}

/// The policy's changes in force on `target`, the latest first (a second
/// report on the same service adds its own, starting where the first left).
fn on_target<'p>(policy: Policy<'p>, target: &Target) -> Vec<&'p ActiveRemediation> {
    let mut held: Vec<(usize, &ActiveRemediation)> = policy
        .status
        .active
        .iter()
        .enumerate()
        .filter(|(_, a)| a.target == *target)
        .collect();
    held.sort_by_key(|(i, a)| std::cmp::Reverse((a.started_at.0, *i)));
    held.into_iter().map(|(_, a)| a).collect()
}

/// Whether `report` is one this policy answers, now.
pub fn matches(policy: Policy<'_>, report: &Report, now: i64) -> bool {
    let trigger = &policy.spec.trigger;
    report.state != ReportState::Resolved
        && policy.services.contains(&report.service)
        && trigger.signals.contains(&report.signal)
        && report.score >= trigger.min_score
        && report.severity >= trigger.min_severity
        && now - report.opened_at >= trigger.hold_for.0.as_secs() as i64
}

fn next_step(policy: Policy<'_>, reports: &[Report], world: &World) -> Option<Decision> {
    let mut candidates: Vec<&Report> = reports
        .iter()
        .filter(|r| matches(policy, r, world.now))
        .collect();
    candidates.sort_by_key(|r| (r.opened_at, r.name.clone()));
    for report in candidates {
        let Some((index, kind, change)) =
            policy.spec.actions.iter().enumerate().find_map(|(i, a)| {
                let kind = kinds::of(a)?;
                let change = kind
                    .next(report, world)
                    .filter(|c| !yielded(policy, &c.target))?;
                Some((i, kind, change))
            })
        else {
            continue;
        };
        let steps = policy
            .status
            .active
            .iter()
            .find(|a| a.report == report.name && a.target == change.target)
            .map_or(0, |a| a.steps);
        let id = format!("{}-{}-{}", policy.name, index, steps + 1);
        if report.recorded.contains(&id) {
            // Planned before and not done (a person rejected it, or it
            // lapsed): never planned again for this report.
            continue;
        }
        let target_uid = world.uids.get(&change.target).cloned();
        let window = policy.spec.actions[index].approval_window();
        let step = Step {
            id,
            report: report.name.clone(),
            service: report.service.clone(),
            change,
            target_uid,
            approval: window.map(|window| StepApproval {
                state: ApprovalState::Awaiting,
                expires_at: super::record::time(world.now + window.as_secs() as i64),
                by: None,
                reason: None,
            }),
        };
        return Some(match guard(policy, kind, report, &step, world) {
            Some(guard) => {
                let blocked_id = format!("{}-{}", step.id, guard.as_str());
                if report.recorded.contains(&blocked_id) {
                    // Recorded once is enough; the pass does nothing more.
                    return None;
                }
                // Stopped before anyone was asked: nothing awaits approval.
                let step = Step {
                    approval: None,
                    ..step
                };
                Decision::Block { step, guard }
            }
            None if step.approval.is_some() => Decision::Propose(step),
            None => Decision::Act(step),
        });
    }
    None
}

pub(super) fn guard(
    policy: Policy<'_>,
    kind: &dyn kinds::StepKind,
    report: &Report,
    step: &Step,
    world: &World,
) -> Option<Guard> {
    let guards = &policy.spec.guards;
    let status = policy.status;
    if world.kill_switch {
        return Some(Guard::KillSwitch);
    }
    if guards.suspend {
        return Some(Guard::Suspended);
    }
    if world.silenced.contains_key(&report.service) {
        return Some(Guard::Silenced);
    }
    if report.degraded {
        return Some(Guard::MetricsUnavailable);
    }
    if let Some(own) = kind.guard(&step.change, world) {
        return Some(own);
    }
    if world.held_elsewhere.contains_key(&step.change.target) {
        return Some(Guard::HeldByAnotherPolicy);
    }
    // The rate limit before the cooldown: when both hold, the one that
    // lasts (no more steps this hour) is the one to name.
    let in_last_hour = status
        .recent_actions
        .iter()
        .filter(|t| world.now - t.0.as_second() < HOUR)
        .count();
    if in_last_hour >= guards.max_actions_per_hour.max(0) as usize {
        return Some(Guard::RateLimit);
    }
    // Whole seconds on both sides: a step at 10.9 s reads as 10, so the
    // cooldown errs long by the second it may have lost.
    let cooldown = guards.cooldown.0.as_secs() as i64 + 1;
    if let Some(last) = &status.last_action_time
        && world.now - last.0.as_second() < cooldown
    {
        return Some(Guard::Cooldown);
    }
    if guards.dry_run {
        return Some(Guard::DryRun);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_api::{BackendWeight, ChangedByOthers, PendingChange};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn time(unix: i64) -> Time {
        Time(jiff::Timestamp::from_second(unix).expect("time"))
    }

    fn scale_policy(extra: serde_json::Value) -> RemediationPolicySpec {
        let mut spec = json!({
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"], "minScore": 0.8, "for": "10s"},
            "actions": [{"scale": {"step": 1, "minReplicas": 1, "maxReplicas": 4}}],
            "guards": {"cooldown": "60s", "maxActionsPerHour": 3},
            "stableFor": "60s"
        });
        merge(&mut spec, extra);
        serde_json::from_value(spec).expect("policy")
    }

    fn reroute_policy(extra: serde_json::Value) -> RemediationPolicySpec {
        let mut spec = json!({
            "services": {"names": ["payment-primary"]},
            "trigger": {"signals": ["latency_p99"], "minScore": 0.8},
            "actions": [{"reroute": {
                "router": {"kind": "OmsConfigMap", "name": "oms-routing"},
                "from": "payment-primary", "to": "payment-secondary",
                "weightStep": 50, "maxWeight": 100
            }}],
            "guards": {"cooldown": "30s"},
        });
        merge(&mut spec, extra);
        serde_json::from_value(spec).expect("policy")
    }

    fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
        if let (Some(into), serde_json::Value::Object(extra)) = (into.as_object_mut(), extra) {
            for (k, v) in extra {
                into.insert(k, v);
            }
        }
    }

    fn report(service: &str) -> Report {
        crate::remediation::testing::open_report(service, NOW - 30)
    }

    fn world() -> World {
        World {
            now: NOW,
            states: BTreeMap::from([
                (tax(), State::Replicas(2)),
                (Target::Deployment("orders".into()), State::Replicas(1)),
                (
                    routing(),
                    State::Weights(BTreeMap::from([
                        ("payment-primary".into(), 100),
                        ("payment-secondary".into(), 0),
                    ])),
                ),
            ]),
            uids: BTreeMap::from([(tax(), "uid-1".to_owned())]),
            ..World::default()
        }
    }

    fn run(
        spec: &RemediationPolicySpec,
        status: &RemediationPolicyStatus,
        reports: &[Report],
        world: &World,
    ) -> Vec<Decision> {
        plan_for(spec, status, reports, world, false)
    }

    fn plan_for(
        spec: &RemediationPolicySpec,
        status: &RemediationPolicyStatus,
        reports: &[Report],
        world: &World,
        deleting: bool,
    ) -> Vec<Decision> {
        let services: BTreeSet<String> = spec.services.names.iter().cloned().collect();
        plan(
            Policy {
                name: "p",
                spec,
                status,
                services: &services,
                deleting,
            },
            reports,
            world,
        )
    }

    fn tax() -> Target {
        Target::Deployment("tax".into())
    }

    fn routing() -> Target {
        Target::OmsConfigMap("oms-routing".into())
    }

    fn scaled(from: i32, to: i32) -> Change {
        Change {
            target: tax(),
            before: State::Replicas(from),
            after: State::Replicas(to),
        }
    }

    fn only_act(decisions: &[Decision]) -> &Step {
        match decisions {
            [Decision::Act(step)] => step,
            other => panic!("expected one Act, got {other:?}"),
        }
    }

    fn only_block(decisions: &[Decision]) -> Guard {
        match decisions {
            [Decision::Block { guard, .. }] => *guard,
            other => panic!("expected one Block, got {other:?}"),
        }
    }

    #[test]
    fn a_matching_report_scales_by_the_step() {
        let d = run(
            &scale_policy(json!({})),
            &Default::default(),
            &[report("tax")],
            &world(),
        );
        let step = only_act(&d);
        assert_eq!(step.change, scaled(2, 3));
        assert_eq!(step.id, "p-0-1");
        assert_eq!(step.report, "tax-latency-p99-1");
        assert_eq!(step.change.describe(), "deployment/tax 2→3");
    }

    #[test]
    fn scaling_stops_at_max_replicas_and_clamps_the_step() {
        let spec = scale_policy(json!({"actions": [{"scale": {"step": 5, "maxReplicas": 4}}]}));
        let d = run(&spec, &Default::default(), &[report("tax")], &world());
        assert_eq!(only_act(&d).change, scaled(2, 4));
        let mut at_max = world();
        at_max.states.insert(tax(), State::Replicas(4));
        assert!(run(&spec, &Default::default(), &[report("tax")], &at_max).is_empty());
    }

    #[test]
    fn a_scale_step_never_removes_replicas() {
        let spec = scale_policy(
            json!({"actions": [{"scale": {"step": 1, "minReplicas": 2, "maxReplicas": 4}}]}),
        );
        // Someone scaled tax to 6 by hand, above the policy's maximum.
        let mut above = world();
        above.states.insert(tax(), State::Replicas(6));
        assert!(run(&spec, &Default::default(), &[report("tax")], &above).is_empty());
        // Below the minimum, a step brings it up to at least the minimum.
        let mut scaled_to_zero = world();
        scaled_to_zero.states.insert(tax(), State::Replicas(0));
        let d = run(
            &spec,
            &Default::default(),
            &[report("tax")],
            &scaled_to_zero,
        );
        assert_eq!(only_act(&d).change, scaled(0, 2));
    }

    #[test]
    fn reports_that_do_not_match_do_nothing() {
        let spec = scale_policy(json!({}));
        let cases: Vec<(&str, Report)> = vec![
            ("another service", report("orders")),
            (
                "another signal",
                Report {
                    signal: Signal::ErrorRatio,
                    ..report("tax")
                },
            ),
            (
                "score too low",
                Report {
                    score: 0.5,
                    ..report("tax")
                },
            ),
            (
                "not held long enough",
                Report {
                    opened_at: NOW - 5,
                    ..report("tax")
                },
            ),
            (
                "resolved",
                Report {
                    state: ReportState::Resolved,
                    resolved_at: Some(NOW),
                    ..report("tax")
                },
            ),
        ];
        for (why, r) in cases {
            assert!(
                run(&spec, &Default::default(), &[r], &world()).is_empty(),
                "{why}"
            );
        }
        let critical_only = scale_policy(
            json!({"trigger": {"signals": ["latency_p99"], "minSeverity": "Critical"}}),
        );
        let warning = Report {
            severity: Severity::Warning,
            ..report("tax")
        };
        assert!(run(&critical_only, &Default::default(), &[warning], &world()).is_empty());
    }

    #[test]
    fn a_reroute_moves_weight_in_steps_up_to_the_maximum() {
        let spec = reroute_policy(json!({}));
        let d = run(
            &spec,
            &Default::default(),
            &[report("payment-primary")],
            &world(),
        );
        let State::Weights(after) = &only_act(&d).change.after else {
            panic!("{d:?}")
        };
        assert_eq!(after["payment-primary"], 50);
        assert_eq!(after["payment-secondary"], 50);

        let capped = reroute_policy(json!({"actions": [{"reroute": {
            "router": {"kind": "OmsConfigMap", "name": "oms-routing"},
            "from": "payment-primary", "to": "payment-secondary", "weightStep": 50, "maxWeight": 70}}]}));
        let mut halfway = world();
        halfway.states.insert(
            routing(),
            State::Weights(BTreeMap::from([
                ("payment-primary".into(), 50),
                ("payment-secondary".into(), 50),
            ])),
        );
        let d = run(
            &capped,
            &Default::default(),
            &[report("payment-primary")],
            &halfway,
        );
        let State::Weights(after) = &only_act(&d).change.after else {
            panic!("{d:?}")
        };
        assert_eq!(after["payment-secondary"], 70);
        let mut full = world();
        full.states.insert(
            routing(),
            State::Weights(BTreeMap::from([
                ("payment-primary".into(), 30),
                ("payment-secondary".into(), 70),
            ])),
        );
        assert!(
            run(
                &capped,
                &Default::default(),
                &[report("payment-primary")],
                &full
            )
            .is_empty()
        );
    }

    #[test]
    fn never_reroute_towards_an_anomalous_backend() {
        let mut w = world();
        w.anomalous.insert("payment-secondary".into());
        let d = run(
            &reroute_policy(json!({})),
            &Default::default(),
            &[report("payment-primary")],
            &w,
        );
        assert_eq!(only_block(&d), Guard::TargetAnomalous);
    }

    #[test]
    fn a_reroute_policy_ignores_reports_on_its_healthy_backend() {
        let spec = reroute_policy(
            json!({"services": {"names": ["payment-primary", "payment-secondary"]}}),
        );
        assert!(
            run(
                &spec,
                &Default::default(),
                &[report("payment-secondary")],
                &world()
            )
            .is_empty()
        );
    }

    #[test]
    fn the_cooldown_errs_long_by_the_second_whole_seconds_may_lose() {
        // scale_policy's cooldown is 60 s; times are whole seconds, so a
        // step stored as NOW - 60 may be 59.1 s old.
        let r = [report("tax")];
        let at = |ago: i64| RemediationPolicyStatus {
            last_action_time: Some(time(NOW - ago)),
            ..Default::default()
        };
        let policy = scale_policy(json!({}));
        assert_eq!(
            only_block(&run(&policy, &at(60), &r, &world())),
            Guard::Cooldown
        );
        only_act(&run(&policy, &at(61), &r, &world()));
    }

    #[test]
    fn each_guard_blocks_what_it_should() {
        let r = [report("tax")];
        let recent = RemediationPolicyStatus {
            last_action_time: Some(time(NOW - 10)),
            ..Default::default()
        };
        assert_eq!(
            only_block(&run(&scale_policy(json!({})), &recent, &r, &world())),
            Guard::Cooldown
        );

        let busy = RemediationPolicyStatus {
            last_action_time: Some(time(NOW - 600)),
            recent_actions: vec![time(NOW - 600), time(NOW - 1200), time(NOW - 1800)],
            ..Default::default()
        };
        assert_eq!(
            only_block(&run(&scale_policy(json!({})), &busy, &r, &world())),
            Guard::RateLimit
        );
        // Actions older than an hour no longer count.
        let old = RemediationPolicyStatus {
            recent_actions: vec![time(NOW - 4000), time(NOW - 5000), time(NOW - 6000)],
            ..Default::default()
        };
        only_act(&run(&scale_policy(json!({})), &old, &r, &world()));

        let dry = scale_policy(json!({"guards": {"dryRun": true}}));
        assert_eq!(
            only_block(&run(&dry, &Default::default(), &r, &world())),
            Guard::DryRun
        );
        let suspended = scale_policy(json!({"guards": {"suspend": true}}));
        assert_eq!(
            only_block(&run(&suspended, &Default::default(), &r, &world())),
            Guard::Suspended
        );
        // A person silenced tax: reported, left alone; orders is not.
        let mut silenced = world();
        silenced.silenced.insert("tax".into(), "tax-deploy".into());
        assert_eq!(
            only_block(&run(
                &scale_policy(json!({})),
                &Default::default(),
                &r,
                &silenced
            )),
            Guard::Silenced
        );
        let mut orders_silenced = world();
        orders_silenced
            .silenced
            .insert("orders".into(), "orders-migration".into());
        only_act(&run(
            &scale_policy(json!({})),
            &Default::default(),
            &r,
            &orders_silenced,
        ));
        // The detector cannot read tax's series now: its score is stale.
        let stale = [Report {
            degraded: true,
            ..report("tax")
        }];
        assert_eq!(
            only_block(&run(
                &scale_policy(json!({})),
                &Default::default(),
                &stale,
                &world()
            )),
            Guard::MetricsUnavailable
        );
        // Another policy holds tax: one writer per target.
        let mut held = world();
        held.held_elsewhere.insert(tax(), "scale-everything".into());
        assert_eq!(
            only_block(&run(
                &scale_policy(json!({})),
                &Default::default(),
                &r,
                &held
            )),
            Guard::HeldByAnotherPolicy
        );
        // An HPA scales tax: homeostat never writes its replicas.
        let mut autoscaled = world();
        autoscaled.autoscaled.insert(tax(), "tax".into());
        assert_eq!(
            only_block(&run(
                &scale_policy(json!({})),
                &Default::default(),
                &r,
                &autoscaled
            )),
            Guard::Autoscaled
        );
        let mut killed = world();
        killed.kill_switch = true;
        assert_eq!(
            only_block(&run(
                &scale_policy(json!({})),
                &Default::default(),
                &r,
                &killed
            )),
            Guard::KillSwitch
        );
    }

    #[test]
    fn a_block_is_recorded_once() {
        let mut r = report("tax");
        r.recorded.insert("p-0-1-dry-run".into());
        let dry = scale_policy(json!({"guards": {"dryRun": true}}));
        assert!(run(&dry, &Default::default(), &[r], &world()).is_empty());
    }

    fn active_scale(steps: i32, pending: Option<i32>) -> RemediationPolicyStatus {
        RemediationPolicyStatus {
            active: vec![ActiveRemediation {
                report: "tax-latency-p99-1".into(),
                kind: ActionKind::Scale,
                target: tax(),
                target_uid: Some("uid-1".into()),
                original_replicas: Some(2),
                original_weights: vec![],
                started_at: time(NOW - 100),
                steps,
                pending: pending.map(|replicas| PendingChange {
                    id: format!("p-0-{}", steps + 1),
                    replicas: Some(replicas),
                    weights: vec![],
                    planned_at: time(NOW - 5),
                }),
                applied_replicas: None,
                applied_weights: vec![],
                changed_by_others: None,
            }],
            last_action_time: Some(time(NOW - 100)),
            ..Default::default()
        }
    }

    #[test]
    fn a_pending_step_is_finished_as_recorded_not_planned_again() {
        // The step was decided (2→3) and done before the restart; the world shows 3.
        let mut w = world();
        w.states.insert(tax(), State::Replicas(3));
        let d = run(
            &scale_policy(json!({})),
            &active_scale(0, Some(3)),
            &[report("tax")],
            &w,
        );
        match d.as_slice() {
            [Decision::Finish(step)] => {
                assert_eq!(step.id, "p-0-1");
                assert_eq!(step.change, scaled(3, 3));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pending_step_someone_else_overtook_is_not_finished() {
        // Decided 2→3 before a restart; meanwhile a person scaled tax to 6.
        let mut w = world();
        w.states.insert(tax(), State::Replicas(6));
        let d = run(
            &scale_policy(json!({})),
            &active_scale(0, Some(3)),
            &[report("tax")],
            &w,
        );
        assert_eq!(
            d,
            [Decision::Yield {
                report: "tax-latency-p99-1".into(),
                target: tax(),
                expected: "2 or 3".into(),
                found: "6".into(),
            }]
        );
    }

    #[test]
    fn the_next_step_has_the_next_id() {
        let mut w = world();
        w.states.insert(tax(), State::Replicas(3));
        let d = run(
            &scale_policy(json!({})),
            &active_scale(1, None),
            &[report("tax")],
            &w,
        );
        let step = only_act(&d);
        assert_eq!(step.id, "p-0-2");
        assert_eq!(step.change, scaled(3, 4));
    }

    #[test]
    fn restore_waits_for_the_stable_time_then_puts_back_the_original() {
        let mut w = world();
        w.states.insert(tax(), State::Replicas(4));
        let resolved = |ago: i64| Report {
            state: ReportState::Resolved,
            resolved_at: Some(NOW - ago),
            ..report("tax")
        };
        let spec = scale_policy(json!({}));
        assert!(run(&spec, &active_scale(2, None), &[resolved(30)], &w).is_empty());
        let d = run(&spec, &active_scale(2, None), &[resolved(61)], &w);
        assert_eq!(
            d,
            [Decision::Restore {
                report: "tax-latency-p99-1".into(),
                change: scaled(4, 2)
            }]
        );
        // A deleted report also ends the remediation.
        let d = run(&spec, &active_scale(2, None), &[], &w);
        assert!(matches!(d.as_slice(), [Decision::Restore { .. }]), "{d:?}");
        // ... unless the kill switch is on: then nothing changes at all.
        w.kill_switch = true;
        assert!(run(&spec, &active_scale(2, None), &[], &w).is_empty());
    }

    #[test]
    fn a_second_report_on_a_held_target_is_undone_with_the_first_back_to_the_original() {
        // Report 1 took tax 2→3 and resolved long ago; report 2, opened
        // before report 1's stable time was up, took it 3→4.
        let mut status = active_scale(1, None);
        status.active[0].applied_replicas = Some(3);
        let mut second = status.active[0].clone();
        second.report = "tax-errors-1".into();
        second.original_replicas = Some(3);
        second.applied_replicas = Some(4);
        second.started_at = time(NOW - 50);
        status.active.push(second);
        let mut w = world();
        w.states.insert(tax(), State::Replicas(4));
        let resolved = |name: &str, at: i64| Report {
            name: name.into(),
            state: ReportState::Resolved,
            resolved_at: Some(at),
            ..report("tax")
        };
        let first = resolved("tax-latency-p99-1", NOW - 3600);
        let spec = scale_policy(json!({}));
        // Report 2 still open: its step is the policy's own, not someone
        // else's change to report 1's 3; nothing is put back yet.
        let open = Report {
            name: "tax-errors-1".into(),
            signal: Signal::ErrorRatio,
            ..report("tax")
        };
        let d = run(&spec, &status, &[first.clone(), open], &w);
        assert!(
            !d.iter()
                .any(|d| matches!(d, Decision::Yield { .. } | Decision::Restore { .. })),
            "{d:?}"
        );
        // Both recovered: 4→3 for report 2, then 3→2 for report 1.
        let d = run(
            &spec,
            &status,
            &[first, resolved("tax-errors-1", NOW - 3600)],
            &w,
        );
        let restores: Vec<(&str, &State, &State)> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Restore { report, change } => {
                    Some((report.as_str(), &change.before, &change.after))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            restores,
            [
                ("tax-errors-1", &State::Replicas(4), &State::Replicas(3)),
                (
                    "tax-latency-p99-1",
                    &State::Replicas(3),
                    &State::Replicas(2)
                ),
            ],
            "{d:?}"
        );
    }

    #[test]
    fn a_workload_made_again_at_the_count_the_policy_left_is_someone_elses() {
        // The policy set tax to 3; tax was deleted and made again at 3.
        let mut status = active_scale(1, None);
        status.active[0].applied_replicas = Some(3);
        let mut w = world();
        w.states.insert(tax(), State::Replicas(3));
        w.uids.insert(tax(), "uid-2".into());
        let spec = scale_policy(json!({}));
        let yielded = |d: &[Decision]| matches!(d, [Decision::Yield { found, .. }] if found.contains("a new object"));
        let d = run(&spec, &status, &[report("tax")], &w);
        assert!(yielded(&d), "{d:?}");
        // The same with a step pending when it was made again.
        let d = run(&spec, &active_scale(1, Some(4)), &[report("tax")], &w);
        assert!(yielded(&d), "{d:?}");
        // The object it changed, still there: its own, nothing to yield.
        w.uids.insert(tax(), "uid-1".into());
        let d = run(&spec, &status, &[report("tax")], &w);
        assert!(
            !d.iter().any(|d| matches!(d, Decision::Yield { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn a_target_someone_else_changed_is_left_to_them() {
        // The policy set tax to 3; a person scaled it to 5 since.
        let mut status = active_scale(1, None);
        status.active[0].applied_replicas = Some(3);
        let mut w = world();
        w.states.insert(tax(), State::Replicas(5));
        let spec = scale_policy(json!({}));
        let d = run(&spec, &status, &[report("tax")], &w);
        assert_eq!(
            d,
            [Decision::Yield {
                report: "tax-latency-p99-1".into(),
                target: tax(),
                expected: "3".into(),
                found: "5".into(),
            }]
        );
        // Once recorded: no more steps while the report is open, for it or
        // any other report on tax ...
        status.active[0].changed_by_others = Some(ChangedByOthers {
            noticed_at: time(NOW - 10),
            expected: "3".into(),
            found: "5".into(),
        });
        let other = Report {
            name: "tax-errors-1".into(),
            signal: Signal::ErrorRatio,
            ..report("tax")
        };
        let spec = scale_policy(
            json!({"trigger": {"signals": ["latency_p99", "error_ratio"], "minScore": 0.8}}),
        );
        assert!(run(&spec, &status, &[report("tax"), other], &w).is_empty());
        // ... and once it has resolved, dropped, never restored over theirs.
        let resolved = Report {
            state: ReportState::Resolved,
            resolved_at: Some(NOW - 600),
            ..report("tax")
        };
        assert_eq!(
            run(&spec, &status, &[resolved], &w),
            [Decision::Forget {
                report: "tax-latency-p99-1".into(),
                target: tax(),
                why: Forgotten::ChangedByOthers
            }]
        );
        // Found as the policy left it: nothing to record, the next step comes.
        let mut ours = active_scale(1, None);
        ours.active[0].applied_replicas = Some(3);
        ours.last_action_time = Some(time(NOW - 3600));
        w.states.insert(tax(), State::Replicas(3));
        assert_eq!(
            only_act(&run(&spec, &ours, &[report("tax")], &w)).change,
            scaled(3, 4)
        );
    }

    #[test]
    fn rerouted_weights_someone_else_moved_are_left_to_them() {
        let weight = |backend: &str, weight| BackendWeight {
            backend: backend.into(),
            weight,
        };
        let status = RemediationPolicyStatus {
            active: vec![ActiveRemediation {
                report: "payment-primary-latency-p99-1".into(),
                kind: ActionKind::Reroute,
                target: routing(),
                target_uid: None,
                original_replicas: None,
                original_weights: vec![
                    weight("payment-primary", 100),
                    weight("payment-secondary", 0),
                ],
                started_at: time(NOW - 300),
                steps: 1,
                pending: None,
                applied_replicas: None,
                applied_weights: vec![
                    weight("payment-primary", 50),
                    weight("payment-secondary", 50),
                ],
                changed_by_others: None,
            }],
            ..Default::default()
        };
        // world() has the router at 100/0: someone put it back by hand.
        let d = run(&reroute_policy(json!({})), &status, &[], &world());
        assert_eq!(
            d,
            [Decision::Yield {
                report: "payment-primary-latency-p99-1".into(),
                target: routing(),
                expected: "payment-primary=50, payment-secondary=50".into(),
                found: "payment-primary=100, payment-secondary=0".into(),
            }]
        );
    }

    #[test]
    fn without_scale_back_a_recovered_remediation_is_forgotten_not_undone() {
        let spec =
            scale_policy(json!({"actions": [{"scale": {"maxReplicas": 4, "scaleBack": false}}]}));
        let d = run(&spec, &active_scale(1, None), &[], &world());
        assert_eq!(
            d,
            [Decision::Forget {
                report: "tax-latency-p99-1".into(),
                target: tax(),
                why: Forgotten::NotRestoring
            }]
        );
    }

    #[test]
    fn reroute_restore_puts_back_the_original_weights() {
        let status = RemediationPolicyStatus {
            active: vec![ActiveRemediation {
                report: "payment-primary-latency-p99-1".into(),
                kind: ActionKind::Reroute,
                target: routing(),
                target_uid: None,
                original_replicas: None,
                original_weights: vec![
                    BackendWeight {
                        backend: "payment-primary".into(),
                        weight: 100,
                    },
                    BackendWeight {
                        backend: "payment-secondary".into(),
                        weight: 0,
                    },
                ],
                started_at: time(NOW - 300),
                steps: 2,
                pending: None,
                applied_replicas: None,
                applied_weights: vec![],
                changed_by_others: None,
            }],
            ..Default::default()
        };
        let d = run(&reroute_policy(json!({})), &status, &[], &world());
        let [
            Decision::Restore {
                change:
                    Change {
                        after: State::Weights(after),
                        ..
                    },
                ..
            },
        ] = d.as_slice()
        else {
            panic!("{d:?}")
        };
        assert_eq!(after["payment-primary"], 100);
        assert_eq!(after["payment-secondary"], 0);
    }

    #[test]
    fn missing_targets_make_the_policy_invalid() {
        let spec = scale_policy(json!({"services": {"names": ["fulfillment"]}}));
        let d = run(
            &spec,
            &Default::default(),
            &[report("fulfillment")],
            &world(),
        );
        assert_eq!(
            d,
            [Decision::Invalid(
                "scale target deployment/fulfillment does not exist".into()
            )]
        );

        let spec = reroute_policy(json!({"actions": [{"reroute": {
            "router": {"kind": "HTTPRoute", "name": "payments"},
            "from": "payment-primary", "to": "payment-secondary"}}]}));
        let d = run(&spec, &Default::default(), &[], &world());
        assert_eq!(
            d,
            [Decision::Invalid(
                "router httproute/payments does not exist".into()
            )]
        );

        let spec = reroute_policy(json!({"actions": [{"reroute": {
            "router": {"kind": "OmsConfigMap", "name": "oms-routing"},
            "from": "payment-primary", "to": "payment-tertiary"}}]}));
        let d = run(&spec, &Default::default(), &[], &world());
        assert_eq!(
            d,
            [Decision::Invalid(
                "backend payment-tertiary is not in router omsconfigmap/oms-routing".into()
            )]
        );
    }

    #[test]
    fn a_policy_being_deleted_puts_everything_back_now_and_takes_no_step() {
        // tax at 3 for a report still open, a pending step, and another report.
        let mut w = world();
        w.states.insert(tax(), State::Replicas(3));
        let spec = scale_policy(json!({}));
        for status in [active_scale(1, None), active_scale(1, Some(4))] {
            let d = plan_for(&spec, &status, &[report("tax")], &w, true);
            assert_eq!(
                d,
                [Decision::Restore {
                    report: "tax-latency-p99-1".into(),
                    change: scaled(3, 2)
                }]
            );
        }
        // Nothing held: nothing to do, not even for an open report.
        assert!(plan_for(&spec, &Default::default(), &[report("tax")], &w, true).is_empty());
    }

    #[test]
    fn a_deleted_workload_never_holds_up_the_restore_of_another() {
        // The policy scaled tax and orders; orders has since been deleted.
        let spec = scale_policy(json!({"services": {"names": ["tax", "orders"]}}));
        let mut status = active_scale(1, None);
        let mut orders = status.active[0].clone();
        orders.report = "orders-latency-p99-1".into();
        orders.target = Target::Deployment("orders".into());
        status.active.push(orders);
        let mut w = world();
        w.states.insert(tax(), State::Replicas(3));
        w.states.remove(&Target::Deployment("orders".into()));
        let d = run(&spec, &status, &[], &w);
        assert_eq!(
            d,
            [
                Decision::Restore {
                    report: "tax-latency-p99-1".into(),
                    change: scaled(3, 2)
                },
                Decision::Forget {
                    report: "orders-latency-p99-1".into(),
                    target: Target::Deployment("orders".into()),
                    why: Forgotten::TargetGone
                },
                Decision::Invalid("scale target deployment/orders does not exist".into()),
            ]
        );
    }

    #[test]
    fn one_step_per_pass_for_the_oldest_report() {
        let spec = scale_policy(json!({"services": {"names": ["tax", "orders"]}}));
        let mut older = report("orders");
        older.opened_at = NOW - 100;
        let d = run(
            &spec,
            &Default::default(),
            &[report("tax"), older],
            &world(),
        );
        let step = only_act(&d);
        assert_eq!(step.service, "orders");
    }
}
