//! Steps that wait for a person: an action with `requireApproval` is
//! planned by the operator, recorded as awaiting approval, and carried out
//! only once someone with the right to approves it. Three parts, each with
//! one writer: the operator's [`AwaitingApproval`] (policy status) and
//! [`StepApproval`] (the step's record on the report), and a person's
//! [`Verdict`] (the report's `approvals`, field manager `homeostat-approval`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::ChangedState;

/// Where a step that needs approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ApprovalState {
    /// Planned; nothing is changed until a person approves it.
    Awaiting,
    /// A person approved it: it is carried out (or was).
    Approved,
    /// A person rejected it: not done.
    Rejected,
    /// Nobody approved it within the action's `approvalTimeout`: not done.
    Expired,
    /// Its report resolved, or its target changed, before it was approved:
    /// not done.
    Withdrawn,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Awaiting => "Awaiting",
            ApprovalState::Approved => "Approved",
            ApprovalState::Rejected => "Rejected",
            ApprovalState::Expired => "Expired",
            ApprovalState::Withdrawn => "Withdrawn",
        }
    }
}

impl std::fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The approval part of a step's record on its report (the operator's).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepApproval {
    /// Awaiting, Approved, Rejected, Expired or Withdrawn.
    pub state: ApprovalState,
    /// The step is not done unless approved before this time.
    pub expires_at: Time,
    /// Who approved or rejected it, as the API server authenticated them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub by: Option<String>,
    /// Why it was not done, for a person, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

/// What a person decided about a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum VerdictKind {
    Approved,
    Rejected,
}

/// A person's verdict on one step awaiting approval (`homeostat approve`
/// or `reject`, or the console). Once given it cannot be changed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// The step's id in the report's `actions`.
    #[schemars(length(min = 1, max = 128))]
    pub step: String,
    /// Approved or Rejected.
    pub verdict: VerdictKind,
    /// The user name the API server authenticated (SelfSubjectReview).
    #[schemars(length(min = 1, max = 256))]
    pub by: String,
    /// When.
    pub at: Time,
    /// Why, for the others on call.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub note: String,
}

/// A step planned and waiting for a person (the policy's status): what it
/// found and what it would set, so that once approved it does exactly that.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwaitingApproval {
    /// The step's id in the report's `actions`.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// The AnomalyReport it answers.
    pub report: String,
    /// The workload or router it changes.
    pub target: crate::Target,
    /// The workload's uid when planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub target_uid: Option<String>,
    /// What the target held when the step was planned: found otherwise
    /// once approved, the step is withdrawn (what was approved is no longer
    /// what it would do).
    pub before: ChangedState,
    /// What the step sets.
    pub after: ChangedState,
    /// When it was planned.
    pub planned_at: Time,
    /// Not done unless approved before this time.
    pub expires_at: Time,
}
