//! The homeostat anomaly detector.
//!
//! `model` and `culprit` are pure: streaming scoring, baselines, debouncing
//! and localisation with no I/O. `csv` adapts the model to files for offline
//! evaluation (`homeostat-detector score-csv`).

pub mod access;
pub mod availability;
pub mod bench;
pub mod csv;
pub mod culprit;
pub mod daemon;
pub mod engine;
pub mod metrics;
pub mod model;
pub mod naming;
pub mod outage;
pub mod promql;
pub mod reports;
pub mod shared;
pub mod source;
