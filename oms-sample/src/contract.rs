//! Every call one OMS service makes to another, in one place. The client only
//! accepts these, and the contract test checks each against the callee's
//! published OpenAPI document (method, path, request and response schemas).

/// One kind of call a service makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCall {
    /// For logs, e.g. `inventory.reserve`.
    pub name: &'static str,
    /// The service whose document defines the call (`payment` stands for both providers).
    pub callee: &'static str,
    pub method: &'static str,
    /// The path template as in the callee's document, e.g. `/v1/reservations/{id}/release`.
    pub path: &'static str,
    /// The request body's schema name, if the call sends one.
    pub request: Option<&'static str>,
    /// The success response's schema name.
    pub response: &'static str,
}

impl ClientCall {
    /// The path with each `{…}` segment replaced by the next of `params`.
    pub fn render_path(&self, params: &[&str]) -> String {
        let mut params = params.iter();
        self.path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') && segment.ends_with('}') {
                    params.next().map(|p| encode_segment(p)).unwrap_or_default()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn encode_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const fn call(
    name: &'static str,
    callee: &'static str,
    method: &'static str,
    path: &'static str,
    request: Option<&'static str>,
    response: &'static str,
) -> ClientCall {
    ClientCall {
        name,
        callee,
        method,
        path,
        request,
        response,
    }
}

pub const INVENTORY_RESERVE: ClientCall = call(
    "inventory.reserve",
    "inventory",
    "POST",
    "/v1/reservations",
    Some("ReserveRequest"),
    "Reservation",
);
pub const INVENTORY_OF_ORDER: ClientCall = call(
    "inventory.of_order",
    "inventory",
    "GET",
    "/v1/reservations/by-order/{order_id}",
    None,
    "Reservation",
);
pub const INVENTORY_RELEASE: ClientCall = call(
    "inventory.release",
    "inventory",
    "POST",
    "/v1/reservations/{id}/release",
    None,
    "Reservation",
);
pub const INVENTORY_COMMIT: ClientCall = call(
    "inventory.commit",
    "inventory",
    "POST",
    "/v1/reservations/{id}/commit",
    Some("CommitRequest"),
    "Reservation",
);
pub const INVENTORY_STOCK: ClientCall = call(
    "inventory.stock",
    "inventory",
    "POST",
    "/v1/stock/query",
    Some("StockQuery"),
    "StockLevels",
);
pub const INVENTORY_RESTOCK: ClientCall = call(
    "inventory.restock",
    "inventory",
    "POST",
    "/v1/restock",
    Some("RestockRequest"),
    "RestockResult",
);
pub const TAX_QUOTE: ClientCall = call(
    "tax.quote",
    "tax",
    "POST",
    "/v1/quotes",
    Some("QuoteRequest"),
    "Quote",
);
pub const PAYMENT_AUTHORIZE: ClientCall = call(
    "payment.authorize",
    "payment",
    "POST",
    "/v1/authorizations",
    Some("AuthorizeRequest"),
    "Authorization",
);
pub const PAYMENT_OF_ORDER: ClientCall = call(
    "payment.of_order",
    "payment",
    "GET",
    "/v1/authorizations/by-order/{order_id}",
    None,
    "Authorization",
);
pub const PAYMENT_CAPTURE: ClientCall = call(
    "payment.capture",
    "payment",
    "POST",
    "/v1/authorizations/{id}/capture",
    None,
    "Authorization",
);
pub const PAYMENT_VOID: ClientCall = call(
    "payment.void",
    "payment",
    "POST",
    "/v1/authorizations/{id}/void",
    None,
    "Authorization",
);
pub const PAYMENT_REFUND: ClientCall = call(
    "payment.refund",
    "payment",
    "POST",
    "/v1/authorizations/{id}/refund",
    Some("RefundRequest"),
    "Authorization",
);
pub const PAYMENT_STATUS: ClientCall = call(
    "payment.status",
    "payment",
    "GET",
    "/v1/status",
    None,
    "ProviderStatus",
);
pub const FULFILLMENT_CREATE: ClientCall = call(
    "fulfillment.create",
    "fulfillment",
    "POST",
    "/v1/shipments",
    Some("ShipmentRequest"),
    "Shipment",
);
pub const FULFILLMENT_CANCEL: ClientCall = call(
    "fulfillment.cancel",
    "fulfillment",
    "POST",
    "/v1/shipments/{id}/cancel",
    None,
    "Shipment",
);
pub const FULFILLMENT_OF_ORDER: ClientCall = call(
    "fulfillment.of_order",
    "fulfillment",
    "GET",
    "/v1/shipments/by-order/{order_id}",
    None,
    "Shipment",
);
pub const RETURNS_CREATE: ClientCall = call(
    "returns.create",
    "returns",
    "POST",
    "/v1/returns",
    Some("ReturnRequest"),
    "ReturnAuthorization",
);

/// Every call in the code.
pub const ALL_CALLS: &[ClientCall] = &[
    INVENTORY_RESERVE,
    INVENTORY_OF_ORDER,
    INVENTORY_RELEASE,
    INVENTORY_COMMIT,
    INVENTORY_STOCK,
    INVENTORY_RESTOCK,
    TAX_QUOTE,
    PAYMENT_AUTHORIZE,
    PAYMENT_OF_ORDER,
    PAYMENT_CAPTURE,
    PAYMENT_VOID,
    PAYMENT_REFUND,
    PAYMENT_STATUS,
    FULFILLMENT_CREATE,
    FULFILLMENT_CANCEL,
    FULFILLMENT_OF_ORDER,
    RETURNS_CREATE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_path_fills_and_escapes_parameters() {
        assert_eq!(
            INVENTORY_RELEASE.render_path(&["r-1"]),
            "/v1/reservations/r-1/release"
        );
        assert_eq!(
            PAYMENT_CAPTURE.render_path(&["a/b c"]),
            "/v1/authorizations/a%2Fb%20c/capture"
        );
        assert_eq!(TAX_QUOTE.render_path(&[]), "/v1/quotes");
    }
}

/// Checks every call in [`ALL_CALLS`] against the OpenAPI document its callee
/// publishes: the path and method exist, the request body and the success
/// response use the schemas the client sends and expects.
#[cfg(test)]
mod contract_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::client::Peers;
    use crate::routing::LiveRouting;
    use crate::services::{Environment, openapi};

    fn environment() -> Environment {
        Environment {
            peers: Arc::new(Peers::local(1)),
            admin_token: "t".to_owned(),
            routing: LiveRouting::new(&Default::default()),
            call_timeout: Duration::from_secs(1),
            limits: Default::default(),
            hold_ttl: Duration::from_secs(600),
            ship_delay: Duration::from_secs(1),
            database: None,
            bus: None,
        }
    }

    fn schema_ref(content: &Value) -> Option<String> {
        content["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_owned)
    }

    #[tokio::test]
    async fn every_client_call_matches_the_callees_published_document() {
        let env = environment();
        let mut problems = Vec::new();
        for call in ALL_CALLS {
            let callees: Vec<&str> = if call.callee == "payment" {
                vec!["payment-primary", "payment-secondary"]
            } else {
                vec![call.callee]
            };
            for callee in callees {
                let document = serde_json::to_value(openapi(callee, &env).expect("known service"))
                    .expect("json");
                let operation = &document["paths"][call.path][call.method.to_lowercase()];
                if operation.is_null() {
                    problems.push(format!(
                        "{}: {callee} has no {} {}",
                        call.name, call.method, call.path
                    ));
                    continue;
                }
                let request = schema_ref(&operation["requestBody"]["content"]);
                if request.as_deref() != call.request {
                    problems.push(format!(
                        "{}: sends {:?}, {callee} documents {request:?}",
                        call.name, call.request
                    ));
                }
                let success = operation["responses"]
                    .as_object()
                    .map(|r| {
                        r.iter()
                            .filter(|(status, _)| status.starts_with('2'))
                            .filter_map(|(_, response)| schema_ref(&response["content"]))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if !success.iter().any(|s| s == call.response) {
                    problems.push(format!(
                        "{}: expects {}, {callee} answers {success:?}",
                        call.name, call.response
                    ));
                }
                let documents_client_errors = operation["responses"]
                    .as_object()
                    .is_some_and(|r| r.keys().any(|s| s.starts_with('4')));
                if call.request.is_some() && !documents_client_errors {
                    problems.push(format!(
                        "{}: {callee} documents no 4xx answer for a request body",
                        call.name
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "contract violations:\n{}",
            problems.join("\n")
        );
    }
}
