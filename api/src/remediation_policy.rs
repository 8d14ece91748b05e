//! `RemediationPolicy`: when to scale a service or steer traffic away from it,
//! and the guard rails around doing so.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{ActionKind, Duration, Severity, Signal};

/// Declares which anomalies a policy answers and what it does about them.
/// The operator acts only while an open AnomalyReport matches `services`,
/// `trigger` has held for `trigger.for`, and every guard allows it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "homeostat.dev",
    version = "v1alpha1",
    kind = "RemediationPolicy",
    namespaced,
    doc = "When and how homeostat remediates an anomaly: scale a service or steer traffic away from it, within guard rails.",
    status = "RemediationPolicyStatus",
    shortname = "rp",
    category = "homeostat",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Dry-Run","type":"boolean","jsonPath":".spec.guards.dryRun"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.guards.suspend"}"#,
    printcolumn = r#"{"name":"Actions","type":"integer","jsonPath":".status.actionsTaken","description":"Actions carried out since creation"}"#,
    printcolumn = r#"{"name":"Last-Action","type":"date","jsonPath":".status.lastActionTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.actions.all(a, self.actions.exists_one(b, b == a))").message("actions must not repeat: each entry is one step of its own"))]
#[x_kube(validation = Rule::new("!has(self.services.names) || size(self.services.names) == 0 || self.actions.all(a, !has(a.reroute) || a.reroute.from in self.services.names)").message("actions[].reroute.from must be one of services.names: a policy moves traffic away from the services it covers"))]
pub struct RemediationPolicySpec {
    /// The services this policy covers.
    pub services: ServiceSelector,

    /// The anomaly that makes the policy act.
    pub trigger: Trigger,

    /// What to do, in order. Each entry sets exactly one of `scale` or `reroute`.
    #[schemars(length(min = 1, max = 8))]
    pub actions: Vec<RemediationAction>,

    /// Limits on how often and whether the policy acts.
    #[serde(default)]
    pub guards: Guards,

    /// How long a resolved report must stay resolved before actions are undone.
    #[serde(default = "default_stable_for")]
    pub stable_for: Duration,
}

/// Selects services by name, by the labels of their Deployments, or both
/// (a service matches when either selects it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.names) && size(self.names) > 0) || has(self.selector)").message("services must set names or selector"))]
#[x_kube(validation = Rule::new("!has(self.selector) || (has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)").message("services.selector must not be empty: an empty selector selects every Deployment"))]
#[x_kube(validation = Rule::new("!has(self.selector) || !has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])").message("services.selector.matchExpressions[].operator must be In, NotIn, Exists or DoesNotExist"))]
pub struct ServiceSelector {
    /// Service names (DNS labels), e.g. payment-primary; each at most once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 1, max = 63),
            regex(pattern = crate::oms::SERVICE_NAME_PATTERN)
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub names: Vec<String>,

    /// Label selector over the services' Deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// When a report is bad enough, and has been for long enough, to act on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// Signals that trigger the policy (latency_p50, latency_p95, latency_p99,
    /// error_ratio, request_rate, availability, consumer_lag, outbox_age).
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub signals: Vec<Signal>,

    /// Minimum anomaly score, between 0 and 1.
    #[serde(default = "default_min_score")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_score: f64,

    /// Minimum severity: Warning or Critical.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,

    /// How long the report must have been open before the policy acts.
    #[serde(rename = "for", default = "default_hold_for")]
    pub hold_for: Duration,
}

/// One remediation step. Exactly one of `scale` or `reroute` is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.scale) != has(self.reroute)").message("each action must set exactly one of scale or reroute"))]
#[x_kube(validation = Rule::new("!has(self.approvalTimeout) || (has(self.requireApproval) && self.requireApproval)").message("approvalTimeout is for an action with requireApproval: true"))]
#[x_kube(validation = Rule::new("!has(self.approvalTimeout) || duration(self.approvalTimeout) >= duration('10s')").message("approvalTimeout must be at least 10s: a person needs time to look"))]
pub struct RemediationAction {
    /// Add replicas to the service's workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleAction>,

    /// Move traffic from a failing backend to a healthy one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reroute: Option<RerouteAction>,

    /// Each step waits for a person to approve it (`homeostat approve`):
    /// planned and recorded as awaiting approval, carried out only once
    /// approved; rejected or not approved within `approvalTimeout`, it is
    /// recorded as not done.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_approval: bool,

    /// How long a step waits for approval before it lapses (with
    /// `requireApproval`; default 15m, at least 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout: Option<Duration>,
}

impl RemediationAction {
    /// How long a step of this action waits for approval, when it needs it.
    pub fn approval_window(&self) -> Option<std::time::Duration> {
        self.require_approval.then(|| {
            self.approval_timeout
                .as_ref()
                .map_or(DEFAULT_APPROVAL_TIMEOUT, |t| t.0)
        })
    }
}

/// How long a step waits for approval when the action does not say.
pub const DEFAULT_APPROVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Scale a workload through its `scale` subresource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must be less than or equal to maxReplicas"))]
pub struct ScaleAction {
    /// The workload to scale. Defaults to the Deployment named after the
    /// anomalous service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<WorkloadRef>,

    /// Replicas added per action.
    #[serde(default = "default_step")]
    #[schemars(range(min = 1, max = 100))]
    pub step: i32,

    /// Never scale below this many replicas.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,

    /// Never scale above this many replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,

    /// Return to the original replica count once the report has been resolved
    /// for `stableFor`.
    #[serde(default = "default_true")]
    pub scale_back: bool,
}

/// A workload with a `scale` subresource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.apiVersion == 'apps/v1' && self.kind in ['Deployment', 'StatefulSet']").message("target must be an apps/v1 Deployment or StatefulSet"))]
pub struct WorkloadRef {
    /// API version of the workload, e.g. apps/v1.
    #[serde(default = "default_workload_api_version")]
    pub api_version: String,
    /// Kind of the workload, e.g. Deployment or StatefulSet.
    #[serde(default = "default_workload_kind")]
    pub kind: String,
    /// Name of the workload in the policy's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

impl ScaleAction {
    /// The workload scaled for a report on `service`: the action's own
    /// target, or the Deployment named after the service.
    pub fn workload(&self, service: &str) -> crate::Target {
        match &self.target {
            Some(workload) => workload.target(),
            None => crate::Target::Deployment(service.to_owned()),
        }
    }
}

impl WorkloadRef {
    /// The workload as a step's target.
    pub fn target(&self) -> crate::Target {
        match self.kind.as_str() {
            "StatefulSet" => crate::Target::StatefulSet(self.name.clone()),
            _ => crate::Target::Deployment(self.name.clone()),
        }
    }
}

/// Shift traffic weight between two backends of a router.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.from != self.to").message("from and to must name different backends"))]
#[x_kube(validation = Rule::new("self.weightStep <= self.maxWeight").message("weightStep must not exceed maxWeight"))]
pub struct RerouteAction {
    /// The router that splits the traffic.
    pub router: RouterRef,

    /// Backend to move traffic away from (the failing one).
    #[schemars(length(min = 1, max = 253))]
    pub from: String,

    /// Backend to move traffic to (must not itself be anomalous).
    #[schemars(length(min = 1, max = 253))]
    pub to: String,

    /// Percentage points of traffic moved per action.
    #[serde(default = "default_weight_step")]
    #[schemars(range(min = 1, max = 100))]
    pub weight_step: i32,

    /// Most weight, in percent, the `to` backend may receive.
    #[serde(default = "default_max_weight")]
    #[schemars(range(min = 0, max = 100))]
    pub max_weight: i32,

    /// Put the original weights back once the report has been resolved for `stableFor`.
    #[serde(default = "default_true")]
    pub restore: bool,
}

/// Which traffic router carries out a reroute.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouterRef {
    /// OmsConfigMap (the reference OMS's routing ConfigMap) or HTTPRoute
    /// (Gateway API gateway.networking.k8s.io/v1 backend weights).
    pub kind: RouterKind,
    /// Name of the ConfigMap or HTTPRoute in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl RouterRef {
    /// The router as a step's target.
    pub fn target(&self) -> crate::Target {
        crate::Target::router(self.kind, &self.name)
    }
}

/// The kinds of traffic router homeostat can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RouterKind {
    /// The reference OMS's routing ConfigMap, watched live by `orders`.
    OmsConfigMap,
    /// Gateway API HTTPRoute backendRefs weights.
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
}

/// Guard rails around acting.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.cooldown) || duration(self.cooldown) >= duration('1s')").message("guards.cooldown must be at least 1s: without a pause the policy would act on every pass"))]
pub struct Guards {
    /// Least time between two actions of this policy (at least 1s).
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,

    /// Most actions this policy may take in any hour.
    #[serde(default = "default_max_actions_per_hour")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_actions_per_hour: i32,

    /// Plan and record actions, but do not carry them out.
    #[serde(default)]
    pub dry_run: bool,

    /// Take no action at all (restores still run).
    #[serde(default)]
    pub suspend: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            cooldown: default_cooldown(),
            max_actions_per_hour: default_max_actions_per_hour(),
            dry_run: false,
            suspend: false,
        }
    }
}

/// Observed state of a policy: its validity, counters and what it must undo.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RemediationPolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready and Invalid, in metav1.Condition form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// When the policy last acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_time: Option<Time>,

    /// Actions carried out since creation.
    #[serde(default)]
    pub actions_taken: i64,

    /// Actions a guard prevented since creation.
    #[serde(default)]
    pub actions_blocked: i64,

    /// Actions in the last hour, kept to enforce maxActionsPerHour across restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_actions: Vec<Time>,

    /// Changes this policy made that are still in force, with what to restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ActiveRemediation>,

    /// Steps planned and waiting for a person's approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub awaiting_approval: Vec<crate::AwaitingApproval>,
}

/// A change in force, with the state from before it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRemediation {
    /// The AnomalyReport that caused it.
    pub report: String,
    /// What the step does: scale or reroute.
    pub kind: ActionKind,
    /// The workload or router changed: `deployment/tax`, `omsconfigmap/oms-routing`.
    pub target: crate::Target,
    /// The workload's uid when the policy first changed it: one of that
    /// name with another uid was deleted and made again by someone else,
    /// and is theirs, whatever its replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub target_uid: Option<String>,
    /// Replicas before the first scale action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_replicas: Option<i32>,
    /// Backend weights before the first reroute action, as backend=weight pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub original_weights: Vec<BackendWeight>,
    /// When the first action was taken.
    pub started_at: Time,
    /// Actions taken for this report.
    pub steps: i32,
    /// A step decided and recorded but not yet confirmed done. A restarted
    /// operator finishes it (its target is absolute, so doing it twice is
    /// doing it once) instead of planning a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingChange>,
    /// Replicas the last step set (scale): found at another count, the
    /// workload was changed by someone else since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_replicas: Option<i32>,
    /// Weights the last step set (reroute), as backend=weight pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_weights: Vec<BackendWeight>,
    /// Someone else (a person, an HPA, another controller) changed the
    /// target since the policy's last step: the policy takes no more steps
    /// on it and does not restore it; the entry goes once the report has
    /// resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by_others: Option<ChangedByOthers>,
}

/// What homeostat found when someone else had changed its target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChangedByOthers {
    /// When it was noticed.
    pub noticed_at: Time,
    /// What the policy had set, e.g. `3` replicas.
    #[schemars(length(max = 1024))]
    pub expected: String,
    /// What was there instead.
    #[schemars(length(max = 1024))]
    pub found: String,
}

/// The absolute state one step sets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingChange {
    /// The action's id in the report's `actions`.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// Replicas the workload is set to (scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Weights the router is set to (reroute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<BackendWeight>,
    /// When the step was decided.
    pub planned_at: Time,
}

/// The weight of one backend of a router.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendWeight {
    /// Backend name.
    pub backend: String,
    /// Weight in percent.
    #[schemars(range(min = 0, max = 100))]
    pub weight: i32,
}

fn default_stable_for() -> Duration {
    Duration::from_secs(60)
}
fn default_min_score() -> f64 {
    0.9
}
fn default_min_severity() -> Severity {
    Severity::Warning
}
fn default_hold_for() -> Duration {
    Duration::from_secs(0)
}
fn default_step() -> i32 {
    1
}
fn default_min_replicas() -> i32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_workload_api_version() -> String {
    "apps/v1".to_owned()
}
fn default_workload_kind() -> String {
    "Deployment".to_owned()
}
fn default_weight_step() -> i32 {
    50
}
fn default_max_weight() -> i32 {
    100
}
fn default_cooldown() -> Duration {
    Duration::from_secs(60)
}
fn default_max_actions_per_hour() -> i32 {
    6
}
