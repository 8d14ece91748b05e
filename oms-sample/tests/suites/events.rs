//! Order events go from the orders outbox to JetStream to the notifications
//! consumer exactly once, whatever restarts in between: real PostgreSQL, a
//! real nats-server (Debian's), real `oms up` processes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{ADMIN_TOKEN, Backing, Oms, order_request};
use futures::future::join_all;
use homeostat_oms::bus;
use homeostat_test_support::wait_until;
use serde_json::{Value, json};
use sqlx::PgPool;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

async fn place(oms: &Oms, count: usize) -> Vec<Value> {
    let requests = (0..count).map(|_| async {
        let (status, order) = oms
            .post(
                "orders",
                "/v1/orders",
                &order_request("SKU-MUG", 1, "tok_visa"),
            )
            .await;
        assert_eq!(status, 201, "{order}");
        order
    });
    join_all(requests).await
}

/// How many times notifications recorded each (order, kind).
async fn recorded(db: &PgPool) -> BTreeMap<(String, String), i64> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT order_id, kind, count(*) FROM notifications.events GROUP BY order_id, kind",
    )
    .fetch_all(db)
    .await
    .expect("notifications' events");
    rows.into_iter().map(|(o, k, n)| ((o, k), n)).collect()
}

/// The events each order's state calls for: created, then its final state.
fn expected(orders: &[Value]) -> BTreeMap<(String, String), i64> {
    orders
        .iter()
        .flat_map(|order| {
            let id = order["id"].as_str().expect("id").to_owned();
            let last = order["state"].as_str().expect("state").to_owned();
            [((id.clone(), "created".to_owned()), 1), ((id, last), 1)]
        })
        .collect()
}

/// Waits until notifications holds exactly the expected events, each once.
async fn delivered_exactly_once(backing: &Backing, orders: &[Value]) {
    let expected = expected(orders);
    let db = backing.db().await;
    wait_until(
        "every event recorded once",
        DELIVERY_TIMEOUT,
        Duration::from_millis(100),
        || {
            let (db, expected) = (&db, &expected);
            async move {
                let recorded = recorded(db).await;
                if &recorded == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "{} of {} (order, kind) pairs recorded; duplicates: {:?}",
                        recorded.len(),
                        expected.len(),
                        recorded.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
                    ))
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The consumer's lag as notifications exports it.
async fn consumer_lag(oms: &Oms) -> Option<f64> {
    let metrics = oms.metrics("notifications").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("oms_event_consumer_lag{service=\"notifications\"} "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until notifications' exported lag satisfies `ok`.
async fn wait_for_lag(oms: &Oms, what: &str, ok: impl Fn(f64) -> bool) {
    wait_until(
        what,
        DELIVERY_TIMEOUT,
        Duration::from_millis(100),
        || async {
            match consumer_lag(oms).await {
                Some(lag) if ok(lag) => Ok(()),
                other => Err(format!("lag {other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn post_fault(oms: &Oms, service: &str, fault: &Value) -> (u16, String) {
    let response = oms
        .http
        .post(format!("{}/admin/faults", oms.url(service)))
        .bearer_auth(ADMIN_TOKEN)
        .json(fault)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_slow_consumer_falls_behind_then_catches_up_with_every_event_once() {
    let backing = Backing::start().await;
    let oms = backing.oms().await;
    let slow = json!({
        "kind": "slow_consumer", "latency_ms": 300, "jitter": 0.0, "duration_seconds": 120
    });
    let (status, body) = post_fault(&oms, "tax", &slow).await;
    assert_eq!(status, 422, "tax consumes no events: {body}");
    assert!(body.contains("consumes no events"), "{body}");
    let (status, body) = post_fault(&oms, "notifications", &slow).await;
    assert_eq!(status, 201, "{body}");

    // 40 events at 300 ms each: the backlog shows in the lag for seconds.
    let orders = place(&oms, 20).await;
    wait_for_lag(&oms, "the consumer's lag shows the backlog", |lag| {
        lag >= 10.0
    })
    .await;

    // The fault ends: the backlog drains, every event recorded once.
    let ended = oms
        .http
        .delete(format!("{}/admin/faults", oms.url("notifications")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("delete");
    assert!(ended.status().is_success());
    delivered_exactly_once(&backing, &orders).await;
    wait_for_lag(&oms, "the lag back to 0", |lag| lag == 0.0).await;
}

#[tokio::test]
async fn orders_go_on_while_the_broker_is_down_and_their_events_arrive_once() {
    let mut backing = Backing::start().await;
    let oms = backing.oms().await;
    let mut orders = place(&oms, 10).await;
    delivered_exactly_once(&backing, &orders).await;

    backing.nats.kill();
    let during = place(&oms, 10).await;
    assert!(
        during.iter().all(|o| o["state"] == "confirmed"),
        "orders are confirmed without the broker"
    );
    let db = backing.db().await;
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders.outbox WHERE published_at IS NULL")
            .fetch_one(&db)
            .await
            .expect("outbox");
    assert_eq!(waiting, 20, "the outage's events wait in the outbox");
    // And the relay says so, for the detector to read.
    wait_until(
        "the outbox gauge shows the backlog",
        DELIVERY_TIMEOUT,
        Duration::from_millis(50),
        || async {
            let metrics = oms.metrics("orders").await;
            if metrics.contains("oms_outbox_unpublished{service=\"orders\"} 20") {
                Ok(())
            } else {
                Err(metrics)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    backing.nats.restart().await.expect("NATS back");
    orders.extend(during);
    delivered_exactly_once(&backing, &orders).await;
}

#[tokio::test]
async fn a_killed_oms_leaves_no_event_behind_and_none_twice() {
    let mut backing = Backing::start().await;
    let first = backing.oms().await;
    let mut orders = place(&first, 10).await;
    // Events the relay cannot send yet: the broker is down.
    backing.nats.kill();
    orders.extend(place(&first, 10).await);
    first.kill();
    backing.nats.restart().await.expect("NATS back");

    // The events the dead relay had not sent, and any its consumer had not
    // acknowledged, are sent and delivered by the next one.
    let _second = backing.oms().await;
    delivered_exactly_once(&backing, &orders).await;
}

#[tokio::test]
async fn a_republished_event_is_dropped_by_the_broker() {
    let backing = Backing::start().await;
    let oms = backing.oms().await;
    let orders = place(&oms, 3).await;
    delivered_exactly_once(&backing, &orders).await;
    let before = backing.stream_messages().await;
    assert_eq!(before, 6);

    // As if the relay had died after the broker's acknowledgement and
    // before it marked the events sent: they are sent again.
    let db = backing.db().await;
    sqlx::query("UPDATE orders.outbox SET published_at = NULL")
        .execute(&db)
        .await
        .expect("unmark the outbox");
    wait_until(
        "the outbox sent again",
        DELIVERY_TIMEOUT,
        Duration::from_millis(50),
        || {
            let db = &db;
            async move {
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM orders.outbox WHERE published_at IS NULL",
                )
                .fetch_one(db)
                .await
                .map_err(|e| e.to_string())?;
                if left == 0 {
                    Ok(())
                } else {
                    Err(left.to_string())
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        backing.stream_messages().await,
        before,
        "no copy on the stream"
    );
    delivered_exactly_once(&backing, &orders).await;
}

#[tokio::test]
async fn a_message_that_is_no_order_event_is_set_aside_and_the_rest_flows() {
    let backing = Backing::start().await;
    let oms = backing.oms().await;
    let client = async_nats::connect(backing.nats.url()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    bus::order_events(&js).await.expect("stream");
    js.publish("oms.orders.created", "not an event".into())
        .await
        .expect("publish")
        .await
        .expect("acknowledged");

    let orders = place(&oms, 2).await;
    delivered_exactly_once(&backing, &orders).await;
    let metrics = oms.metrics("notifications").await;
    assert!(
        metrics.contains("oms_events_malformed_total{service=\"notifications\"} 1"),
        "{metrics}"
    );
}
