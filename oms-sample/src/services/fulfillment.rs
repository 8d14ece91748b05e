//! `fulfillment`: the routing engine. Picks the warehouse(s) that ship an
//! order at the lowest total cost to serve — carrier rate × distance × weight,
//! handling per shipment, a penalty per extra shipment when splitting — from
//! live stock, and records the shipment.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json as DbJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::inventory::{StockLevels, StockQuery};
use super::{Line, validate_lines};
use crate::catalog::{self, Warehouse};
use crate::client::{CallError, ServiceClient};
use crate::contract;
use crate::db::{self, from_bigint, parse_id, parse_state, state_text, to_bigint};
use crate::error::{ApiError, ErrorBody, JsonBody};

/// Extra cost of each shipment beyond the first, in cents: customers and
/// carriers both pay for split deliveries.
pub const SPLIT_PENALTY_CENTS: u64 = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentRequest {
    /// One shipment per order: a repeated request returns the first.
    pub order_id: String,
    pub lines: Vec<Line>,
    /// Destination region code.
    pub region: String,
}

/// The part of a shipment that leaves one warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Leg {
    pub warehouse: String,
    pub lines: Vec<Line>,
    pub cost_cents: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentState {
    Planned,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Shipment {
    pub id: String,
    pub order_id: String,
    pub legs: Vec<Leg>,
    /// Sum of the legs plus split penalties.
    pub total_cost_cents: u64,
    pub state: ShipmentState,
}

fn distance_km(w: &Warehouse, x: f64, y: f64) -> f64 {
    ((w.x_km - x).powi(2) + (w.y_km - y).powi(2)).sqrt()
}

fn leg_cost(w: &Warehouse, x: f64, y: f64, lines: &[Line]) -> u64 {
    let kg: f64 = lines
        .iter()
        .filter_map(|l| {
            catalog::product(&l.sku)
                .map(|p| f64::from(p.weight_grams) * f64::from(l.quantity) / 1000.0)
        })
        .sum();
    w.handling_cents + (w.carrier_cents_per_km_kg * distance_km(w, x, y) * kg).round() as u64
}

/// The cheapest way to ship `lines` to `region` given units on hand per
/// (SKU, warehouse). Each line ships whole from one warehouse.
pub fn plan(
    lines: &[Line],
    region: &str,
    stock: &BTreeMap<(String, String), u64>,
) -> Result<(Vec<Leg>, u64), ApiError> {
    validate_lines(lines)?;
    let destination = catalog::region(region).ok_or_else(|| {
        ApiError::unprocessable("unknown_region", format!("unknown region {region:?}"))
    })?;
    let (x, y) = (destination.x_km, destination.y_km);
    let has = |w: &Warehouse, line: &Line| {
        stock
            .get(&(line.sku.clone(), w.id.to_owned()))
            .is_some_and(|units| *units >= u64::from(line.quantity))
    };

    // Whole order from one warehouse.
    let single = catalog::WAREHOUSES
        .iter()
        .filter(|w| lines.iter().all(|l| has(w, l)))
        .map(|w| {
            let cost = leg_cost(w, x, y, lines);
            (
                vec![Leg {
                    warehouse: w.id.to_owned(),
                    lines: lines.to_vec(),
                    cost_cents: cost,
                }],
                cost,
            )
        })
        .min_by_key(|(_, cost)| *cost);

    // Each line from its cheapest warehouse, paying for every extra shipment.
    let mut by_warehouse: BTreeMap<&str, (&Warehouse, Vec<Line>)> = BTreeMap::new();
    for line in lines {
        let cheapest = catalog::WAREHOUSES
            .iter()
            .filter(|w| has(w, line))
            .min_by_key(|w| leg_cost(w, x, y, std::slice::from_ref(line)))
            .ok_or_else(|| {
                ApiError::conflict(
                    "unroutable",
                    format!("no warehouse has {} of {}", line.quantity, line.sku),
                )
            })?;
        by_warehouse
            .entry(cheapest.id)
            .or_insert_with(|| (cheapest, Vec::new()))
            .1
            .push(line.clone());
    }
    let legs: Vec<Leg> = by_warehouse
        .into_values()
        .map(|(w, lines)| Leg {
            warehouse: w.id.to_owned(),
            cost_cents: leg_cost(w, x, y, &lines),
            lines,
        })
        .collect();
    let split_cost = legs.iter().map(|l| l.cost_cents).sum::<u64>()
        + SPLIT_PENALTY_CENTS * (legs.len() as u64 - 1);
    let split = (legs, split_cost);

    Ok(match single {
        Some(single) if single.1 <= split.1 => single,
        _ => split,
    })
}

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    inventory: ServiceClient,
}

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    id: uuid::Uuid,
    order_id: String,
    legs: DbJson<Vec<Leg>>,
    total_cost_cents: i64,
    state: String,
}

impl ShipmentRow {
    fn into_shipment(self) -> Result<Shipment, ApiError> {
        Ok(Shipment {
            id: self.id.to_string(),
            order_id: self.order_id,
            legs: self.legs.0,
            total_cost_cents: from_bigint(self.total_cost_cents),
            state: parse_state(&self.state)?,
        })
    }
}

macro_rules! shipment_columns {
    () => {
        "id, order_id, legs, total_cost_cents, state"
    };
}

async fn shipment_of_order(pool: &PgPool, order_id: &str) -> Result<Option<Shipment>, ApiError> {
    sqlx::query_as::<_, ShipmentRow>(concat!(
        "SELECT ",
        shipment_columns!(),
        " FROM shipments WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(pool)
    .await?
    .map(ShipmentRow::into_shipment)
    .transpose()
}

fn upstream(err: CallError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "inventory_unavailable",
        err.to_string(),
    )
}

/// Plan and record the shipment of an order.
#[utoipa::path(post, path = "/v1/shipments", request_body = ShipmentRequest, responses(
    (status = 201, description = "Planned", body = Shipment),
    (status = 200, description = "The order's existing shipment", body = Shipment),
    (status = 409, description = "No warehouse can ship a line", body = ErrorBody),
    (status = 422, description = "Invalid request", body = ErrorBody),
    (status = 502, description = "Inventory unavailable", body = ErrorBody),
))]
async fn create_shipment(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ShipmentRequest>,
) -> Result<(StatusCode, Json<Shipment>), ApiError> {
    super::validate_name(crate::services::NameField::OrderId, &request.order_id)?;
    validate_lines(&request.lines)?;
    if let Some(existing) = shipment_of_order(&state.pool, &request.order_id).await? {
        return Ok((StatusCode::OK, Json(existing)));
    }
    let query = StockQuery {
        skus: request.lines.iter().map(|l| l.sku.clone()).collect(),
    };
    let levels: StockLevels = state
        .inventory
        .call_idempotent(
            &contract::INVENTORY_STOCK,
            "inventory",
            &[],
            Some(&query),
            3,
        )
        .await
        .map_err(upstream)?;
    let stock = levels
        .levels
        .into_iter()
        .map(|l| ((l.sku, l.warehouse), l.on_hand))
        .collect();
    let (legs, total) = plan(&request.lines, &request.region, &stock)?;

    // One shipment per order, whichever replica plans it first.
    let inserted = sqlx::query_as::<_, ShipmentRow>(concat!(
        "INSERT INTO shipments (id, order_id, legs, total_cost_cents, state)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING ",
        shipment_columns!(),
        ""
    ))
    .bind(db::new_id())
    .bind(&request.order_id)
    .bind(DbJson(&legs))
    .bind(to_bigint(total, "total_cost_cents")?)
    .bind(state_text(ShipmentState::Planned))
    .fetch_optional(&state.pool)
    .await?;
    match inserted {
        Some(row) => Ok((StatusCode::CREATED, Json(row.into_shipment()?))),
        None => shipment_of_order(&state.pool, &request.order_id)
            .await?
            .map(|existing| (StatusCode::OK, Json(existing)))
            .ok_or_else(|| ApiError::unavailable("the order's shipment vanished; retry")),
    }
}

/// The shipment planned for an order, if any: how a saga that lost a reply
/// finds out whether a shipment exists.
#[utoipa::path(get, path = "/v1/shipments/by-order/{order_id}", params(("order_id" = String, Path, description = "Order id")), responses(
    (status = 200, description = "The order's shipment", body = Shipment),
    (status = 404, description = "No shipment for this order", body = ErrorBody),
))]
async fn shipment_by_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Json<Shipment>, ApiError> {
    shipment_of_order(&state.pool, &order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no shipment for order {order_id}")))
}

/// Cancel a planned shipment. Idempotent.
#[utoipa::path(post, path = "/v1/shipments/{id}/cancel", params(("id" = String, Path, description = "Shipment id")), responses(
    (status = 200, description = "Cancelled", body = Shipment),
    (status = 404, description = "No such shipment", body = ErrorBody),
))]
async fn cancel_shipment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Shipment>, ApiError> {
    sqlx::query_as::<_, ShipmentRow>(concat!(
        "UPDATE shipments SET state = $2 WHERE id = $1 RETURNING ",
        shipment_columns!(),
        ""
    ))
    .bind(parse_id(&id, "shipment")?)
    .bind(state_text(ShipmentState::Cancelled))
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no shipment {id}")))?
    .into_shipment()
    .map(Json)
}

pub fn api(pool: PgPool, inventory: ServiceClient) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_shipment))
        .routes(routes!(cancel_shipment))
        .routes(routes!(shipment_by_order))
        .with_state(AppState { pool, inventory })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_stock() -> BTreeMap<(String, String), u64> {
        catalog::PRODUCTS
            .iter()
            .flat_map(|p| {
                catalog::WAREHOUSES
                    .iter()
                    .map(move |w| ((p.sku.to_owned(), w.id.to_owned()), 100))
            })
            .collect()
    }

    fn line(sku: &str, quantity: u32) -> Line {
        Line {
            sku: sku.to_owned(),
            quantity,
        }
    }

    #[test]
    fn ships_from_the_nearest_warehouse_when_it_has_everything() {
        let (legs, _) = plan(&[line("SKU-MUG", 1)], "NORTH", &full_stock()).expect("plan");
        assert_eq!(legs.len(), 1);
        assert_eq!(legs[0].warehouse, "WH-NORTH");
        let (legs, _) = plan(&[line("SKU-MUG", 1)], "SOUTH", &full_stock()).expect("plan");
        assert_eq!(legs[0].warehouse, "WH-SOUTH");
    }

    #[test]
    fn prefers_one_farther_warehouse_over_a_costly_split() {
        // SOUTH lacks the backpack: shipping all from CENTRAL beats two parcels.
        let mut stock = full_stock();
        stock.insert(("SKU-BACKPACK".into(), "WH-SOUTH".into()), 0);
        let (legs, total) = plan(
            &[line("SKU-BACKPACK", 1), line("SKU-POSTER", 1)],
            "SOUTH",
            &stock,
        )
        .expect("plan");
        assert_eq!(legs.len(), 1, "{legs:?}");
        assert_eq!(legs[0].warehouse, "WH-CENTRAL");
        assert_eq!(total, legs[0].cost_cents);
    }

    #[test]
    fn splits_when_no_warehouse_has_everything() {
        let mut stock = full_stock();
        stock.insert(("SKU-MUG".into(), "WH-NORTH".into()), 0);
        stock.insert(("SKU-MUG".into(), "WH-CENTRAL".into()), 0);
        stock.insert(("SKU-HOODIE".into(), "WH-SOUTH".into()), 0);
        let (legs, total) = plan(
            &[line("SKU-MUG", 1), line("SKU-HOODIE", 1)],
            "CENTRAL",
            &stock,
        )
        .expect("plan");
        assert_eq!(legs.len(), 2, "{legs:?}");
        let sum: u64 = legs.iter().map(|l| l.cost_cents).sum();
        assert_eq!(total, sum + SPLIT_PENALTY_CENTS);
    }

    #[test]
    fn a_line_no_warehouse_can_ship_is_unroutable() {
        let (err, _) = (
            plan(&[line("SKU-MUG", 101)], "EAST", &full_stock()).expect_err("too many"),
            (),
        );
        assert_eq!(err.code, "unroutable");
    }
}
