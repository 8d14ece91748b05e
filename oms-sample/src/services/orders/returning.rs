//! The returns customers asked for, carried through to their refund, by
//! the request and, when it could not finish, by any replica's recovery.
//!
//! Rules:
//! 1. The return is recorded on the order (the request as sent to
//!    `returns`) before `returns` is called. The first request stands:
//!    asking again, and recovery, send that one.
//! 2. The order becomes Returned only once `returns` says the refund is
//!    recorded; the record then goes.
//! 3. A refund the provider refused drops the record: nothing moved, and
//!    the customer may ask again.
//! 4. Anything else (another request carrying it out, a timeout, a lost
//!    answer, `returns` down or killed mid-return) keeps it, and recovery
//!    asks `returns` again once it is due. `returns` resumes a claim nobody
//!    works on; its refund and restock are keyed by the order, so asking
//!    again never pays twice.
//! 5. `returns` is given longer than its own worst case
//!    ([`longest_carry_out`]): orders never gives up a return `returns` is
//!    still carrying out.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use sqlx::PgPool;
use sqlx::types::Json as DbJson;
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use super::store::{OrderState, OrderStore};
use crate::client::ServiceClient;
use crate::contract;
use crate::error::ApiError;
use crate::metrics::ServiceMetrics;
use crate::services::returns::{
    ReturnAuthorization, ReturnRequest, ReturnState, longest_carry_out,
};

/// How often recovery looks for returns due to be asked again.
pub const RETURNS_INTERVAL: Duration = Duration::from_secs(2);
/// Returns asked again at once by one replica; also the most claimed per pass.
const CONCURRENT_RETURNS: usize = 16;
/// After a failure that gave `returns`' claim up: ask again this soon.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// How a return ended for now.
#[derive(Debug)]
pub enum Outcome {
    /// Refunded and restocked: the order is returned.
    Returned(ReturnAuthorization),
    /// Claimed, under way elsewhere: asked again when due.
    InProgress(ReturnAuthorization),
    /// The provider refused the refund: nothing moved, the record is gone.
    Refused(ApiError),
    /// No answer to trust: kept, asked again when due.
    Failed(ApiError),
}

#[derive(Clone)]
pub struct Returning {
    pool: PgPool,
    store: OrderStore,
    client: ServiceClient,
    metrics: ServiceMetrics,
}

impl Returning {
    pub fn new(
        pool: PgPool,
        store: OrderStore,
        client: ServiceClient,
        metrics: ServiceMetrics,
    ) -> Self {
        Self {
            pool,
            store,
            client,
            metrics,
        }
    }

    /// How long `returns` is given for one request (rule 5).
    fn deadline(&self) -> Duration {
        longest_carry_out(self.client.timeout()) + Duration::from_secs(1)
    }

    /// Records `request` as the order's return unless one is (rule 1);
    /// returns the one that stands, or `None` when the order is not
    /// confirmed or shipped.
    pub async fn record(
        &self,
        order_id: uuid::Uuid,
        request: &ReturnRequest,
    ) -> Result<Option<ReturnRequest>, ApiError> {
        let standing: Option<(DbJson<ReturnRequest>,)> = sqlx::query_as(
            "UPDATE orders
             SET return_request = coalesce(return_request, $2),
                 return_due = now() + make_interval(secs => $3)
             WHERE id = $1 AND state IN ('confirmed', 'shipped')
             RETURNING return_request",
        )
        .bind(order_id)
        .bind(DbJson(request))
        .bind(self.deadline().as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(standing.map(|(request,)| request.0))
    }

    /// Asks `returns` to carry out the order's recorded `request`, and
    /// settles the order with the answer (rules 2–4).
    pub async fn carry_out(&self, order_id: uuid::Uuid, request: &ReturnRequest) -> Outcome {
        let answer: Result<ReturnAuthorization, _> = self
            .client
            .call_within(
                &contract::RETURNS_CREATE,
                "returns",
                &[],
                Some(request),
                self.deadline(),
            )
            .await;
        match answer {
            Ok(rma) if rma.state == ReturnState::Refunded => match self.returned(order_id).await {
                Ok(()) => Outcome::Returned(rma),
                Err(err) => Outcome::Failed(err),
            },
            Ok(rma) => Outcome::InProgress(rma),
            Err(e) if e.code() == Some("refund_refused") => {
                let refused = ApiError::conflict("refund_refused", e.to_string());
                match self.forget(order_id).await {
                    Ok(()) => Outcome::Refused(refused),
                    Err(err) => Outcome::Failed(err),
                }
            }
            Err(e) => {
                // `returns` gave its claim up, or never got the call: soon.
                let _ = self.due_in(order_id, RETRY_AFTER_FAILURE).await;
                Outcome::Failed(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "returns_failed",
                    format!("{e}; the return is kept and completes without asking again"),
                ))
            }
        }
    }

    /// Rule 2: the order is returned, with its event; then the record goes
    /// (a crash between the two leaves a record recovery clears: `returns`
    /// answers it as refunded).
    async fn returned(&self, order_id: uuid::Uuid) -> Result<(), ApiError> {
        self.store
            .transition(
                &order_id.to_string(),
                &[OrderState::Confirmed, OrderState::Shipped],
                OrderState::Returned,
                None,
            )
            .await?;
        sqlx::query(
            "UPDATE orders SET return_request = NULL, return_due = NULL
             WHERE id = $1 AND state = 'returned'",
        )
        .bind(order_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rule 3.
    async fn forget(&self, order_id: uuid::Uuid) -> Result<(), ApiError> {
        sqlx::query("UPDATE orders SET return_request = NULL, return_due = NULL WHERE id = $1")
            .bind(order_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn due_in(&self, order_id: uuid::Uuid, after: Duration) -> Result<(), ApiError> {
        sqlx::query(
            "UPDATE orders SET return_due = now() + make_interval(secs => $2)
             WHERE id = $1 AND return_request IS NOT NULL",
        )
        .bind(order_id)
        .bind(after.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes up to `limit` recorded returns that are due, each leased to the
    /// caller for one deadline; another replica asking meanwhile gets others.
    async fn claim_due(&self, limit: i64) -> Result<Vec<(uuid::Uuid, ReturnRequest)>, ApiError> {
        let due: Vec<(uuid::Uuid, DbJson<ReturnRequest>)> = sqlx::query_as(
            "UPDATE orders SET return_due = now() + make_interval(secs => $2)
             WHERE id IN (SELECT id FROM orders
                          WHERE return_request IS NOT NULL AND return_due <= now()
                          ORDER BY return_due LIMIT $1
                          FOR UPDATE SKIP LOCKED)
             RETURNING id, return_request",
        )
        .bind(limit)
        .bind(self.deadline().as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(due
            .into_iter()
            .map(|(id, request)| (id, request.0))
            .collect())
    }

    /// Recovery (rule 4): until the runtime stops, every
    /// [`RETURNS_INTERVAL`], asks `returns` again for the due returns, each
    /// in its own task.
    pub fn spawn_recovery(self) {
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(CONCURRENT_RETURNS));
            let mut ticks = tokio::time::interval(RETURNS_INTERVAL);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let free = permits.available_permits();
                if free == 0 {
                    continue;
                }
                let due = match self.claim_due(free as i64).await {
                    Ok(due) => due,
                    Err(err) => {
                        tracing::warn!(error = %err.message, "due returns not looked for");
                        continue;
                    }
                };
                for (order_id, request) in due {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        break;
                    };
                    let returning = self.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let outcome = returning.carry_out(order_id, &request).await;
                        tracing::info!(%order_id, ?outcome, "asked returns again");
                        let label = match outcome {
                            Outcome::Returned(_) => "returned",
                            Outcome::InProgress(_) => "return_in_progress",
                            Outcome::Refused(_) => "return_refused",
                            Outcome::Failed(_) => "return_kept",
                        };
                        returning.metrics.outcome("recovered", label);
                    });
                }
            }
        });
    }
}
