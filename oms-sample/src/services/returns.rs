//! `returns`: return authorisations and refunds (reverse logistics). Refunds
//! the captured payment at the provider that took it and restocks the units.
//!
//! A refund is never lost nor made twice:
//! 1. One claim per order, written before any money moves.
//! 2. The request holding the claim's lease carries it out; another request
//!    meanwhile gets 202 with the claim, `requested`.
//! 3. A refund the provider refused deletes the claim (nothing moved). Any
//!    other failure (a timeout, a lost answer, the restock after the refund)
//!    keeps it and gives the lease up: the money may have moved.
//! 4. A retry resumes a claim whose lease is not in force, with what was
//!    claimed; the refund and restock are keyed by the order, so they are
//!    done once whoever carries them out.

use std::time::Duration;

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

/// Attempts of each call a return makes (the refund, the restock).
const ATTEMPTS: u32 = 3;

/// How long a claim belongs to the request carrying it out: longer than
/// that can take (two calls of [`ATTEMPTS`] attempts each, with their
/// backoffs), so a retry resumes only a claim nobody is working on — one
/// given up after an ambiguous failure, or left by a killed replica.
fn claim_lease(client: &ServiceClient) -> Duration {
    longest_carry_out(client.timeout())
}

/// The longest a return's request can take when each call between
/// services is given up after `call_timeout`: what a caller of `returns`
/// waits for before it gives the answer up.
pub fn longest_carry_out(call_timeout: Duration) -> Duration {
    call_timeout * (2 * ATTEMPTS) + Duration::from_secs(1)
}

/// Authorise a return: refund the payment and restock the units.
#[utoipa::path(post, path = "/v1/returns", request_body = ReturnRequest, responses(
    (status = 201, description = "Refunded and restocked", body = ReturnAuthorization),
    (status = 200, description = "The order's return, already refunded", body = ReturnAuthorization),
    (status = 202, description = "The order's return, `requested`: another request is carrying it out", body = ReturnAuthorization),
    (status = 422, description = "Invalid request or refund", body = ErrorBody),
    (status = 502, description = "Payment or inventory failed; the claim is kept if the refund may have gone through, and a retry completes it", body = ErrorBody),
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
    let lease = claim_lease(&state.client).as_secs_f64();
    // Claim the return before any money moves: one request at a time
    // carries it out, the others answer with the claim.
    let id = db::new_id();
    let claimed = sqlx::query(
        "INSERT INTO returns
             (id, order_id, lines, refund_cents, state, claimed_until, provider, authorization_id)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7, $8)
         ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(id)
    .bind(&request.order_id)
    .bind(DbJson(&request.lines))
    .bind(to_bigint(request.refund_cents, "refund_cents")?)
    .bind(state_text(ReturnState::Requested))
    .bind(lease)
    .bind(&request.provider)
    .bind(&request.authorization_id)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if claimed == 1 {
        return carry_out(&state, id, &request).await;
    }
    match resume(&state.pool, &request, lease).await? {
        Claim::Refunded(done) => Ok((StatusCode::OK, Json(done))),
        Claim::Busy(claim) => Ok((StatusCode::ACCEPTED, Json(claim))),
        Claim::Resumed(id, claimed) => carry_out(&state, id, &claimed).await,
    }
}

/// Where an existing claim of the order stands for a new request.
enum Claim {
    Refunded(ReturnAuthorization),
    /// Another request's lease is in force.
    Busy(ReturnAuthorization),
    /// Taken over: carry out what was claimed.
    Resumed(uuid::Uuid, ReturnRequest),
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: uuid::Uuid,
    lines: DbJson<Vec<Line>>,
    refund_cents: i64,
    provider: String,
    authorization_id: String,
}

/// Takes over the order's `requested` claim if no lease is in force on it,
/// with what it claimed (a retry may ask for other lines: the claim
/// stands); otherwise the claim as it is.
async fn resume(pool: &PgPool, request: &ReturnRequest, lease: f64) -> Result<Claim, ApiError> {
    let taken = sqlx::query_as::<_, ClaimRow>(
        "UPDATE returns SET claimed_until = now() + make_interval(secs => $3),
                provider = COALESCE(provider, $4),
                authorization_id = COALESCE(authorization_id, $5)
         WHERE order_id = $1 AND state = $2 AND claimed_until <= now()
         RETURNING id, lines, refund_cents, provider, authorization_id",
    )
    .bind(&request.order_id)
    .bind(state_text(ReturnState::Requested))
    .bind(lease)
    .bind(&request.provider)
    .bind(&request.authorization_id)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = taken {
        let claimed = ReturnRequest {
            order_id: request.order_id.clone(),
            provider: row.provider,
            authorization_id: row.authorization_id,
            lines: row.lines.0,
            refund_cents: from_bigint(row.refund_cents),
            reason: request.reason.clone(),
        };
        return Ok(Claim::Resumed(row.id, claimed));
    }
    let existing = return_of_order(pool, &request.order_id)
        .await?
        .ok_or_else(|| ApiError::unavailable("the order's return was refused meanwhile; retry"))?;
    Ok(match existing.state {
        ReturnState::Refunded => Claim::Refunded(existing),
        ReturnState::Requested => Claim::Busy(existing),
    })
}

/// Refunds and restocks what claim `id` claimed, then marks it refunded.
async fn carry_out(
    state: &AppState,
    id: uuid::Uuid,
    claimed: &ReturnRequest,
) -> Result<(StatusCode, Json<ReturnAuthorization>), ApiError> {
    match refund_and_restock(state, claimed).await {
        Ok(()) => {}
        Err(Failure::Refused(err)) => {
            // The provider refused the refund: no money moved and nothing
            // was restocked, so the claim goes and the customer may ask again.
            sqlx::query("DELETE FROM returns WHERE id = $1 AND state = $2")
                .bind(id)
                .bind(state_text(ReturnState::Requested))
                .execute(&state.pool)
                .await?;
            return Err(err);
        }
        Err(Failure::Unknown(err)) => {
            // The refund may have gone through: keep the claim, never
            // delete it, and give the lease up so that a retry resumes it at
            // once (the refund and restock are keyed by the order).
            sqlx::query("UPDATE returns SET claimed_until = now() WHERE id = $1 AND state = $2")
                .bind(id)
                .bind(state_text(ReturnState::Requested))
                .execute(&state.pool)
                .await?;
            state.metrics.outcome("kept", "return");
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

/// Why a return could not be carried out.
enum Failure {
    /// The provider refused the refund: nothing moved.
    Refused(ApiError),
    /// Anything else: the refund may have gone through.
    Unknown(ApiError),
}

async fn refund_and_restock(state: &AppState, request: &ReturnRequest) -> Result<(), Failure> {
    // One return per order: its refund and restock are named after the order.
    let key = format!("return-{}", request.order_id);
    let kept = "the return is kept: ask again to complete it";
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
            ATTEMPTS,
        )
        .await
        .map_err(|e| match e.code() {
            Some("invalid_amount" | "invalid_state") => {
                Failure::Refused(ApiError::unprocessable("refund_refused", e.to_string()))
            }
            _ => Failure::Unknown(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "payment_failed",
                format!("{e}; {kept}"),
            )),
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
            ATTEMPTS,
        )
        .await
        .map_err(|e| {
            Failure::Unknown(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "restock_failed",
                format!("{e}; {kept}"),
            ))
        })?;
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
