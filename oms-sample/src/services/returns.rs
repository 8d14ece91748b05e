//! `returns`: return authorisations and refunds (reverse logistics). Refunds
//! the captured payment at the provider that took it and restocks the units.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json as DbJson;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::inventory::{RestockRequest, RestockResult};
use super::payment::{Authorization, RefundRequest};
use super::{Line, validate_lines};
use crate::client::ServiceClient;
use crate::contract;
use crate::db::{self, from_bigint, parse_state, state_text, to_bigint};
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
    /// Claimed; the refund and restock are under way.
    Requested,
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
    pool: PgPool,
    client: ServiceClient,
    metrics: ServiceMetrics,
}

#[derive(sqlx::FromRow)]
struct ReturnRow {
    id: uuid::Uuid,
    order_id: String,
    lines: DbJson<Vec<Line>>,
    refund_cents: i64,
    state: String,
}

impl ReturnRow {
    fn into_return(self) -> Result<ReturnAuthorization, ApiError> {
        Ok(ReturnAuthorization {
            id: self.id.to_string(),
            order_id: self.order_id,
            lines: self.lines.0,
            refund_cents: from_bigint(self.refund_cents),
            state: parse_state(&self.state)?,
        })
    }
}

macro_rules! return_columns {
    () => {
        "id, order_id, lines, refund_cents, state"
    };
}

async fn return_of_order(
    pool: &PgPool,
    order_id: &str,
) -> Result<Option<ReturnAuthorization>, ApiError> {
    sqlx::query_as::<_, ReturnRow>(concat!(
        "SELECT ",
        return_columns!(),
        " FROM returns WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(pool)
    .await?
    .map(ReturnRow::into_return)
    .transpose()
}

/// Authorise a return: refund the payment and restock the units.
#[utoipa::path(post, path = "/v1/returns", request_body = ReturnRequest, responses(
    (status = 201, description = "Refunded and restocked", body = ReturnAuthorization),
    (status = 200, description = "The order's existing return (`requested` while another request is carrying it out)", body = ReturnAuthorization),
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
    super::validate_name(crate::services::NameField::OrderId, &request.order_id)?;
    // Claim the return before any money moves: one replica refunds, the
    // others answer with the claim.
    let id = db::new_id();
    let claimed = sqlx::query(
        "INSERT INTO returns (id, order_id, lines, refund_cents, state)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(id)
    .bind(&request.order_id)
    .bind(DbJson(&request.lines))
    .bind(to_bigint(request.refund_cents, "refund_cents")?)
    .bind(state_text(ReturnState::Requested))
    .execute(&state.pool)
    .await?
    .rows_affected();
    if claimed == 0 {
        let existing = return_of_order(&state.pool, &request.order_id)
            .await?
            .ok_or_else(|| ApiError::unavailable("the order's return vanished; retry"))?;
        return Ok((StatusCode::OK, Json(existing)));
    }
    match refund_and_restock(&state, &request).await {
        Ok(()) => {}
        Err(err) => {
            // The refund and the restock are keyed by the order, so a retry
            // cannot do either twice: let the customer try again.
            sqlx::query("DELETE FROM returns WHERE id = $1 AND state = $2")
                .bind(id)
                .bind(state_text(ReturnState::Requested))
                .execute(&state.pool)
                .await?;
            return Err(err);
        }
    }
    let done = sqlx::query_as::<_, ReturnRow>(concat!(
        "UPDATE returns SET state = $2 WHERE id = $1 RETURNING ",
        return_columns!(),
        ""
    ))
    .bind(id)
    .bind(state_text(ReturnState::Refunded))
    .fetch_one(&state.pool)
    .await?
    .into_return()?;
    state.metrics.outcome("refunded", "return");
    Ok((StatusCode::CREATED, Json(done)))
}

async fn refund_and_restock(state: &AppState, request: &ReturnRequest) -> Result<(), ApiError> {
    // One return per order: its refund and restock are named after the order.
    let key = format!("return-{}", request.order_id);
    let refund = RefundRequest {
        amount_cents: request.refund_cents,
        refund_id: Some(key.clone()),
    };
    let _: Authorization = state
        .client
        .call_idempotent(
            &contract::PAYMENT_REFUND,
            &request.provider,
            &[&request.authorization_id],
            Some(&refund),
            3,
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
        restock_id: Some(key),
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
    Ok(())
}

pub fn api(ctx: &ServiceContext, pool: PgPool, client: ServiceClient) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_return))
        .with_state(AppState {
            pool,
            client,
            metrics: ctx.metrics.clone(),
        })
}
