//! What a person on call does to the API server — acknowledge a report,
//! approve or reject a step, silence services, suspend or resume a policy — and a report's signal from
//! Prometheus. One library for every door a person comes through: the
//! `homeostat` command line (as the kubeconfig's identity), the operator's
//! web console (as the identity a TokenReview vouches for) and the demo's
//! on-call stand-in, so each act is the very same write.

pub mod ack;
pub mod actor;
pub mod age;
pub mod history;
pub mod silence;
pub mod suspend;
pub mod verdict;

pub use actor::Actor;
pub use age::age;
