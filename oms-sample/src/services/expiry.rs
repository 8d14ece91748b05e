//! Holds that no saga claims expire. A reservation or an authorisation is
//! made for a saga that finishes or undoes it within its lease (seconds); one
//! that outlives the hold TTL (minutes) belongs to no saga any more — an
//! answer that landed after its saga had settled without it, or an order lost
//! with its database — and is given back: reservations released,
//! authorisations voided. Every replica sweeps; the sweeps skip rows another
//! one has locked, so each hold expires once.

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::error::ApiError;
use crate::metrics::{OutcomeLabels, ServiceMetrics};

/// Ten minutes: far above a saga's lease and settling.
pub const DEFAULT_HOLD_TTL_MS: u64 = 600_000;
/// How often a replica looks for expired holds.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `sweep` (which gives back what expired and says how many) every
/// second until the runtime stops, counting in `oms_outcomes_total` with
/// outcome `expired` and `what` as the reason.
pub fn spawn<F, Fut>(what: &'static str, metrics: ServiceMetrics, mut sweep: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, ApiError>> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let expired = metrics
            .outcomes
            .get_or_create(&OutcomeLabels {
                service: metrics.service.clone(),
                outcome: "expired".to_owned(),
                reason: what.to_owned(),
            })
            .clone();
        loop {
            ticks.tick().await;
            match sweep().await {
                Ok(0) => {}
                Ok(count) => {
                    expired.inc_by(count);
                    tracing::info!(what, count, "holds no saga claimed expired");
                }
                Err(err) => tracing::warn!(what, error = %err.message, "expiry sweep failed"),
            }
        }
    });
}
