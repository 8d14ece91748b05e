//! The kinds of remediation step, one file each behind [`StepKind`]: which
//! objects a step changes, when a policy using it is invalid, its next step,
//! the guard of its own, and whether it puts things back — all pure — plus
//! reading and writing its target (the adapters the executor calls).
//!
//! Adding a kind (say `restart`) is a file here, a variant of `ActionKind`
//! and of `Target`, a field of `RemediationAction` with its schema rule, and
//! the arms the compiler then asks for below.

mod reroute;
mod scale;

use homeostat_api::{ActionKind, RemediationAction, Target};
use kube::Client;

use super::execute::ExecuteError;
use super::plan::{Change, Guard, Report, World};
use super::state::State;
use super::world::GatherError;

/// One kind of step, as the decision sees it.
pub trait StepKind {
    /// The objects the action may change for reports on `services`.
    fn targets(&self, services: &[&str]) -> Vec<Target>;
    /// Why a policy with this action cannot work in `world` (its policy
    /// lists `services` by name), if it cannot.
    fn invalid(&self, services: &[&str], world: &World) -> Option<String>;
    /// The next change for `report`, if the action answers it and can still
    /// change something.
    fn next(&self, report: &Report, world: &World) -> Option<Change>;
    /// A guard of this kind's own that stops `change`.
    fn guard(&self, change: &Change, world: &World) -> Option<Guard>;
    /// Whether the action puts `target` back once its report is resolved
    /// and stable; `None` when `target` is not one this action changes.
    fn restores(&self, target: &Target) -> Option<bool>;
}

/// The kind of `action` (the schema lets exactly one be set).
pub fn of(action: &RemediationAction) -> Option<&dyn StepKind> {
    match (&action.scale, &action.reroute) {
        (Some(scale), _) => Some(scale),
        (None, Some(reroute)) => Some(reroute),
        (None, None) => None,
    }
}

/// The Event reason for a step done.
pub fn done_reason(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Scale => "Scaled",
        ActionKind::Reroute => "Rerouted",
    }
}

/// A target as read: what it holds, and which object it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub state: State,
    /// The object's uid, where a kind keeps it (workloads).
    pub uid: Option<String>,
}

/// What `target` holds now, or `None` when it does not exist.
pub async fn read(
    client: &Client,
    namespace: &str,
    target: &Target,
) -> Result<Option<Observed>, GatherError> {
    match target.action_kind() {
        ActionKind::Scale => scale::read(client, namespace, target).await,
        ActionKind::Reroute => Ok(reroute::read(client, namespace, target)
            .await?
            .map(|state| Observed { state, uid: None })),
    }
}

/// Sets what `change` sets, only if its target still holds what the change
/// found (checked in the write itself).
pub async fn write(client: &Client, namespace: &str, change: &Change) -> Result<(), ExecuteError> {
    match change.kind() {
        ActionKind::Scale => scale::write(client, namespace, change).await,
        ActionKind::Reroute => reroute::write(client, namespace, change).await,
    }
}
