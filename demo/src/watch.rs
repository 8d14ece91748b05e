//! What the demo reads back from the cluster: reports and the actions the
//! operator recorded on them, turned into the outcome's records.

use std::collections::BTreeMap;

use homeostat_api::{AnomalyReport, ApprovalState, ReportState};
use jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::outcome::{ActionOutcome, ReportRecord, state_text};

/// Reports by name, as they are now.
pub async fn reports(client: &kube::Client, namespace: &str) -> anyhow::Result<Vec<AnomalyReport>> {
    let api: Api<AnomalyReport> = Api::namespaced(client.clone(), namespace);
    Ok(api.list(&ListParams::default()).await?.items)
}

pub fn culprit_of(report: &AnomalyReport) -> String {
    report
        .status
        .as_ref()
        .and_then(|s| s.culprit.as_ref())
        .map_or_else(|| report.spec.service.clone(), |c| c.service.clone())
}

pub fn report_record(report: &AnomalyReport) -> ReportRecord {
    let status = report.status.as_ref();
    // When the report appeared in the API server: the moment anyone could see it.
    let created = report
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    ReportRecord {
        name: report.name_any(),
        service: report.spec.service.clone(),
        signal: report.spec.signal.as_str().to_owned(),
        culprit: culprit_of(report),
        score: status.map_or(0.0, |s| s.peak_score),
        opened_at: created,
        resolved_at: status
            .filter(|s| s.state == ReportState::Resolved)
            .and_then(|s| s.resolved_at.as_ref())
            .map(|t| t.0),
    }
}

pub fn action_records(report: &AnomalyReport) -> Vec<(String, ActionOutcome)> {
    let culprit = culprit_of(report);
    let Some(status) = &report.status else {
        return Vec::new();
    };
    status
        .actions
        .iter()
        .map(|a| {
            let outcome = ActionOutcome {
                policy: a.policy.clone(),
                kind: a.kind,
                target: culprit.clone(),
                from: state_text(a.before.as_ref()),
                to: state_text(a.after.as_ref()),
                at: a.done_at.as_ref().map_or(a.planned_at.0, |t| t.0),
                restored_at: a.restored_at.as_ref().map(|t| t.0),
                dry_run: a.dry_run,
                blocked_by: a.blocked_by.clone(),
                scale: None,
                approval: a.approval.clone(),
            };
            (format!("{}/{}", report.name_any(), a.id), outcome)
        })
        .collect()
}

/// Differences between two looks at the reports, for the live timeline.
#[derive(Debug, Default)]
pub struct Seen {
    states: BTreeMap<String, ReportState>,
    actions: BTreeMap<String, Look>,
}

/// What the timeline last said of an action.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Look {
    acted: bool,
    restored: bool,
    approval: Option<ApprovalState>,
}

impl Seen {
    /// Lines for what changed since the last look.
    pub fn changes(&mut self, reports: &[AnomalyReport]) -> Vec<String> {
        let mut lines = Vec::new();
        for report in reports {
            let name = report.name_any();
            let Some(status) = &report.status else {
                continue;
            };
            let before = self.states.insert(name.clone(), status.state);
            if before.is_none() {
                let evidence = status
                    .culprit
                    .as_ref()
                    .and_then(|c| c.evidence.first().cloned())
                    .unwrap_or_default();
                lines.push(format!(
                    "REPORT   {name}: culprit {} ({} {}, score {:.2}) {evidence}",
                    culprit_of(report),
                    report.spec.service,
                    report.spec.signal,
                    status.score
                ));
            }
            if status.state == ReportState::Resolved && before != Some(ReportState::Resolved) {
                lines.push(format!("RESOLVED {name}"));
            }
            for (id, a) in action_records(report) {
                let look = Look {
                    acted: a.acted(),
                    restored: a.restored_at.is_some(),
                    approval: a.approval.as_ref().map(|p| p.state),
                };
                let previous = self.actions.insert(id.clone(), look);
                let approval_changed = previous.is_some_and(|p| p.approval != look.approval);
                if previous.is_none() || (approval_changed && look.acted) {
                    let what = match (&a.blocked_by, a.dry_run, &a.approval) {
                        (Some(guard), _, _) => format!("BLOCKED by {guard}:"),
                        (None, true, _) => "DRY-RUN ".to_owned(),
                        (None, false, Some(p)) if p.state == ApprovalState::Awaiting => {
                            "AWAITING approval:".to_owned()
                        }
                        (None, false, Some(p)) if p.state == ApprovalState::Approved => {
                            format!("ACTION   approved by {}:", p.by.as_deref().unwrap_or("?"))
                        }
                        (None, false, Some(p)) => format!("NOT DONE ({}):", p.state),
                        (None, false, None) => "ACTION  ".to_owned(),
                    };
                    lines.push(format!(
                        "{what} {} {} for {}: {} → {}",
                        a.policy, a.kind, a.target, a.from, a.to
                    ));
                } else if approval_changed && let Some(p) = &a.approval {
                    lines.push(format!(
                        "NOT DONE {} {} for {}: {}",
                        a.policy,
                        a.kind,
                        a.target,
                        p.reason.as_deref().unwrap_or(p.state.as_str())
                    ));
                }
                if look.restored && !previous.is_some_and(|p| p.restored) {
                    lines.push(format!(
                        "RESTORED {} {} for {}: undone ({} → {})",
                        a.policy, a.kind, a.target, a.from, a.to
                    ));
                }
            }
        }
        lines
    }
}
