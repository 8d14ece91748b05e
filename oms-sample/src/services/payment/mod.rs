//! `payment-primary` and `payment-secondary`: two payment providers with the
//! same API. Authorise, then capture or void; refund captured money.

pub mod book;
pub mod transitions;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::book::Book;
use crate::error::{ApiError, ErrorBody, JsonBody};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// One authorisation per order: a repeated request returns the first.
    pub order_id: String,
    pub amount_cents: u64,
    pub currency: String,
    /// A tokenised card; `tok_declined` is always declined, `tok_capture_declined`
    /// is authorised but declined at capture.
    pub card_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationState {
    Authorized,
    Captured,
    Voided,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Authorization {
    pub id: String,
    /// The card token, for the provider's own checks at capture.
    #[serde(skip)]
    card_token: String,
    pub order_id: String,
    /// The provider that holds it: payment-primary or payment-secondary.
    pub provider: String,
    pub amount_cents: u64,
    pub refunded_cents: u64,
    pub state: AuthorizationState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub amount_cents: u64,
    /// Names this refund: a retry with the same id and amount refunds nothing
    /// more. Without it every request is a new refund.
    #[serde(default)]
    pub refund_id: Option<String>,
}

type Shared = Book;

/// Authorise an amount on a card.
#[utoipa::path(post, path = "/v1/authorizations", request_body = AuthorizeRequest, responses(
    (status = 201, description = "Authorised", body = Authorization),
    (status = 200, description = "The order's existing authorisation", body = Authorization),
    (status = 402, description = "Declined", body = ErrorBody),
    (status = 422, description = "Invalid request", body = ErrorBody),
))]
async fn authorize(
    State(state): State<Shared>,
    JsonBody(request): JsonBody<AuthorizeRequest>,
) -> Result<(StatusCode, Json<Authorization>), ApiError> {
    let (auth, created) = state.authorize(&request).await?;
    Ok((super::created_or_found(created), Json(auth)))
}

/// Look an authorisation up.
#[utoipa::path(get, path = "/v1/authorizations/{id}", params(("id" = String, Path, description = "Authorisation id")), responses(
    (status = 200, description = "The authorisation", body = Authorization),
    (status = 404, description = "No such authorisation", body = ErrorBody),
))]
async fn get_authorization(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Authorization>, ApiError> {
    state.get(&id).await.map(Json)
}

/// The authorisation made for an order, if any: how a saga that lost a
/// reply finds out whether the card was authorised or captured.
#[utoipa::path(get, path = "/v1/authorizations/by-order/{order_id}", params(("order_id" = String, Path, description = "Order id")), responses(
    (status = 200, description = "The order's authorisation", body = Authorization),
    (status = 404, description = "No authorisation for this order", body = ErrorBody),
))]
async fn authorization_of_order(
    State(state): State<Shared>,
    Path(order_id): Path<String>,
) -> Result<Json<Authorization>, ApiError> {
    state
        .by_order(&order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no authorisation for order {order_id}")))
}

/// What a provider says of itself; callers probe it to judge its health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderStatus {
    pub provider: String,
    /// Authorisations neither captured nor voided yet.
    pub open_authorizations: u64,
    /// Status calls so far, each one a write to the provider's book.
    pub heartbeats: u64,
}

/// The provider's status. It writes a heartbeat to the provider's book, so
/// it fails when the book cannot take writes and costs what an authorisation
/// costs; and faults slow or fail it like every other call. Probing it thus
/// measures the provider as customers would find it.
#[utoipa::path(get, path = "/v1/status", responses(
    (status = 200, description = "The provider answers", body = ProviderStatus),
    (status = 503, description = "Its database does not answer", body = ErrorBody),
))]
async fn status(State(state): State<Shared>) -> Result<Json<ProviderStatus>, ApiError> {
    let (heartbeats, open_authorizations) = state.heartbeat().await?;
    Ok(Json(ProviderStatus {
        provider: state.provider.to_owned(),
        open_authorizations,
        heartbeats,
    }))
}

/// Capture an authorisation.
#[utoipa::path(post, path = "/v1/authorizations/{id}/capture", params(("id" = String, Path, description = "Authorisation id")), responses(
    (status = 200, description = "Captured", body = Authorization),
    (status = 402, description = "Capture declined", body = ErrorBody),
    (status = 404, description = "No such authorisation", body = ErrorBody),
    (status = 409, description = "Voided or refunded", body = ErrorBody),
))]
async fn capture(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Authorization>, ApiError> {
    state.capture(&id).await.map(Json)
}

/// Void an authorisation that was not captured.
#[utoipa::path(post, path = "/v1/authorizations/{id}/void", params(("id" = String, Path, description = "Authorisation id")), responses(
    (status = 200, description = "Voided", body = Authorization),
    (status = 404, description = "No such authorisation", body = ErrorBody),
    (status = 409, description = "Already captured", body = ErrorBody),
))]
async fn void(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Authorization>, ApiError> {
    state.void(&id).await.map(Json)
}

/// Refund captured money.
#[utoipa::path(post, path = "/v1/authorizations/{id}/refund", request_body = RefundRequest, params(("id" = String, Path, description = "Authorisation id")), responses(
    (status = 200, description = "Refunded", body = Authorization),
    (status = 404, description = "No such authorisation", body = ErrorBody),
    (status = 409, description = "Not captured", body = ErrorBody),
    (status = 422, description = "More than what is left, or a refund id reused for another amount", body = ErrorBody),
))]
async fn refund(
    State(state): State<Shared>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RefundRequest>,
) -> Result<Json<Authorization>, ApiError> {
    if let Some(refund_id) = &request.refund_id {
        super::validate_name(crate::services::NameField::RefundId, refund_id)?;
    }
    state
        .refund(&id, request.amount_cents, request.refund_id.as_deref())
        .await
        .map(Json)
}

pub fn api(provider: &'static str, pool: sqlx::PgPool) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(authorize))
        .routes(routes!(get_authorization))
        .routes(routes!(authorization_of_order))
        .routes(routes!(capture))
        .routes(routes!(void))
        .routes(routes!(refund))
        .routes(routes!(status))
        .with_state(Book { provider, pool })
}
