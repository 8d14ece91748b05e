//! `homeostat ack`: a person says "I have this" about a report. Who they are
//! is what the API server authenticated (SelfSubjectReview), never what
//! they type; the acknowledgement is written to the report's status with
//! field manager `homeostat-ack` (the detector and the operator own the
//! rest), added to its timeline, and published as an Event naming them. An
//! identity without `patch` on `anomalyreports/status` is refused by the API
//! server and nothing is written.

use anyhow::Context;
use homeostat_api::{Acknowledgement, AnomalyReport, StatusWrite, TimelineEntry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::actor::{Actor, SOURCE, said};

pub const FIELD_MANAGER: &str = "homeostat-ack";

/// What `homeostat-ack` owns of a report's status.
#[derive(Debug, Serialize)]
struct AckStatus {
    acknowledged: Acknowledgement,
    timeline: Vec<TimelineEntry>,
}

/// The status `by` writes to acknowledge `report` at `now` with `note`:
/// its earlier acknowledgements stay on the timeline.
fn ack_status(report: &AnomalyReport, by: &str, note: &str, now: jiff::Timestamp) -> AckStatus {
    let at = Time(now);
    let mut timeline: Vec<TimelineEntry> = report
        .status
        .iter()
        .flat_map(|s| s.timeline.iter())
        .filter(|t| t.source == SOURCE)
        .cloned()
        .collect();
    let said = said(note);
    timeline.push(TimelineEntry {
        id: format!("acknowledged-{}", now.as_second()),
        time: at.clone(),
        source: SOURCE.to_owned(),
        message: format!("acknowledged by {by}{said}")
            .chars()
            .take(1024)
            .collect(),
    });
    AckStatus {
        acknowledged: Acknowledgement {
            by: by.to_owned(),
            at,
            note: note.chars().take(1024).collect(),
        },
        timeline,
    }
}

/// Acknowledges `namespace/name` as `actor`.
pub async fn acknowledge(
    actor: &Actor,
    namespace: &str,
    name: &str,
    note: &str,
) -> anyhow::Result<()> {
    let by = &actor.by;
    let report = actor.report(namespace, name).await?;
    let body =
        StatusWrite::of::<AnomalyReport>(ack_status(&report, by, note, jiff::Timestamp::now()));
    actor
        .apply_report_status(namespace, name, FIELD_MANAGER, &body)
        .await
        .with_context(|| format!("acknowledge {namespace}/{name} as {by}"))?;
    let said = said(note);
    actor
        .announce(
            &report,
            "Acknowledged",
            "Acknowledge",
            format!("by {by}{said}"),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(timeline: serde_json::Value) -> AnomalyReport {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
            "metadata": {"name": "tax-latency-p99-1", "namespace": "shop"},
            "spec": {"service": "tax", "signal": "latency_p99"},
            "status": {
                "state": "Open", "score": 0.9, "peakScore": 0.9, "severity": "Critical",
                "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "openedAt": "2026-12-04T10:00:00Z", "timeline": timeline
            }
        }))
        .expect("report")
    }

    #[test]
    fn an_acknowledgement_keeps_earlier_ones_and_leaves_others_entries_to_them() {
        let report = report_with(serde_json::json!([
            {"id": "opened", "time": "2026-12-04T10:00:00Z", "source": "detector", "message": "opened"},
            {"id": "acknowledged-1", "time": "2026-12-04T10:01:00Z", "source": "on-call", "message": "acknowledged by bob"}
        ]));
        let now: jiff::Timestamp = "2026-12-04T10:02:00Z".parse().expect("time");
        let status = ack_status(&report, "alice", "looking at tax's pool", now);
        assert_eq!(status.acknowledged.by, "alice");
        assert_eq!(status.acknowledged.note, "looking at tax's pool");
        let ids: Vec<&str> = status.timeline.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "acknowledged-1",
                &format!("acknowledged-{}", now.as_second())
            ]
        );
        assert_eq!(
            status.timeline[1].message,
            "acknowledged by alice: looking at tax's pool"
        );
    }
}
