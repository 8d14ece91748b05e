//! The durable JetStream consumer of order events. Every replica of
//! `notifications` pulls from the same durable consumer, so the broker hands
//! each event to one of them and remembers what was acknowledged across
//! restarts. An event is acknowledged only after it is recorded: a crash
//! between the two means a redelivery, which finds the event id recorded and
//! does nothing. A message that is not an order event is terminated (never
//! redelivered) and counted; a database failure asks for a redelivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::PgPool;

use super::OrderEvent;
use crate::bus::{self, BusError};
use crate::db::state_text;
use crate::faults::FaultSet;
use crate::metrics::{ServiceLabel, ServiceMetrics, latency_buckets};

/// The durable consumer's name on the broker.
pub const CONSUMER: &str = "notifications";
/// A delivered event not acknowledged within this is delivered again.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Events handed out and not yet acknowledged, across all replicas.
const MAX_ACK_PENDING: i64 = 1_000;
/// The broker's heartbeat on an idle pull: a lost broker is noticed within two.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// The wait before pulling again after the broker or the database failed.
const BACKOFF: Duration = Duration::from_millis(500);
/// How often the consumer's lag is read from the broker.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

type DeliveryHistogram = Family<ServiceLabel, Histogram, fn() -> Histogram>;

#[derive(Clone)]
struct ConsumerMetrics {
    label: ServiceLabel,
    lag: Family<ServiceLabel, Gauge>,
    delivery: DeliveryHistogram,
    malformed: Family<ServiceLabel, Counter>,
    redelivered: Family<ServiceLabel, Counter>,
}

impl ConsumerMetrics {
    fn register(metrics: &ServiceMetrics) -> Self {
        let this = Self {
            label: metrics.service_label(),
            lag: Family::default(),
            delivery: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            malformed: Family::default(),
            redelivered: Family::default(),
        };
        metrics.register(
            "oms_event_consumer_lag",
            "Order events the consumer has not processed: pending plus delivered but unacknowledged",
            this.lag.clone(),
        );
        metrics.register(
            "oms_event_delivery_duration_seconds",
            "From the order's change of state to its event being recorded here (first delivery)",
            this.delivery.clone(),
        );
        metrics.register(
            "oms_events_malformed",
            "Messages on the order-event stream that are not order events (terminated)",
            this.malformed.clone(),
        );
        metrics.register(
            "oms_events_duplicate",
            "Order events delivered again after they were recorded (ignored)",
            this.redelivered.clone(),
        );
        this
    }
}

/// Starts consuming, and reading the consumer's lag; both run until the
/// runtime stops, and outlive broker and database outages. A
/// `slow_consumer` fault in `faults` delays each event before it is recorded.
pub fn start(
    pool: PgPool,
    js: jetstream::Context,
    metrics: &ServiceMetrics,
    faults: Arc<FaultSet>,
) {
    let metrics = ConsumerMetrics::register(metrics);
    let lag_js = js.clone();
    let lag_metrics = metrics.clone();
    tokio::spawn(async move {
        loop {
            if let Err(err) = consume(&pool, &js, &metrics, &faults).await {
                tracing::warn!(error = %err, "order events not consumed; retrying");
            }
            tokio::time::sleep(BACKOFF).await;
        }
    });
    tokio::spawn(async move {
        loop {
            if let Ok(lag) = lag(&lag_js).await {
                lag_metrics
                    .lag
                    .get_or_create(&lag_metrics.label)
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
            tokio::time::sleep(LAG_INTERVAL).await;
        }
    });
}

async fn durable(js: &jetstream::Context) -> Result<jetstream::consumer::PullConsumer, BusError> {
    bus::order_events(js)
        .await?
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BusError::Stream(e.to_string()))
}

/// Pulls and records events until the broker connection fails.
async fn consume(
    pool: &PgPool,
    js: &jetstream::Context,
    metrics: &ConsumerMetrics,
    faults: &FaultSet,
) -> Result<(), BusError> {
    let mut messages = durable(js)
        .await?
        .stream()
        .heartbeat(HEARTBEAT)
        .messages()
        .await
        .map_err(|e| BusError::Stream(e.to_string()))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| BusError::Stream(e.to_string()))?;
        let answer = match serde_json::from_slice::<OrderEvent>(&message.payload) {
            Err(err) => {
                metrics.malformed.get_or_create(&metrics.label).inc();
                tracing::warn!(subject = %message.subject, error = %err, "not an order event");
                AckKind::Term
            }
            Ok(event) => match slowed(faults, record(pool, &event)).await {
                Ok(true) => {
                    if let Some(age) = age_seconds(&event.at) {
                        metrics.delivery.get_or_create(&metrics.label).observe(age);
                    }
                    AckKind::Ack
                }
                Ok(false) => {
                    metrics.redelivered.get_or_create(&metrics.label).inc();
                    AckKind::Ack
                }
                Err(err) => {
                    tracing::warn!(event_id = event.event_id, error = %err, "event not recorded");
                    AckKind::Nak(Some(BACKOFF))
                }
            },
        };
        // A lost acknowledgement means a redelivery, which `record` absorbs.
        if let Err(err) = message.ack_with(answer).await {
            tracing::debug!(error = %err, "acknowledgement not sent");
        }
    }
    Ok(())
}

/// Runs `work` once a `slow_consumer` fault in force has been waited out.
async fn slowed<T>(faults: &FaultSet, work: impl Future<Output = T>) -> T {
    let delay = faults.event_delay(Instant::now(), &mut rand::thread_rng());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    work.await
}

/// Records the event once; `false` when its id was recorded before.
async fn record(pool: &PgPool, event: &OrderEvent) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO events (event_id, order_id, kind, at, detail) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.event_id)
    .bind(&event.order_id)
    .bind(state_text(event.kind))
    .bind(&event.at)
    .bind(&event.detail)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Seconds from `at` (RFC 3339) to now; `None` when `at` does not parse.
fn age_seconds(at: &str) -> Option<f64> {
    let at: jiff::Timestamp = at.parse().ok()?;
    let age = jiff::Timestamp::now().duration_since(at);
    Some(age.as_secs_f64().max(0.0))
}

/// Events not yet processed: waiting on the stream plus handed out and unacknowledged.
pub async fn lag(js: &jetstream::Context) -> Result<u64, BusError> {
    let stream = js
        .get_stream(bus::STREAM)
        .await
        .map_err(|e| BusError::Stream(e.to_string()))?;
    let info = stream
        .consumer_info(CONSUMER)
        .await
        .map_err(|e| BusError::Stream(e.to_string()))?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}
