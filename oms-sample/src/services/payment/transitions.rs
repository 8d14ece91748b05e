//! What each payment operation does to an authorisation, as pure functions:
//! the book locks the row, asks here, and writes the answer.

use axum::http::StatusCode;

use super::{AuthorizationState, AuthorizeRequest};
use crate::catalog;
use crate::error::ApiError;

/// An operation's verdict on an authorisation in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Move to this state.
    Move(AuthorizationState),
    /// Already done: answer with the authorisation as it is (idempotent retry).
    AlreadyDone,
}

/// Checks a request before anything is written; declines happen here.
pub fn check_authorize(request: &AuthorizeRequest, provider: &str) -> Result<(), ApiError> {
    crate::services::validate_name(crate::services::NameField::OrderId, &request.order_id)?;
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
    if request.card_token.is_empty() || request.card_token.len() > 128 {
        return Err(ApiError::unprocessable(
            "invalid_card",
            "card_token must have 1 to 128 characters",
        ));
    }
    if request.card_token == catalog::DECLINED_CARD
        || request.amount_cents > catalog::PAYMENT_LIMIT_CENTS
    {
        return Err(declined(format!("{provider} declined the card")));
    }
    Ok(())
}

fn declined(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYMENT_REQUIRED, "declined", message)
}

pub fn capture(
    state: AuthorizationState,
    card_token: &str,
    provider: &str,
) -> Result<Verdict, ApiError> {
    match state {
        AuthorizationState::Authorized if card_token == catalog::CAPTURE_DECLINED_CARD => Err(
            declined(format!("{provider} declined the capture (risk check)")),
        ),
        AuthorizationState::Authorized => Ok(Verdict::Move(AuthorizationState::Captured)),
        AuthorizationState::Captured => Ok(Verdict::AlreadyDone),
        other => Err(ApiError::conflict(
            "invalid_state",
            format!("cannot capture: {other:?}"),
        )),
    }
}

pub fn void(state: AuthorizationState) -> Result<Verdict, ApiError> {
    match state {
        AuthorizationState::Authorized => Ok(Verdict::Move(AuthorizationState::Voided)),
        AuthorizationState::Voided => Ok(Verdict::AlreadyDone),
        other => Err(ApiError::conflict(
            "invalid_state",
            format!("cannot void: {other:?}"),
        )),
    }
}

/// The refunded total after refunding `amount_cents`, never above what was captured.
pub fn refund(
    state: AuthorizationState,
    amount_cents: u64,
    refunded_cents: u64,
    amount_requested: u64,
) -> Result<u64, ApiError> {
    if !matches!(
        state,
        AuthorizationState::Captured | AuthorizationState::Refunded
    ) {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("cannot refund: {state:?}"),
        ));
    }
    let left = amount_cents.saturating_sub(refunded_cents);
    refunded_cents
        .checked_add(amount_requested)
        .filter(|total| amount_requested > 0 && *total <= amount_cents)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_amount",
                format!("refund of {amount_requested} exceeds the {left} left"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthorizationState::*;

    fn request(card: &str, amount: u64) -> AuthorizeRequest {
        AuthorizeRequest {
            order_id: "o1".to_owned(),
            amount_cents: amount,
            currency: "EUR".to_owned(),
            card_token: card.to_owned(),
        }
    }

    #[test]
    fn declined_cards_and_amounts_over_the_limit_are_declined() {
        let code = |r: &AuthorizeRequest| check_authorize(r, "p").map_err(|e| e.code);
        assert_eq!(code(&request("tok_visa", 1_000)), Ok(()));
        assert_eq!(code(&request(catalog::DECLINED_CARD, 10)), Err("declined"));
        assert_eq!(
            code(&request("tok_visa", catalog::PAYMENT_LIMIT_CENTS + 1)),
            Err("declined")
        );
        assert_eq!(code(&request("tok_visa", 0)), Err("invalid_amount"));
    }

    #[test]
    fn capture_and_void_are_idempotent_and_exclusive() {
        assert_eq!(
            capture(Authorized, "tok_visa", "p"),
            Ok(Verdict::Move(Captured))
        );
        assert_eq!(capture(Captured, "tok_visa", "p"), Ok(Verdict::AlreadyDone));
        assert_eq!(
            capture(Voided, "tok_visa", "p").map_err(|e| e.code),
            Err("invalid_state")
        );
        assert_eq!(
            capture(Authorized, catalog::CAPTURE_DECLINED_CARD, "p").map_err(|e| e.code),
            Err("declined")
        );
        assert_eq!(void(Authorized), Ok(Verdict::Move(Voided)));
        assert_eq!(void(Voided), Ok(Verdict::AlreadyDone));
        assert_eq!(void(Captured).map_err(|e| e.code), Err("invalid_state"));
    }

    #[test]
    fn refunds_never_exceed_the_captured_amount() {
        assert_eq!(refund(Captured, 1_000, 0, 400), Ok(400));
        assert_eq!(refund(Refunded, 1_000, 400, 600), Ok(1_000));
        assert_eq!(
            refund(Refunded, 1_000, 400, 700).map_err(|e| e.code),
            Err("invalid_amount")
        );
        assert_eq!(
            refund(Captured, 1_000, 0, 0).map_err(|e| e.code),
            Err("invalid_amount")
        );
        assert_eq!(
            refund(Captured, u64::MAX, 1, u64::MAX).map_err(|e| e.code),
            Err("invalid_amount")
        );
        assert_eq!(
            refund(Authorized, 1_000, 0, 1).map_err(|e| e.code),
            Err("invalid_state")
        );
    }
}
