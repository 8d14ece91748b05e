//! `tax`: prices a basket: subtotal, promotion, sales tax by region.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Line, validate_lines};
use crate::catalog;
use crate::error::{ApiError, ErrorBody, JsonBody};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    pub lines: Vec<Line>,
    /// Shipping region code: NORTH, CENTRAL, SOUTH or EAST.
    pub region: String,
    #[serde(default)]
    pub promo_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    pub subtotal_cents: u64,
    pub discount_cents: u64,
    pub tax_cents: u64,
    pub total_cents: u64,
    pub currency: String,
}

/// Prices a basket. Tax applies after the discount, rounded half up to the cent.
pub fn price(request: &QuoteRequest) -> Result<Quote, ApiError> {
    validate_lines(&request.lines)?;
    let region = catalog::region(&request.region).ok_or_else(|| {
        ApiError::unprocessable(
            "unknown_region",
            format!("unknown region {:?}", request.region),
        )
    })?;
    let subtotal: u64 = request
        .lines
        .iter()
        .filter_map(|l| catalog::product(&l.sku).map(|p| p.price_cents * u64::from(l.quantity)))
        .sum();
    let discount_bps = match &request.promo_code {
        None => 0,
        Some(code) => catalog::PROMOTIONS
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, bps)| *bps)
            .ok_or_else(|| {
                ApiError::unprocessable("unknown_promo", format!("unknown promotion code {code:?}"))
            })?,
    };
    let discount = (subtotal * discount_bps + 5_000) / 10_000;
    let taxable = subtotal - discount;
    let tax = (taxable * region.tax_bps + 5_000) / 10_000;
    Ok(Quote {
        subtotal_cents: subtotal,
        discount_cents: discount,
        tax_cents: tax,
        total_cents: taxable + tax,
        currency: "EUR".to_owned(),
    })
}

/// Price a basket.
#[utoipa::path(
    post,
    path = "/v1/quotes",
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "The priced basket", body = Quote),
        (status = 422, description = "Unknown SKU, region or promotion, or a bad quantity", body = ErrorBody),
    )
)]
async fn create_quote(JsonBody(request): JsonBody<QuoteRequest>) -> Result<Json<Quote>, ApiError> {
    price(&request).map(Json)
}

pub fn api() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(create_quote))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[(&str, u32)], region: &str, promo: Option<&str>) -> QuoteRequest {
        QuoteRequest {
            lines: lines
                .iter()
                .map(|(sku, quantity)| Line {
                    sku: (*sku).to_owned(),
                    quantity: *quantity,
                })
                .collect(),
            region: region.to_owned(),
            promo_code: promo.map(str::to_owned),
        }
    }

    #[test]
    fn prices_subtotal_discount_and_tax() {
        // 2 × 19.99 + 12.99 = 52.97; 10% off = 5.30 (rounded); tax 19% of 47.67 = 9.06.
        let quote = price(&request(
            &[("SKU-TSHIRT", 2), ("SKU-MUG", 1)],
            "CENTRAL",
            Some("WELCOME10"),
        ))
        .expect("quote");
        assert_eq!(quote.subtotal_cents, 5_297);
        assert_eq!(quote.discount_cents, 530);
        assert_eq!(quote.tax_cents, 906);
        assert_eq!(quote.total_cents, 5_297 - 530 + 906);
    }

    #[test]
    fn rejects_unknown_region_promo_and_sku() {
        let cases = [
            (request(&[("SKU-MUG", 1)], "MOON", None), "unknown_region"),
            (
                request(&[("SKU-MUG", 1)], "EAST", Some("FREE")),
                "unknown_promo",
            ),
            (request(&[("SKU-NOPE", 1)], "EAST", None), "unknown_sku"),
            (request(&[("SKU-MUG", 0)], "EAST", None), "invalid_quantity"),
            (request(&[], "EAST", None), "empty_basket"),
        ];
        for (req, code) in cases {
            assert_eq!(price(&req).map_err(|e| e.code), Err(code));
        }
    }
}
