//! `oms loadgen`: an open-loop order mix at a fixed arrival rate. Requests
//! are started on schedule whether or not earlier ones have finished, so a
//! slow server shows up as latency and errors, never as a lower arrival rate.
//! Besides orders, lookups and returns (to `orders`), the mix may hold tax
//! quotes (to a `tax` target): the traffic surge of a load drill.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use crate::catalog;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The `orders` service, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Requests per second.
    pub rate: f64,
    pub duration: Duration,
    /// Percent of requests that create orders, look them up, and return them.
    pub new_order_percent: u32,
    pub lookup_percent: u32,
    /// Percent of requests that price a basket (`POST /v1/quotes`): for a
    /// `tax` target. The rest return orders.
    pub quote_percent: u32,
    pub timeout: Duration,
    /// Requests in flight beyond which new arrivals are dropped (and counted as errors).
    pub max_in_flight: usize,
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8080".to_owned(),
            rate: 50.0,
            duration: Duration::from_secs(10),
            new_order_percent: 70,
            lookup_percent: 25,
            quote_percent: 0,
            timeout: Duration::from_secs(10),
            max_in_flight: 5_000,
            seed: 42,
        }
    }
}

/// The outcome, printed as one JSON object with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub requests: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub dropped: u64,
    pub orders_confirmed: u64,
    pub orders_rejected: u64,
    pub lookups: u64,
    pub returns: u64,
    pub quotes: u64,
}

#[derive(Default)]
struct Tally {
    errors: AtomicU64,
    dropped: AtomicU64,
    confirmed: AtomicU64,
    rejected: AtomicU64,
    lookups: AtomicU64,
    returns: AtomicU64,
    quotes: AtomicU64,
}

/// Orders that can be looked up or returned, newest last.
#[derive(Default)]
struct KnownOrders {
    all: VecDeque<String>,
    returnable: VecDeque<String>,
}

const KNOWN_ORDERS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    NewOrder,
    Lookup,
    Quote,
    Return,
}

impl Kind {
    /// The kind of request `roll` (0–99) draws from the mix.
    fn drawn(roll: u32, options: &LoadOptions) -> Self {
        let lookups = options.new_order_percent + options.lookup_percent;
        let quotes = lookups + options.quote_percent;
        if roll < options.new_order_percent {
            Kind::NewOrder
        } else if roll < lookups {
            Kind::Lookup
        } else if roll < quotes {
            Kind::Quote
        } else {
            Kind::Return
        }
    }
}

/// A live arrival rate that the caller may change while the run goes on.
#[derive(Clone, Debug)]
pub struct Rate(Arc<AtomicU64>);

impl Rate {
    pub fn new(rps: f64) -> Self {
        Self(Arc::new(AtomicU64::new(rps.to_bits())))
    }
    pub fn set(&self, rps: f64) {
        self.0.store(rps.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Runs the load for `options.duration` at `options.rate`.
pub async fn run(options: &LoadOptions) -> anyhow::Result<LoadReport> {
    run_with_rate(options, Rate::new(options.rate)).await
}

/// Runs the load at a rate that may change during the run.
pub async fn run_with_rate(options: &LoadOptions, rate: Rate) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(
        options.rate > 0.0 && options.rate.is_finite(),
        "--rate must be above 0"
    );
    anyhow::ensure!(
        options.new_order_percent + options.lookup_percent + options.quote_percent <= 100,
        "new-order, lookup and quote percentages must add up to at most 100"
    );
    crate::client::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(options.timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()?;
    let target = Arc::new(options.target.trim_end_matches('/').to_owned());
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        120_000_000,
        3,
    )?));
    let tally = Arc::new(Tally::default());
    let known = Arc::new(Mutex::new(KnownOrders::default()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(options.max_in_flight));
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut tasks = tokio::task::JoinSet::new();

    let started = Instant::now();
    let end = started + options.duration;
    let mut next = started;
    let mut sent: u64 = 0;
    while next < end {
        tokio::time::sleep_until(next).await;
        let current = rate.get().max(0.001);
        next += Duration::from_secs_f64(1.0 / current);
        sent += 1;

        let kind = Kind::drawn(rng.gen_range(0..100), options);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            tally.dropped.fetch_add(1, Ordering::Relaxed);
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let basket = basket(&mut rng);
        let (http, target, latencies, tally, known) = (
            http.clone(),
            target.clone(),
            latencies.clone(),
            tally.clone(),
            known.clone(),
        );
        tasks.spawn(async move {
            let began = Instant::now();
            let ok = send(&http, &target, kind, basket, &tally, &known).await;
            let micros = began.elapsed().as_micros().clamp(1, 120_000_000) as u64;
            if let Ok(mut h) = latencies.lock() {
                let _ = h.record(micros);
            }
            if !ok {
                tally.errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let issuing = started.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}

    let h = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
    let ms = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    Ok(LoadReport {
        target_rps: options.rate,
        achieved_rps: sent as f64 / issuing,
        requests: sent,
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        max_ms: h.max() as f64 / 1000.0,
        errors: tally.errors.load(Ordering::Relaxed),
        dropped: tally.dropped.load(Ordering::Relaxed),
        orders_confirmed: tally.confirmed.load(Ordering::Relaxed),
        orders_rejected: tally.rejected.load(Ordering::Relaxed),
        lookups: tally.lookups.load(Ordering::Relaxed),
        returns: tally.returns.load(Ordering::Relaxed),
        quotes: tally.quotes.load(Ordering::Relaxed),
    })
}

fn basket(rng: &mut StdRng) -> serde_json::Value {
    let stocked: Vec<&catalog::Product> = catalog::PRODUCTS
        .iter()
        .filter(|p| !p.sku.ends_with("-RARE"))
        .collect();
    let lines: Vec<serde_json::Value> = (0..rng.gen_range(1..=3))
        .map(|i| {
            let product = stocked[(rng.gen_range(0..stocked.len()) + i) % stocked.len()];
            serde_json::json!({ "sku": product.sku, "quantity": rng.gen_range(1..=3) })
        })
        .collect();
    let region = catalog::REGIONS[rng.gen_range(0..catalog::REGIONS.len())].code;
    serde_json::json!({
        "customer_id": format!("cust-{}", rng.gen_range(1..=5_000)),
        "lines": dedupe_skus(lines),
        "region": region,
        "card_token": "tok_visa",
    })
}

fn dedupe_skus(lines: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let mut seen = std::collections::BTreeSet::new();
    lines
        .into_iter()
        .filter(|l| seen.insert(l["sku"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

async fn send(
    http: &reqwest::Client,
    target: &str,
    kind: Kind,
    basket: serde_json::Value,
    tally: &Tally,
    known: &Mutex<KnownOrders>,
) -> bool {
    let pick = |returnable: bool| -> Option<String> {
        let mut known = known.lock().ok()?;
        if returnable {
            known.returnable.pop_front()
        } else {
            let n = known.all.len();
            (n > 0).then(|| known.all[n / 2].clone())
        }
    };
    match kind {
        Kind::Lookup => {
            if let Some(id) = pick(false) {
                tally.lookups.fetch_add(1, Ordering::Relaxed);
                return matches!(http.get(format!("{target}/v1/orders/{id}")).send().await, Ok(r) if r.status().is_success());
            }
        }
        Kind::Return => {
            if let Some(id) = pick(true) {
                tally.returns.fetch_add(1, Ordering::Relaxed);
                let response = http
                    .post(format!("{target}/v1/orders/{id}/returns"))
                    .json(&serde_json::json!({ "reason": "loadgen" }))
                    .send()
                    .await;
                return matches!(response, Ok(r) if r.status().is_success());
            }
        }
        Kind::Quote => {
            tally.quotes.fetch_add(1, Ordering::Relaxed);
            let quote = serde_json::json!({"lines": basket["lines"], "region": basket["region"]});
            let response = http
                .post(format!("{target}/v1/quotes"))
                .json(&quote)
                .send()
                .await;
            return matches!(response, Ok(r) if r.status().is_success());
        }
        Kind::NewOrder => {}
    }
    let response = http
        .post(format!("{target}/v1/orders"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&basket)
        .send()
        .await;
    let Ok(response) = response else { return false };
    if !response.status().is_success() {
        return false;
    }
    let Ok(order) = response.json::<serde_json::Value>().await else {
        return false;
    };
    match order["state"].as_str() {
        Some("confirmed") => {
            tally.confirmed.fetch_add(1, Ordering::Relaxed);
            if let (Some(id), Ok(mut known)) = (order["id"].as_str(), known.lock()) {
                known.all.push_back(id.to_owned());
                known.returnable.push_back(id.to_owned());
                if known.all.len() > KNOWN_ORDERS {
                    known.all.pop_front();
                }
                if known.returnable.len() > KNOWN_ORDERS {
                    known.returnable.pop_front();
                }
            }
            true
        }
        Some("rejected") => {
            tally.rejected.fetch_add(1, Ordering::Relaxed);
            true
        }
        _ => false,
    }
}

impl LoadReport {
    /// The human summary.
    pub fn summary(&self) -> String {
        format!(
            "requests {} at {:.1}/s (target {:.1}/s)\nlatency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms\nerrors {} (dropped {})\norders confirmed {}, rejected {}; lookups {}, returns {}, quotes {}",
            self.requests,
            self.achieved_rps,
            self.target_rps,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
            self.dropped,
            self.orders_confirmed,
            self.orders_rejected,
            self.lookups,
            self.returns,
            self.quotes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_draws_orders_lookups_quotes_then_returns() {
        let options = LoadOptions {
            new_order_percent: 50,
            lookup_percent: 20,
            quote_percent: 20,
            ..LoadOptions::default()
        };
        let drawn: Vec<&str> = [0, 49, 50, 69, 70, 89, 90, 99]
            .into_iter()
            .map(|roll| match Kind::drawn(roll, &options) {
                Kind::NewOrder => "order",
                Kind::Lookup => "lookup",
                Kind::Quote => "quote",
                Kind::Return => "return",
            })
            .collect();
        assert_eq!(
            drawn,
            [
                "order", "order", "lookup", "lookup", "quote", "quote", "return", "return"
            ]
        );
    }
}
