//! Returns that cannot lose a refund, on a real PostgreSQL and NATS: an
//! order is returned only once its refund is recorded; a return whose
//! refund failed, timed out or lost its answer, or whose `returns` replica
//! was SIGKILLed mid-return, is kept and completed by orders' recovery
//! without the customer asking again, the money moved once; and `oms
//! audit` passes after each, and fails on an order returned with no refund.

use std::time::Duration;

use homeostat_test_support::wait_until;
use serde_json::{Value, json};

use crate::common::{Backing, Oms, audit, books_balance};

/// What the provider has refunded of the order's authorisation, read from
/// its table: the provider's API may be the one failing.
async fn refunded_cents(backing: &Backing, provider: &str, order: &Value) -> Value {
    let query = match provider {
        "payment-primary" => {
            "SELECT refunded_cents FROM payment_primary.authorizations WHERE order_id = $1"
        }
        "payment-secondary" => {
            "SELECT refunded_cents FROM payment_secondary.authorizations WHERE order_id = $1"
        }
        other => panic!("no provider {other}"),
    };
    let cents: i64 = sqlx::query_scalar(query)
        .bind(order["id"].as_str().expect("id"))
        .fetch_one(&backing.db().await)
        .await
        .expect("the authorisation");
    Value::from(cents)
}

async fn order_state(oms: &Oms, id: &str) -> Value {
    let (status, order) = oms.get("orders", &format!("/v1/orders/{id}")).await;
    assert_eq!(status, 200, "{order}");
    order["state"].clone()
}

/// A confirmed order: the order, its provider and its total.
async fn confirmed_order(oms: &Oms) -> (Value, String, Value) {
    let order = oms.order("SKU-HOODIE", "tok_visa").await;
    let provider = order["payment_provider"]
        .as_str()
        .expect("provider")
        .to_owned();
    let total = order["quote"]["total_cents"].clone();
    (order, provider, total)
}

async fn ask_return(oms: &Oms, id: &str) -> (u16, Value) {
    oms.post(
        "orders",
        &format!("/v1/orders/{id}/returns"),
        &json!({ "reason": "too small" }),
    )
    .await
}

/// Waits until the order is returned with no one asking again: orders'
/// recovery asks `returns` every 2 s once a return is due.
async fn returned_by_recovery(oms: &Oms, id: &str) {
    wait_until(
        &format!("order {id} returned by recovery"),
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            match order_state(oms, id).await {
                state if state == "returned" => Ok(()),
                state => Err(format!("still {state}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- oms log ---\n{}", oms.log()));
}

#[tokio::test]
async fn an_order_is_returned_only_once_its_refund_is_recorded_and_a_failed_return_completes_alone()
{
    let backing = Backing::start().await;
    let oms = backing.oms().await;
    let (order, provider, total) = confirmed_order(&oms).await;
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
    // Not returned while the refund fails, however often recovery asks.
    wait_until(
        "recovery asked returns again and kept the return",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let metrics = oms.metrics("orders").await;
            let kept = metrics.lines().any(|line| {
                line.starts_with("oms_outcomes_total{")
                    && line.contains(r#"outcome="recovered""#)
                    && line.contains(r#"reason="return_kept""#)
            });
            if kept {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order_state(&oms, id).await, "confirmed");
    assert_eq!(refunded_cents(&backing, provider, &order).await, 0);

    // The provider is back: recovery completes the kept return, once.
    oms.clear_faults(provider).await;
    returned_by_recovery(&oms, id).await;
    assert_eq!(oms.authorization_of(&order).await["refunded_cents"], total);
    let (status, body) = ask_return(&oms, id).await;
    assert_eq!(status, 409, "returned once: {body}");
    books_balance(&backing).await;
}

#[tokio::test]
async fn a_refund_whose_answer_was_lost_is_kept_and_completed_once() {
    let backing = Backing::start().await;
    let oms = backing.oms().await;
    let (order, provider, total) = confirmed_order(&oms).await;
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
    // The money moved although nobody heard it: the return was kept.
    assert_eq!(refunded_cents(&backing, provider, &order).await, total);
    oms.clear_faults(provider).await;

    returned_by_recovery(&oms, id).await;
    // Resumed with the order's key: refunded once, not twice.
    assert_eq!(oms.authorization_of(&order).await["refunded_cents"], total);
    books_balance(&backing).await;
}

#[tokio::test]
async fn a_return_while_payment_is_slower_than_the_calls_timeout_completes_once() {
    let backing = Backing::start().await;
    // Calls between services give up after a second; the provider takes
    // two and a half, and refunds all the same.
    let oms = backing
        .oms_with(&["--ship-delay-ms", "3600000", "--call-timeout-ms", "1000"])
        .await;
    let (order, provider, total) = confirmed_order(&oms).await;
    let (id, provider) = (order["id"].as_str().expect("id"), provider.as_str());
    oms.inject(
        provider,
        &json!({ "kind": "latency", "latency_ms": 2500, "jitter": 0.0, "duration_seconds": 600 }),
    )
    .await;
    let (status, body) = ask_return(&oms, id).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(order_state(&oms, id).await, "confirmed");
    oms.clear_faults(provider).await;

    returned_by_recovery(&oms, id).await;
    assert_eq!(oms.authorization_of(&order).await["refunded_cents"], total);
    books_balance(&backing).await;
}

#[tokio::test]
async fn a_returns_replica_killed_mid_return_loses_no_refund_and_pays_none_twice() {
    let backing = Backing::start().await;
    // Calls give up after 2 s, so a claim left by a killed replica is
    // resumed 13 s on (six calls and a second).
    let oms = backing
        .oms_with(&[
            "--replicas",
            "2",
            "--ship-delay-ms",
            "3600000",
            "--call-timeout-ms",
            "2000",
        ])
        .await;
    let mut orders = Vec::new();
    for _ in 0..4 {
        orders.push(confirmed_order(&oms).await);
    }
    // For the next 4 s every refund waits a second and a half at the
    // provider, whichever replica takes it: the returns are in flight,
    // spread over both `returns` replicas, when replica 0 is SIGKILLed.
    for provider in ["payment-primary", "payment-secondary"] {
        for replica in 0..2 {
            oms.inject_replica(
                provider,
                replica,
                &json!({ "kind": "latency", "latency_ms": 1500, "jitter": 0.0, "duration_seconds": 4 }),
            )
            .await;
        }
    }
    let asks = orders
        .iter()
        .map(|(order, _, _)| {
            let id = order["id"].as_str().expect("id").to_owned();
            let oms = &oms;
            async move { ask_return(oms, &id).await }
        })
        .collect::<Vec<_>>();
    let killing = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        oms.crash_replica("returns", 0).await;
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(asks), killing);
    assert!(
        answers.iter().any(|(status, _)| *status == 502),
        "a return was cut off by the kill: {answers:?}"
    );

    for (order, _, total) in &orders {
        let id = order["id"].as_str().expect("id");
        returned_by_recovery(&oms, id).await;
        assert_eq!(
            &oms.authorization_of(order).await["refunded_cents"],
            total,
            "order {id} refunded exactly its total, once"
        );
    }
    books_balance(&backing).await;
}

#[tokio::test]
async fn the_audit_fails_on_an_order_returned_with_no_refund() {
    let backing = Backing::start().await;
    let oms = backing.oms().await;
    let (order, _, _) = confirmed_order(&oms).await;
    books_balance(&backing).await;
    // What the old orders did when `returns` answered a claim still
    // `requested`: returned, with no refund behind it.
    let db = backing.db().await;
    sqlx::query("UPDATE orders.orders SET state = 'returned' WHERE id = $1::uuid")
        .bind(order["id"].as_str().expect("id"))
        .execute(&db)
        .await
        .expect("mark the order returned");
    let (passed, report) = audit(backing.postgres.url(), 0);
    assert!(!passed, "{report}");
    let failed = crate::common::failed_checks(&report);
    assert!(
        failed.contains(&"every returned order has its refund recorded"),
        "{report}"
    );
}
