//! What every reconcile of the operator's controllers shares: it is timed
//! and counted for its controller (with what failed, when it failed), and a
//! success starts its object's failures over (see [`crate::backoff`]).

use std::future::Future;
use std::time::Instant;

use crate::backoff::Failures;
use crate::metrics::{Controller, OperatorMetrics};

/// Runs `reconcile` of the object `key` and records it.
pub async fn tracked<T, E>(
    controller: Controller,
    key: &str,
    metrics: &OperatorMetrics,
    failures: &Failures,
    error_label: fn(&E) -> &'static str,
    reconcile: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = reconcile.await;
    metrics.reconciled(
        controller,
        started.elapsed(),
        result.as_ref().err().map(error_label),
    );
    if result.is_ok() {
        failures.succeeded(key);
    }
    result
}
