//! Fixtures for the decision's unit tests.

use std::collections::BTreeSet;

use homeostat_api::{ReportState, Severity, Signal};

use super::plan::Report;

/// An open, critical p99 report on `service`, opened at `opened_at`.
pub fn open_report(service: &str, opened_at: i64) -> Report {
    Report {
        name: format!("{service}-latency-p99-1"),
        service: service.into(),
        signal: Signal::LatencyP99,
        state: ReportState::Open,
        score: 0.95,
        severity: Severity::Critical,
        opened_at,
        resolved_at: None,
        recorded: BTreeSet::new(),
        degraded: false,
        verdicts: Vec::new(),
    }
}
