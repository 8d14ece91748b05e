//! The homeostat operator.
//!
//! `remediation::plan` is the decision of the RemediationPolicy controller as
//! one pure function; the rest of `remediation` gathers what it needs from the
//! API server and carries its decisions out. `router` holds the traffic
//! routers behind one small trait. `console` is the web console for people
//! on call (`--console-listen`).

pub mod backoff;
pub mod console;
pub mod crash;
pub mod decode;
pub mod fence;
pub mod metrics;
pub mod order_system;
pub mod reconciled;
pub mod remediation;
pub mod router;
pub mod run;
pub mod scope;
pub mod writes;
