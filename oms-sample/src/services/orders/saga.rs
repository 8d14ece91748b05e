//! The order saga: reserve stock → price → authorise payment → route
//! fulfillment → capture payment → commit stock → confirmed. Each step's
//! call is on disk (the order's `step`) before it goes out, and its answer
//! after. When a step is refused, loses its answer, or the saga runs out of
//! time, the order is settled (see `settle`): the callees are asked what they
//! hold for it, and it is finished or undone from what they say. Every call
//! carries the order id, so retries are idempotent.

use std::time::Duration;

use homeostat_api::routing::{PAYMENT_BACKENDS, PAYMENT_ROUTE};
use serde::de::DeserializeOwned;

use super::CreateOrderRequest;
use super::settle::{self, Callee, Done, Found, HeldPayment, Settlement};
use super::store::{Fact, Order, OrderState, OrderStore, Step};
use crate::client::{CallError, ServiceClient};
use crate::contract;
use crate::error::ApiError;
use crate::metrics::ServiceMetrics;
use crate::routing::LiveRouting;
use crate::services::fulfillment::{Shipment, ShipmentRequest};
use crate::services::inventory::{CommitRequest, Reservation, ReserveRequest};
use crate::services::payment::{Authorization, AuthorizeRequest};
use crate::services::tax::{Quote, QuoteRequest};

/// Tries for a forward step (the callee dedupes by order id).
const STEP_ATTEMPTS: u32 = 3;
/// Tries for a compensation or a lookup: settling matters more than latency.
const COMPENSATION_ATTEMPTS: u32 = 6;
/// The longest the forward steps may take before the order is settled
/// instead; well inside the saga's lease (`store::SAGA_LEASE`).
pub const SAGA_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct Saga {
    pub client: ServiceClient,
    pub routing: LiveRouting,
    pub store: OrderStore,
    pub metrics: ServiceMetrics,
}

/// Why the forward steps stopped: a code for metrics and a message for the order.
pub struct Failure {
    pub code: &'static str,
    pub detail: String,
    /// The step in flight was refused with an answer, so it did nothing;
    /// otherwise its callee is asked what it holds.
    pub refused: bool,
    /// Finishing a captured order is still worth trying (false once the
    /// stock commit itself was refused).
    pub finish_allowed: bool,
}

fn failure(code: &'static str, err: &CallError) -> Failure {
    Failure {
        code,
        detail: err.to_string(),
        refused: err.did_nothing(),
        finish_allowed: true,
    }
}

/// The saga does not go on with a step it could not record: the step was
/// done, and its callee is asked for it when the order is settled.
fn unrecorded(err: ApiError) -> Failure {
    Failure {
        code: "order_store_unavailable",
        detail: err.message,
        refused: false,
        finish_allowed: true,
    }
}

impl Saga {
    async fn record(
        &self,
        order_id: &str,
        fact: Fact<'_>,
        entry: Option<&str>,
    ) -> Result<(), Failure> {
        self.store
            .record(order_id, fact, entry)
            .await
            .map_err(unrecorded)
    }

    async fn log(&self, order_id: &str, entry: &str) -> Result<(), Failure> {
        self.store.log(order_id, entry).await.map_err(unrecorded)
    }

    /// Runs the saga for a stored pending order; returns it in its final
    /// state, or still pending when it could not be settled yet (a callee
    /// does not answer): the recovery loop settles it once its lease ends.
    pub async fn run(
        &self,
        order_id: &str,
        request: &CreateOrderRequest,
    ) -> Result<Order, ApiError> {
        let stopped =
            match tokio::time::timeout(SAGA_DEADLINE, self.forward(order_id, request)).await {
                Ok(Ok(())) => {
                    return self.conclude(order_id, OrderState::Confirmed, "").await;
                }
                Ok(Err(failure)) => failure,
                Err(_) => Failure {
                    code: "saga_deadline",
                    detail: format!("the steps did not finish within {SAGA_DEADLINE:?}"),
                    refused: false,
                    finish_allowed: true,
                },
            };
        self.settle(order_id, &stopped).await
    }

    /// Moves a pending order to its final state with that state's event.
    async fn conclude(
        &self,
        order_id: &str,
        state: OrderState,
        reason: &str,
    ) -> Result<Order, ApiError> {
        let (outcome, reason_text) = match state {
            OrderState::Confirmed => ("confirmed", None),
            _ => ("rejected", Some(reason)),
        };
        let order = self
            .store
            .transition(order_id, &[OrderState::Pending], state, reason_text)
            .await?
            .ok_or_else(|| ApiError::unavailable(format!("order {order_id} vanished")))?;
        // Count only the settlement that moved it (two may race after a lease ran out).
        if order.state == state {
            let code = reason.split(':').next().unwrap_or_default();
            self.metrics.outcome(outcome, code);
        }
        Ok(order)
    }

    /// Settles a pending order after `why`: asks the callees what they hold,
    /// then finishes or undoes it. Leaves it pending when a callee cannot say
    /// or an undo keeps failing; settling again later is safe.
    pub async fn settle(&self, order_id: &str, why: &Failure) -> Result<Order, ApiError> {
        let order = self
            .store
            .get(order_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no order {order_id}")))?;
        if order.state != OrderState::Pending {
            return Ok(order);
        }
        let reason = self
            .store
            .settling(order_id, &format!("{}: {}", why.code, why.detail))
            .await?;
        let doubted = if why.refused {
            &[][..]
        } else {
            settle::in_doubt(order.step)
        };
        let found = match self.find(&order, doubted).await {
            Ok(found) => found,
            Err(err) => {
                self.metrics.outcome("unsettled", "lookup_failed");
                self.note(order_id, &format!("could not settle yet: {err}"))
                    .await;
                return Ok(order);
            }
        };
        let mut finish_allowed = why.finish_allowed;
        loop {
            match settle::plan(&found, finish_allowed) {
                Settlement::Finish { reservation_id } => {
                    match self.finish(&order.id, &reservation_id).await {
                        Ok(()) => {
                            self.note(order_id, "payment found captured: committed stock")
                                .await;
                            return self.conclude(order_id, OrderState::Confirmed, "").await;
                        }
                        Err(err) if err.did_nothing() => {
                            self.note(order_id, &format!("stock commit refused: {err}"))
                                .await;
                            finish_allowed = false;
                        }
                        Err(err) => {
                            self.metrics.outcome("unsettled", "finish_failed");
                            self.note(order_id, &format!("could not finish yet: {err}"))
                                .await;
                            return Ok(order);
                        }
                    }
                }
                Settlement::Undo(steps) => {
                    if !self.compensate(order_id, steps).await {
                        self.metrics.outcome("unsettled", "compensation_failed");
                        return Ok(order);
                    }
                    return self.conclude(order_id, OrderState::Rejected, &reason).await;
                }
            }
        }
    }

    /// Commits the stock of a captured order where its shipment takes it from.
    async fn finish(&self, order_id: &str, reservation_id: &str) -> Result<(), CallError> {
        let shipment: Shipment = self
            .client
            .call_idempotent::<(), _>(
                &contract::FULFILLMENT_OF_ORDER,
                "fulfillment",
                &[order_id],
                None,
                COMPENSATION_ATTEMPTS,
            )
            .await?;
        self.commit_stock(reservation_id, &shipment, COMPENSATION_ATTEMPTS)
            .await
    }

    /// Takes the reserved units out of the warehouses the shipment ships from.
    async fn commit_stock(
        &self,
        reservation_id: &str,
        shipment: &Shipment,
        attempts: u32,
    ) -> Result<(), CallError> {
        let commit = CommitRequest {
            allocations: settle::allocations(shipment),
        };
        let _: Reservation = self
            .client
            .call_idempotent(
                &contract::INVENTORY_COMMIT,
                "inventory",
                &[reservation_id],
                Some(&commit),
                attempts,
            )
            .await?;
        Ok(())
    }

    /// What the callees hold for the order: its record, with each `doubted`
    /// callee asked by the order's id instead. The payment is asked of the
    /// provider recorded before the authorisation went out (none recorded:
    /// none was asked).
    async fn find(&self, order: &Order, doubted: &[Callee]) -> Result<Found, CallError> {
        let mut found = settle::recorded(order);
        for callee in doubted {
            match callee {
                Callee::Inventory => {
                    let reservation: Option<Reservation> = self
                        .lookup(&contract::INVENTORY_OF_ORDER, "inventory", &order.id)
                        .await?;
                    found.reservation = reservation.map(|r| (r.id, r.state));
                }
                Callee::Payment => {
                    let Some(provider) = &order.payment_provider else {
                        continue;
                    };
                    let authorization: Option<Authorization> = self
                        .lookup(&contract::PAYMENT_OF_ORDER, provider, &order.id)
                        .await?;
                    found.payment = authorization.map(|a| HeldPayment {
                        provider: provider.clone(),
                        authorization_id: a.id,
                        state: a.state,
                        refundable_cents: a.amount_cents.saturating_sub(a.refunded_cents),
                    });
                }
                Callee::Fulfillment => {
                    let shipment: Option<Shipment> = self
                        .lookup(&contract::FULFILLMENT_OF_ORDER, "fulfillment", &order.id)
                        .await?;
                    found.shipment = shipment.map(|s| (s.id, s.state));
                }
            }
        }
        Ok(found)
    }

    /// One lookup by order id: `None` when the callee holds nothing for it.
    async fn lookup<T: DeserializeOwned>(
        &self,
        call: &contract::ClientCall,
        peer: &str,
        order_id: &str,
    ) -> Result<Option<T>, CallError> {
        match self
            .client
            .call_idempotent::<(), T>(call, peer, &[order_id], None, COMPENSATION_ATTEMPTS)
            .await
        {
            Ok(found) => Ok(Some(found)),
            Err(CallError::Status { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// A saga log entry that is not a step: a failure to write it is logged,
    /// not fatal.
    async fn note(&self, order_id: &str, entry: &str) {
        if let Err(err) = self.store.log(order_id, entry).await {
            tracing::error!(order_id, entry, error = %err.message, "saga log entry not recorded");
        }
    }

    async fn forward(&self, order_id: &str, request: &CreateOrderRequest) -> Result<(), Failure> {
        let reserve = ReserveRequest {
            order_id: order_id.to_owned(),
            lines: request.lines.clone(),
        };
        let reservation: Reservation = self
            .client
            .call_idempotent(
                &contract::INVENTORY_RESERVE,
                "inventory",
                &[],
                Some(&reserve),
                STEP_ATTEMPTS,
            )
            .await
            .map_err(|e| match e.code() {
                Some("out_of_stock") => failure("out_of_stock", &e),
                _ => failure("inventory_unavailable", &e),
            })?;
        self.record(
            order_id,
            Fact::Reserved {
                reservation_id: &reservation.id,
            },
            Some(&format!("reserved {}", reservation.id)),
        )
        .await?;

        let quote_request = QuoteRequest {
            lines: request.lines.clone(),
            region: request.region.clone(),
            promo_code: request.promo_code.clone(),
        };
        let quote: Quote = self
            .client
            .call_idempotent(
                &contract::TAX_QUOTE,
                "tax",
                &[],
                Some(&quote_request),
                STEP_ATTEMPTS,
            )
            .await
            .map_err(|e| failure("pricing_failed", &e))?;
        let total = quote.total_cents;
        self.record(
            order_id,
            Fact::Priced { quote: &quote },
            Some(&format!("priced {total}")),
        )
        .await?;

        let provider = self.routing.pick(PAYMENT_ROUTE, PAYMENT_BACKENDS[0]);
        let authorize = AuthorizeRequest {
            order_id: order_id.to_owned(),
            amount_cents: total,
            currency: "EUR".to_owned(),
            card_token: request.card_token.clone(),
        };
        self.record(
            order_id,
            Fact::ProviderChosen {
                provider: &provider,
            },
            None,
        )
        .await?;
        let authorization: Authorization = self
            .client
            .call_idempotent(
                &contract::PAYMENT_AUTHORIZE,
                &provider,
                &[],
                Some(&authorize),
                STEP_ATTEMPTS,
            )
            .await
            .map_err(|e| match e.code() {
                Some("declined") => failure("payment_declined", &e),
                _ => failure("payment_unavailable", &e),
            })?;
        self.record(
            order_id,
            Fact::Authorized {
                authorization_id: &authorization.id,
            },
            Some(&format!("authorized {} at {provider}", authorization.id)),
        )
        .await?;

        let shipment_request = ShipmentRequest {
            order_id: order_id.to_owned(),
            lines: request.lines.clone(),
            region: request.region.clone(),
        };
        let shipment: Shipment = self
            .client
            .call_idempotent(
                &contract::FULFILLMENT_CREATE,
                "fulfillment",
                &[],
                Some(&shipment_request),
                STEP_ATTEMPTS,
            )
            .await
            .map_err(|e| match e.code() {
                Some("unroutable") => failure("unroutable", &e),
                _ => failure("fulfillment_unavailable", &e),
            })?;
        let from: Vec<&str> = shipment.legs.iter().map(|l| l.warehouse.as_str()).collect();
        self.record(
            order_id,
            Fact::Routed {
                shipment_id: &shipment.id,
            },
            Some(&format!("routed {} from {}", shipment.id, from.join("+"))),
        )
        .await?;

        let _: Authorization = self
            .client
            .call_idempotent::<(), _>(
                &contract::PAYMENT_CAPTURE,
                &provider,
                &[&authorization.id],
                None,
                STEP_ATTEMPTS,
            )
            .await
            .map_err(|e| match e.code() {
                Some("declined") => failure("payment_declined", &e),
                _ => failure("payment_unavailable", &e),
            })?;
        self.record(
            order_id,
            Fact::Captured {
                authorization_id: &authorization.id,
            },
            Some("captured payment"),
        )
        .await?;

        self.commit_stock(&reservation.id, &shipment, STEP_ATTEMPTS)
            .await
            .map_err(|e| {
                let failed = failure("stock_commit_failed", &e);
                // A refused commit is not retried; a lost answer is looked up.
                Failure {
                    finish_allowed: !failed.refused,
                    ..failed
                }
            })?;
        self.log(order_id, "committed stock").await?;
        Ok(())
    }

    /// Runs `steps`' undos in order; true when every one succeeded.
    async fn compensate(&self, order_id: &str, steps: Vec<Done>) -> bool {
        let mut all_undone = true;
        for step in steps {
            let undo = step.undo();
            let result: Result<serde_json::Value, _> = self
                .client
                .call_idempotent(
                    undo.call,
                    undo.peer,
                    &[undo.id],
                    undo.body.as_ref(),
                    COMPENSATION_ATTEMPTS,
                )
                .await;
            let entry = match result {
                Ok(_) => undo.what,
                Err(err) => {
                    all_undone = false;
                    self.metrics.outcome("compensation_failed", "saga");
                    tracing::error!(order_id, step = ?step, error = %err, "compensation failed");
                    format!("FAILED to undo ({}): {err}", undo.what)
                }
            };
            self.note(order_id, &entry).await;
        }
        all_undone
    }
}

/// Why a recovered saga is settled.
pub fn interrupted(step: Step) -> Failure {
    Failure {
        code: "saga_interrupted",
        detail: format!("its replica stopped or gave up at step {step:?}"),
        refused: false,
        finish_allowed: true,
    }
}
