//! The homeostat anomaly detector.
//!
//! `model` and `culprit` are pure: streaming scoring, baselines, debouncing
//! and localisation with no I/O. `csv` adapts the model to files for offline
//! evaluation (`homeostat-detector score-csv`).

pub mod csv;
pub mod culprit;
pub mod engine;
pub mod model;
