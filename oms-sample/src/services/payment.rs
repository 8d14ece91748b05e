//! `payment-primary` and `payment-secondary`: two payment providers with the
//! same API. Authorise, then capture or void; refund captured money.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::bounded::BoundedMap;
use crate::catalog;
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
}

/// One provider's book of authorisations.
#[derive(Debug)]
pub struct Book {
    provider: &'static str,
    authorizations: BoundedMap<String, Authorization>,
    by_order: BoundedMap<String, String>,
    next_id: u64,
}

impl Book {
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            authorizations: BoundedMap::default(),
            by_order: BoundedMap::default(),
            next_id: 0,
        }
    }

    pub fn authorize(
        &mut self,
        request: &AuthorizeRequest,
    ) -> Result<(Authorization, bool), ApiError> {
        if request.order_id.is_empty() || request.order_id.len() > 128 {
            return Err(ApiError::unprocessable(
                "invalid_order_id",
                "order_id must have 1 to 128 characters",
            ));
        }
        if request.currency != "EUR" {
            return Err(ApiError::unprocessable(
                "unsupported_currency",
                "only EUR is supported",
            ));
        }
        if request.amount_cents == 0 {
            return Err(ApiError::unprocessable(
                "invalid_amount",
                "amount_cents must be above 0",
            ));
        }
        if let Some(existing) = self
            .by_order
            .get(&request.order_id)
            .and_then(|id| self.authorizations.get(id))
        {
            return Ok((existing.clone(), false));
        }
        if request.card_token == catalog::DECLINED_CARD
            || request.amount_cents > catalog::PAYMENT_LIMIT_CENTS
        {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "declined",
                format!("{} declined the card", self.provider),
            ));
        }
        self.next_id += 1;
        let authorization = Authorization {
            id: format!("{}-auth-{}", self.provider, self.next_id),
            order_id: request.order_id.clone(),
            provider: self.provider.to_owned(),
            card_token: request.card_token.clone(),
            amount_cents: request.amount_cents,
            refunded_cents: 0,
            state: AuthorizationState::Authorized,
        };
        self.by_order
            .insert(request.order_id.clone(), authorization.id.clone());
        self.authorizations
            .insert(authorization.id.clone(), authorization.clone());
        Ok((authorization, true))
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Authorization, ApiError> {
        self.authorizations
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no authorization {id}")))
    }

    /// Idempotent.
    pub fn capture(&mut self, id: &str) -> Result<Authorization, ApiError> {
        let provider = self.provider;
        let auth = self.get_mut(id)?;
        if auth.card_token == catalog::CAPTURE_DECLINED_CARD
            && auth.state == AuthorizationState::Authorized
        {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "declined",
                format!("{provider} declined the capture (risk check)"),
            ));
        }
        match auth.state {
            AuthorizationState::Authorized => auth.state = AuthorizationState::Captured,
            AuthorizationState::Captured => {}
            other => {
                return Err(ApiError::conflict(
                    "invalid_state",
                    format!("cannot capture: {other:?}"),
                ));
            }
        }
        Ok(auth.clone())
    }

    /// Idempotent.
    pub fn void(&mut self, id: &str) -> Result<Authorization, ApiError> {
        let auth = self.get_mut(id)?;
        match auth.state {
            AuthorizationState::Authorized => auth.state = AuthorizationState::Voided,
            AuthorizationState::Voided => {}
            other => {
                return Err(ApiError::conflict(
                    "invalid_state",
                    format!("cannot void: {other:?}"),
                ));
            }
        }
        Ok(auth.clone())
    }

    pub fn refund(&mut self, id: &str, amount_cents: u64) -> Result<Authorization, ApiError> {
        let auth = self.get_mut(id)?;
        if !matches!(
            auth.state,
            AuthorizationState::Captured | AuthorizationState::Refunded
        ) {
            return Err(ApiError::conflict(
                "invalid_state",
                format!("cannot refund: {:?}", auth.state),
            ));
        }
        if amount_cents == 0 || auth.refunded_cents + amount_cents > auth.amount_cents {
            return Err(ApiError::unprocessable(
                "invalid_amount",
                format!(
                    "refund of {amount_cents} exceeds the {} left",
                    auth.amount_cents - auth.refunded_cents
                ),
            ));
        }
        auth.refunded_cents += amount_cents;
        auth.state = AuthorizationState::Refunded;
        Ok(auth.clone())
    }
}

type Shared = Arc<Mutex<Book>>;

fn book(state: &Shared) -> std::sync::MutexGuard<'_, Book> {
    crate::sync::lock(state)
}

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
    let (auth, created) = book(&state).authorize(&request)?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(auth),
    ))
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
    book(&state).get_mut(&id).map(|a| Json(a.clone()))
}

/// What a provider says of itself; callers probe it to judge its health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderStatus {
    pub provider: String,
    /// Authorisations on record.
    pub authorizations: usize,
}

/// The provider's status: cheap, and slowed or failed by faults like every
/// other call, so probing it measures the provider as customers would.
#[utoipa::path(get, path = "/v1/status", responses(
    (status = 200, description = "The provider answers", body = ProviderStatus),
))]
async fn status(State(state): State<Shared>) -> Json<ProviderStatus> {
    let book = book(&state);
    Json(ProviderStatus {
        provider: book.provider.to_owned(),
        authorizations: book.authorizations.len(),
    })
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
    book(&state).capture(&id).map(Json)
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
    book(&state).void(&id).map(Json)
}

/// Refund captured money.
#[utoipa::path(post, path = "/v1/authorizations/{id}/refund", request_body = RefundRequest, params(("id" = String, Path, description = "Authorisation id")), responses(
    (status = 200, description = "Refunded", body = Authorization),
    (status = 404, description = "No such authorisation", body = ErrorBody),
    (status = 409, description = "Not captured", body = ErrorBody),
    (status = 422, description = "More than what is left", body = ErrorBody),
))]
async fn refund(
    State(state): State<Shared>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RefundRequest>,
) -> Result<Json<Authorization>, ApiError> {
    book(&state).refund(&id, request.amount_cents).map(Json)
}

pub fn api(provider: &'static str) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(authorize))
        .routes(routes!(get_authorization))
        .routes(routes!(capture))
        .routes(routes!(void))
        .routes(routes!(refund))
        .routes(routes!(status))
        .with_state(Arc::new(Mutex::new(Book::new(provider))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(order: &str, card: &str, amount: u64) -> AuthorizeRequest {
        AuthorizeRequest {
            order_id: order.to_owned(),
            amount_cents: amount,
            currency: "EUR".to_owned(),
            card_token: card.to_owned(),
        }
    }

    #[test]
    fn authorise_capture_refund_lifecycle() {
        let mut book = Book::new("payment-primary");
        let (auth, created) = book
            .authorize(&request("o1", "tok_visa", 1_000))
            .expect("authorize");
        assert!(created);
        assert_eq!(
            book.authorize(&request("o1", "tok_visa", 1_000))
                .expect("again")
                .0,
            auth
        );
        book.capture(&auth.id).expect("capture");
        assert_eq!(
            book.void(&auth.id).map_err(|e| e.code),
            Err("invalid_state")
        );
        let refunded = book.refund(&auth.id, 400).expect("refund");
        assert_eq!(refunded.refunded_cents, 400);
        assert_eq!(
            book.refund(&auth.id, 700).map_err(|e| e.code),
            Err("invalid_amount")
        );
    }

    #[test]
    fn declined_cards_and_amounts_over_the_limit_are_declined() {
        let mut book = Book::new("payment-primary");
        assert_eq!(
            book.authorize(&request("o1", catalog::DECLINED_CARD, 10))
                .map_err(|e| e.code),
            Err("declined")
        );
        assert_eq!(
            book.authorize(&request("o2", "tok_visa", catalog::PAYMENT_LIMIT_CENTS + 1))
                .map_err(|e| e.code),
            Err("declined")
        );
        assert!(book.authorizations.is_empty());
    }
}
