//! Two replicas of every service on one real PostgreSQL: two `oms up`
//! processes sharing a database, each calling its own services, as two pods
//! of each Deployment behind their Services would. Stock, money, idempotency
//! keys and lookups must hold across them.

use std::time::Duration;

use crate::common::{Backing, Load, Oms, books_balance, more_orders, none_left, order_request};
use futures::future::join_all;
use homeostat_oms::bus::local::LocalNats;
use homeostat_oms::db::local::LocalPostgres;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

/// Two replicas of every service on one database and one broker; the
/// broker is returned to be kept alive.
async fn replicas(postgres: &LocalPostgres) -> (Oms, Oms, LocalNats) {
    let nats = LocalNats::start().await.expect("NATS");
    let url = nats.url();
    // Shipping far off: the tests compare an order's state as created with
    // what either replica reads later, and a slow run must not ship it
    // meanwhile.
    let shared = [
        "--database-url",
        postgres.url(),
        "--nats-url",
        &url,
        "--ship-delay-ms",
        "3600000",
    ];
    let a = Oms::start(&shared).await;
    let b = Oms::start(&shared).await;
    (a, b, nats)
}

async fn db(postgres: &LocalPostgres) -> PgConnection {
    PgConnection::connect(postgres.url())
        .await
        .expect("connect to the test database")
}

async fn create(oms: &Oms, body: &Value, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = oms
        .http
        .post(format!("{}/v1/orders", oms.url("orders")))
        .timeout(Duration::from_secs(60))
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("create order");
    let status = response.status();
    (status, response.json().await.expect("order json"))
}

#[tokio::test]
async fn two_replicas_never_oversell_nor_charge_twice() {
    let postgres = LocalPostgres::start().await.expect("PostgreSQL");
    let (a, b, _nats) = replicas(&postgres).await;

    // A warehouse count: 40 posters left, all in WH-CENTRAL.
    const STOCK: i64 = 40;
    const ORDERS: usize = 60;
    let mut conn = db(&postgres).await;
    sqlx::raw_sql(
        "UPDATE inventory.stock SET on_hand = CASE warehouse WHEN 'WH-CENTRAL' THEN 40 ELSE 0 END
           WHERE sku = 'SKU-POSTER';
         UPDATE inventory.sku_totals SET on_hand = 40, held = 0 WHERE sku = 'SKU-POSTER';",
    )
    .execute(&mut conn)
    .await
    .expect("set the poster stock");

    // 60 customers at once, half through each replica.
    let body = order_request("SKU-POSTER", 1, "tok_visa");
    let answers = join_all((0..ORDERS).map(|i| {
        let oms = if i % 2 == 0 { &a } else { &b };
        create(oms, &body, None)
    }))
    .await;
    let mut confirmed = Vec::new();
    for (status, order) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{order}");
        match order["state"].as_str() {
            Some("confirmed") => confirmed.push(order.clone()),
            Some("rejected") => assert!(
                order["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("out_of_stock")),
                "only stock may run out: {order}"
            ),
            _ => panic!("not terminal: {order}"),
        }
    }
    assert_eq!(
        confirmed.len() as i64,
        STOCK,
        "every poster sold, none twice"
    );

    // The ledger agrees: nothing on hand, nothing held, no negative stock.
    let (on_hand, held): (i64, i64) =
        sqlx::query_as("SELECT on_hand, held FROM inventory.sku_totals WHERE sku = 'SKU-POSTER'")
            .fetch_one(&mut conn)
            .await
            .expect("poster totals");
    assert_eq!((on_hand, held), (0, 0));
    let warehouses: i64 = sqlx::query_scalar(
        "SELECT sum(on_hand)::bigint FROM inventory.stock WHERE sku = 'SKU-POSTER'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("poster stock");
    assert_eq!(warehouses, 0);

    // Money: captured at the providers = the totals of the confirmed orders,
    // one authorisation per order.
    let confirmed_total: u64 = confirmed
        .iter()
        .map(|o| o["quote"]["total_cents"].as_u64().expect("total"))
        .sum();
    let (captured, authorizations): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(amount_cents), 0)::bigint, count(*) FROM (
             SELECT amount_cents, state FROM payment_primary.authorizations
             UNION ALL SELECT amount_cents, state FROM payment_secondary.authorizations) a
         WHERE state = 'captured'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("captured money");
    assert_eq!(captured as u64, confirmed_total);
    assert_eq!(authorizations as usize, confirmed.len());

    // Every order reads the same through either replica.
    for order in &answers {
        let id = order.1["id"].as_str().expect("id");
        let (_, via_a) = a.get("orders", &format!("/v1/orders/{id}")).await;
        let (_, via_b) = b.get("orders", &format!("/v1/orders/{id}")).await;
        assert_eq!(via_a, via_b);
        assert_eq!(via_a["state"], order.1["state"]);
    }
}

#[tokio::test]
async fn an_idempotency_key_creates_one_order_across_replicas() {
    let postgres = LocalPostgres::start().await.expect("PostgreSQL");
    let (a, b, _nats) = replicas(&postgres).await;
    let body = order_request("SKU-MUG", 2, "tok_visa");

    // The same retry reaches both replicas at once, several times.
    let answers = join_all((0..8).map(|i| {
        let oms = if i % 2 == 0 { &a } else { &b };
        create(oms, &body, Some("checkout-7f3a"))
    }))
    .await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    let id = answers[0].1["id"].as_str().expect("id").to_owned();
    for (status, order) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "{order}"
        );
        assert_eq!(order["id"], id.as_str());
    }

    // Once done, a retry on either replica answers the finished order.
    let (status, again) = create(&b, &body, Some("checkout-7f3a")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["state"], "confirmed", "{again}");
    let (status, refused) = create(
        &a,
        &order_request("SKU-MUG", 3, "tok_visa"),
        Some("checkout-7f3a"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["error"], "idempotency_key_reused");

    // One order, one authorisation: charged once.
    let mut conn = db(&postgres).await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders.orders")
        .fetch_one(&mut conn)
        .await
        .expect("orders");
    let authorizations: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM payment_primary.authorizations)
              + (SELECT count(*) FROM payment_secondary.authorizations)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("authorizations");
    assert_eq!((orders, authorizations), (1, 1));
}

#[tokio::test]
async fn a_refund_retried_with_its_id_is_paid_once() {
    let postgres = LocalPostgres::start().await.expect("PostgreSQL");
    let (a, b, _nats) = replicas(&postgres).await;
    let order = a.order("SKU-HOODIE", "tok_visa").await;
    let provider = order["payment_provider"].as_str().expect("provider");
    let auth = order["authorization_id"].as_str().expect("authorization");
    let path = format!("/v1/authorizations/{auth}/refund");
    let refund = serde_json::json!({ "amount_cents": 100, "refund_id": "rf-1" });

    // The same refund, retried on both replicas of the provider.
    for oms in [&a, &b, &a] {
        let (status, body) = oms.post(provider, &path, &refund).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["refunded_cents"], 100, "{body}");
    }
    // Another amount under the same id is refused; a new id refunds again.
    let (status, body) = b
        .post(
            provider,
            &path,
            &serde_json::json!({ "amount_cents": 200, "refund_id": "rf-1" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "refund_id_reused");
    let (status, body) = b
        .post(
            provider,
            &path,
            &serde_json::json!({ "amount_cents": 200, "refund_id": "rf-2" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refunded_cents"], 300);
}

/// API requests `metrics` shows served, health and metrics aside.
fn api_requests(metrics: &str) -> f64 {
    crate::common::histogram_count(
        metrics,
        "http_server_request_duration_seconds",
        &["http_route=\"/v1/"],
    )
}

#[tokio::test]
async fn oms_up_with_two_replicas_of_every_service_keeps_the_books_under_load() {
    let backing = Backing::start().await;
    let oms = backing
        .oms_with(&["--replicas", "2", "--ship-delay-ms", "200"])
        .await;
    let db = backing.db().await;
    // 40 limited lamps arrive: the load asks for more, so an oversell would show.
    let (status, body) = oms
        .post(
            "inventory",
            "/v1/restock",
            &serde_json::json!({ "lines": [{ "sku": "SKU-LAMP-RARE", "quantity": 40 }],
                                 "restock_id": "lamps-1" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let load = Load::start(&oms, 60, &["SKU-LAMP-RARE", "SKU-MUG", "SKU-HOODIE"]);
    more_orders(&db, 300).await;
    let tally = load.stop().await;
    assert_eq!(tally.failures(), [], "{tally:?}");
    assert_eq!(tally.unanswered, 0, "{tally:?}");
    none_left(&db, "pending").await;
    books_balance(&backing).await;

    // Every lamp sold, none twice.
    let sold: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders.orders
          WHERE state IN ('confirmed', 'shipped') AND lines @> '[{\"sku\": \"SKU-LAMP-RARE\"}]'",
    )
    .fetch_one(&db)
    .await
    .expect("lamps sold");
    assert_eq!(sold, 40);

    // Every order reads the same through either orders replica.
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM orders.orders")
        .fetch_all(&db)
        .await
        .expect("order ids");
    assert!(ids.len() >= 300);
    for id in ids {
        let [first, second] = [0, 1].map(|index| {
            let url = format!("{}/v1/orders/{id}", oms.replica_url("orders", index));
            let http = oms.http.clone();
            async move {
                let response = http.get(url).send().await.expect("read the order");
                assert_eq!(response.status(), StatusCode::OK);
                response.json::<Value>().await.expect("order json")
            }
        });
        assert_eq!(first.await, second.await);
    }

    // The work was spread: both replicas of every service on the order
    // path served requests.
    for service in [
        "orders",
        "inventory",
        "tax",
        "payment-primary",
        "fulfillment",
    ] {
        for index in 0..2 {
            let served = api_requests(&oms.replica_metrics(service, index).await);
            assert!(served > 0.0, "{service}#{index} served nothing");
        }
    }
}

#[tokio::test]
async fn a_call_skips_a_replica_that_is_down() {
    use homeostat_oms::client::{Peers, ServiceClient};
    use homeostat_oms::contract::INVENTORY_STOCK;
    use homeostat_oms::metrics::ServiceMetrics;
    use homeostat_oms::services::inventory::{StockLevels, StockQuery};

    let postgres = LocalPostgres::start().await.expect("PostgreSQL");
    let (oms, _, _nats) = replicas(&postgres).await;
    // The first replica's port has nobody listening: it is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut peers = Peers::default();
    let live = oms.url("inventory");
    peers.set_replicas("inventory", [format!("http://{down}").as_str(), &live]);
    let metrics = ServiceMetrics::new("orders");
    let client = ServiceClient::new(
        "orders",
        metrics.clone(),
        std::sync::Arc::new(peers),
        Duration::from_secs(5),
    );

    let query = StockQuery {
        skus: vec!["SKU-MUG".to_owned()],
    };
    for _ in 0..6 {
        let levels: StockLevels = client
            .call(&INVENTORY_STOCK, "inventory", &[], Some(&query))
            .await
            .expect("answered by the live replica");
        assert!(!levels.levels.is_empty());
    }
    // Every call started at the other replica in turn: three found it down.
    let exported = metrics.encode();
    let refused = crate::common::histogram_count(
        &exported,
        "http_client_request_duration_seconds",
        &["error_type=\"connect\""],
    );
    assert_eq!(refused, 3.0, "{exported}");
}
