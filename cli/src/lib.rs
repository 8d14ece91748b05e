//! What a person on call does to the API server, as `homeostat` does it:
//! acknowledge a report, approve or reject a step, silence a service. A library too, so the
//! demo's on-call stand-in acts through the very same writes.

pub mod ack;
pub mod history;
pub mod on_call;
pub mod silence;
pub mod verdict;
