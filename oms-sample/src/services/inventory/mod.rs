//! `inventory`: stock per SKU and warehouse; reservations that hold stock for
//! an order until it is committed (shipped from named warehouses) or released.

pub mod ledger;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Line, validate_lines};
use crate::catalog;
use crate::error::{ApiError, ErrorBody, JsonBody};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// The order the stock is held for; a second reservation for it returns the first.
    pub order_id: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Held,
    Released,
    Committed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    pub id: String,
    pub order_id: String,
    pub lines: Vec<Line>,
    pub state: ReservationState,
}

/// Units of one SKU taken from one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub warehouse: String,
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// Where the reserved units ship from.
    pub allocations: Vec<Allocation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    pub skus: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockLevel {
    pub sku: String,
    pub warehouse: String,
    /// Units on hand in that warehouse.
    pub on_hand: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StockLevels {
    pub levels: Vec<StockLevel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    /// Returned or delivered units.
    pub lines: Vec<Line>,
    /// Where they arrive; defaults to WH-CENTRAL.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// Names this restock: a retry with the same id adds nothing more.
    #[serde(default)]
    pub restock_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestockResult {
    pub restocked_units: u64,
}

type Shared = PgPool;

/// Hold stock for an order.
#[utoipa::path(post, path = "/v1/reservations", request_body = ReserveRequest, responses(
    (status = 201, description = "Stock held", body = Reservation),
    (status = 200, description = "The order's existing reservation", body = Reservation),
    (status = 409, description = "Not enough stock", body = ErrorBody),
    (status = 422, description = "Invalid basket", body = ErrorBody),
))]
async fn reserve(
    State(state): State<Shared>,
    JsonBody(request): JsonBody<ReserveRequest>,
) -> Result<(StatusCode, Json<Reservation>), ApiError> {
    crate::services::validate_name(crate::services::NameField::OrderId, &request.order_id)?;
    validate_lines(&request.lines)?;
    let (reservation, created) = ledger::reserve(&state, &request.order_id, &request.lines).await?;
    Ok((super::created_or_found(created), Json(reservation)))
}

/// Look a reservation up.
#[utoipa::path(get, path = "/v1/reservations/{id}", params(("id" = String, Path, description = "Reservation id")), responses(
    (status = 200, description = "The reservation", body = Reservation),
    (status = 404, description = "No such reservation", body = ErrorBody),
))]
async fn get_reservation(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, ApiError> {
    ledger::get(&state, &id).await.map(Json)
}

/// The reservation made for an order, if any: how a saga that lost a reply
/// finds out whether stock was held.
#[utoipa::path(get, path = "/v1/reservations/by-order/{order_id}", params(("order_id" = String, Path, description = "Order id")), responses(
    (status = 200, description = "The order's reservation", body = Reservation),
    (status = 404, description = "No reservation for this order", body = ErrorBody),
))]
async fn reservation_of_order(
    State(state): State<Shared>,
    Path(order_id): Path<String>,
) -> Result<Json<Reservation>, ApiError> {
    ledger::by_order(&state, &order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no reservation for order {order_id}")))
}

/// Release held stock.
#[utoipa::path(post, path = "/v1/reservations/{id}/release", params(("id" = String, Path, description = "Reservation id")), responses(
    (status = 200, description = "Released", body = Reservation),
    (status = 404, description = "No such reservation", body = ErrorBody),
    (status = 409, description = "Already committed", body = ErrorBody),
))]
async fn release(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Reservation>, ApiError> {
    ledger::release(&state, &id).await.map(Json)
}

/// Commit held stock to the warehouses it ships from.
#[utoipa::path(post, path = "/v1/reservations/{id}/commit", request_body = CommitRequest, params(("id" = String, Path, description = "Reservation id")), responses(
    (status = 200, description = "Committed", body = Reservation),
    (status = 404, description = "No such reservation", body = ErrorBody),
    (status = 409, description = "Released, or a warehouse lacks the units", body = ErrorBody),
    (status = 422, description = "Allocations do not match the reservation", body = ErrorBody),
))]
async fn commit(
    State(state): State<Shared>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<CommitRequest>,
) -> Result<Json<Reservation>, ApiError> {
    ledger::commit(&state, &id, &request.allocations)
        .await
        .map(Json)
}

/// Units on hand per warehouse.
#[utoipa::path(post, path = "/v1/stock/query", request_body = StockQuery, responses(
    (status = 200, description = "Stock per SKU and warehouse", body = StockLevels),
    (status = 422, description = "Too many SKUs", body = ErrorBody),
))]
async fn query_stock(
    State(state): State<Shared>,
    JsonBody(query): JsonBody<StockQuery>,
) -> Result<Json<StockLevels>, ApiError> {
    if query.skus.len() > super::MAX_LINES {
        return Err(ApiError::unprocessable(
            "too_many_skus",
            "at most 50 SKUs per query",
        ));
    }
    ledger::levels(&state, &query.skus).await.map(Json)
}

/// Put units back on hand (returns, deliveries).
#[utoipa::path(post, path = "/v1/restock", request_body = RestockRequest, responses(
    (status = 200, description = "Restocked", body = RestockResult),
    (status = 422, description = "Invalid lines or warehouse", body = ErrorBody),
))]
async fn restock(
    State(state): State<Shared>,
    JsonBody(request): JsonBody<RestockRequest>,
) -> Result<Json<RestockResult>, ApiError> {
    validate_lines(&request.lines)?;
    let warehouse = request.warehouse.as_deref().unwrap_or("WH-CENTRAL");
    if !catalog::WAREHOUSES.iter().any(|w| w.id == warehouse) {
        return Err(ApiError::unprocessable(
            "unknown_warehouse",
            format!("unknown warehouse {warehouse:?}"),
        ));
    }
    if let Some(restock_id) = &request.restock_id {
        super::validate_name(crate::services::NameField::RestockId, restock_id)?;
    }
    let restocked_units = ledger::restock(
        &state,
        &request.lines,
        warehouse,
        request.restock_id.as_deref(),
    )
    .await?;
    Ok(Json(RestockResult { restocked_units }))
}

pub fn api(pool: PgPool) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(reserve))
        .routes(routes!(get_reservation))
        .routes(routes!(reservation_of_order))
        .routes(routes!(release))
        .routes(routes!(commit))
        .routes(routes!(query_stock))
        .routes(routes!(restock))
        .with_state(pool)
}
