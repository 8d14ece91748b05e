//! Recording what the policy did: policy status, the report's actions and
//! timeline (server-side apply as `homeostat-operator`), and Events.

use homeostat_api::{AnomalyReport, RemediationPolicy, RemediationPolicyStatus, ReportState};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::Patch;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};

pub const FIELD_MANAGER: &str = "homeostat-operator";

pub fn time(unix: i64) -> Time {
    Time(jiff::Timestamp::from_second(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
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
    // A merge patch keeps what it does not mention: say "empty" and "unset"
    // out loud for the fields the type leaves out when empty.
    let mut body = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(fields) = body.as_object_mut() {
        for list in ["active", "recentActions", "conditions"] {
            fields.entry(list).or_insert_with(|| json!([]));
        }
        for optional in ["lastActionTime", "observedGeneration"] {
            fields.entry(optional).or_insert(Value::Null);
        }
    }
    let mut patch = json!({ "status": body });
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let stored = api
        .patch_status(
            &policy.name_any(),
            &crate::writes::patch(),
            &Patch::Merge(&patch),
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

/// One change to a report's operator-owned status.
pub struct ReportEntry<'a> {
    /// Action record fields to merge into the action with this id.
    pub action: Option<(String, Value)>,
    /// Timeline entry id and message.
    pub timeline: Option<(String, String)>,
    /// Mark the report Remediating (only while it is Open).
    pub remediating: bool,
    pub now: i64,
    pub policy: &'a str,
}

/// Applies the operator's part of a report's status: every action and
/// timeline entry it wrote before (server-side apply keeps what a manager
/// lists) plus the new or changed ones.
pub async fn report_status(
    client: &Client,
    namespace: &str,
    report: &str,
    entry: ReportEntry<'_>,
) -> Result<(), kube::Error> {
    let api: Api<AnomalyReport> = Api::namespaced(client.clone(), namespace);
    let Some(current) = api.get_opt(report).await? else {
        return Ok(());
    };
    let status = current.status.clone();
    let mut actions: Vec<Value> = status
        .as_ref()
        .map(|s| {
            s.actions
                .iter()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .collect()
        })
        .unwrap_or_default();
    if let Some((id, fields)) = entry.action {
        match actions.iter_mut().find(|a| a["id"] == json!(id)) {
            Some(existing) => {
                if let (Some(target), Some(fields)) = (existing.as_object_mut(), fields.as_object())
                {
                    for (k, v) in fields {
                        target.insert(k.clone(), v.clone());
                    }
                }
            }
            None => {
                let mut fresh =
                    json!({"id": id, "policy": entry.policy, "plannedAt": time(entry.now)});
                if let (Some(target), Some(fields)) = (fresh.as_object_mut(), fields.as_object()) {
                    for (k, v) in fields {
                        target.insert(k.clone(), v.clone());
                    }
                }
                actions.push(fresh);
            }
        }
    }
    let mut timeline: Vec<Value> = status
        .as_ref()
        .map(|s| {
            s.timeline
                .iter()
                .filter(|t| t.source == "operator")
                .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
                .collect()
        })
        .unwrap_or_default();
    if let Some((id, message)) = entry.timeline
        && !timeline.iter().any(|t| t["id"] == json!(id))
    {
        timeline.push(json!({
            "id": id,
            "time": time(entry.now),
            "source": "operator",
            "message": message.chars().take(1024).collect::<String>(),
        }));
    }
    let mut body = json!({"actions": actions, "timeline": timeline});
    // The operator co-owns `state` with the detector while the report is
    // open, so it must keep listing it (server-side apply drops a field its
    // only owner stops listing); once the detector resolves a report, the
    // state is the detector's alone.
    match status.as_ref().map(|s| s.state) {
        Some(ReportState::Open) if entry.remediating => body["state"] = json!("Remediating"),
        Some(ReportState::Open) => body["state"] = json!("Open"),
        Some(ReportState::Remediating) => body["state"] = json!("Remediating"),
        _ => {}
    }
    // Applied on condition that the report is as we read it: a report the
    // detector resolved meanwhile is never forced back open.
    let patch = json!({
        "apiVersion": "homeostat.dev/v1alpha1",
        "kind": "AnomalyReport",
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "status": body,
    });
    api.patch_status(
        report,
        &crate::writes::apply(FIELD_MANAGER),
        &Patch::Apply(&patch),
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
