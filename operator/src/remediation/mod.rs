//! The RemediationPolicy controller.
//!
//! - [`plan`]: the decision, pure (read this file to know what the operator does).
//! - [`approval`]: steps waiting for a person (`requireApproval`), pure.
//! - [`kinds`]: each kind of step (scale, reroute) in a file of its own.
//! - [`state`]: what a target holds (replicas or weights), whatever its kind.
//! - [`world`]: reads what the decision needs from the API server.
//! - [`execute`]: carries decisions out, recording before and after.
//! - [`record`]: status writes and Events.
//! - [`finalizer`]: deleting a policy that holds changes restores them first.
//! - [`controller`]: the kube-runtime wiring.

pub mod approval;
pub mod controller;
pub mod execute;
pub mod finalizer;
pub mod kinds;
pub mod plan;
pub mod record;
pub mod state;
#[cfg(test)]
mod testing;
pub mod world;
