//! `notifications`: consumes order events (confirmation, shipped …) off the
//! customer's critical path, from a durable JetStream consumer
//! ([`consumer`]). The broker delivers at least once; each event is recorded
//! by its id in PostgreSQL, so a redelivery, to any replica, does nothing.

pub mod consumer;

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::db::parse_state;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderEventKind {
    Created,
    Confirmed,
    Rejected,
    Shipped,
    Returned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderEvent {
    /// Unique per event, and the message id on the broker: a republished or
    /// redelivered event is recognised and ignored.
    pub event_id: String,
    pub order_id: String,
    pub kind: OrderEventKind,
    /// RFC 3339 time the event happened (its order changed state).
    pub at: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    pub events: Vec<OrderEvent>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventFilter {
    /// Only this order's events.
    pub order_id: String,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_id: String,
    order_id: String,
    kind: String,
    at: String,
    detail: Option<String>,
}

/// The events received for an order.
#[utoipa::path(get, path = "/v1/events", params(EventFilter), responses(
    (status = 200, description = "Events in arrival order", body = EventList),
))]
async fn list(
    State(pool): State<PgPool>,
    Query(filter): Query<EventFilter>,
) -> Result<Json<EventList>, ApiError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT event_id, order_id, kind, at, detail FROM events WHERE order_id = $1 ORDER BY seq",
    )
    .bind(&filter.order_id)
    .fetch_all(&pool)
    .await?;
    let events = rows
        .into_iter()
        .map(|row| {
            Ok(OrderEvent {
                event_id: row.event_id,
                order_id: row.order_id,
                kind: parse_state(&row.kind)?,
                at: row.at,
                detail: row.detail,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(EventList { events }))
}

pub fn api(pool: PgPool) -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(list)).with_state(pool)
}
