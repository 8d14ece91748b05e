//! The `homeostat.dev/v1alpha1` API: the custom resources that the operator,
//! the detector and SREs share, and the CRDs generated from them.

mod action_kind;
mod anomaly_report;
mod apply;
mod approval;
mod crds;
pub mod decode;
mod duration;
pub mod oms;
mod order_system;
mod remediation_policy;
mod resources;
pub mod routing;
mod signal;
mod silence;
mod target;

pub use action_kind::ActionKind;
pub use anomaly_report::*;
pub use apply::StatusWrite;
pub use approval::{ApprovalState, AwaitingApproval, StepApproval, Verdict, VerdictKind};
pub use crds::{all_crds, crd_file_name, render_crd_yaml};
pub use duration::{DURATION_PATTERN, Duration, ParseDurationError};
pub use order_system::*;
pub use remediation_policy::*;
pub use resources::{Compute, ContainerResources};
pub use signal::{Severity, Signal};
pub use silence::{Silence, SilenceSpec};
pub use target::{ParseTargetError, TARGET_PATTERN, Target};

/// The API group of every homeostat resource.
pub const GROUP: &str = "homeostat.dev";
/// The API version of every homeostat resource.
pub const VERSION: &str = "v1alpha1";
