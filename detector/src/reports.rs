//! AnomalyReports in the API server: the detector's side of them.
//!
//! Reports are created when an anomaly opens and their status is written with
//! server-side apply under the field manager `homeostat-detector`, so the
//! operator can add its own timeline entries and actions to the same lists.
//! A report the operator marked `Remediating` stays so until it resolves.

use std::collections::BTreeMap;

use homeostat_api::{AnomalyReport, AnomalyReportSpec, ReportState};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::engine::{ReportEvent, ReportUpdate};

pub const FIELD_MANAGER: &str = "homeostat-detector";
/// Label on every report the detector writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const SERVICE_LABEL: &str = "homeostat.dev/service";
pub const SIGNAL_LABEL: &str = "homeostat.dev/signal";

/// Writes the detector's reports in one namespace.
pub struct ReportWriter {
    api: Api<AnomalyReport>,
    /// Report name per service with an open anomaly.
    names: BTreeMap<String, String>,
}

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
            names: BTreeMap::new(),
        }
    }

    /// The detector's reports that are not resolved, oldest first.
    pub async fn open_reports(&self) -> Result<Vec<OpenReport>, kube::Error> {
        let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}"));
        let mut open: Vec<OpenReport> = self
            .api
            .list(&params)
            .await?
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

    /// Continues `report` instead of opening another for its service.
    pub fn adopt(&mut self, report: &OpenReport) {
        self.names
            .insert(report.service.clone(), report.name.clone());
    }

    /// Writes one event; returns the report's name.
    pub async fn write(&mut self, event: &ReportEvent) -> Result<String, kube::Error> {
        let update = event.update();
        // Known, or (first write, or a write that failed before) created now.
        let name = match self.names.get(&update.service) {
            Some(name) => name.clone(),
            None => self.create(update).await?,
        };
        let current = self.api.get_opt(&name).await?;
        let resolved_at = match event {
            ReportEvent::Resolve { at, .. } => Some(*at),
            _ => None,
        };
        let status = status_json(update, resolved_at, current.as_ref());
        let patch = json!({
            "apiVersion": "homeostat.dev/v1alpha1",
            "kind": "AnomalyReport",
            "status": status,
        });
        self.api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        if resolved_at.is_some() {
            self.names.remove(&update.service);
        } else {
            self.names.insert(update.service.clone(), name.clone());
        }
        Ok(name)
    }

    async fn create(&self, update: &ReportUpdate) -> Result<String, kube::Error> {
        let name = report_name(update);
        let report = AnomalyReport {
            metadata: ObjectMeta {
                name: Some(name.clone()),
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
            Ok(_) => Ok(name),
            // Created by an earlier run that stopped before writing status.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(name),
            Err(e) => Err(e),
        }
    }
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

fn rfc3339(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// The detector's part of the status.
fn status_json(
    update: &ReportUpdate,
    resolved_at: Option<i64>,
    current: Option<&AnomalyReport>,
) -> Value {
    let current_status = current.and_then(|r| r.status.as_ref());
    let state = match (resolved_at, current_status.map(|s| s.state)) {
        (Some(_), _) => "Resolved",
        (None, Some(ReportState::Remediating)) => "Remediating",
        (None, _) => "Open",
    };
    let mut timeline = vec![json!({
        "id": "opened",
        "time": rfc3339(update.opened_at),
        "source": "detector",
        "message": opened_message(update),
    })];
    if let Some(at) = resolved_at {
        timeline.push(json!({
            "id": "resolved",
            "time": rfc3339(at),
            "source": "detector",
            "message": format!("{} {} back inside its baseline band", update.service, update.signal),
        }));
    }
    let degraded = if update.degraded { "True" } else { "False" };
    // Keep the transition time while the condition does not change.
    let transition = current_status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded"))
        .filter(|c| c.status == degraded)
        .map(|c| c.last_transition_time.0.to_string())
        .unwrap_or_else(|| rfc3339(update.evaluated_at));
    let mut status = json!({
        "state": state,
        "score": round(update.score),
        "peakScore": round(update.peak_score.max(update.score)),
        "severity": update.severity.to_string(),
        "observed": update.observed,
        "baseline": {"lower": update.band[0], "centre": update.band[1], "upper": update.band[2]},
        "openedAt": rfc3339(update.opened_at),
        "lastEvaluatedAt": rfc3339(update.evaluated_at),
        "timeline": timeline,
        "conditions": [{
            "type": "Degraded",
            "status": degraded,
            "reason": if update.degraded { "MetricsUnavailable" } else { "MetricsAvailable" },
            "message": if update.degraded {
                "the detector has no current data for this series; the report is held as it was"
            } else {
                "the detector is reading this series"
            },
            "lastTransitionTime": transition,
        }],
    });
    if let Some(culprit) = &update.culprit {
        status["culprit"] = json!({
            "service": culprit.culprit.service,
            "evidence": culprit.evidence,
            "confidence": culprit.confidence,
        });
    }
    if let Some(at) = resolved_at {
        status["resolvedAt"] = json!(rfc3339(at));
    }
    status
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
