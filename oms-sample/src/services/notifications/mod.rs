//! `notifications`: consumes order events (confirmation, shipped …) off the
//! customer's critical path. Delivery is at-least-once; events are deduplicated by id
//! in PostgreSQL, so a redelivery to any replica is recognised.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::db::{parse_state, state_text};
use crate::error::{ApiError, ErrorBody, JsonBody};
use crate::metrics::ServiceMetrics;
use crate::server::ServiceContext;

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
    /// Unique per event; a redelivered event is acknowledged and ignored.
    pub event_id: String,
    pub order_id: String,
    pub kind: OrderEventKind,
    /// RFC 3339 time the event happened.
    pub at: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventReceipt {
    pub event_id: String,
    /// True when the event had been received before.
    pub duplicate: bool,
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

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    metrics: ServiceMetrics,
}

/// Receive an order event.
#[utoipa::path(post, path = "/v1/events", request_body = OrderEvent, responses(
    (status = 202, description = "Accepted (or already received)", body = EventReceipt),
    (status = 422, description = "Invalid event", body = ErrorBody),
))]
async fn publish(
    State(state): State<AppState>,
    JsonBody(event): JsonBody<OrderEvent>,
) -> Result<(StatusCode, Json<EventReceipt>), ApiError> {
    if event.event_id.is_empty() || event.event_id.len() > 128 || event.order_id.len() > 128 {
        return Err(ApiError::unprocessable(
            "invalid_event",
            "event_id must have 1 to 128 characters",
        ));
    }
    // Recording the id and the effect is one statement: a redelivery, to any
    // replica, finds the id and does nothing.
    let first = sqlx::query(
        "INSERT INTO events (event_id, order_id, kind, at, detail) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.event_id)
    .bind(&event.order_id)
    .bind(state_text(event.kind))
    .bind(&event.at)
    .bind(&event.detail)
    .execute(&state.pool)
    .await?
    .rows_affected()
        == 1;
    if first {
        state.metrics.outcome("delivered", &state_text(event.kind));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(EventReceipt {
            event_id: event.event_id,
            duplicate: !first,
        }),
    ))
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
    State(state): State<AppState>,
    Query(filter): Query<EventFilter>,
) -> Result<Json<EventList>, ApiError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT event_id, order_id, kind, at, detail FROM events WHERE order_id = $1 ORDER BY seq",
    )
    .bind(&filter.order_id)
    .fetch_all(&state.pool)
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

pub fn api(ctx: &ServiceContext, pool: PgPool) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(publish, list))
        .with_state(AppState {
            pool,
            metrics: ctx.metrics.clone(),
        })
}
