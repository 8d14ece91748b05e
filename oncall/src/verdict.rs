//! `homeostat approve` and `homeostat reject`: a person's verdict on a
//! step that waits for approval. Who they are is what the API server
//! authenticated; the verdict goes into the report's `approvals` (field
//! manager `homeostat-approval`), on condition that the report is as read
//! (two people deciding at once: the second is told, nothing is
//! overwritten), with a timeline entry and an Event naming them. The
//! operator carries the step out, or records it as not done. An identity
//! without `patch` on `anomalyreports/status` is refused by the API server.

use anyhow::Context;
use homeostat_api::{
    AnomalyReport, ApprovalState, StatusWrite, TimelineEntry, Verdict, VerdictKind,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use crate::actor::{Actor, SOURCE, said};

pub const FIELD_MANAGER: &str = "homeostat-approval";

/// What `homeostat-approval` owns of a report's status: every verdict and
/// every on-call timeline entry (server-side apply drops what its manager
/// stops listing).
#[derive(Debug, Serialize)]
struct VerdictStatus {
    approvals: Vec<Verdict>,
    timeline: Vec<TimelineEntry>,
}

/// Why a verdict cannot be given.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("no step {step} on this report (its steps: {known})")]
    NoSuchStep { step: String, known: String },
    #[error("step {step} does not wait for approval: its action does not set requireApproval")]
    NoApprovalNeeded { step: String },
    #[error("step {step} is {state}, no longer awaiting approval")]
    NotAwaiting { step: String, state: ApprovalState },
    #[error("step {step} was already {verdict:?} by {by}")]
    AlreadyDecided {
        step: String,
        verdict: VerdictKind,
        by: String,
    },
    #[error("the report changed while {step} was being {word}: look again and retry")]
    Changed { step: String, word: &'static str },
}

pub fn word(verdict: VerdictKind) -> &'static str {
    match verdict {
        VerdictKind::Approved => "approved",
        VerdictKind::Rejected => "rejected",
    }
}

/// The status `by` writes to give `verdict` on `step` of `report` at `now`.
fn verdict_status(
    report: &AnomalyReport,
    step: &str,
    verdict: VerdictKind,
    by: &str,
    note: &str,
    now: jiff::Timestamp,
) -> Result<VerdictStatus, Refused> {
    let status = report.status.as_ref();
    let actions = status.map(|s| s.actions.as_slice()).unwrap_or_default();
    let Some(action) = actions.iter().find(|a| a.id == step) else {
        let known: Vec<&str> = actions.iter().map(|a| a.id.as_str()).collect();
        return Err(Refused::NoSuchStep {
            step: step.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    };
    let approvals: Vec<Verdict> = status.map(|s| s.approvals.clone()).unwrap_or_default();
    if let Some(given) = approvals.iter().find(|v| v.step == step) {
        return Err(Refused::AlreadyDecided {
            step: step.to_owned(),
            verdict: given.verdict,
            by: given.by.clone(),
        });
    }
    match action.approval.as_ref().map(|a| a.state) {
        None => {
            return Err(Refused::NoApprovalNeeded {
                step: step.to_owned(),
            });
        }
        Some(ApprovalState::Awaiting) => {}
        Some(state) => {
            return Err(Refused::NotAwaiting {
                step: step.to_owned(),
                state,
            });
        }
    }
    let at = Time(now);
    let mut timeline: Vec<TimelineEntry> = status
        .iter()
        .flat_map(|s| s.timeline.iter())
        .filter(|t| t.source == SOURCE)
        .cloned()
        .collect();
    timeline.push(TimelineEntry {
        id: format!("{step}-{}", word(verdict)),
        time: at.clone(),
        source: SOURCE.to_owned(),
        message: format!(
            "{step} ({}) {} by {by}{}",
            action.target,
            word(verdict),
            said(note)
        )
        .chars()
        .take(1024)
        .collect(),
    });
    let mut approvals = approvals;
    approvals.push(Verdict {
        step: step.to_owned(),
        verdict,
        by: by.to_owned(),
        at,
        note: note.chars().take(1024).collect(),
    });
    Ok(VerdictStatus {
        approvals,
        timeline,
    })
}

/// Gives `verdict` on `step` of `namespace/name` as `actor`.
pub async fn give(
    actor: &Actor,
    namespace: &str,
    name: &str,
    step: &str,
    verdict: VerdictKind,
    note: &str,
) -> anyhow::Result<()> {
    let by = &actor.by;
    let report = actor.report(namespace, name).await?;
    let status = verdict_status(&report, step, verdict, by, note, jiff::Timestamp::now())
        .with_context(|| format!("{namespace}/{name}"))?;
    let body =
        StatusWrite::of::<AnomalyReport>(status).if_at(report.metadata.resource_version.clone());
    actor
        .apply_report_status(namespace, name, FIELD_MANAGER, &body)
        .await
        .map_err(|e| match e {
            kube::Error::Api(ref status) if status.code == 409 => {
                anyhow::Error::new(Refused::Changed {
                    step: step.to_owned(),
                    word: word(verdict),
                })
                .context(format!("{namespace}/{name}"))
            }
            e => anyhow::Error::new(e).context(format!("give the verdict on {step} as {by}")),
        })?;
    let (reason, action) = match verdict {
        VerdictKind::Approved => ("Approved", "Approve"),
        VerdictKind::Rejected => ("Rejected", "Reject"),
    };
    actor
        .announce(
            &report,
            reason,
            action,
            format!("{step} {} by {by}{}", word(verdict), said(note)),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(approval: serde_json::Value, approvals: serde_json::Value) -> AnomalyReport {
        let mut action = serde_json::json!({
            "id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
            "target": "deployment/tax 2→3", "plannedAt": "2026-12-04T10:00:00Z"
        });
        if !approval.is_null() {
            action["approval"] = approval;
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
            "metadata": {"name": "tax-latency-p99-1", "namespace": "shop"},
            "spec": {"service": "tax", "signal": "latency_p99"},
            "status": {
                "state": "Open", "score": 0.9, "peakScore": 0.9, "severity": "Critical",
                "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "openedAt": "2026-12-04T10:00:00Z",
                "actions": [action],
                "approvals": approvals,
                "timeline": [
                    {"id": "opened", "time": "2026-12-04T10:00:00Z", "source": "detector", "message": "opened"},
                    {"id": "acknowledged-1", "time": "2026-12-04T10:01:00Z", "source": "on-call", "message": "acknowledged by bob"}
                ]
            }
        }))
        .expect("report")
    }

    fn awaiting() -> serde_json::Value {
        serde_json::json!({"state": "Awaiting", "expiresAt": "2026-12-04T10:15:00Z"})
    }

    fn now() -> jiff::Timestamp {
        "2026-12-04T10:02:00Z".parse().expect("time")
    }

    #[test]
    fn a_verdict_is_added_with_a_timeline_entry_keeping_the_others() {
        let status = verdict_status(
            &report(awaiting(), serde_json::json!([])),
            "scale-tax-0-1",
            VerdictKind::Approved,
            "alice",
            "tax's pool is saturated",
            now(),
        )
        .expect("allowed");
        assert_eq!(status.approvals.len(), 1);
        assert_eq!(
            (status.approvals[0].verdict, status.approvals[0].by.as_str()),
            (VerdictKind::Approved, "alice")
        );
        let ids: Vec<&str> = status.timeline.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["acknowledged-1", "scale-tax-0-1-approved"]);
        assert_eq!(
            status.timeline[1].message,
            "scale-tax-0-1 (deployment/tax 2→3) approved by alice: tax's pool is saturated"
        );
    }

    #[test]
    fn a_step_that_is_not_awaiting_approval_is_refused_with_the_reason() {
        let refuse = |approval, approvals, step: &str| {
            verdict_status(
                &report(approval, approvals),
                step,
                VerdictKind::Rejected,
                "bob",
                "",
                now(),
            )
            .err()
        };
        let none = serde_json::json!([]);
        assert!(matches!(
            refuse(awaiting(), none.clone(), "scale-tax-0-9"),
            Some(Refused::NoSuchStep { known, .. }) if known == "scale-tax-0-1"
        ));
        assert!(matches!(
            refuse(serde_json::Value::Null, none.clone(), "scale-tax-0-1"),
            Some(Refused::NoApprovalNeeded { .. })
        ));
        assert!(matches!(
            refuse(
                serde_json::json!({"state": "Expired", "expiresAt": "2026-12-04T10:15:00Z"}),
                none,
                "scale-tax-0-1"
            ),
            Some(Refused::NotAwaiting {
                state: ApprovalState::Expired,
                ..
            })
        ));
        let given = serde_json::json!([{
            "step": "scale-tax-0-1", "verdict": "Approved", "by": "alice",
            "at": "2026-12-04T10:01:30Z"
        }]);
        assert_eq!(
            refuse(awaiting(), given, "scale-tax-0-1"),
            Some(Refused::AlreadyDecided {
                step: "scale-tax-0-1".into(),
                verdict: VerdictKind::Approved,
                by: "alice".into()
            })
        );
    }
}
