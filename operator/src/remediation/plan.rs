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
//! 3. Changes in force whose report has been resolved for `stableFor` (or is
//!    gone) are restored to what was there before them.
//! 4. An open report that matches the policy (service, signal, score,
//!    severity, held for `trigger.for`) gets the next step of the first action
//!    that can still do something, unless a guard stops it: the kill switch,
//!    `suspend`, the cooldown, `maxActionsPerHour`, a reroute towards a backend
//!    that is itself anomalous, or `dryRun` (planned and recorded only). At
//!    most one step per policy per pass: the cooldown paces the rest.

use std::collections::{BTreeMap, BTreeSet};

use homeostat_api::{
    ActiveRemediation, RemediationAction, RemediationPolicySpec, RemediationPolicyStatus,
    ReportState, RerouteAction, RouterKind, ScaleAction, Severity, Signal,
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
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Scale { .. } => "scale",
            Change::Reroute { .. } => "reroute",
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
    /// Drop a change in force without undoing it (`scaleBack`/`restore` off).
    Forget { report: String, target: String },
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
}

const HOUR: i64 = 3600;

/// The decisions for one pass over one policy.
pub fn plan(policy: Policy<'_>, reports: &[Report], world: &World) -> Vec<Decision> {
    if let Some(reason) = invalid(policy, world) {
        return vec![Decision::Invalid(reason)];
    }
    let mut decisions = Vec::new();
    for active in &policy.status.active {
        if let Some(step) = pending_step(policy, active, reports, world) {
            decisions.push(Decision::Finish(step));
        }
    }
    if !decisions.is_empty() {
        return decisions;
    }
    decisions.extend(restores(policy, reports, world));
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

fn pending_step(
    policy: Policy<'_>,
    active: &ActiveRemediation,
    reports: &[Report],
    world: &World,
) -> Option<Step> {
    let pending = active.pending.as_ref()?;
    let service =
        report_named(reports, &active.report).map_or_else(String::new, |r| r.service.clone());
    let change = match active.kind.as_str() {
        "scale" => Change::Scale {
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
    Some(Step {
        id: pending.id.clone(),
        report: active.report.clone(),
        service,
        change,
    })
}

fn restores(policy: Policy<'_>, reports: &[Report], world: &World) -> Vec<Decision> {
    let stable_for = policy.spec.stable_for.0.as_secs() as i64;
    let mut out = Vec::new();
    for active in &policy.status.active {
        let recovered = match report_named(reports, &active.report) {
            None => true,
            Some(r) => {
                r.state == ReportState::Resolved
                    && r.resolved_at.is_some_and(|at| world.now - at >= stable_for)
            }
        };
        if !recovered || world.kill_switch {
            continue;
        }
        let decision = match active.kind.as_str() {
            "scale" => {
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
                    _ => Decision::Forget {
                        report: active.report.clone(),
                        target: active.target.clone(),
                    },
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
                    _ => Decision::Forget {
                        report: active.report.clone(),
                        target: active.target.clone(),
                    },
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
        let Some((index, change)) = policy
            .spec
            .actions
            .iter()
            .enumerate()
            .find_map(|(i, a)| step_change(a, report, world).map(|c| (i, c)))
        else {
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
    use homeostat_api::{BackendWeight, PendingChange};
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
        let services: BTreeSet<String> = spec.services.names.iter().cloned().collect();
        plan(
            Policy {
                name: "p",
                spec,
                status,
                services: &services,
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
                kind: "scale".into(),
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
    fn without_scale_back_a_recovered_remediation_is_forgotten_not_undone() {
        let spec =
            scale_policy(json!({"actions": [{"scale": {"maxReplicas": 4, "scaleBack": false}}]}));
        let d = run(&spec, &active_scale(1, None), &[], &world());
        assert_eq!(
            d,
            [Decision::Forget {
                report: "tax-latency-p99-1".into(),
                target: "deployment/tax".into()
            }]
        );
    }

    #[test]
    fn reroute_restore_puts_back_the_original_weights() {
        let status = RemediationPolicyStatus {
            active: vec![ActiveRemediation {
                report: "payment-primary-latency-p99-1".into(),
                kind: "reroute".into(),
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
