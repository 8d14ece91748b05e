//! `orders`: the public API. Creates orders through the saga, answers
//! lookups, and opens returns.

pub mod outbox;
pub mod probes;
mod recovery;
mod returning;
mod saga;
mod settle;
pub mod store;

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::outbox::OutboxSignal;
use self::returning::{Outcome, Returning};
use self::saga::Saga;
use self::store::{Admission, Order, OrderState, OrderStore};
use super::returns::{ReturnAuthorization, ReturnRequest};
use super::{Line, validate_lines};
use crate::catalog;
use crate::client::ServiceClient;
use crate::error::{ApiError, ErrorBody, JsonBody};
use crate::routing::LiveRouting;
use crate::server::ServiceContext;
use homeostat_api::routing::PAYMENT_BACKENDS;

/// The header that makes order creation safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Hash)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub customer_id: String,
    pub lines: Vec<Line>,
    /// Shipping region: NORTH, CENTRAL, SOUTH or EAST.
    pub region: String,
    /// A tokenised card; `tok_declined` is always declined.
    pub card_token: String,
    #[serde(default)]
    pub promo_code: Option<String>,
}

impl CreateOrderRequest {
    /// Checks everything the saga relies on before any service is called.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.customer_id.is_empty() || self.customer_id.len() > 128 {
            return Err(ApiError::unprocessable(
                "invalid_customer",
                "customer_id must have 1 to 128 characters",
            ));
        }
        if self.card_token.is_empty() || self.card_token.len() > 128 {
            return Err(ApiError::unprocessable(
                "invalid_card",
                "card_token must have 1 to 128 characters",
            ));
        }
        validate_lines(&self.lines)?;
        if catalog::region(&self.region).is_none() {
            return Err(ApiError::unprocessable(
                "unknown_region",
                format!("unknown region {:?}", self.region),
            ));
        }
        if let Some(code) = &self.promo_code
            && !catalog::PROMOTIONS.iter().any(|(c, _)| c == code)
        {
            return Err(ApiError::unprocessable(
                "unknown_promo",
                format!("unknown promotion code {code:?}"),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReturnRequest {
    /// Lines to return; all of the order's lines when empty.
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoutingWeights {
    pub route: String,
    pub weights: std::collections::BTreeMap<String, u32>,
}

#[derive(Clone)]
struct AppState {
    store: OrderStore,
    saga: Saga,
    returning: Returning,
}

/// Place an order. Runs the saga to a terminal state before answering.
#[utoipa::path(post, path = "/v1/orders", request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the same order")),
    responses(
        (status = 201, description = "The order, confirmed or rejected with the reason", body = Order),
        (status = 200, description = "A retry: the order this key created", body = Order),
        (status = 202, description = "Still pending: a service did not answer; the order is settled later", body = Order),
        (status = 422, description = "Invalid order, or the key was used for another request", body = ErrorBody),
    )
)]
async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    request.validate()?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 128)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 128 visible ASCII characters",
                    )
                })?
                .to_owned(),
        ),
    };
    let order = Order {
        id: crate::db::new_id().to_string(),
        customer_id: request.customer_id.clone(),
        state: OrderState::Pending,
        reason: None,
        lines: request.lines.clone(),
        region: request.region.clone(),
        quote: None,
        payment_provider: None,
        authorization_id: None,
        reservation_id: None,
        shipment_id: None,
        step: store::Step::Reserve,
        saga_log: Vec::new(),
        created_at: jiff::Timestamp::now().to_string(),
    };
    let admission = state.store.admit(order, key.as_deref(), &request).await?;
    let order = match admission {
        Admission::Replay(existing) => return Ok((StatusCode::OK, Json(existing))),
        Admission::KeyReused => {
            return Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different order",
            ));
        }
        Admission::New(order) => order,
    };
    // The saga runs in its own task: a client that disconnects does not
    // leave the order half done.
    let saga = state.saga.clone();
    let id = order.id.clone();
    // It stays in the request's trace.
    let saga_run =
        async move { saga.run(&id, &request).await }.instrument(tracing::Span::current());
    let finished = tokio::spawn(saga_run)
        .await
        .map_err(|_| ApiError::unavailable("the order saga stopped unexpectedly"))??;
    // Still pending: a callee could not say what it holds; the order is
    // settled later, and a GET shows when.
    let status = if finished.state == OrderState::Pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(finished)))
}

/// Look an order up.
#[utoipa::path(get, path = "/v1/orders/{id}", params(("id" = String, Path, description = "Order id")), responses(
    (status = 200, description = "The order", body = Order),
    (status = 404, description = "No such order", body = ErrorBody),
))]
async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    state
        .store
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no order {id}")))
}

/// Return some or all of an order: refund and restock.
#[utoipa::path(post, path = "/v1/orders/{id}/returns", request_body = CreateReturnRequest, params(("id" = String, Path, description = "Order id")), responses(
    (status = 201, description = "Refunded and restocked: the order is returned", body = ReturnAuthorization),
    (status = 202, description = "The return is being carried out: the order is returned once its refund is recorded", body = ReturnAuthorization),
    (status = 404, description = "No such order", body = ErrorBody),
    (status = 409, description = "The order was not confirmed or shipped", body = ErrorBody),
    (status = 422, description = "Lines not in the order", body = ErrorBody),
    (status = 502, description = "Returns failed; the return is kept and completes without asking again (asking again sends the first request)", body = ErrorBody),
))]
async fn create_return(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<CreateReturnRequest>,
) -> Result<(StatusCode, Json<ReturnAuthorization>), ApiError> {
    let order = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
    if !matches!(order.state, OrderState::Confirmed | OrderState::Shipped) {
        return Err(ApiError::conflict(
            "not_returnable",
            format!(
                "order {id} is {:?}; only confirmed or shipped orders can be returned",
                order.state
            ),
        ));
    }
    let lines = if request.lines.is_empty() {
        order.lines.clone()
    } else {
        request.lines
    };
    validate_lines(&lines)?;
    for line in &lines {
        let ordered: u32 = order
            .lines
            .iter()
            .filter(|l| l.sku == line.sku)
            .map(|l| l.quantity)
            .sum();
        if line.quantity > ordered {
            return Err(ApiError::unprocessable(
                "not_in_order",
                format!(
                    "{} × {} was not ordered (ordered {ordered})",
                    line.quantity, line.sku
                ),
            ));
        }
    }
    let (Some(provider), Some(authorization_id), Some(quote)) = (
        order.payment_provider.clone(),
        order.authorization_id.clone(),
        order.quote.clone(),
    ) else {
        return Err(ApiError::conflict(
            "not_returnable",
            format!("order {id} has no captured payment"),
        ));
    };
    let value = |lines: &[Line]| -> u64 {
        lines
            .iter()
            .filter_map(|l| catalog::product(&l.sku).map(|p| p.price_cents * u64::from(l.quantity)))
            .sum()
    };
    // Refund the returned share of what was paid, tax and discount included.
    let refund_cents = share(quote.total_cents, value(&lines), value(&order.lines))?;
    let order_id = crate::db::parse_id(&id, "order")?;
    let request = ReturnRequest {
        order_id: id.clone(),
        provider,
        authorization_id,
        lines,
        refund_cents,
        reason: request.reason,
    };
    // Recorded first: from here on the return completes, asked again by
    // recovery if this request cannot finish it (returning.rs).
    let Some(standing) = state.returning.record(order_id, &request).await? else {
        return Err(ApiError::conflict(
            "not_returnable",
            format!("order {id} is no longer confirmed or shipped"),
        ));
    };
    match state.returning.carry_out(order_id, &standing).await {
        Outcome::Returned(rma) => Ok((StatusCode::CREATED, Json(rma))),
        // Returned only once the refund is recorded.
        Outcome::InProgress(rma) => Ok((StatusCode::ACCEPTED, Json(rma))),
        Outcome::Refused(err) | Outcome::Failed(err) => Err(err),
    }
}

/// `part / whole` of `total`, rounded down: never more than `total` when
/// `part <= whole`, computed without overflow.
fn share(total: u64, part: u64, whole: u64) -> Result<u64, ApiError> {
    let exact = u128::from(total) * u128::from(part) / u128::from(whole.max(1));
    u64::try_from(exact)
        .ok()
        .filter(|cents| *cents <= total)
        .ok_or_else(|| ApiError::unprocessable("invalid_refund", "refund exceeds the order total"))
}

/// The payment routing weights in force.
#[utoipa::path(get, path = "/v1/routing/payment", responses(
    (status = 200, description = "Weights per payment provider", body = RoutingWeights),
))]
async fn payment_routing(State(state): State<AppState>) -> Json<RoutingWeights> {
    Json(RoutingWeights {
        route: homeostat_api::routing::PAYMENT_ROUTE.to_owned(),
        weights: state
            .saga
            .routing
            .weights(homeostat_api::routing::PAYMENT_ROUTE),
    })
}

/// The orders API. `outbox` wakes the relay that publishes the events its
/// store writes (see [`outbox::start`]).
pub fn api(
    ctx: &ServiceContext,
    pool: sqlx::PgPool,
    outbox: OutboxSignal,
    client: ServiceClient,
    routing: LiveRouting,
    ship_delay: Duration,
) -> OpenApiRouter {
    ctx.metrics.register(
        "oms_routing_weight",
        "Payment routing weights in force",
        routing.weights_metric(),
    );
    let store = OrderStore::new(pool.clone(), outbox);
    let returning = Returning::new(pool, store.clone(), client.clone(), ctx.metrics.clone());
    returning.clone().spawn_recovery();
    probes::spawn(
        client.clone(),
        routing.clone(),
        PAYMENT_BACKENDS[0],
        probes::PROBE_INTERVAL,
    );
    let saga = Saga {
        client: client.clone(),
        routing,
        store: store.clone(),
        metrics: ctx.metrics.clone(),
    };
    recovery::spawn(saga.clone(), ship_delay);
    OpenApiRouter::new()
        .routes(routes!(create_order))
        .routes(routes!(get_order))
        .routes(routes!(create_return))
        .routes(routes!(payment_routing))
        .with_state(AppState {
            store,
            saga,
            returning,
        })
}
