//! The OMS's state outlives its processes, and a database outage is answered,
//! not crashed on: real PostgreSQL, real `oms up` processes.

use crate::common::Oms;
use homeostat_oms::db::local::LocalPostgres;

#[tokio::test]
async fn orders_reservations_and_payments_survive_a_restart() {
    let postgres = LocalPostgres::start().await.expect("PostgreSQL");
    let first = Oms::start(&["--database-url", postgres.url()]).await;
    let order = first.order("SKU-BOTTLE", "tok_visa").await;
    assert_eq!(order["state"], "confirmed", "{order}");
    drop(first);

    let second = Oms::start(&["--database-url", postgres.url()]).await;
    let id = order["id"].as_str().expect("id");
    let (status, stored) = second.get("orders", &format!("/v1/orders/{id}")).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["state"], order["state"]);
    assert_eq!(stored["saga_log"], order["saga_log"]);
    assert_eq!(second.reservation_of(&order).await["state"], "committed");
    assert_eq!(second.authorization_of(&order).await["state"], "captured");

    // And the restarted replica can still return it: refund and restock.
    let (status, rma) = second
        .post(
            "orders",
            &format!("/v1/orders/{id}/returns"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 201, "{rma}");
    assert_eq!(
        second.authorization_of(&order).await["refunded_cents"],
        order["quote"]["total_cents"]
    );
}

#[tokio::test]
async fn a_lost_database_is_answered_503_with_retry_after() {
    let postgres = LocalPostgres::start().await.expect("PostgreSQL");
    let oms = Oms::start(&["--database-url", postgres.url()]).await;
    let order = oms.order("SKU-MUG", "tok_visa").await;
    let id = order["id"].as_str().expect("id");
    drop(postgres);

    let response = oms
        .http
        .get(format!("{}/v1/orders/{id}", oms.url("orders")))
        .send()
        .await
        .expect("lookup");
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "database_unavailable", "{body}");

    // The service is still there to answer, and says nothing it should not.
    let (status, _) = oms.get("orders", "/healthz").await;
    assert_eq!(status, 200);
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
}

#[tokio::test]
async fn a_providers_status_is_a_write_to_its_book() {
    let postgres = LocalPostgres::start().await.expect("PostgreSQL");
    let oms = Oms::start(&["--database-url", postgres.url()]).await;
    let (status, first) = oms.get("payment-secondary", "/v1/status").await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = oms.get("payment-secondary", "/v1/status").await;
    let beats = |body: &serde_json::Value| body["heartbeats"].as_u64().expect("heartbeats");
    assert!(beats(&second) > beats(&first), "{first} then {second}");

    // A book that takes no writes is an unhealthy provider, and says so.
    drop(postgres);
    let (status, body) = oms.get("payment-secondary", "/v1/status").await;
    assert_eq!(status, 503, "{body}");
}
