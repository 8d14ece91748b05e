//! The remediation decision, as one pure function: given a policy, the
//! reports, what the cluster looks like now and what the policy did before,
//! what happens next?
//!
//! Nothing here talks to Kubernetes. The controller gathers a [`World`],
//! calls [`plan`], and carries out the [`Decision`]s in order.
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
//!    `suspend`, the cooldown, `maxActionsPerHour`, a reroute towards a backend
//!    that is itself anomalous, a scale of a workload a HorizontalPodAutoscaler
//!    scales (the HPA owns that number), a target another policy holds (one
//!    policy per target at a time), or `dryRun` (planned and recorded only). At
//!    most one step per policy per pass: the cooldown paces the rest.

use std::collections::{BTreeMap, BTreeSet};

use homeostat_api::{
    ActionKind, ActiveRemediation, BackendWeight, RemediationAction, RemediationPolicySpec,
    RemediationPolicyStatus, ReportState, RerouteAction, RouterKind, ScaleAction, Severity, Signal,
};

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
}

/// A router's backends and their weights (percent).
pub type Weights = BTreeMap<String, i32>;

/// The cluster now, as far as the policy is concerned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    /// Unix seconds.
    pub now: i64,
    /// Replicas of each workload that exists, by `kind/name` (e.g. `deployment/tax`).
    pub replicas: BTreeMap<String, i32>,
    /// Weights of each router that exists, by `kind/name`.
    pub routers: BTreeMap<String, Weights>,
    /// Services with an open anomaly now.
    pub anomalous: BTreeSet<String>,
    /// The cluster-wide kill switch is on.
    pub kill_switch: bool,
    /// Workloads a HorizontalPodAutoscaler scales, by `kind/name`, with the
    /// HPA's name: homeostat never scales them (two writers of one number).
    pub autoscaled: BTreeMap<String, String>,
    /// Targets other policies hold (a change in force), with the policy:
    /// one target is held by one policy at a time.
    pub held_elsewhere: BTreeMap<String, String>,
}

/// What a step changes, with absolute targets.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Scale {
        /// `deployment/tax`.
        workload: String,
        from: i32,
        to: i32,
    },
    Reroute {
        /// `omsconfigmap/oms-routing` or `httproute/payment`.
        router: String,
        kind: RouterKind,
        name: String,
        before: Weights,
        after: Weights,
    },
}

impl Change {
    pub fn kind(&self) -> ActionKind {
        match self {
            Change::Scale { .. } => ActionKind::Scale,
            Change::Reroute { .. } => ActionKind::Reroute,
        }
    }

    /// The workload or router changed.
    pub fn target(&self) -> &str {
        match self {
            Change::Scale { workload, .. } => workload,
            Change::Reroute { router, .. } => router,
        }
    }

    /// For a person: `deployment/tax 2→3`, `omsconfigmap/oms-routing payment-primary 100→50, payment-secondary 0→50`.
    pub fn describe(&self) -> String {
        match self {
            Change::Scale { workload, from, to } => format!("{workload} {from}→{to}"),
            Change::Reroute {
                router,
                before,
                after,
                ..
            } => {
                let moves: Vec<String> = after
                    .iter()
                    .map(|(b, w)| format!("{b} {}→{w}", before.get(b).copied().unwrap_or(0)))
                    .collect();
                format!("{router} {}", moves.join(", "))
            }
        }
    }
}

/// Why an action was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    KillSwitch,
    Suspended,
    Cooldown,
    RateLimit,
    /// The reroute's `to` backend is itself anomalous.
    TargetAnomalous,
    /// A HorizontalPodAutoscaler owns the workload's replicas.
    Autoscaled,
    /// Another policy holds the target.
    HeldByAnotherPolicy,
    DryRun,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::KillSwitch => "kill-switch",
            Guard::Suspended => "suspended",
            Guard::Cooldown => "cooldown",
            Guard::RateLimit => "rate-limit",
            Guard::TargetAnomalous => "target-anomalous",
            Guard::Autoscaled => "autoscaled",
            Guard::HeldByAnotherPolicy => "held-by-another-policy",
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
    /// Put back what was there before the policy acted for `report`.
    Restore { report: String, change: Change },
    /// Drop a change in force without undoing it.
    Forget {
        report: String,
        target: String,
        why: Forgotten,
    },
    /// Someone else changed `target` since the policy's last step there:
    /// it had set `expected` and finds `found`.
    Yield {
        report: String,
        target: String,
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
        if let Some(decision) = pending_step(policy, active, reports, world) {
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
    if policy.deleting {
        return decisions;
    }
    if let Some(d) = next_step(policy, reports, world) {
        decisions.push(d);
    }
    decisions
}

/// The target of a scale action for `service`.
pub fn scale_target(scale: &ScaleAction, service: &str) -> String {
    match &scale.target {
        Some(t) => format!("{}/{}", t.kind.to_ascii_lowercase(), t.name),
        None => format!("deployment/{service}"),
    }
}

/// `omsconfigmap/NAME` or `httproute/NAME`.
pub fn router_key(reroute: &RerouteAction) -> String {
    let kind = match reroute.router.kind {
        RouterKind::OmsConfigMap => "omsconfigmap",
        RouterKind::HttpRoute => "httproute",
    };
    format!("{kind}/{}", reroute.router.name)
}

fn invalid(policy: Policy<'_>, world: &World) -> Option<String> {
    for action in &policy.spec.actions {
        if let Some(scale) = &action.scale {
            let targets: Vec<String> = match &scale.target {
                Some(_) => vec![scale_target(scale, "")],
                None => policy
                    .spec
                    .services
                    .names
                    .iter()
                    .map(|s| scale_target(scale, s))
                    .collect(),
            };
            if let Some(missing) = targets.iter().find(|t| !world.replicas.contains_key(*t)) {
                return Some(format!("scale target {missing} does not exist"));
            }
        }
        if let Some(reroute) = &action.reroute {
            let key = router_key(reroute);
            let Some(weights) = world.routers.get(&key) else {
                return Some(format!("router {key} does not exist"));
            };
            for backend in [&reroute.from, &reroute.to] {
                if !weights.contains_key(backend) {
                    return Some(format!("backend {backend} is not in router {key}"));
                }
            }
        }
    }
    None
}

fn report_named<'r>(reports: &'r [Report], name: &str) -> Option<&'r Report> {
    reports.iter().find(|r| r.name == name)
}

/// A step recorded pending before a restart: finished as recorded, unless
/// the target is neither as the step found it nor as it leaves it — then
/// someone else changed it meanwhile, and it is theirs.
fn pending_step(
    policy: Policy<'_>,
    active: &ActiveRemediation,
    reports: &[Report],
    world: &World,
) -> Option<Decision> {
    let pending = active.pending.as_ref()?;
    let yielded = |expected: String, found: String| Decision::Yield {
        report: active.report.clone(),
        target: active.target.clone(),
        expected,
        found,
    };
    if active.kind == ActionKind::Scale {
        let before = if active.steps == 0 {
            active.original_replicas
        } else {
            active.applied_replicas
        };
        let now = world.replicas.get(&active.target).copied();
        if let (Some(before), Some(now), Some(after)) = (before, now, pending.replicas)
            && now != before
            && now != after
        {
            return Some(yielded(format!("{before} or {after}"), now.to_string()));
        }
    } else if let Some(now) = world.routers.get(&active.target) {
        let before = if active.steps == 0 {
            &active.original_weights
        } else {
            &active.applied_weights
        };
        let matches = |weights: &[BackendWeight]| {
            weights
                .iter()
                .all(|w| now.get(&w.backend).copied().unwrap_or(0) == w.weight)
        };
        if !before.is_empty() && !matches(before) && !matches(&pending.weights) {
            let text =
                |ws: &[BackendWeight]| weights_text(ws.iter().map(|w| (&w.backend, &w.weight)));
            return Some(yielded(
                format!("{} or {}", text(before), text(&pending.weights)),
                weights_text(now),
            ));
        }
    }
    let service =
        report_named(reports, &active.report).map_or_else(String::new, |r| r.service.clone());
    let change = match active.kind {
        ActionKind::Scale => Change::Scale {
            workload: active.target.clone(),
            from: world.replicas.get(&active.target).copied().unwrap_or(0),
            to: pending.replicas?,
        },
        _ => {
            let reroute = policy
                .spec
                .actions
                .iter()
                .filter_map(|a| a.reroute.as_ref())
                .find(|r| router_key(r) == active.target)?;
            Change::Reroute {
                router: active.target.clone(),
                kind: reroute.router.kind,
                name: reroute.router.name.clone(),
                before: world
                    .routers
                    .get(&active.target)
                    .cloned()
                    .unwrap_or_default(),
                after: pending
                    .weights
                    .iter()
                    .map(|w| (w.backend.clone(), w.weight))
                    .collect(),
            }
        }
    };
    Some(Decision::Finish(Step {
        id: pending.id.clone(),
        report: active.report.clone(),
        service,
        change,
    }))
}

/// "backend=weight, …" for a person.
fn weights_text<'a>(weights: impl IntoIterator<Item = (&'a String, &'a i32)>) -> String {
    weights
        .into_iter()
        .map(|(b, w)| format!("{b}={w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Changes in force whose target is no longer what the policy's last step
/// set there. A step still pending is the policy's own, to finish first.
fn changed_by_others(policy: Policy<'_>, world: &World) -> Vec<Decision> {
    let drift = |active: &ActiveRemediation| -> Option<(String, String)> {
        if active.kind == ActionKind::Scale {
            let applied = active.applied_replicas?;
            let now = *world.replicas.get(&active.target)?;
            (applied != now).then(|| (applied.to_string(), now.to_string()))
        } else {
            let now = world.routers.get(&active.target)?;
            let moved = active
                .applied_weights
                .iter()
                .any(|w| now.get(&w.backend).copied().unwrap_or(0) != w.weight);
            let applied = active
                .applied_weights
                .iter()
                .map(|w| (&w.backend, &w.weight));
            moved.then(|| (weights_text(applied), weights_text(now)))
        }
    };
    policy
        .status
        .active
        .iter()
        .filter(|a| a.pending.is_none() && a.changed_by_others.is_none())
        .filter_map(|a| {
            let (expected, found) = drift(a)?;
            Some(Decision::Yield {
                report: a.report.clone(),
                target: a.target.clone(),
                expected,
                found,
            })
        })
        .collect()
}

/// A target someone else changed while the policy held it: the policy
/// leaves it alone, for every report.
fn yielded(policy: Policy<'_>, target: &str) -> bool {
    policy
        .status
        .active
        .iter()
        .any(|a| a.target == target && a.changed_by_others.is_some())
}

fn restores(policy: Policy<'_>, reports: &[Report], world: &World) -> Vec<Decision> {
    let stable_for = policy.spec.stable_for.0.as_secs() as i64;
    let mut out = Vec::new();
    for active in &policy.status.active {
        let recovered = match report_named(reports, &active.report) {
            _ if policy.deleting => true,
            None => true,
            Some(r) => {
                r.state == ReportState::Resolved
                    && r.resolved_at.is_some_and(|at| world.now - at >= stable_for)
            }
        };
        if !recovered || world.kill_switch {
            continue;
        }
        let forget = |why| Decision::Forget {
            report: active.report.clone(),
            target: active.target.clone(),
            why,
        };
        if active.changed_by_others.is_some() {
            // Theirs now: dropped, never put back over their change.
            out.push(forget(Forgotten::ChangedByOthers));
            continue;
        }
        let exists = if active.kind == ActionKind::Scale {
            world.replicas.contains_key(&active.target)
        } else {
            world.routers.contains_key(&active.target)
        };
        if !exists {
            out.push(forget(Forgotten::TargetGone));
            continue;
        }
        let decision = match active.kind {
            ActionKind::Scale => {
                let scale_back = policy
                    .spec
                    .actions
                    .iter()
                    .filter_map(|a| a.scale.as_ref())
                    .any(|s| s.scale_back);
                match (scale_back, active.original_replicas) {
                    (true, Some(original)) => Decision::Restore {
                        report: active.report.clone(),
                        change: Change::Scale {
                            workload: active.target.clone(),
                            from: world
                                .replicas
                                .get(&active.target)
                                .copied()
                                .unwrap_or(original),
                            to: original,
                        },
                    },
                    _ => forget(Forgotten::NotRestoring),
                }
            }
            _ => {
                let reroute = policy
                    .spec
                    .actions
                    .iter()
                    .filter_map(|a| a.reroute.as_ref())
                    .find(|r| router_key(r) == active.target);
                match reroute {
                    Some(r) if r.restore && !active.original_weights.is_empty() => {
                        Decision::Restore {
                            report: active.report.clone(),
                            change: Change::Reroute {
                                router: active.target.clone(),
                                kind: r.router.kind,
                                name: r.router.name.clone(),
                                before: world
                                    .routers
                                    .get(&active.target)
                                    .cloned()
                                    .unwrap_or_default(),
                                after: active
                                    .original_weights
                                    .iter()
                                    .map(|w| (w.backend.clone(), w.weight))
                                    .collect(),
                            },
                        }
                    }
                    _ => forget(Forgotten::NotRestoring),
                }
            }
        };
        out.push(decision);
    }
    out
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
        let Some((index, change)) = policy.spec.actions.iter().enumerate().find_map(|(i, a)| {
            step_change(a, report, world)
                .filter(|c| !yielded(policy, c.target()))
                .map(|c| (i, c))
        }) else {
            continue;
        };
        let steps = policy
            .status
            .active
            .iter()
            .find(|a| a.report == report.name && a.target == change.target())
            .map_or(0, |a| a.steps);
        let id = format!("{}-{}-{}", policy.name, index, steps + 1);
        let step = Step {
            id,
            report: report.name.clone(),
            service: report.service.clone(),
            change,
        };
        return Some(match guard(policy, &step, world) {
            Some(guard) => {
                let blocked_id = format!("{}-{}", step.id, guard.as_str());
                if report.recorded.contains(&blocked_id) {
                    // Recorded once is enough; the pass does nothing more.
                    return None;
                }
                Decision::Block { step, guard }
            }
            None => Decision::Act(step),
        });
    }
    None
}

/// The next change `action` would make for `report`, if it can still change anything.
fn step_change(action: &RemediationAction, report: &Report, world: &World) -> Option<Change> {
    if let Some(scale) = &action.scale {
        let workload = scale_target(scale, &report.service);
        let current = *world.replicas.get(&workload)?;
        // Up only: a workload already above `maxReplicas` (a human scaled it
        // further) is left as it is, never cut down mid-incident.
        let to = current
            .saturating_add(scale.step)
            .max(scale.min_replicas)
            .min(scale.max_replicas);
        return (to > current).then_some(Change::Scale {
            workload,
            from: current,
            to,
        });
    }
    let reroute = action.reroute.as_ref()?;
    // A reroute moves traffic away from the failing service only.
    if reroute.from != report.service {
        return None;
    }
    let key = router_key(reroute);
    let before = world.routers.get(&key)?.clone();
    let from_weight = before.get(&reroute.from).copied().unwrap_or(0);
    let to_weight = before.get(&reroute.to).copied().unwrap_or(0);
    let moved = reroute
        .weight_step
        .min(from_weight)
        .min((reroute.max_weight - to_weight).max(0));
    if moved <= 0 {
        return None;
    }
    let mut after = before.clone();
    after.insert(reroute.from.clone(), from_weight - moved);
    after.insert(reroute.to.clone(), to_weight + moved);
    Some(Change::Reroute {
        router: key,
        kind: reroute.router.kind,
        name: reroute.router.name.clone(),
        before,
        after,
    })
}

fn guard(policy: Policy<'_>, step: &Step, world: &World) -> Option<Guard> {
    let guards = &policy.spec.guards;
    let status = policy.status;
    if world.kill_switch {
        return Some(Guard::KillSwitch);
    }
    if guards.suspend {
        return Some(Guard::Suspended);
    }
    if let Change::Scale { workload, .. } = &step.change
        && world.autoscaled.contains_key(workload)
    {
        return Some(Guard::Autoscaled);
    }
    if world.held_elsewhere.contains_key(step.change.target()) {
        return Some(Guard::HeldByAnotherPolicy);
    }
    if let Change::Reroute { after, before, .. } = &step.change {
        let gaining = after
            .iter()
            .filter(|(b, w)| **w > before.get(*b).copied().unwrap_or(0))
            .any(|(b, _)| world.anomalous.contains(b));
        if gaining {
            return Some(Guard::TargetAnomalous);
        }
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
    let cooldown = guards.cooldown.0.as_secs() as i64;
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
    use homeostat_api::{ChangedByOthers, PendingChange};
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
        Report {
            name: format!("{service}-latency-p99-1"),
            service: service.into(),
            signal: Signal::LatencyP99,
            state: ReportState::Open,
            score: 0.95,
            severity: Severity::Critical,
            opened_at: NOW - 30,
            resolved_at: None,
            recorded: BTreeSet::new(),
        }
    }

    fn world() -> World {
        World {
            now: NOW,
            replicas: BTreeMap::from([
                ("deployment/tax".into(), 2),
                ("deployment/orders".into(), 1),
            ]),
            routers: BTreeMap::from([(
                "omsconfigmap/oms-routing".into(),
                BTreeMap::from([
                    ("payment-primary".into(), 100),
                    ("payment-secondary".into(), 0),
                ]),
            )]),
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

    fn scaled(from: i32, to: i32) -> Change {
        Change::Scale {
            workload: "deployment/tax".into(),
            from,
            to,
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
        at_max.replicas.insert("deployment/tax".into(), 4);
        assert!(run(&spec, &Default::default(), &[report("tax")], &at_max).is_empty());
    }

    #[test]
    fn a_scale_step_never_removes_replicas() {
        let spec = scale_policy(
            json!({"actions": [{"scale": {"step": 1, "minReplicas": 2, "maxReplicas": 4}}]}),
        );
        // Someone scaled tax to 6 by hand, above the policy's maximum.
        let mut above = world();
        above.replicas.insert("deployment/tax".into(), 6);
        assert!(run(&spec, &Default::default(), &[report("tax")], &above).is_empty());
        // Below the minimum, a step brings it up to at least the minimum.
        let mut scaled_to_zero = world();
        scaled_to_zero.replicas.insert("deployment/tax".into(), 0);
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
        let Change::Reroute { after, .. } = &only_act(&d).change else {
            panic!("{d:?}")
        };
        assert_eq!(after["payment-primary"], 50);
        assert_eq!(after["payment-secondary"], 50);

        let capped = reroute_policy(json!({"actions": [{"reroute": {
            "router": {"kind": "OmsConfigMap", "name": "oms-routing"},
            "from": "payment-primary", "to": "payment-secondary", "weightStep": 50, "maxWeight": 70}}]}));
        let mut halfway = world();
        halfway.routers.insert(
            "omsconfigmap/oms-routing".into(),
            BTreeMap::from([
                ("payment-primary".into(), 50),
                ("payment-secondary".into(), 50),
            ]),
        );
        let d = run(
            &capped,
            &Default::default(),
            &[report("payment-primary")],
            &halfway,
        );
        let Change::Reroute { after, .. } = &only_act(&d).change else {
            panic!("{d:?}")
        };
        assert_eq!(after["payment-secondary"], 70);
        let mut full = world();
        full.routers.insert(
            "omsconfigmap/oms-routing".into(),
            BTreeMap::from([
                ("payment-primary".into(), 30),
                ("payment-secondary".into(), 70),
            ]),
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
        // Another policy holds tax: one writer per target.
        let mut held = world();
        held.held_elsewhere
            .insert("deployment/tax".into(), "scale-everything".into());
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
        autoscaled
            .autoscaled
            .insert("deployment/tax".into(), "tax".into());
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
                target: "deployment/tax".into(),
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
        w.replicas.insert("deployment/tax".into(), 3);
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
        w.replicas.insert("deployment/tax".into(), 6);
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
                target: "deployment/tax".into(),
                expected: "2 or 3".into(),
                found: "6".into(),
            }]
        );
    }

    #[test]
    fn the_next_step_has_the_next_id() {
        let mut w = world();
        w.replicas.insert("deployment/tax".into(), 3);
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
        w.replicas.insert("deployment/tax".into(), 4);
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
    fn a_target_someone_else_changed_is_left_to_them() {
        // The policy set tax to 3; a person scaled it to 5 since.
        let mut status = active_scale(1, None);
        status.active[0].applied_replicas = Some(3);
        let mut w = world();
        w.replicas.insert("deployment/tax".into(), 5);
        let spec = scale_policy(json!({}));
        let d = run(&spec, &status, &[report("tax")], &w);
        assert_eq!(
            d,
            [Decision::Yield {
                report: "tax-latency-p99-1".into(),
                target: "deployment/tax".into(),
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
                target: "deployment/tax".into(),
                why: Forgotten::ChangedByOthers
            }]
        );
        // Found as the policy left it: nothing to record, the next step comes.
        let mut ours = active_scale(1, None);
        ours.active[0].applied_replicas = Some(3);
        ours.last_action_time = Some(time(NOW - 3600));
        w.replicas.insert("deployment/tax".into(), 3);
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
                target: "omsconfigmap/oms-routing".into(),
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
                target: "omsconfigmap/oms-routing".into(),
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
                target: "deployment/tax".into(),
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
                target: "omsconfigmap/oms-routing".into(),
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
                change: Change::Reroute { after, .. },
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
        w.replicas.insert("deployment/tax".into(), 3);
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
        orders.target = "deployment/orders".into();
        status.active.push(orders);
        let mut w = world();
        w.replicas.insert("deployment/tax".into(), 3);
        w.replicas.remove("deployment/orders");
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
                    target: "deployment/orders".into(),
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
