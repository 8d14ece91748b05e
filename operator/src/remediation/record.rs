//! Recording what the policy did: policy status, the report's actions and
//! timeline (server-side apply as `homeostat-operator`), and Events.

use homeostat_api::{
    ActionRecord, ActiveRemediation, AnomalyReport, AwaitingApproval, RemediationPolicy,
    RemediationPolicyStatus, ReportState, StatusWrite, TimelineEntry,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::Patch;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};

pub const FIELD_MANAGER: &str = "homeostat-operator";
/// The `source` of the operator's timeline entries.
const SOURCE: &str = "operator";

pub fn time(unix: i64) -> Time {
    Time(jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// The whole policy status as a merge patch: every field written, an
/// empty list as empty and an unset field as null, so nothing an earlier
/// write left behind survives it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WholePolicyStatus<'a> {
    observed_generation: Option<i64>,
    conditions: &'a [Condition],
    last_action_time: Option<&'a Time>,
    actions_taken: i64,
    actions_blocked: i64,
    recent_actions: &'a [Time],
    active: &'a [ActiveRemediation],
    awaiting_approval: &'a [AwaitingApproval],
}

impl<'a> From<&'a RemediationPolicyStatus> for WholePolicyStatus<'a> {
    fn from(status: &'a RemediationPolicyStatus) -> Self {
        Self {
            observed_generation: status.observed_generation,
            conditions: &status.conditions,
            last_action_time: status.last_action_time.as_ref(),
            actions_taken: status.actions_taken,
            actions_blocked: status.actions_blocked,
            recent_actions: &status.recent_actions,
            active: &status.active,
            awaiting_approval: &status.awaiting_approval,
        }
    }
}

/// Writes the whole policy status (the operator is its only writer), on
/// condition that nobody else wrote the policy since `resource_version`;
/// returns the new version. A conflict fails the pass, which then starts
/// again from what is stored.
pub async fn policy_status(
    client: &Client,
    policy: &RemediationPolicy,
    resource_version: Option<String>,
    status: &RemediationPolicyStatus,
) -> Result<Option<String>, kube::Error> {
    let api: Api<RemediationPolicy> =
        Api::namespaced(client.clone(), &policy.namespace().unwrap_or_default());
    let body = StatusWrite::of::<RemediationPolicy>(WholePolicyStatus::from(status))
        .if_at(resource_version);
    let stored = api
        .patch_status(
            &policy.name_any(),
            &crate::writes::patch(),
            &Patch::Merge(&body),
        )
        .await?;
    Ok(stored.metadata.resource_version)
}

/// Sets condition `type_` in `conditions`, keeping its transition time while
/// its status does not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: i64,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" };
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| time(now));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.chars().take(1024).collect(),
        last_transition_time: transition,
        observed_generation: generation,
    });
}

/// What happens to one of the report's action records.
pub enum ActionUpdate {
    /// A step planned, done, blocked or only planned (dry run), as it
    /// stands now; a record of the same id keeps when it was planned and
    /// what it found then.
    Step(Box<ActionRecord>),
    /// The step was undone.
    Restored { id: String },
}

/// One change to a report's operator-owned status.
pub struct ReportEntry {
    pub action: Option<ActionUpdate>,
    /// Timeline entry id and message.
    pub timeline: Option<(String, String)>,
    /// Mark the report Remediating (only while it is Open).
    pub remediating: bool,
    pub now: i64,
}

/// The operator's part of a report's status (field manager
/// `homeostat-operator`): server-side apply keeps what a manager lists, so
/// it lists every action and operator timeline entry, old and new.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct OperatorReportStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<ReportState>,
    actions: Vec<ActionRecord>,
    timeline: Vec<TimelineEntry>,
}

/// Applies the operator's part of a report's status with `entry` in it.
pub async fn report_status(
    client: &Client,
    namespace: &str,
    report: &str,
    entry: ReportEntry,
) -> Result<(), kube::Error> {
    let api: Api<AnomalyReport> = Api::namespaced(client.clone(), namespace);
    let Some(current) = api.get_opt(report).await? else {
        return Ok(());
    };
    let status = current.status.as_ref();
    let mut actions: Vec<ActionRecord> = status.map(|s| s.actions.clone()).unwrap_or_default();
    match entry.action {
        Some(ActionUpdate::Step(record)) => {
            let mut record = *record;
            match actions.iter_mut().find(|a| a.id == record.id) {
                Some(existing) => {
                    // What the step found is what it found when planned: a
                    // step finished after a restart finds its own change.
                    record.planned_at = existing.planned_at.clone();
                    record.before = existing.before.take().or(record.before);
                    record.target = std::mem::take(&mut existing.target);
                    record.restored_at = existing.restored_at.take().or(record.restored_at);
                    // A step finished after a restart still says who approved it.
                    record.approval = record.approval.or(existing.approval.take());
                    *existing = record;
                }
                None => actions.push(record),
            }
        }
        Some(ActionUpdate::Restored { id }) => {
            if let Some(existing) = actions.iter_mut().find(|a| a.id == id) {
                existing.restored_at = Some(time(entry.now));
            }
        }
        None => {}
    }
    let mut timeline: Vec<TimelineEntry> = status
        .map(|s| {
            s.timeline
                .iter()
                .filter(|t| t.source == SOURCE)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let Some((id, message)) = entry.timeline
        && !timeline.iter().any(|t| t.id == id)
    {
        timeline.push(TimelineEntry {
            id,
            time: time(entry.now),
            source: SOURCE.to_owned(),
            message: message.chars().take(1024).collect(),
        });
    }
    // The operator co-owns `state` with the detector while the report is
    // open, so it must keep listing it (server-side apply drops a field its
    // only owner stops listing); once the detector resolves a report, the
    // state is the detector's alone.
    let state = match status.map(|s| s.state) {
        Some(ReportState::Open) if entry.remediating => Some(ReportState::Remediating),
        Some(ReportState::Open) => Some(ReportState::Open),
        Some(ReportState::Remediating) => Some(ReportState::Remediating),
        _ => None,
    };
    // Applied on condition that the report is as we read it: a report the
    // detector resolved meanwhile is never forced back open.
    let body = StatusWrite::of::<AnomalyReport>(OperatorReportStatus {
        state,
        actions,
        timeline,
    })
    .if_at(current.metadata.resource_version.clone());
    api.patch_status(
        report,
        &crate::writes::apply(FIELD_MANAGER),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Publishes an Event on `policy` and, when given, on the report too.
pub async fn event(
    recorder: &Recorder,
    policy: &RemediationPolicy,
    report: Option<&AnomalyReport>,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Remediate".to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&ev, &policy.object_ref(&())).await {
        tracing::warn!(%error, reason, "cannot publish Event on the policy");
    }
    if let Some(report) = report
        && let Err(error) = recorder.publish(&ev, &report.object_ref(&())).await
    {
        tracing::warn!(%error, reason, "cannot publish Event on the report");
    }
}
