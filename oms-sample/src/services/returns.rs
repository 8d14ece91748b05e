//! `returns`: return authorisations and refunds (reverse logistics). Refunds
//! the captured payment at the provider that took it and restocks the units.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::inventory::{RestockRequest, RestockResult};
use super::payment::{Authorization, RefundRequest};
use super::{Line, validate_lines};
use crate::client::ServiceClient;
use crate::contract;
use crate::error::{ApiError, ErrorBody, JsonBody};
use crate::metrics::ServiceMetrics;
use crate::server::ServiceContext;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// One return per order: a repeated request returns the first.
    pub order_id: String,
    /// The payment provider that captured the order.
    pub provider: String,
    pub authorization_id: String,
    pub lines: Vec<Line>,
    pub refund_cents: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnState {
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReturnAuthorization {
    pub id: String,
    pub order_id: String,
    pub lines: Vec<Line>,
    pub refund_cents: u64,
    pub state: ReturnState,
}

#[derive(Clone)]
struct AppState {
    returns: Arc<Mutex<(u64, BTreeMap<String, ReturnAuthorization>)>>,
    client: ServiceClient,
    metrics: ServiceMetrics,
}

/// Authorise a return: refund the payment and restock the units.
#[utoipa::path(post, path = "/v1/returns", request_body = ReturnRequest, responses(
    (status = 201, description = "Refunded and restocked", body = ReturnAuthorization),
    (status = 200, description = "The order's existing return", body = ReturnAuthorization),
    (status = 422, description = "Invalid request or refund", body = ErrorBody),
    (status = 502, description = "Payment or inventory failed", body = ErrorBody),
))]
async fn create_return(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ReturnRequest>,
) -> Result<(StatusCode, Json<ReturnAuthorization>), ApiError> {
    validate_lines(&request.lines)?;
    if !request.provider.starts_with("payment-") {
        return Err(ApiError::unprocessable(
            "unknown_provider",
            format!("unknown provider {:?}", request.provider),
        ));
    }
    if let Some(existing) = crate::sync::lock(&state.returns).1.get(&request.order_id) {
        return Ok((StatusCode::OK, Json(existing.clone())));
    }
    let refund = RefundRequest {
        amount_cents: request.refund_cents,
    };
    let _: Authorization = state
        .client
        .call(
            &contract::PAYMENT_REFUND,
            &request.provider,
            &[&request.authorization_id],
            Some(&refund),
        )
        .await
        .map_err(|e| match e.code() {
            Some("invalid_amount" | "invalid_state") => {
                ApiError::unprocessable("refund_refused", e.to_string())
            }
            _ => ApiError::new(StatusCode::BAD_GATEWAY, "payment_failed", e.to_string()),
        })?;
    let restock = RestockRequest {
        lines: request.lines.clone(),
        warehouse: None,
    };
    let _: RestockResult = state
        .client
        .call_idempotent(
            &contract::INVENTORY_RESTOCK,
            "inventory",
            &[],
            Some(&restock),
            3,
        )
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "restock_failed", e.to_string()))?;

    let mut returns = crate::sync::lock(&state.returns);
    returns.0 += 1;
    let authorization = ReturnAuthorization {
        id: format!("rma-{}", returns.0),
        order_id: request.order_id.clone(),
        lines: request.lines,
        refund_cents: request.refund_cents,
        state: ReturnState::Refunded,
    };
    returns.1.insert(request.order_id, authorization.clone());
    state.metrics.outcome("refunded", "return");
    Ok((StatusCode::CREATED, Json(authorization)))
}

pub fn api(ctx: &ServiceContext, client: ServiceClient) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_return))
        .with_state(AppState {
            returns: Arc::default(),
            client,
            metrics: ctx.metrics.clone(),
        })
}
