//! The work an `orders` replica does besides answering requests, kept in the
//! database so that no replica's death loses it: settling sagas whose
//! replica died or gave up (their lease ran out), and shipping confirmed
//! orders once the dispatch delay has passed. Every replica runs it; rows
//! are claimed with `FOR UPDATE SKIP LOCKED`, so each order is handled once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use super::saga::{self, Saga};

/// How often abandoned sagas and due shipments are looked for.
pub const RECOVERY_INTERVAL: Duration = Duration::from_millis(250);
/// Orders settled at once by one replica; also the most claimed per pass.
const CONCURRENT_SETTLES: usize = 64;
/// Orders shipped per statement.
const SHIP_BATCH: i64 = 256;

/// Runs until the runtime stops.
pub fn spawn(saga: Saga, ship_delay: Duration) {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(CONCURRENT_SETTLES));
        let mut ticks = tokio::time::interval(RECOVERY_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            settle_abandoned(&saga, &permits).await;
            if let Err(err) = saga.store.ship_due(ship_delay, SHIP_BATCH).await {
                tracing::warn!(error = %err.message, "due orders not marked shipped");
            }
        }
    });
}

/// Claims as many abandoned sagas as there are free permits and settles each
/// in its own task: a callee that does not answer for one order must not
/// hold up the others, nor this loop.
async fn settle_abandoned(saga: &Saga, permits: &Arc<Semaphore>) {
    let free = permits.available_permits();
    if free == 0 {
        return;
    }
    let claimed = match saga.store.claim_abandoned(free as i64).await {
        Ok(claimed) => claimed,
        Err(err) => {
            tracing::warn!(error = %err.message, "abandoned sagas not looked for");
            return;
        }
    };
    for id in claimed {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Its lease runs out again and a later pass takes it.
            break;
        };
        let saga = saga.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Some(order)) = saga.store.get(&id).await else {
                return;
            };
            tracing::info!(order_id = id, step = ?order.step, "settling an abandoned saga");
            match saga.settle(&id, &saga::interrupted(order.step)).await {
                Ok(order) => saga
                    .metrics
                    .outcome("recovered", &format!("{:?}", order.state).to_lowercase()),
                Err(err) => {
                    tracing::warn!(order_id = id, error = %err.message, "abandoned saga not settled");
                }
            }
        });
    }
}
