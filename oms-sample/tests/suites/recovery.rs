//! The saga survives lost replies and a dead replica: real PostgreSQL, a
//! real nats-server, real `oms up` processes. After each drill every order
//! is terminal and the books balance across orders, payments, inventory and
//! fulfillment (checked in their databases).

use std::time::Duration;

use crate::common::{Backing, Oms, books_balance, none_left, order_request, orders_in};
use futures::future::join_all;
use homeostat_test_support::wait_until;
use serde_json::{Value, json};

/// Places `count` orders, eight at a time; returns each answer's status.
async fn place(oms: &Oms, count: usize) -> Vec<(u16, Value)> {
    let request = order_request("SKU-MUG", 1, "tok_visa");
    let mut answers = Vec::new();
    for _ in 0..count.div_ceil(8) {
        let batch = (0..8).map(|_| oms.post("orders", "/v1/orders", &request));
        answers.extend(join_all(batch).await);
    }
    answers.truncate(count);
    answers
}

/// Calls of `orders` to `peer` whose answer was cut off.
fn lost_calls(metrics: &str, peer: &str) -> f64 {
    crate::common::histogram_count(
        metrics,
        "http_client_request_duration_seconds",
        &[&format!("peer_service=\"{peer}\""), "error_type=\"lost\""],
    )
}

#[tokio::test]
async fn lost_replies_are_looked_up_and_the_books_balance() {
    let backing = Backing::start().await;
    let oms = backing.oms().await;
    // Every second answer of the card provider and of inventory is cut off
    // after the work is done: authorisations, captures, reservations and
    // commits happen without the saga hearing of them.
    for service in ["payment-primary", "inventory"] {
        oms.inject(
            service,
            &json!({ "kind": "drop_response", "error_rate": 0.5, "duration_seconds": 600 }),
        )
        .await;
    }
    let answers = place(&oms, 48).await;
    for (status, order) in &answers {
        assert!(matches!(status, 201 | 202), "{status} {order}");
    }
    let metrics = oms.metrics("orders").await;
    assert!(
        lost_calls(&metrics, "payment-primary") > 0.0 && lost_calls(&metrics, "inventory") > 0.0,
        "the drill lost no answers:\n{metrics}"
    );

    let db = backing.db().await;
    none_left(&db, "pending").await;
    books_balance(&backing).await;
    // Most orders get through: three tries per step, and a capture whose
    // answers were all lost is found done and finished, not voided.
    let confirmed = orders_in(&db, "confirmed").await;
    assert!(confirmed >= 24, "only {confirmed} of 48 confirmed");
    // Rejected only where every try of a step lost its answer (fulfillment
    // plans from inventory's stock, whose answers were lost too).
    let other_reasons: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM orders.orders WHERE state = 'rejected'
         AND reason NOT LIKE 'payment_unavailable%' AND reason NOT LIKE 'inventory_unavailable%'
         AND reason NOT LIKE 'fulfillment_unavailable%' AND reason NOT LIKE 'stock_commit_failed%'",
    )
    .fetch_all(&db)
    .await
    .expect("reasons");
    assert_eq!(other_reasons, Vec::<String>::new());
}

#[tokio::test]
async fn a_killed_orders_replica_leaves_no_order_pending_and_ships_what_it_confirmed() {
    let backing = Backing::start().await;
    let first = backing.oms_with(&["--ship-delay-ms", "3600000"]).await;
    // A slow provider keeps sagas in flight when the process dies.
    first
        .inject(
            "payment-primary",
            &json!({ "kind": "latency", "latency_ms": 400, "jitter": 0.0, "duration_seconds": 600 }),
        )
        .await;
    let db = backing.db().await;
    // Some orders get through before the crash, so there is shipping to do.
    let before = place(&first, 8).await;
    assert!(before.iter().all(|(status, _)| *status == 201));
    let http = first.http.clone();
    let url = format!("{}/v1/orders", first.url("orders"));
    let in_flight: Vec<_> = (0..24)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                // Its answer dies with the process.
                let _ = http
                    .post(url)
                    .json(&order_request("SKU-MUG", 1, "tok_visa"))
                    .send()
                    .await;
            })
        })
        .collect();
    wait_until(
        "sagas in flight",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            match orders_in(&db, "pending").await {
                n if n >= 12 => Ok(()),
                n => Err(format!("{n} pending")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    first.kill();
    for request in in_flight {
        let _ = request.await;
    }
    let stranded = orders_in(&db, "pending").await;
    assert!(stranded > 0, "the crash stranded no saga");

    // The next replica settles every stranded saga once its lease runs out,
    // and ships what was confirmed, whoever confirmed it.
    let second = backing.oms_with(&["--ship-delay-ms", "200"]).await;
    none_left(&db, "pending").await;
    none_left(&db, "confirmed").await;
    books_balance(&backing).await;
    let metrics = second.metrics("orders").await;
    assert!(
        metrics.contains("outcome=\"recovered\""),
        "the second replica recovered nothing:\n{metrics}"
    );
    let shipped = orders_in(&db, "shipped").await;
    assert!(shipped >= 8, "{shipped} shipped");
}

#[tokio::test]
async fn holds_no_saga_claims_expire_and_claimed_ones_stay() {
    let backing = Backing::start().await;
    let oms = backing
        .oms_with(&["--ship-delay-ms", "3600000", "--hold-ttl-ms", "2000"])
        .await;
    let order = oms.order("SKU-MUG", "tok_visa").await;
    assert_eq!(order["state"], "confirmed");
    // Holds whose saga is gone, as when an answer lands after its saga
    // settled without it: made straight at the callees.
    let (status, held) = oms
        .post(
            "inventory",
            "/v1/reservations",
            &json!({ "order_id": "ghost-1", "lines": [{ "sku": "SKU-MUG", "quantity": 2 }] }),
        )
        .await;
    assert_eq!(status, 201, "{held}");
    let (status, authorised) = oms
        .post(
            "payment-primary",
            "/v1/authorizations",
            &json!({ "order_id": "ghost-1", "amount_cents": 1000, "currency": "EUR",
                     "card_token": "tok_visa" }),
        )
        .await;
    assert_eq!(status, 201, "{authorised}");

    wait_until(
        "the unclaimed holds given back",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let (_, reservation) = oms
                .get("inventory", "/v1/reservations/by-order/ghost-1")
                .await;
            let (_, authorization) = oms
                .get("payment-primary", "/v1/authorizations/by-order/ghost-1")
                .await;
            match (
                reservation["state"].as_str(),
                authorization["state"].as_str(),
            ) {
                (Some("released"), Some("voided")) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // The confirmed order's holds were claimed: still captured and committed.
    let db = backing.db().await;
    books_balance(&backing).await;
    assert_eq!(oms.authorization_of(&order).await["state"], "captured");
    assert_eq!(oms.reservation_of(&order).await["state"], "committed");
    let inventory = oms.metrics("inventory").await;
    assert!(
        inventory.contains(
            "oms_outcomes_total{service=\"inventory\",outcome=\"expired\",reason=\"reservation\"} 1"
        ),
        "{inventory}"
    );

    // And the audit sees money taken for no order.
    sqlx::query(
        "UPDATE payment_primary.authorizations SET state = 'captured' WHERE order_id = 'ghost-1'",
    )
    .execute(&db)
    .await
    .expect("tamper with the books");
    let (passed, report) = crate::common::audit(backing.postgres.url(), 0);
    assert!(!passed, "{report}");
    let failed = crate::common::failed_checks(&report);
    assert_eq!(
        failed,
        [
            "no money held or taken for no order",
            "money kept by the providers = sold − returned"
        ],
        "{report}"
    );
}

#[tokio::test]
async fn sigterm_finishes_the_orders_in_flight_and_refuses_new_ones() {
    let backing = Backing::start().await;
    let mut oms = backing.oms().await;
    oms.inject(
        "tax",
        &json!({ "kind": "latency", "latency_ms": 1500, "jitter": 0.0, "duration_seconds": 600 }),
    )
    .await;
    let db = backing.db().await;
    let url = format!("{}/v1/orders", oms.url("orders"));
    let (http, order_url) = (oms.http.clone(), url.clone());
    let in_flight = tokio::spawn(async move {
        let response = http
            .post(order_url)
            .json(&order_request("SKU-MUG", 1, "tok_visa"))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok::<_, reqwest::Error>((status, response.json::<Value>().await?))
    });
    wait_until(
        "the saga waiting on tax",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            match orders_in(&db, "pending").await {
                1 => Ok(()),
                n => Err(n),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    oms.sigterm();
    // New requests are refused while the old one finishes.
    wait_until(
        "new connections refused",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            let fresh = reqwest::Client::new();
            match fresh
                .get(format!("{}/healthz", oms.url("orders")))
                .send()
                .await
            {
                Err(err) if err.is_connect() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (status, order) = in_flight
        .await
        .expect("task")
        .expect("the order in flight is answered, not cut off");
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["state"], "confirmed", "{order}");
    let exit = oms
        .exited_within(Duration::from_secs(20))
        .await
        .expect("oms up exits by itself once drained");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(orders_in(&db, "pending").await, 0);
}
