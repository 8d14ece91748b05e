//! The OrderSystem controller: one resource becomes the reference OMS.
//!
//! - [`render`]: the children, pure; the field-ownership rules are there.
//! - [`backing`]: the PostgreSQL and NATS server it may run, pure.
//! - [`pod_security`]: what every pod wears to pass Pod Security `restricted`.
//! - [`controller`]: applies them and reports status.

pub mod backing;
pub mod controller;
pub mod pod_security;
pub mod render;
