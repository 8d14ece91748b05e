//! The OrderSystem controller: one resource becomes the reference OMS.
//!
//! - [`render`]: the children, pure; the field-ownership rules are there.
//! - [`controller`]: applies them and reports status.

pub mod controller;
pub mod render;
