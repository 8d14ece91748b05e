//! `AnomalyReport`: one anomaly on one service and signal, from the moment the
//! detector opens it until it resolves, with what was done about it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{ActionKind, Severity, Signal};

/// Identifies the anomalous series. Written once by the detector; immutable.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "homeostat.dev",
    version = "v1alpha1",
    kind = "AnomalyReport",
    namespaced,
    doc = "An anomaly the homeostat detector found on one service and signal, with its culprit, evidence and remediation history.",
    status = "AnomalyReportStatus",
    shortname = "ar",
    category = "homeostat",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#,
    printcolumn = r#"{"name":"Signal","type":"string","jsonPath":".spec.signal"}"#,
    printcolumn = r#"{"name":"Culprit","type":"string","jsonPath":".status.culprit.service"}"#,
    printcolumn = r#"{"name":"Score","type":"number","jsonPath":".status.score"}"#,
    printcolumn = r#"{"name":"Severity","type":"string","jsonPath":".status.severity"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: open a new report instead"))]
pub struct AnomalyReportSpec {
    /// The service whose signal is anomalous (a DNS label).
    #[schemars(length(min = 1, max = 63), regex(pattern = crate::oms::SERVICE_NAME_PATTERN))]
    pub service: String,

    /// The anomalous signal.
    pub signal: Signal,
}

/// The replicas or the weights on one side of a step.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangedState {
    /// A scale step: the workload's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// A reroute step: each backend's weight, in percent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<crate::BackendWeight>,
}

/// Where a report is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ReportState {
    /// The anomaly is ongoing and nothing has been done yet.
    Open,
    /// A remediation is in force for it.
    Remediating,
    /// The signal is back inside its baseline band.
    Resolved,
}

/// The detector's findings and the report's history.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.peakScore >= self.score").message("status.peakScore must be at least status.score: it is the highest score seen"))]
#[x_kube(validation = Rule::new("!has(self.resolvedAt) || self.state == 'Resolved'").message("status.resolvedAt is set only on a Resolved report"))]
#[x_kube(validation = Rule::new("!has(self.resolvedAt) || timestamp(self.resolvedAt) >= timestamp(self.openedAt)").message("status.resolvedAt must not be before status.openedAt"))]
#[x_kube(validation = Rule::new("!has(oldSelf.approvals) || oldSelf.approvals.all(o, has(self.approvals) && self.approvals.exists(n, n.step == o.step && n.verdict == o.verdict && n.by == o.by))").message("status.approvals: a verdict once given stays as given"))]
pub struct AnomalyReportStatus {
    /// Open, Remediating or Resolved.
    pub state: ReportState,

    /// Latest anomaly score, between 0 and 1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub score: f64,

    /// Highest score seen while open.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub peak_score: f64,

    /// Latest severity.
    pub severity: Severity,

    /// Latest observed value of the signal (seconds for latency, a ratio for
    /// errors, requests per second for rate).
    pub observed: f64,

    /// The baseline band the observed value is judged against.
    pub baseline: BaselineBand,

    /// The service the detector holds responsible, with its evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culprit: Option<Culprit>,

    /// When the anomaly began (the first tick of the held score).
    pub opened_at: Time,

    /// When the detector last evaluated the series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluated_at: Option<Time>,

    /// When the signal returned to its band for the quiet time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,

    /// What happened, in order. Entries are keyed by `id` so the detector and
    /// the operator can each add theirs with server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    #[schemars(length(max = 256))]
    pub timeline: Vec<TimelineEntry>,

    /// Remediation actions taken (or blocked) for this report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    #[schemars(length(max = 256))]
    pub actions: Vec<ActionRecord>,

    /// Degraded (the detector lacks data for this series) and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The last person to acknowledge the report (`homeostat ack`): who,
    /// when, and their note. Written with field manager `homeostat-ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,

    /// People's verdicts on steps awaiting approval (`homeostat approve`,
    /// `homeostat reject`), one per step, never changed once given.
    /// Written with field manager `homeostat-approval`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["step".into()]))]
    #[schemars(length(max = 64))]
    pub approvals: Vec<crate::Verdict>,
}

/// A person saying "I have this", as the API server authenticated them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgement {
    /// The user name the API server authenticated (SelfSubjectReview).
    #[schemars(length(min = 1, max = 256))]
    pub by: String,
    /// When.
    pub at: Time,
    /// What they said, e.g. what they are looking at.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub note: String,
}

/// The expected range of a signal.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.lower <= self.upper").message("baseline.lower must not be above baseline.upper"))]
pub struct BaselineBand {
    /// Lower edge of the normal band.
    pub lower: f64,
    /// Expected value.
    pub centre: f64,
    /// Upper edge of the normal band.
    pub upper: f64,
}

/// The service held responsible.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Culprit {
    /// The service at fault (may differ from spec.service when a callee is to blame).
    #[schemars(length(min = 1, max = 63), regex(pattern = crate::oms::SERVICE_NAME_PATTERN))]
    pub service: String,

    /// Human-readable reasons, strongest first, e.g. "orders p99 up 6x; its
    /// calls to payment-primary account for the increase".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub evidence: Vec<String>,

    /// How sure the localisation is, between 0 and 1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub confidence: f64,
}

/// One event in the life of a report.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// Unique within the report, e.g. "opened" or "action-1-done".
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// When it happened.
    pub time: Time,
    /// Who recorded it: detector or operator.
    #[schemars(length(max = 63))]
    pub source: String,
    /// What happened, for a person.
    #[schemars(length(max = 1024))]
    pub message: String,
}

/// A remediation action as the operator carried it out or was stopped from doing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    /// Unique within the report.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// The RemediationPolicy that planned it.
    pub policy: String,
    /// What the step does: scale or reroute.
    pub kind: ActionKind,
    /// What it changed: a workload or a router, with the change, for a
    /// person, e.g. "deployment/tax 2→3" or "omsconfigmap/oms-routing
    /// payment-primary 100→50, payment-secondary 0→50".
    pub target: String,
    /// The workload or router, e.g. `deployment/tax`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<crate::Target>,
    /// What was there before the step: replicas or weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<ChangedState>,
    /// What the step sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ChangedState>,
    /// When it was planned.
    pub planned_at: Time,
    /// When it took effect; unset for dry runs and blocked actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<Time>,
    /// When it was undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<Time>,
    /// Planned only: the policy is in dry-run.
    #[serde(default)]
    pub dry_run: bool,
    /// The guard that stopped it, if one did (cooldown, rate-limit, suspended, kill-switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// Its action sets `requireApproval`: where the step stands with people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::StepApproval>,
}
