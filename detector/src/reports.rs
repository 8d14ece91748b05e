//! AnomalyReports in the API server: the detector's side of them.
//!
//! Reports are created when an anomaly opens and their status is written with
//! server-side apply under the field manager `homeostat-detector`, so the
//! operator can add its own timeline entries and actions to the same lists.
//! A report the operator marked `Remediating` stays so until it resolves.

use std::collections::BTreeMap;

use homeostat_api::{
    AnomalyReport, AnomalyReportSpec, AnomalyReportStatus, BaselineBand, Culprit, ReportState,
    StatusWrite, TimelineEntry, decode,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::engine::{ReportEvent, ReportUpdate};

pub const FIELD_MANAGER: &str = "homeostat-detector";
/// Label on every report the detector writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const SERVICE_LABEL: &str = "homeostat.dev/service";
pub const SIGNAL_LABEL: &str = "homeostat.dev/signal";

/// Writes the detector's reports in one namespace. An event whose write
/// fails is owed: it is written again, before newer ones, on the next call,
/// so a resolve that meets a flaky API server still lands.
pub struct ReportWriter {
    api: Api<AnomalyReport>,
    namespace: String,
    /// Events not written yet, oldest first.
    owed: Vec<ReportEvent>,
    /// Reports whose status this process has written: each is written at
    /// least once after a start, whatever is stored.
    written: std::collections::BTreeSet<String>,
}

/// The outcome of writing one event.
#[derive(Debug)]
pub struct Written {
    pub event: ReportEvent,
    /// The report's name and whether its status was written, or why the
    /// write failed (it stays owed).
    pub result: Result<(String, Wrote), kube::Error>,
}

/// Whether a status was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    Written,
    /// Nothing a reader acts on changed and the stored one is fresh: not
    /// written, so nobody watching is woken for nothing.
    Unchanged,
}

/// The longest a stored status goes unwritten while its report is open:
/// `lastEvaluatedAt` then tells readers the detector is still looking.
pub const HEARTBEAT_SECONDS: i64 = 60;

/// A report found open at start, to be continued.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenReport {
    pub name: String,
    pub service: String,
    pub signal: homeostat_api::Signal,
    pub opened_at: i64,
    pub peak_score: f64,
}

impl ReportWriter {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            owed: Vec::new(),
            written: Default::default(),
        }
    }

    /// The detector's reports that are not resolved, oldest first.
    /// Decoded one by one: a report this version cannot read is logged
    /// and left alone, never a reason not to start.
    pub async fn open_reports(&self) -> Result<Vec<OpenReport>, kube::Error> {
        let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}"));
        let raw = Api::namespaced_with(
            self.api.clone().into_client(),
            &self.namespace,
            &decode::resource::<AnomalyReport>(),
        );
        let listed = decode::list::<AnomalyReport>(&raw, &params).await?;
        for bad in &listed.undecodable {
            tracing::warn!(report = %bad.name, error = %bad.error, "an AnomalyReport this version cannot read: left alone");
        }
        let mut open: Vec<OpenReport> = listed
            .objects
            .into_iter()
            .filter_map(|r| {
                let status = r.status.as_ref()?;
                (status.state != ReportState::Resolved).then(|| OpenReport {
                    name: r.name_any(),
                    service: r.spec.service.clone(),
                    signal: r.spec.signal,
                    opened_at: status.opened_at.0.as_second(),
                    peak_score: status.peak_score,
                })
            })
            .collect();
        open.sort_by_key(|r| r.opened_at);
        Ok(open)
    }

    /// Events still owed to the API server.
    pub fn owed(&self) -> usize {
        self.owed.len()
    }

    /// Writes the events owed from earlier calls, then `events`, in order;
    /// the ones that fail are owed to the next call.
    pub async fn write_all(&mut self, events: Vec<ReportEvent>) -> Vec<Written> {
        let mut due = std::mem::take(&mut self.owed);
        due.extend(events);
        let mut written = Vec::with_capacity(due.len());
        for event in coalesce(due) {
            let result = self.write(&event).await;
            if result.is_err() {
                self.owed.push(event.clone());
            }
            written.push(Written { event, result });
        }
        written
    }

    /// Writes one event; returns the report's name. The name follows from
    /// the anomaly (service, signal, opening time), so a report someone
    /// deleted while its anomaly is open is made again, and one deleted
    /// before its resolve is left deleted.
    async fn write(&mut self, event: &ReportEvent) -> Result<(String, Wrote), kube::Error> {
        let update = event.update();
        let name = report_name(update);
        let resolved_at = match event {
            ReportEvent::Resolve { at, .. } => Some(*at),
            _ => None,
        };
        let current = self.api.get_opt(&name).await?;
        if current.is_none() {
            if resolved_at.is_some() {
                return Ok((name, Wrote::Unchanged));
            }
            self.create(&name, update).await?;
        }
        let status = detector_status(update, resolved_at, current.as_ref());
        let stored = current.as_ref().and_then(|r| r.status.as_ref());
        if self.written.contains(&name) && stored.is_some_and(|stored| unchanged(stored, &status)) {
            return Ok((name, Wrote::Unchanged));
        }
        let body = StatusWrite::of::<AnomalyReport>(status);
        self.api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER)
                    .force()
                    .validation_strict(),
                &Patch::Apply(&body),
            )
            .await?;
        // A resolved report is not written again: forget it.
        if resolved_at.is_some() {
            self.written.remove(&name);
        } else {
            self.written.insert(name.clone());
        }
        Ok((name, Wrote::Written))
    }

    async fn create(&self, name: &str, update: &ReportUpdate) -> Result<(), kube::Error> {
        let report = AnomalyReport {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned()),
                    (SERVICE_LABEL.to_owned(), update.service.clone()),
                    (SIGNAL_LABEL.to_owned(), update.signal.as_str().to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            spec: AnomalyReportSpec {
                service: update.service.clone(),
                signal: update.signal,
            },
            status: None,
        };
        match self.api.create(&PostParams::default(), &report).await {
            // Or created by an earlier run that stopped before writing status.
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Events to write, with each Update dropped when a later event of the same
/// report follows it (every write sets the whole status, so the later one
/// says all of it); opens and resolves stay, for the counts and logs.
pub fn coalesce(events: Vec<ReportEvent>) -> Vec<ReportEvent> {
    let names: Vec<String> = events.iter().map(|e| report_name(e.update())).collect();
    events
        .into_iter()
        .enumerate()
        .filter(|(i, event)| {
            !matches!(event, ReportEvent::Update(_)) || !names[i + 1..].contains(&names[*i])
        })
        .map(|(_, event)| event)
        .collect()
}

/// `payment-primary-latency-p99-1764230400`: service, signal, opening time.
pub fn report_name(update: &ReportUpdate) -> String {
    format!(
        "{}-{}-{}",
        update.service,
        update.signal.as_str().replace('_', "-"),
        update.opened_at
    )
}

fn time(unix_seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(unix_seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// The detector's part of the status: everything but the operator's
/// actions and timeline entries (server-side apply merges the two).
fn detector_status(
    update: &ReportUpdate,
    resolved_at: Option<i64>,
    current: Option<&AnomalyReport>,
) -> AnomalyReportStatus {
    let current_status = current.and_then(|r| r.status.as_ref());
    let state = match (resolved_at, current_status.map(|s| s.state)) {
        (Some(_), _) => ReportState::Resolved,
        (None, Some(ReportState::Remediating)) => ReportState::Remediating,
        (None, _) => ReportState::Open,
    };
    let entry = |id: &str, at: i64, message: String| TimelineEntry {
        id: id.to_owned(),
        time: time(at),
        source: "detector".to_owned(),
        message,
    };
    let mut timeline = vec![entry("opened", update.opened_at, opened_message(update))];
    if let Some(at) = resolved_at {
        timeline.push(entry(
            "resolved",
            at,
            format!(
                "{} {} back inside its baseline band",
                update.service, update.signal
            ),
        ));
    }
    let degraded = if update.degraded { "True" } else { "False" };
    // Keep the transition time while the condition does not change.
    let transition = current_status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
        .filter(|c| c.status == degraded)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| time(update.evaluated_at));
    let (reason, message) = if update.degraded {
        (
            "MetricsUnavailable",
            "the detector has no current data for this series; the report is held as it was",
        )
    } else {
        ("MetricsAvailable", "the detector is reading this series")
    };
    AnomalyReportStatus {
        state,
        score: round(update.score),
        peak_score: round(update.peak_score.max(update.score)),
        severity: update.severity,
        observed: update.observed,
        baseline: BaselineBand {
            lower: update.band[0],
            centre: update.band[1],
            upper: update.band[2],
        },
        culprit: update.culprit.as_ref().map(|c| Culprit {
            service: c.culprit.service.clone(),
            evidence: c.evidence.clone(),
            confidence: c.confidence,
        }),
        opened_at: time(update.opened_at),
        last_evaluated_at: Some(time(update.evaluated_at)),
        resolved_at: resolved_at.map(time),
        timeline,
        // The operator's: not listed, so not touched.
        actions: vec![],
        conditions: vec![Condition {
            type_: "Degraded".to_owned(),
            status: degraded.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            last_transition_time: transition,
            observed_generation: None,
        }],
        // People's (acknowledgement, verdicts): never listed by the detector's
        // apply, which would take them over.
        acknowledged: None,
        approvals: vec![],
    }
}

/// Whether `next` tells a reader nothing `stored` does not: the same
/// state, severity, score and peak to two decimals, band to three
/// significant digits, culprit and Degraded condition, and the stored one
/// evaluated within the heartbeat. The observed value and evidence wording
/// move every tick; a person reads them, nobody acts on them.
pub fn unchanged(stored: &AnomalyReportStatus, next: &AnomalyReportStatus) -> bool {
    let centi = |v: f64| (v * 100.0).round() as i64;
    let band = |b: &BaselineBand| [b.lower, b.centre, b.upper].map(three_digits);
    let degraded = |s: &AnomalyReportStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .map(|c| c.status.clone())
    };
    let evaluated = |s: &AnomalyReportStatus| s.last_evaluated_at.as_ref().map(|t| t.0.as_second());
    let fresh = match (evaluated(stored), evaluated(next)) {
        (Some(stored), Some(next)) => next - stored < HEARTBEAT_SECONDS,
        _ => false,
    };
    fresh
        && stored.state == next.state
        && stored.severity == next.severity
        && centi(stored.score) == centi(next.score)
        && centi(stored.peak_score) == centi(next.peak_score)
        && band(&stored.baseline) == band(&next.baseline)
        && stored.culprit.as_ref().map(|c| &c.service) == next.culprit.as_ref().map(|c| &c.service)
        && degraded(stored) == degraded(next)
        && stored.resolved_at == next.resolved_at
}

/// `v` to three significant digits, as an integer mantissa and exponent.
fn three_digits(v: f64) -> (i64, i32) {
    if v == 0.0 || !v.is_finite() {
        return (0, 0);
    }
    let exponent = v.abs().log10().floor() as i32 - 2;
    ((v / 10f64.powi(exponent)).round() as i64, exponent)
}

fn opened_message(update: &ReportUpdate) -> String {
    let mut message = format!(
        "{} {} anomalous (score {:.2}, observed {:.4} against a band of {:.4}–{:.4})",
        update.service,
        update.signal,
        update.score,
        update.observed,
        update.band[0],
        update.band[2]
    );
    if let Some(first) = update.culprit.as_ref().and_then(|c| c.evidence.first()) {
        message.push_str("; ");
        message.push_str(first);
    }
    message.chars().take(1024).collect()
}

/// Scores to three decimals: enough to read, steady enough not to churn.
fn round(score: f64) -> f64 {
    (score.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use homeostat_api::{Severity, Signal};

    use super::*;

    fn update(service: &str, opened_at: i64, evaluated_at: i64) -> ReportUpdate {
        ReportUpdate {
            service: service.to_owned(),
            signal: Signal::LatencyP99,
            score: 0.9,
            peak_score: 0.9,
            severity: Severity::Critical,
            observed: 0.4,
            band: [0.01, 0.02, 0.03],
            culprit: None,
            opened_at,
            evaluated_at,
            degraded: false,
        }
    }

    #[test]
    fn a_status_that_tells_nothing_new_within_the_heartbeat_is_not_written() {
        let stored = detector_status(&update("tax", 100, 110), None, None);
        // Observed moved, the score by less than a hundredth: unchanged.
        let mut next_update = update("tax", 100, 120);
        next_update.observed = 0.41;
        next_update.score = 0.902;
        let next = detector_status(&next_update, None, None);
        assert!(unchanged(&stored, &next));
        // Past the heartbeat: written again.
        let late = detector_status(&update("tax", 100, 110 + HEARTBEAT_SECONDS), None, None);
        assert!(!unchanged(&stored, &late));
        // Anything a reader acts on: written.
        let changed = [
            ReportUpdate {
                score: 0.95,
                ..update("tax", 100, 112)
            },
            ReportUpdate {
                severity: Severity::Warning,
                ..update("tax", 100, 112)
            },
            ReportUpdate {
                band: [0.01, 0.02, 0.031],
                ..update("tax", 100, 112)
            },
            ReportUpdate {
                degraded: true,
                ..update("tax", 100, 112)
            },
        ];
        for next in changed {
            let status = detector_status(&next, None, None);
            assert!(!unchanged(&stored, &status), "{next:?}");
        }
        let resolved = detector_status(&update("tax", 100, 112), Some(112), None);
        assert!(!unchanged(&stored, &resolved));
    }

    #[test]
    fn three_significant_digits() {
        assert_eq!(three_digits(0.031), three_digits(0.03100001));
        assert_ne!(three_digits(0.031), three_digits(0.0311));
        assert_eq!(three_digits(1234.0), (123, 1));
        assert_eq!(three_digits(0.0), (0, 0));
    }

    #[test]
    fn an_update_followed_by_news_of_its_report_is_dropped() {
        let events = vec![
            ReportEvent::Open(update("tax", 100, 100)),
            ReportEvent::Update(update("tax", 100, 102)),
            ReportEvent::Update(update("orders", 50, 102)),
            ReportEvent::Update(update("tax", 100, 104)),
            ReportEvent::Resolve {
                update: update("tax", 100, 106),
                at: 106,
            },
            // A new anomaly of tax: another report.
            ReportEvent::Open(update("tax", 110, 110)),
            ReportEvent::Update(update("tax", 110, 112)),
        ];
        let kept: Vec<(String, i64)> = coalesce(events)
            .iter()
            .map(|e| (report_name(e.update()), e.update().evaluated_at))
            .collect();
        assert_eq!(
            kept,
            [
                ("tax-latency-p99-100".to_owned(), 100),
                ("orders-latency-p99-50".to_owned(), 102),
                ("tax-latency-p99-100".to_owned(), 106),
                ("tax-latency-p99-110".to_owned(), 110),
                ("tax-latency-p99-110".to_owned(), 112),
            ]
        );
    }
}
