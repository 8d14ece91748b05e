//! `notifications`: consumes order events (confirmation, shipped …) off the
//! customer's critical path. Delivery is at-least-once; events are deduplicated by id.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody, JsonBody};
use crate::metrics::ServiceMetrics;
use crate::server::ServiceContext;

/// Events kept for lookups; older ones are forgotten.
const RETAINED_EVENTS: usize = 100_000;

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

#[derive(Default)]
struct Inbox {
    seen: BTreeSet<String>,
    order: VecDeque<String>,
    by_order: BTreeMap<String, Vec<OrderEvent>>,
}

#[derive(Clone)]
struct AppState {
    inbox: Arc<Mutex<Inbox>>,
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
    let mut inbox = crate::sync::lock(&state.inbox);
    let duplicate = !inbox.seen.insert(event.event_id.clone());
    if !duplicate {
        state
            .metrics
            .outcome("delivered", &format!("{:?}", event.kind).to_lowercase());
        inbox.order.push_back(event.event_id.clone());
        inbox
            .by_order
            .entry(event.order_id.clone())
            .or_default()
            .push(event.clone());
        if inbox.order.len() > RETAINED_EVENTS
            && let Some(old) = inbox.order.pop_front()
        {
            inbox.seen.remove(&old);
        }
        if inbox.by_order.len() > RETAINED_EVENTS
            && let Some(first) = inbox.by_order.keys().next().cloned()
        {
            inbox.by_order.remove(&first);
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(EventReceipt {
            event_id: event.event_id,
            duplicate,
        }),
    ))
}

/// The events received for an order.
#[utoipa::path(get, path = "/v1/events", params(EventFilter), responses(
    (status = 200, description = "Events in arrival order", body = EventList),
))]
async fn list(State(state): State<AppState>, Query(filter): Query<EventFilter>) -> Json<EventList> {
    let inbox = crate::sync::lock(&state.inbox);
    Json(EventList {
        events: inbox
            .by_order
            .get(&filter.order_id)
            .cloned()
            .unwrap_or_default(),
    })
}

pub fn api(ctx: &ServiceContext) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(publish, list))
        .with_state(AppState {
            inbox: Arc::default(),
            metrics: ctx.metrics.clone(),
        })
}
