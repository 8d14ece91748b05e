//! Inbound protection on real `oms up` processes: a load far above what a
//! replica takes is shed at once with 503 and Retry-After while the admitted
//! requests are served at their usual pace, memory stays bounded, and the
//! OMS keeps working; a request past its deadline is answered 503 and its
//! order still completes.

use std::time::{Duration, Instant};

use crate::common::{Oms, order_request};
use futures::future::join_all;
use homeostat_test_support::wait_until;
use serde_json::{Value, json};

/// One answer, as a client saw it.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn post_order(http: &reqwest::Client, url: &str, key: Option<&str>) -> Answer {
    let started = Instant::now();
    let mut request = http
        .post(url)
        .json(&order_request("SKU-MUG", 1, "tok_visa"));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("the OMS answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn slow_tax(ms: u64) -> Value {
    json!({ "kind": "latency", "latency_ms": ms, "jitter": 0.0, "duration_seconds": 600 })
}

#[tokio::test]
async fn a_load_far_above_the_limit_is_shed_with_retry_after_and_the_rest_served() {
    let oms = Oms::start(&["--max-in-flight", "8"]).await;
    // Every order waits 200 ms on tax: eight at a time is 40 orders/s.
    oms.inject("tax", &slow_tax(200)).await;
    let warm = post_order(&oms.http, &format!("{}/v1/orders", oms.url("orders")), None).await;
    assert_eq!(warm.status, 201, "{}", warm.body);
    let rss_before = rss_kib(oms.pid());

    // 200 clients at once, two orders each: ten times what fits.
    let url = format!("{}/v1/orders", oms.url("orders"));
    let clients = (0..200).map(|_| {
        let (http, url) = (oms.http.clone(), url.clone());
        async move {
            let mut answers = Vec::new();
            for _ in 0..2 {
                answers.push(post_order(&http, &url, None).await);
            }
            answers
        }
    });
    let answers: Vec<Answer> = join_all(clients).await.into_iter().flatten().collect();

    let (shed, admitted): (Vec<&Answer>, Vec<&Answer>) =
        answers.iter().partition(|a| a.status == 503);
    assert!(shed.len() >= 200, "only {} of 400 shed", shed.len());
    assert!(admitted.len() >= 8, "only {} admitted", admitted.len());
    for answer in &shed {
        assert_eq!(answer.retry_after.as_deref(), Some("1"), "{}", answer.body);
        assert_eq!(answer.body["error"], "overloaded", "{}", answer.body);
    }
    for answer in &admitted {
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body["state"], "confirmed", "{}", answer.body);
    }
    // Admitted orders never wait behind the shed ones: they take what an
    // order takes (200 ms of tax and the rest), not a queue's worth.
    let slowest = admitted.iter().map(|a| a.took).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(2),
        "an admitted order took {slowest:?}"
    );

    let metrics = oms.metrics("orders").await;
    let counted = format!(
        "oms_requests_shed_total{{service=\"orders\",reason=\"overloaded\"}} {}",
        shed.len()
    );
    assert!(metrics.contains(&counted), "{counted} not in\n{metrics}");
    let grown_kib = rss_kib(oms.pid()).saturating_sub(rss_before);
    assert!(grown_kib < 64 * 1024, "memory grew by {grown_kib} KiB");

    // Still serving.
    let after = post_order(&oms.http, &url, None).await;
    assert_eq!(after.status, 201, "{}", after.body);
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_503_and_its_order_still_completes() {
    let oms = Oms::start(&["--request-timeout-ms", "300"]).await;
    oms.inject("tax", &slow_tax(600)).await;
    let url = format!("{}/v1/orders", oms.url("orders"));
    let first = post_order(&oms.http, &url, Some("slow-1")).await;
    assert_eq!(first.status, 503, "{}", first.body);
    assert_eq!(first.body["error"], "request_timeout", "{}", first.body);
    assert_eq!(first.retry_after.as_deref(), Some("1"));

    // The saga went on without the request; a retry with the key finds the
    // order it made, settled, and makes no other.
    let settled = wait_until(
        "the order settled",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let retry = post_order(&oms.http, &url, Some("slow-1")).await;
            match (retry.status, retry.body["state"].as_str()) {
                (200, Some("confirmed" | "rejected")) => Ok(retry.body),
                _ => Err(format!("{} {}", retry.status, retry.body)),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let log: Vec<String> = serde_json::from_value(settled["saga_log"].clone()).expect("log");
    assert!(log.iter().any(|e| e.starts_with("reserved")), "{settled}");
}
