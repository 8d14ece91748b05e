//! The order saga against real `oms up` processes: every terminal state, the
//! compensations, idempotency and returns.

use crate::common::{Oms, order_request};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn orders_reach_every_terminal_state_with_compensations() {
    let oms = Oms::start(&[]).await;

    // Confirmed: stock committed, payment captured.
    let order = oms.order("SKU-MUG", "tok_visa").await;
    assert_eq!(order["state"], "confirmed", "{order}");
    let reservation = oms.reservation_of(&order).await;
    assert_eq!(reservation["state"], "committed");
    let auth = oms.authorization_of(&order).await;
    assert_eq!(auth["state"], "captured");

    // Rejected, out of stock: nothing held, no payment taken.
    let order = oms.order("SKU-LAMP-RARE", "tok_visa").await;
    assert_eq!(order["state"], "rejected");
    assert!(
        order["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("out_of_stock")),
        "{order}"
    );
    assert!(
        order["reservation_id"].is_null() && order["authorization_id"].is_null(),
        "{order}"
    );

    // Rejected, card declined at authorisation: the stock is released.
    let order = oms.order("SKU-MUG", "tok_declined").await;
    assert_eq!(order["state"], "rejected");
    assert!(
        order["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("payment_declined")),
        "{order}"
    );
    let reservation = oms.reservation_of(&order).await;
    assert_eq!(reservation["state"], "released");

    // Rejected, payment failed at capture: the authorisation is voided, the
    // shipment cancelled and the stock released, in reverse order.
    let order = oms.order("SKU-MUG", "tok_capture_declined").await;
    assert_eq!(order["state"], "rejected", "{order}");
    assert!(
        order["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("payment_declined")),
        "{order}"
    );
    let auth = oms.authorization_of(&order).await;
    assert_eq!(auth["state"], "voided");
    let reservation = oms.reservation_of(&order).await;
    assert_eq!(reservation["state"], "released");
    let log: Vec<&str> = order["saga_log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    let undo: Vec<&str> = log
        .iter()
        .copied()
        .filter(|e| {
            e.starts_with("cancelled") || e.starts_with("voided") || e.starts_with("released")
        })
        .collect();
    assert_eq!(undo.len(), 3, "{log:?}");
    assert!(
        undo[0].starts_with("cancelled")
            && undo[1].starts_with("voided")
            && undo[2].starts_with("released"),
        "{log:?}"
    );

    // The business outcomes are counted by reason.
    let metrics = oms.metrics("orders").await;
    assert!(
        metrics.contains(r#"oms_outcomes_total{service="orders",outcome="confirmed",reason=""} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"oms_outcomes_total{service="orders",outcome="rejected",reason="payment_declined"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"oms_outcomes_total{service="orders",outcome="rejected",reason="out_of_stock"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_order_and_refuses_another_request() {
    let oms = Oms::start(&[]).await;
    let url = format!("{}/v1/orders", oms.url("orders"));
    let send = |body: serde_json::Value| {
        oms.http
            .post(&url)
            .header("Idempotency-Key", "key-1")
            .json(&body)
            .send()
    };
    let first = send(order_request("SKU-MUG", 1, "tok_visa"))
        .await
        .expect("first");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: serde_json::Value = first.json().await.expect("json");
    let again = send(order_request("SKU-MUG", 1, "tok_visa"))
        .await
        .expect("retry");
    assert_eq!(again.status(), StatusCode::OK);
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["state"], "confirmed");

    let other = send(order_request("SKU-MUG", 2, "tok_visa"))
        .await
        .expect("reuse");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = other.json().await.expect("json");
    assert_eq!(body["error"], "idempotency_key_reused");

    // Exactly one order was charged.
    let metrics = oms.metrics("orders").await;
    assert!(
        metrics.contains(r#"oms_outcomes_total{service="orders",outcome="confirmed",reason=""} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn returns_refund_and_restock_and_events_reach_notifications() {
    let oms = Oms::start(&["--ship-delay-ms", "100"]).await;
    let order = oms.order("SKU-HOODIE", "tok_visa").await;
    let id = order["id"].as_str().expect("id");

    let (status, rma) = oms
        .post(
            "orders",
            &format!("/v1/orders/{id}/returns"),
            &json!({ "reason": "too small" }),
        )
        .await;
    assert_eq!(status, 201, "{rma}");
    assert_eq!(rma["refund_cents"], order["quote"]["total_cents"]);
    let auth = oms.authorization_of(&order).await;
    assert_eq!(auth["state"], "refunded");
    assert_eq!(auth["refunded_cents"], order["quote"]["total_cents"]);
    let (_, stored) = oms.get("orders", &format!("/v1/orders/{id}")).await;
    assert_eq!(stored["state"], "returned");

    // A rejected order cannot be returned.
    let rejected = oms.order("SKU-LAMP-RARE", "tok_visa").await;
    let (status, body) = oms
        .post(
            "orders",
            &format!(
                "/v1/orders/{}/returns",
                rejected["id"].as_str().expect("id")
            ),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // Events arrive asynchronously: created, confirmed, returned (and shipped if it shipped first).
    let events_url = format!("/v1/events?order_id={id}");
    let kinds = homeostat_test_support::wait_until(
        "order events delivered",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || async {
            let (_, events) = oms.get("notifications", &events_url).await;
            let kinds: Vec<String> = events["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["kind"].as_str().map(str::to_owned))
                .collect();
            if kinds.contains(&"created".to_owned())
                && kinds.contains(&"confirmed".to_owned())
                && kinds.contains(&"returned".to_owned())
            {
                Ok(kinds)
            } else {
                Err(kinds)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!kinds.contains(&"rejected".to_owned()), "{kinds:?}");
}
