//! `inventory`: stock per SKU and warehouse; reservations that hold stock for
//! an order until it is committed (shipped from named warehouses) or released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Line, validate_lines};
use crate::bounded::BoundedMap;
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestockResult {
    pub restocked_units: u64,
}

/// The stock ledger. Available units of a SKU = on hand in all warehouses − held.
#[derive(Debug)]
pub struct Ledger {
    on_hand: BTreeMap<(String, String), u64>,
    held: BTreeMap<String, u64>,
    reservations: BoundedMap<String, Reservation>,
    by_order: BoundedMap<String, String>,
    next_id: u64,
}

impl Default for Ledger {
    fn default() -> Self {
        let on_hand = catalog::PRODUCTS
            .iter()
            .flat_map(|p| {
                catalog::WAREHOUSES.iter().map(move |w| {
                    (
                        (p.sku.to_owned(), w.id.to_owned()),
                        catalog::initial_stock(p.sku, w.id),
                    )
                })
            })
            .collect();
        Self {
            on_hand,
            held: BTreeMap::new(),
            reservations: BoundedMap::default(),
            by_order: BoundedMap::default(),
            next_id: 0,
        }
    }
}

impl Ledger {
    fn available(&self, sku: &str) -> u64 {
        let on_hand: u64 = self
            .on_hand
            .iter()
            .filter(|((s, _), _)| s == sku)
            .map(|(_, units)| *units)
            .sum();
        on_hand.saturating_sub(self.held.get(sku).copied().unwrap_or(0))
    }

    /// Holds stock for an order; all lines or none. Idempotent per order.
    pub fn reserve(&mut self, request: &ReserveRequest) -> Result<(Reservation, bool), ApiError> {
        if request.order_id.is_empty() || request.order_id.len() > 128 {
            return Err(ApiError::unprocessable(
                "invalid_order_id",
                "order_id must have 1 to 128 characters",
            ));
        }
        validate_lines(&request.lines)?;
        if let Some(existing) = self
            .by_order
            .get(&request.order_id)
            .and_then(|id| self.reservations.get(id))
        {
            return Ok((existing.clone(), false));
        }
        let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
        for line in &request.lines {
            *wanted.entry(&line.sku).or_default() += u64::from(line.quantity);
        }
        for (sku, units) in &wanted {
            let available = self.available(sku);
            if available < *units {
                return Err(ApiError::conflict(
                    "out_of_stock",
                    format!("{sku}: {units} wanted, {available} available"),
                ));
            }
        }
        for (sku, units) in wanted {
            *self.held.entry(sku.to_owned()).or_default() += units;
        }
        self.next_id += 1;
        let reservation = Reservation {
            id: format!("res-{}", self.next_id),
            order_id: request.order_id.clone(),
            lines: request.lines.clone(),
            state: ReservationState::Held,
        };
        self.by_order
            .insert(reservation.order_id.clone(), reservation.id.clone());
        self.reservations
            .insert(reservation.id.clone(), reservation.clone());
        Ok((reservation, true))
    }

    /// Gives held stock back. Idempotent; a committed reservation cannot be released.
    pub fn release(&mut self, id: &str) -> Result<Reservation, ApiError> {
        let reservation = self
            .reservations
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no reservation {id}")))?;
        match reservation.state {
            ReservationState::Released => {}
            ReservationState::Committed => {
                return Err(ApiError::conflict(
                    "already_committed",
                    format!("reservation {id} is committed"),
                ));
            }
            ReservationState::Held => {
                reservation.state = ReservationState::Released;
                for line in &reservation.lines {
                    if let Some(held) = self.held.get_mut(&line.sku) {
                        *held = held.saturating_sub(u64::from(line.quantity));
                    }
                }
            }
        }
        Ok(reservation.clone())
    }

    /// Takes the held units out of the named warehouses. Idempotent.
    pub fn commit(
        &mut self,
        id: &str,
        allocations: &[Allocation],
    ) -> Result<Reservation, ApiError> {
        let reservation = self
            .reservations
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no reservation {id}")))?
            .clone();
        match reservation.state {
            ReservationState::Committed => return Ok(reservation),
            ReservationState::Released => {
                return Err(ApiError::conflict(
                    "already_released",
                    format!("reservation {id} was released"),
                ));
            }
            ReservationState::Held => {}
        }
        let mut allocated: BTreeMap<&str, u64> = BTreeMap::new();
        for a in allocations {
            *allocated.entry(&a.sku).or_default() += u64::from(a.quantity);
            let on_hand = self
                .on_hand
                .get(&(a.sku.clone(), a.warehouse.clone()))
                .copied();
            if on_hand.is_none_or(|units| units < u64::from(a.quantity)) {
                return Err(ApiError::conflict(
                    "allocation_unavailable",
                    format!("{} has fewer than {} of {}", a.warehouse, a.quantity, a.sku),
                ));
            }
        }
        let mut reserved: BTreeMap<&str, u64> = BTreeMap::new();
        for line in &reservation.lines {
            *reserved.entry(&line.sku).or_default() += u64::from(line.quantity);
        }
        if allocated != reserved {
            return Err(ApiError::unprocessable(
                "allocation_mismatch",
                "allocations must cover exactly the reserved units",
            ));
        }
        for a in allocations {
            if let Some(units) = self.on_hand.get_mut(&(a.sku.clone(), a.warehouse.clone())) {
                *units -= u64::from(a.quantity);
            }
            if let Some(held) = self.held.get_mut(&a.sku) {
                *held = held.saturating_sub(u64::from(a.quantity));
            }
        }
        let stored = self
            .reservations
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no reservation {id}")))?;
        stored.state = ReservationState::Committed;
        Ok(stored.clone())
    }

    pub fn levels(&self, skus: &[String]) -> Result<StockLevels, ApiError> {
        if skus.len() > super::MAX_LINES {
            return Err(ApiError::unprocessable(
                "too_many_skus",
                "at most 50 SKUs per query",
            ));
        }
        let levels = self
            .on_hand
            .iter()
            .filter(|((sku, _), _)| skus.contains(sku))
            .map(|((sku, warehouse), units)| StockLevel {
                sku: sku.clone(),
                warehouse: warehouse.clone(),
                on_hand: *units,
            })
            .collect();
        Ok(StockLevels { levels })
    }

    pub fn restock(&mut self, request: &RestockRequest) -> Result<RestockResult, ApiError> {
        validate_lines(&request.lines)?;
        let warehouse = request.warehouse.as_deref().unwrap_or("WH-CENTRAL");
        if !catalog::WAREHOUSES.iter().any(|w| w.id == warehouse) {
            return Err(ApiError::unprocessable(
                "unknown_warehouse",
                format!("unknown warehouse {warehouse:?}"),
            ));
        }
        let mut total = 0;
        for line in &request.lines {
            *self
                .on_hand
                .entry((line.sku.clone(), warehouse.to_owned()))
                .or_default() += u64::from(line.quantity);
            total += u64::from(line.quantity);
        }
        Ok(RestockResult {
            restocked_units: total,
        })
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn ledger(state: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    crate::sync::lock(state)
}

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
    let (reservation, created) = ledger(&state).reserve(&request)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reservation)))
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
    ledger(&state)
        .reservations
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no reservation {id}")))
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
    ledger(&state).release(&id).map(Json)
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
    ledger(&state).commit(&id, &request.allocations).map(Json)
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
    ledger(&state).levels(&query.skus).map(Json)
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
    ledger(&state).restock(&request).map(Json)
}

pub fn api() -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(reserve))
        .routes(routes!(get_reservation))
        .routes(routes!(release))
        .routes(routes!(commit))
        .routes(routes!(query_stock))
        .routes(routes!(restock))
        .with_state(Shared::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserve_request(order: &str, sku: &str, quantity: u32) -> ReserveRequest {
        ReserveRequest {
            order_id: order.to_owned(),
            lines: vec![Line {
                sku: sku.to_owned(),
                quantity,
            }],
        }
    }

    #[test]
    fn reservation_is_idempotent_per_order() {
        let mut ledger = Ledger::default();
        let (first, created) = ledger
            .reserve(&reserve_request("o1", "SKU-MUG", 2))
            .expect("reserve");
        assert!(created);
        let (again, created) = ledger
            .reserve(&reserve_request("o1", "SKU-MUG", 2))
            .expect("reserve");
        assert!(!created);
        assert_eq!(first, again);
        assert_eq!(ledger.held["SKU-MUG"], 2);
    }

    #[test]
    fn out_of_stock_holds_nothing() {
        let mut ledger = Ledger::default();
        let err = ledger
            .reserve(&reserve_request("o1", "SKU-LAMP-RARE", 1))
            .expect_err("no stock");
        assert_eq!(err.code, "out_of_stock");
        assert!(ledger.held.is_empty());
        assert!(ledger.by_order.is_empty());
    }

    #[test]
    fn release_returns_stock_and_commit_takes_it_from_the_warehouse() {
        let mut ledger = Ledger::default();
        let before = ledger.available("SKU-MUG");
        let (r, _) = ledger
            .reserve(&reserve_request("o1", "SKU-MUG", 3))
            .expect("reserve");
        assert_eq!(ledger.available("SKU-MUG"), before - 3);
        ledger.release(&r.id).expect("release");
        ledger.release(&r.id).expect("release is idempotent");
        assert_eq!(ledger.available("SKU-MUG"), before);

        let (r, _) = ledger
            .reserve(&reserve_request("o2", "SKU-MUG", 3))
            .expect("reserve");
        let allocations = [Allocation {
            warehouse: "WH-NORTH".into(),
            sku: "SKU-MUG".into(),
            quantity: 3,
        }];
        let north = ledger.on_hand[&("SKU-MUG".to_owned(), "WH-NORTH".to_owned())];
        ledger.commit(&r.id, &allocations).expect("commit");
        assert_eq!(
            ledger.on_hand[&("SKU-MUG".to_owned(), "WH-NORTH".to_owned())],
            north - 3
        );
        assert_eq!(ledger.available("SKU-MUG"), before - 3);
        assert_eq!(
            ledger.release(&r.id).map_err(|e| e.code),
            Err("already_committed")
        );
    }

    #[test]
    fn commit_must_allocate_exactly_the_reserved_units() {
        let mut ledger = Ledger::default();
        let (r, _) = ledger
            .reserve(&reserve_request("o1", "SKU-MUG", 3))
            .expect("reserve");
        let short = [Allocation {
            warehouse: "WH-NORTH".into(),
            sku: "SKU-MUG".into(),
            quantity: 2,
        }];
        assert_eq!(
            ledger.commit(&r.id, &short).map_err(|e| e.code),
            Err("allocation_mismatch")
        );
    }
}
