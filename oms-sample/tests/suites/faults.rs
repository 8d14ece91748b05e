//! Fault injection seen from the outside: in the faulted service's server
//! metrics, in its callers' client metrics, and gone when the fault ends.

use crate::common::{ADMIN_TOKEN, Oms, histogram_count, observations_above};
use serde_json::json;

const SERVER: &str = "http_server_request_duration_seconds";
const CLIENT: &str = "http_client_request_duration_seconds";

#[tokio::test]
async fn latency_fault_shows_in_server_and_caller_metrics_and_stops_when_it_ends() {
    let oms = Oms::start(&[]).await;
    let tax_route = r#"http_route="/v1/quotes""#;
    let to_tax = r#"peer_service="tax""#;
    for _ in 0..5 {
        oms.order("SKU-MUG", "tok_visa").await;
    }
    let slow =
        |metrics: &str, name: &str, label: &str| observations_above(metrics, name, 0.15, &[label]);
    assert_eq!(slow(&oms.metrics("tax").await, SERVER, tax_route), 0.0);

    // Admin endpoints need the token.
    let fault =
        json!({ "kind": "latency", "latency_ms": 250, "jitter": 0.1, "duration_seconds": 60 });
    let denied = oms
        .http
        .post(format!("{}/admin/faults", oms.url("tax")))
        .json(&fault)
        .send()
        .await
        .expect("post");
    assert_eq!(denied.status().as_u16(), 401);
    let created = oms
        .http
        .post(format!("{}/admin/faults", oms.url("tax")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&fault)
        .send()
        .await
        .expect("post");
    assert_eq!(created.status().as_u16(), 201);
    let metrics = oms.metrics("tax").await;
    assert!(
        metrics.contains(r#"oms_active_faults{service="tax"} 1"#),
        "{metrics}"
    );

    for _ in 0..4 {
        oms.order("SKU-MUG", "tok_visa").await;
    }
    let tax = oms.metrics("tax").await;
    let orders = oms.metrics("orders").await;
    assert_eq!(slow(&tax, SERVER, tax_route), 4.0, "tax server histogram");
    assert_eq!(
        slow(&orders, CLIENT, to_tax),
        4.0,
        "orders' client histogram to tax"
    );
    // Orders' own latency shows it; the other callees stay fast.
    assert_eq!(slow(&orders, SERVER, r#"http_route="/v1/orders""#), 4.0);
    assert_eq!(slow(&orders, CLIENT, r#"peer_service="inventory""#), 0.0);

    let ended = oms
        .http
        .delete(format!("{}/admin/faults", oms.url("tax")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("delete");
    assert!(ended.status().is_success());
    for _ in 0..4 {
        oms.order("SKU-MUG", "tok_visa").await;
    }
    let tax = oms.metrics("tax").await;
    assert_eq!(
        slow(&tax, SERVER, tax_route),
        4.0,
        "no new slow requests after the fault ended"
    );
    assert_eq!(histogram_count(&tax, SERVER, &[tax_route]), 13.0);
    assert!(
        tax.contains(r#"oms_active_faults{service="tax"} 0"#),
        "{tax}"
    );
}

#[tokio::test]
async fn error_fault_fails_calls_and_the_saga_compensates() {
    let oms = Oms::start(&[]).await;
    let fault = json!({ "kind": "errors", "error_rate": 1.0, "duration_seconds": 2 });
    let (status, view) = {
        let r = oms
            .http
            .post(format!("{}/admin/faults", oms.url("fulfillment")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&fault)
            .send()
            .await
            .expect("post");
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.expect("json"),
        )
    };
    assert_eq!(status, 201, "{view}");
    let order = oms.order("SKU-MUG", "tok_visa").await;
    assert_eq!(order["state"], "rejected");
    assert!(
        order["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("fulfillment_unavailable")),
        "{order}"
    );
    let auth = oms.authorization_of(&order).await;
    assert_eq!(
        auth["state"], "voided",
        "payment voided when fulfillment failed"
    );
    let orders = oms.metrics("orders").await;
    assert!(
        orders.contains(r#"peer_service="fulfillment""#)
            && orders.contains(r#"http_response_status_code="503""#),
        "{orders}"
    );

    // The fault ends by itself after its duration.
    homeostat_test_support::wait_until(
        "fault expired",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        || async {
            let order = oms.order("SKU-MUG", "tok_visa").await;
            if order["state"] == "confirmed" {
                Ok(())
            } else {
                Err(order["reason"].clone())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn bad_requests_get_4xx_with_a_json_error_and_nothing_is_created() {
    let oms = Oms::start(&[]).await;
    let url = format!("{}/v1/orders", oms.url("orders"));
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (oms.http.post(&url).header("content-type", "application/json").body("{not json"), 400, "malformed_json"),
        (oms.http.post(&url).json(&crate::common::order_request("SKU-NOPE", 1, "tok_visa")), 422, "unknown_sku"),
        (oms.http.post(&url).json(&json!({"customer_id": "c", "lines": [{"sku": "SKU-MUG", "quantity": -3}], "region": "EAST", "card_token": "t"})), 422, "invalid_body"),
        (oms.http.post(&url).json(&crate::common::order_request("SKU-MUG", 0, "tok_visa")), 422, "invalid_quantity"),
        (oms.http.post(&url).json(&json!({"customer_id": "c", "lines": [], "region": "EAST", "card_token": "t"})), 422, "empty_basket"),
        (oms.http.post(&url).json(&json!({"customer_id": "c", "lines": [{"sku": "SKU-MUG", "quantity": 1}], "region": "EAST", "card_token": "t", "extra": 1})), 422, "invalid_body"),
        (oms.http.post(&url).header("content-type", "application/json").body(vec![b' '; 100 * 1024]), 413, "body_too_large"),
        (oms.http.post(&url).body("{}"), 415, "unsupported_media_type"),
        (oms.http.get(format!("{}/v1/orders/nope", oms.url("orders"))), 404, "not_found"),
        (oms.http.post(format!("{}/admin/faults", oms.url("tax"))).bearer_auth(ADMIN_TOKEN).json(&json!({"kind": "latency", "duration_seconds": 5})), 422, "invalid_fault"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.expect("send");
        assert_eq!(response.status().as_u16(), status, "{code}");
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{code}: body is not JSON: {e}"));
        assert_eq!(body["error"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let metrics = oms.metrics("orders").await;
    assert!(
        !metrics.contains("oms_outcomes_total{"),
        "no order was created: {metrics}"
    );
}

/// Posts `fault` to `service`'s fault injector; the answer's status.
async fn inject(oms: &Oms, service: &str, fault: &serde_json::Value) -> u16 {
    oms.http
        .post(format!("{}/admin/faults", oms.url(service)))
        .bearer_auth(ADMIN_TOKEN)
        .json(fault)
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

/// Waits until `service`'s `/healthz` is refused (`up: false`) or answers
/// 200 (`up: true`).
async fn wait_listening(oms: &Oms, service: &str, up: bool, within: std::time::Duration) {
    let url = format!("{}/healthz", oms.url(service));
    homeostat_test_support::wait_until(
        &format!(
            "{service} {}",
            if up {
                "listening"
            } else {
                "refusing connections"
            }
        ),
        within,
        std::time::Duration::from_millis(20),
        || async {
            match (reqwest::get(&url).await, up) {
                (Ok(r), true) if r.status().as_u16() == 200 => Ok(()),
                (Err(e), false) if e.is_connect() => Ok(()),
                (other, _) => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_down_fault_refuses_connections_fails_callers_unanswered_and_ends() {
    let oms = Oms::start(&[]).await;
    // Asked for and answered before it stops listening.
    let down = json!({ "kind": "down", "duration_seconds": 3600 });
    assert_eq!(inject(&oms, "payment-primary", &down).await, 201);
    // Refused, as a dead process's port: no answer at all, not an error answer.
    wait_listening(
        &oms,
        "payment-primary",
        false,
        std::time::Duration::from_secs(10),
    )
    .await;

    // Orders' calls to it go unanswered (`error_type` connect); the order is
    // rejected.
    let order = oms.order("SKU-MUG", "tok_visa").await;
    assert_eq!(order["state"], "rejected", "{order}");
    let orders = oms.metrics("orders").await;
    let unanswered = histogram_count(
        &orders,
        CLIENT,
        &[
            r#"peer_service="payment-primary""#,
            r#"error_type="connect""#,
        ],
    );
    assert!(unanswered >= 1.0, "{orders}");
    // The other services still serve.
    assert_eq!(oms.get("tax", "/healthz").await.0, 200);

    // It listens again when the fault ends: a 2 s outage of tax.
    let short = json!({ "kind": "down", "duration_seconds": 2 });
    assert_eq!(inject(&oms, "tax", &short).await, 201);
    wait_listening(&oms, "tax", false, std::time::Duration::from_secs(2)).await;
    wait_listening(&oms, "tax", true, std::time::Duration::from_secs(10)).await;
}
