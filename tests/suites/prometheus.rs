//! The Prometheus fixture against the real server: live scraping and backfill.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use homeostat_test_support::prometheus::backfill_openmetrics;
use homeostat_test_support::{Prometheus, PrometheusConfig, ScrapeTarget, wait_until};
use serde_json::Value;

/// Serves a counter that grows by one on every scrape.
async fn metrics_server() -> (String, Arc<AtomicU64>) {
    let scrapes = Arc::new(AtomicU64::new(0));
    let counter = scrapes.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { format!("# TYPE fixture_scrapes counter\nfixture_scrapes_total {n}\n") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, scrapes)
}

fn first_value(result: &Value) -> Option<f64> {
    result.get(0)?.get("value")?.get(1)?.as_str()?.parse().ok()
}

#[tokio::test]
async fn prometheus_scrapes_a_live_target_with_configured_labels() {
    let (address, scrapes) = metrics_server().await;
    let mut target = ScrapeTarget::new("fixture", address);
    target.labels.insert("service".into(), "orders".into());
    let prometheus = Prometheus::start(PrometheusConfig {
        scrape_interval: Duration::from_millis(250),
        targets: vec![target],
        ..PrometheusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start prometheus: {e}"));

    let value = wait_until(
        "two scrapes stored in Prometheus",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let result = prometheus
                .query(r#"fixture_scrapes_total{job="fixture",service="orders"}"#)
                .await
                .map_err(|e| e.to_string())?;
            match first_value(&result) {
                Some(v) if v >= 2.0 => Ok(v),
                _ => Err(result.to_string()),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Prometheus stores what the target served, not something we made up.
    assert!(value <= scrapes.load(Ordering::SeqCst) as f64);
}

#[tokio::test]
async fn backfilled_history_is_queryable() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let start = now - 3 * 3600;
    let mut openmetrics = String::from("# TYPE backfill_latency_seconds gauge\n");
    for i in 0..180 {
        let t = start + i * 60;
        openmetrics.push_str(&format!(
            "backfill_latency_seconds{{service=\"tax\"}} {} {t}\n",
            0.010 + i as f64 * 0.001
        ));
    }
    openmetrics.push_str("# EOF\n");

    let data = tempfile::tempdir().expect("tempdir");
    backfill_openmetrics(data.path(), &openmetrics)
        .unwrap_or_else(|e| panic!("promtool backfill: {e}"));
    let prometheus = Prometheus::start(PrometheusConfig {
        data_dir: Some(data.path().to_owned()),
        ..PrometheusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start prometheus: {e}"));

    let at = start + 100 * 60;
    let result = prometheus
        .query_at(r#"backfill_latency_seconds{service="tax"}"#, at)
        .await
        .expect("query");
    let value = first_value(&result).unwrap_or_else(|| panic!("no sample at {at}: {result}"));
    assert!((value - 0.110).abs() < 1e-9, "{value}");

    let result = prometheus
        .query_at(r#"count_over_time(backfill_latency_seconds[4h])"#, now)
        .await
        .expect("query");
    assert_eq!(first_value(&result), Some(180.0), "{result}");
}
