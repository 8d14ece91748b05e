//! A bounded capacity on real `oms up` processes (`--workers`,
//! `--service-time-ms`): a burst beyond what the workers take waits its turn
//! — seen waiting in the replica's metrics — and every order is still
//! served; nothing is shed while the queue fits the in-flight limit. A
//! surge of tax quotes (`oms loadgen --quotes 100`) beyond tax's capacity
//! queues at tax and is served.

use std::time::Duration;

use crate::common::{Oms, order_request};
use futures::future::join_all;
use homeostat_test_support::wait_until;

/// The value of an unlabelled-but-for-service gauge in an exposition.
fn gauge(metrics: &str, name: &str, service: &str) -> Option<f64> {
    let prefix = format!("{name}{{service=\"{service}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

/// Waits until `service` shows a request waiting for a worker.
async fn seen_waiting(oms: &Oms, service: &str) -> Result<f64, String> {
    wait_until(
        &format!("requests waiting for a {service} worker"),
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let metrics = oms.metrics(service).await;
            match gauge(&metrics, "oms_requests_waiting", service) {
                Some(waiting) if waiting > 0.0 => Ok(waiting),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_burst_beyond_the_workers_queues_and_is_served() {
    // Two workers, 100 ms each: 20 requests a second per service.
    let oms = Oms::start(&["--workers", "2", "--service-time-ms", "100"]).await;
    let metrics = oms.metrics("tax").await;
    assert_eq!(
        gauge(&metrics, "oms_workers", "tax"),
        Some(2.0),
        "{metrics}"
    );

    // 30 orders at once: tax alone needs 1.5 s for them.
    let url = format!("{}/v1/orders", oms.url("orders"));
    let burst = join_all((0..30).map(|i| {
        let (http, url) = (oms.http.clone(), url.clone());
        async move {
            let response = http
                .post(&url)
                .header("Idempotency-Key", format!("burst-{i}"))
                .json(&order_request("SKU-MUG", 1, "tok_visa"))
                .send()
                .await
                .expect("the OMS answers");
            response.status().as_u16()
        }
    }));
    let (statuses, waited) = tokio::join!(burst, seen_waiting(&oms, "orders"));
    waited.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every order served: {statuses:?}"
    );
    let metrics = oms.metrics("tax").await;
    assert_eq!(gauge(&metrics, "oms_workers_busy", "tax"), Some(0.0));
    assert_eq!(gauge(&metrics, "oms_requests_waiting", "tax"), Some(0.0));
    let metrics = oms.metrics("orders").await;
    let shed = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("oms_requests_shed_total{service=\"orders\",reason=\"overloaded\"} ")?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    assert_eq!(shed, 0.0, "nothing shed");
}

#[tokio::test]
async fn a_quote_surge_beyond_tax_capacity_queues_at_tax_and_is_served() {
    // Two workers, 50 ms each: tax serves 40 quotes a second.
    let oms = Oms::start(&["--workers", "2", "--service-time-ms", "50"]).await;
    let surge = homeostat_oms::loadgen::LoadOptions {
        target: oms.url("tax"),
        rate: 80.0,
        duration: Duration::from_secs(3),
        new_order_percent: 0,
        lookup_percent: 0,
        quote_percent: 100,
        ..Default::default()
    };
    let (report, waited) = tokio::join!(
        homeostat_oms::loadgen::run(&surge),
        seen_waiting(&oms, "tax")
    );
    let report = report.expect("the surge runs");
    waited.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.quotes, report.requests, "only quotes were sent");
    assert!(report.requests >= 200, "{report:?}");
    assert_eq!(report.errors, 0, "every quote answered: {report:?}");
    assert_eq!(report.orders_confirmed, 0);
}

/// A caller's keep-alive connection is closed after its hundredth request,
/// so a replica added later gets a share of the callers already running.
#[tokio::test]
async fn keep_alive_connections_are_recycled_after_a_hundred_requests() {
    let oms = Oms::start(&[]).await;
    // One pooled connection, reused for every request while it lasts.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let url = format!("{}/v1/quotes", oms.url("tax"));
    let basket =
        serde_json::json!({"region": "CENTRAL", "lines": [{"sku": "SKU-MUG", "quantity": 1}]});
    let mut closed_at = Vec::new();
    for n in 1..=201 {
        let response = http.post(&url).json(&basket).send().await.expect("quote");
        assert!(response.status().is_success(), "{}", response.status());
        if response
            .headers()
            .get("connection")
            .is_some_and(|v| v == "close")
        {
            closed_at.push(n);
        }
    }
    assert_eq!(closed_at, [100, 200]);
}
