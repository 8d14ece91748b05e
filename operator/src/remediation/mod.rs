//! The RemediationPolicy controller.

pub mod plan;
