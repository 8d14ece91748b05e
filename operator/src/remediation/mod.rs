//! The RemediationPolicy controller.
//!
//! - [`plan`]: the decision, pure (read this file to know what the operator does).
//! - [`world`]: reads what the decision needs from the API server.
//! - [`execute`]: carries decisions out, recording before and after.
//! - [`record`]: status writes and Events.
//! - [`finalizer`]: deleting a policy that holds changes restores them first.
//! - [`controller`]: the kube-runtime wiring.

pub mod controller;
pub mod execute;
pub mod finalizer;
pub mod plan;
pub mod record;
pub mod world;
