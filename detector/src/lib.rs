//! The homeostat anomaly detector.
//!
//! `model` is pure: streaming per-series scoring with no I/O, causal by
//! construction (the score at t reads only values up to t). `csv` adapts it
//! to files for offline evaluation (`homeostat-detector score-csv`).

pub mod csv;
pub mod model;
