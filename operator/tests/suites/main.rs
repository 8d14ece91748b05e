//! The operator against a real kube-apiserver (and, where a test needs
//! them, a real Prometheus, Chromium and the operator's own process), one
//! module a topic. One test executable: one link, and the helpers in
//! `common/` compiled once.

mod approval;
mod common;
mod console;
mod console_browser;
mod deploy;
mod faults;
mod order_system;
mod remediation;
mod telemetry;
mod undecodable;
