//! The order saga: reserve stock → price → authorise payment → route
//! fulfillment → capture payment → commit stock → confirmed. When a step
//! fails, the steps already done are undone in reverse (cancel the shipment,
//! void the payment, release the stock) and the order ends `rejected` with the
//! reason. Every call carries the order id, so retries are idempotent.

use homeostat_api::routing::{PAYMENT_BACKENDS, PAYMENT_ROUTE};

use super::CreateOrderRequest;
use super::store::{Fact, Order, OrderState, OrderStore};
use crate::client::{CallError, ServiceClient};
use crate::contract;
use crate::error::ApiError;
use crate::metrics::ServiceMetrics;
use crate::routing::LiveRouting;
use crate::services::fulfillment::{Shipment, ShipmentRequest};
use crate::services::inventory::{Allocation, CommitRequest, Reservation, ReserveRequest};
use crate::services::payment::{Authorization, AuthorizeRequest, RefundRequest};
use crate::services::tax::{Quote, QuoteRequest};

/// Tries for a forward step (the callee dedupes by order id).
const STEP_ATTEMPTS: u32 = 3;
/// Tries for a compensation: undoing matters more than latency.
const COMPENSATION_ATTEMPTS: u32 = 6;

/// A step that has been done and must be undone if a later step fails.
#[derive(Debug, Clone)]
enum Done {
    Reserved {
        reservation_id: String,
    },
    Authorized {
        provider: String,
        authorization_id: String,
    },
    Routed {
        shipment_id: String,
    },
    Captured {
        provider: String,
        authorization_id: String,
        amount_cents: u64,
    },
}

#[derive(Clone)]
pub struct Saga {
    pub client: ServiceClient,
    pub routing: LiveRouting,
    pub store: OrderStore,
    pub metrics: ServiceMetrics,
}

/// Why the saga stopped: a code for metrics and a message for the order.
struct Failure {
    code: &'static str,
    detail: String,
}

fn failure(code: &'static str, err: &CallError) -> Failure {
    Failure {
        code,
        detail: err.to_string(),
    }
}

/// The saga does not go on with a step it could not record.
fn unrecorded(err: ApiError) -> Failure {
    Failure {
        code: "order_store_unavailable",
        detail: err.message,
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

    /// Runs the saga for a stored pending order; returns it in its final state.
    pub async fn run(
        &self,
        order_id: &str,
        request: &CreateOrderRequest,
    ) -> Result<Order, ApiError> {
        let mut done = Vec::new();
        let (state, reason) = match self.forward(order_id, request, &mut done).await {
            Ok(()) => {
                self.metrics.outcome("confirmed", "");
                (OrderState::Confirmed, None)
            }
            Err(failure) => {
                self.compensate(order_id, done).await;
                self.metrics.outcome("rejected", failure.code);
                let reason = format!("{}: {}", failure.code, failure.detail);
                (OrderState::Rejected, Some(reason))
            }
        };
        // The order's new state and its event commit together (the outbox).
        self.store
            .transition(order_id, &[OrderState::Pending], state, reason.as_deref())
            .await?
            .ok_or_else(|| ApiError::unavailable(format!("order {order_id} vanished")))
    }

    async fn forward(
        &self,
        order_id: &str,
        request: &CreateOrderRequest,
        done: &mut Vec<Done>,
    ) -> Result<(), Failure> {
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
        done.push(Done::Reserved {
            reservation_id: reservation.id.clone(),
        });
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
        done.push(Done::Authorized {
            provider: provider.clone(),
            authorization_id: authorization.id.clone(),
        });
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
        done.push(Done::Routed {
            shipment_id: shipment.id.clone(),
        });
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
        // A captured payment can no longer be voided: undoing it means a refund.
        done.retain(|d| !matches!(d, Done::Authorized { .. }));
        done.push(Done::Captured {
            provider: provider.clone(),
            authorization_id: authorization.id.clone(),
            amount_cents: total,
        });
        self.log(order_id, "captured payment").await?;

        let commit = CommitRequest {
            allocations: shipment
                .legs
                .iter()
                .flat_map(|leg| {
                    leg.lines.iter().map(|line| Allocation {
                        warehouse: leg.warehouse.clone(),
                        sku: line.sku.clone(),
                        quantity: line.quantity,
                    })
                })
                .collect(),
        };
        let _: Reservation = self
            .client
            .call_idempotent(
                &contract::INVENTORY_COMMIT,
                "inventory",
                &[&reservation.id],
                Some(&commit),
                STEP_ATTEMPTS,
            )
            .await
            .map_err(|e| failure("stock_commit_failed", &e))?;
        self.log(order_id, "committed stock").await?;
        Ok(())
    }

    async fn compensate(&self, order_id: &str, done: Vec<Done>) {
        for step in done.into_iter().rev() {
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
                    self.metrics.outcome("compensation_failed", "saga");
                    tracing::error!(order_id, step = ?step, error = %err, "compensation failed");
                    format!("FAILED to undo ({}): {err}", undo.what)
                }
            };
            if let Err(err) = self.store.log(order_id, &entry).await {
                tracing::error!(order_id, entry, error = %err.message, "saga log entry not recorded");
            }
        }
    }
}

/// The call that undoes a step, and how the saga log describes it.
struct Undo<'a> {
    what: String,
    call: &'static contract::ClientCall,
    peer: &'a str,
    id: &'a str,
    body: Option<RefundRequest>,
}

impl Done {
    fn undo(&self) -> Undo<'_> {
        match self {
            Done::Routed { shipment_id } => Undo {
                what: format!("cancelled shipment {shipment_id}"),
                call: &contract::FULFILLMENT_CANCEL,
                peer: "fulfillment",
                id: shipment_id,
                body: None,
            },
            Done::Authorized {
                provider,
                authorization_id,
            } => Undo {
                what: format!("voided {authorization_id} at {provider}"),
                call: &contract::PAYMENT_VOID,
                peer: provider,
                id: authorization_id,
                body: None,
            },
            Done::Reserved { reservation_id } => Undo {
                what: format!("released {reservation_id}"),
                call: &contract::INVENTORY_RELEASE,
                peer: "inventory",
                id: reservation_id,
                body: None,
            },
            Done::Captured {
                provider,
                authorization_id,
                amount_cents,
            } => Undo {
                what: format!("refunded {authorization_id} at {provider}"),
                call: &contract::PAYMENT_REFUND,
                peer: provider,
                id: authorization_id,
                body: Some(RefundRequest {
                    amount_cents: *amount_cents,
                    // Retries of this compensation never refund twice.
                    refund_id: Some(format!("saga-undo-capture-{authorization_id}")),
                }),
            },
        }
    }
}
