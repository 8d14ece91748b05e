//! The outcome of a run as the JSON the issue specifies, computed from what
//! was observed: pure, so every figure is unit-tested.

use jiff::Timestamp;
use serde::Serialize;

use homeostat_api::{ActionKind, ApprovalState, ChangedState, StepApproval};

use crate::pods::ScaleOutcome;
use crate::scenario::FaultKind;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    pub service: String,
    pub kind: FaultKind,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRecord {
    pub name: String,
    /// The service whose signal crossed first.
    pub service: String,
    pub signal: String,
    /// The service at fault, as the detector named it.
    pub culprit: String,
    /// Peak score.
    pub score: f64,
    pub opened_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionOutcome {
    pub policy: String,
    pub kind: ActionKind,
    /// The service the action answered for (the report's culprit).
    pub target: String,
    /// What it changed, before and after, e.g. "2" → "3" replicas or
    /// "payment-primary=100, payment-secondary=0" → "…=50, …=50".
    pub from: String,
    pub to: String,
    /// When it took effect, or was planned when it did not.
    pub at: Timestamp,
    pub restored_at: Option<Timestamp>,
    pub dry_run: bool,
    pub blocked_by: Option<String>,
    /// A scale action on the cluster: the pods before and after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleOutcome>,
    /// The step waited for a person: where it stands, who decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<StepApproval>,
}

impl ActionOutcome {
    /// It changed something: neither a dry run nor blocked, and approved
    /// when it needed approval.
    pub fn acted(&self) -> bool {
        !self.dry_run
            && self.blocked_by.is_none()
            && self
                .approval
                .as_ref()
                .is_none_or(|a| a.state == ApprovalState::Approved)
    }
}

/// A deploy-like restart the scenario made: business as usual, so any
/// report it draws is a false one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartRecord {
    pub service: String,
    pub at: Timestamp,
    /// On the cluster: the pods it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::pods::RolloutOutcome>,
}

/// One instant of orders' p99 latency and the detector's band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPoint {
    pub at: Timestamp,
    pub value: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub warmup_ended_at: Timestamp,
    pub faults: Vec<FaultRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<RestartRecord>,
    pub reports: Vec<ReportRecord>,
    pub actions: Vec<ActionOutcome>,
    pub ttd_seconds: Option<f64>,
    pub ttr_seconds: Option<f64>,
    /// From the first action to orders' p99 back inside its band.
    pub recovery_seconds: Option<f64>,
    /// From the first action to the faulted service's own p99 back inside
    /// its band (none when the fault is on orders: see recovery_seconds).
    pub service_recovery_seconds: Option<f64>,
    pub false_reports: usize,
    pub false_actions: usize,
    /// With `--soak`: did anything grow, is everything undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<crate::soak::SoakOutcome>,
    /// With `--check-dashboards`: the dashboards' queries, and those that
    /// returned nothing over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboards: Option<DashboardCheck>,
}

/// The dashboards' queries asked over a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardCheck {
    /// How many queries were asked.
    pub queries: usize,
    /// Each query that would draw an empty panel: dashboard / panel: query (why).
    pub empty: Vec<String>,
}

/// Consecutive points inside the band that count as recovered (6 s at the
/// demo's 2 s tick): one lucky point is not a recovery.
pub const RECOVERED_POINTS: usize = 3;

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    let d = to.as_millisecond() - from.as_millisecond();
    (d as f64 / 1000.0 * 10.0).round() / 10.0
}

impl Outcome {
    pub fn compute(
        scenario: &str,
        warmup_ended_at: Timestamp,
        faults: Vec<FaultRecord>,
        reports: Vec<ReportRecord>,
        actions: Vec<ActionOutcome>,
        orders_p99: &[BandPoint],
    ) -> Self {
        let faulted = |service: &str| faults.iter().any(|f| f.service == service);
        let first = faults.iter().min_by_key(|f| f.started_at);
        let ttd = first.and_then(|f| {
            reports
                .iter()
                .filter(|r| r.culprit == f.service && r.opened_at >= f.started_at)
                .map(|r| r.opened_at)
                .min()
                .map(|at| seconds(f.started_at, at))
        });
        let first_action = first_action(&faults, &actions);
        let ttr = first_action.map(|(f, at)| seconds(f.started_at, at));
        let recovery = first_action.and_then(|(f, acted)| recovered_after(orders_p99, f, acted));
        let false_reports = reports.iter().filter(|r| !faulted(&r.culprit)).count();
        let false_actions = actions
            .iter()
            .filter(|a| a.acted() && !faulted(&a.target))
            .count();
        Outcome {
            scenario: scenario.to_owned(),
            warmup_ended_at,
            faults,
            restarts: Vec::new(),
            reports,
            actions,
            ttd_seconds: ttd,
            ttr_seconds: ttr,
            recovery_seconds: recovery,
            service_recovery_seconds: None,
            false_reports,
            false_actions,
            soak: None,
            dashboards: None,
        }
    }
}

impl Outcome {
    /// Adds the faulted service's own recovery, from its p99 against its band.
    pub fn with_service_recovery(mut self, service_p99: &[BandPoint]) -> Self {
        self.service_recovery_seconds = first_action(&self.faults, &self.actions)
            .filter(|(f, _)| f.service != "orders")
            .and_then(|(f, acted)| recovered_after(service_p99, f, acted));
        self
    }

    pub fn with_restarts(mut self, restarts: Vec<RestartRecord>) -> Self {
        self.restarts = restarts;
        self
    }
}

/// The first fault and when the first action against its service took effect.
fn first_action<'a>(
    faults: &'a [FaultRecord],
    actions: &[ActionOutcome],
) -> Option<(&'a FaultRecord, Timestamp)> {
    let f = faults.iter().min_by_key(|f| f.started_at)?;
    actions
        .iter()
        .filter(|a| a.target == f.service && a.acted() && a.at >= f.started_at)
        .map(|a| a.at)
        .min()
        .map(|at| (f, at))
}

/// Seconds from `acted` to the first of `RECOVERED_POINTS` consecutive
/// points inside the band, while the fault `f` lasts.
fn recovered_after(p99: &[BandPoint], f: &FaultRecord, acted: Timestamp) -> Option<f64> {
    let fault_end = f.ended_at.unwrap_or(Timestamp::MAX);
    let mut inside = 0;
    for p in p99.iter().filter(|p| p.at >= acted && p.at < fault_end) {
        if p.value <= p.upper {
            inside += 1;
            if inside == RECOVERED_POINTS {
                return Some(seconds(acted, p.at));
            }
        } else {
            inside = 0;
        }
    }
    None
}

/// One side of an action for a person: `3` replicas, or
/// `payment-primary=50, payment-secondary=50`.
pub fn state_text(state: Option<&ChangedState>) -> String {
    match state {
        Some(ChangedState {
            replicas: Some(n), ..
        }) => n.to_string(),
        Some(ChangedState { weights, .. }) => weights
            .iter()
            .map(|w| format!("{}={}", w.backend, w.weight))
            .collect::<Vec<_>>()
            .join(", "),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_api::BackendWeight;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    fn fault() -> FaultRecord {
        FaultRecord {
            service: "payment-primary".into(),
            kind: FaultKind::Latency,
            started_at: t(100),
            ended_at: Some(t(280)),
        }
    }

    fn report(culprit: &str, opened: i64) -> ReportRecord {
        ReportRecord {
            name: format!("{culprit}-latency-p99-{opened}"),
            service: "orders".into(),
            signal: "latency_p99".into(),
            culprit: culprit.into(),
            score: 0.97,
            opened_at: t(opened),
            resolved_at: None,
        }
    }

    fn action(target: &str, at: i64) -> ActionOutcome {
        ActionOutcome {
            policy: "p".into(),
            kind: ActionKind::Reroute,
            target: target.into(),
            from: String::new(),
            to: String::new(),
            at: t(at),
            restored_at: None,
            dry_run: false,
            blocked_by: None,
            scale: None,
            approval: None,
        }
    }

    fn band(points: &[(i64, f64)]) -> Vec<BandPoint> {
        points
            .iter()
            .map(|&(s, value)| BandPoint {
                at: t(s),
                value,
                upper: 0.05,
            })
            .collect()
    }

    #[test]
    fn times_count_from_the_fault_and_the_first_action() {
        let orders = band(&[
            (110, 0.4),
            (120, 0.3),
            (122, 0.01),
            (124, 0.4),
            (126, 0.01),
            (128, 0.02),
            (130, 0.01),
            (132, 0.01),
        ]);
        let o = Outcome::compute(
            "s",
            t(0),
            vec![fault()],
            vec![report("payment-primary", 109)],
            vec![
                action("payment-primary", 114),
                action("payment-primary", 129),
            ],
            &orders,
        );
        assert_eq!(o.ttd_seconds, Some(9.0));
        assert_eq!(o.ttr_seconds, Some(14.0));
        // 122 alone is not a recovery; 126, 128, 130 are three in a row.
        assert_eq!(o.recovery_seconds, Some(16.0));
        assert_eq!((o.false_reports, o.false_actions), (0, 0));
    }

    #[test]
    fn the_faulted_services_recovery_is_timed_on_its_own_band() {
        let orders = band(&[(116, 0.01), (118, 0.01), (120, 0.01)]);
        // payment-primary takes longer than orders to come back.
        let own = band(&[
            (116, 0.3),
            (118, 0.01),
            (120, 0.2),
            (122, 0.01),
            (124, 0.01),
            (126, 0.01),
        ]);
        let o = Outcome::compute(
            "s",
            t(0),
            vec![fault()],
            vec![report("payment-primary", 109)],
            vec![action("payment-primary", 114)],
            &orders,
        )
        .with_service_recovery(&own);
        assert_eq!(o.recovery_seconds, Some(6.0));
        assert_eq!(o.service_recovery_seconds, Some(12.0));
    }

    #[test]
    fn blame_and_actions_elsewhere_are_false_and_not_a_detection() {
        let mut blocked = action("tax", 115);
        blocked.blocked_by = Some("cooldown".into());
        let o = Outcome::compute(
            "s",
            t(0),
            vec![fault()],
            vec![report("orders", 105), report("tax", 106)],
            vec![action("orders", 112), blocked],
            &[],
        );
        assert_eq!(o.ttd_seconds, None);
        assert_eq!(o.ttr_seconds, None);
        assert_eq!(o.recovery_seconds, None);
        assert_eq!(o.false_reports, 2);
        assert_eq!(o.false_actions, 1, "a blocked action changed nothing");
    }

    #[test]
    fn recovery_after_the_fault_ended_does_not_count() {
        let orders = band(&[(290, 0.01), (292, 0.01), (294, 0.01)]);
        let o = Outcome::compute(
            "s",
            t(0),
            vec![fault()],
            vec![report("payment-primary", 109)],
            vec![action("payment-primary", 114)],
            &orders,
        );
        assert_eq!(o.recovery_seconds, None);
    }

    #[test]
    fn a_run_without_faults_has_no_times() {
        let o = Outcome::compute("s", t(0), vec![], vec![], vec![], &[]);
        let json = serde_json::to_value(&o).expect("json");
        for key in ["ttd_seconds", "ttr_seconds", "recovery_seconds"] {
            assert!(json[key].is_null(), "{key}");
        }
        assert_eq!(json["false_reports"], 0);
        assert_eq!(json["warmup_ended_at"], "2027-01-15T08:00:00Z");
    }

    #[test]
    fn each_side_of_an_action_reads_as_replicas_or_weights() {
        let replicas = ChangedState {
            replicas: Some(3),
            weights: vec![],
        };
        assert_eq!(state_text(Some(&replicas)), "3");
        let weights = ChangedState {
            replicas: None,
            weights: vec![
                BackendWeight {
                    backend: "payment-primary".into(),
                    weight: 50,
                },
                BackendWeight {
                    backend: "payment-secondary".into(),
                    weight: 50,
                },
            ],
        };
        assert_eq!(
            state_text(Some(&weights)),
            "payment-primary=50, payment-secondary=50"
        );
        assert_eq!(state_text(None), "");
    }
}
