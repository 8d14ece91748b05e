//! Returns that cannot lose a refund: an order is returned only once its
//! refund is recorded, and a return whose refund may have gone through is
//! kept and completed by a retry, the money moved once.

use serde_json::{Value, json};

use crate::common::Oms;

async fn order_state(oms: &Oms, id: &str) -> Value {
    let (status, order) = oms.get("orders", &format!("/v1/orders/{id}")).await;
    assert_eq!(status, 200, "{order}");
    order["state"].clone()
}

/// An OMS that ships nothing (orders stay returnable) and one confirmed
/// order: the order, its provider and its total.
async fn confirmed_order() -> (Oms, Value, String, Value) {
    let oms = Oms::start(&["--ship-delay-ms", "3600000"]).await;
    let order = oms.order("SKU-HOODIE", "tok_visa").await;
    let provider = order["payment_provider"]
        .as_str()
        .expect("provider")
        .to_owned();
    let total = order["quote"]["total_cents"].clone();
    (oms, order, provider, total)
}

async fn ask_return(oms: &Oms, id: &str) -> (u16, Value) {
    oms.post(
        "orders",
        &format!("/v1/orders/{id}/returns"),
        &json!({ "reason": "too small" }),
    )
    .await
}

#[tokio::test]
async fn an_order_is_returned_only_once_its_refund_is_recorded_and_a_failed_return_is_resumed() {
    let (oms, order, provider, total) = confirmed_order().await;
    let (id, provider) = (order["id"].as_str().expect("id"), provider.as_str());

    // The provider answers every refund after a second, with an error: the
    // request that claims the return works on it for about three seconds
    // (three attempts) and fails; the other, meanwhile, finds the claim.
    oms.inject(
        provider,
        &json!({ "kind": "latency", "latency_ms": 1000, "jitter": 0.0, "duration_seconds": 600 }),
    )
    .await;
    oms.inject(
        provider,
        &json!({ "kind": "errors", "error_rate": 1.0, "duration_seconds": 600 }),
    )
    .await;
    let (first, second) = tokio::join!(ask_return(&oms, id), ask_return(&oms, id));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [202, 502], "{first:?} {second:?}");
    let claim = if first.0 == 202 { &first.1 } else { &second.1 };
    assert_eq!(claim["state"], "requested", "{claim}");
    // Not returned: the claim's refund failed.
    assert_eq!(order_state(&oms, id).await, "confirmed");

    // The provider is back: asking again completes the kept return.
    oms.clear_faults(provider).await;
    assert_eq!(oms.authorization_of(&order).await["refunded_cents"], 0);
    let (status, rma) = ask_return(&oms, id).await;
    assert_eq!(status, 201, "{rma}");
    assert_eq!(rma["state"], "refunded");
    assert_eq!(rma["refund_cents"], total);
    assert_eq!(order_state(&oms, id).await, "returned");
    assert_eq!(oms.authorization_of(&order).await["refunded_cents"], total);
    let (status, body) = ask_return(&oms, id).await;
    assert_eq!(status, 409, "returned once: {body}");
}

#[tokio::test]
async fn a_refund_whose_answer_was_lost_is_kept_and_completed_once() {
    let (oms, order, provider, total) = confirmed_order().await;
    let (id, provider) = (order["id"].as_str().expect("id"), provider.as_str());

    // The provider refunds, and the answer is lost every time.
    oms.inject(
        provider,
        &json!({ "kind": "drop_response", "error_rate": 1.0, "duration_seconds": 600 }),
    )
    .await;
    let (status, body) = ask_return(&oms, id).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(order_state(&oms, id).await, "confirmed");
    oms.clear_faults(provider).await;
    // The money moved although nobody heard it: the return was kept.
    assert_eq!(oms.authorization_of(&order).await["refunded_cents"], total);

    let (status, rma) = ask_return(&oms, id).await;
    assert_eq!(status, 201, "{rma}");
    assert_eq!(order_state(&oms, id).await, "returned");
    // Resumed with the order's key: refunded once, not twice.
    assert_eq!(oms.authorization_of(&order).await["refunded_cents"], total);
}
