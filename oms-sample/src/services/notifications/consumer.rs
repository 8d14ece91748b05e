//! The durable JetStream consumer of order events. Every replica of
//! `notifications` pulls from the same durable consumer, so the broker hands
//! each event to one of them and remembers what was acknowledged across
//! restarts. An event is acknowledged only after it is recorded: a crash
//! between the two means a redelivery, which finds the event id recorded and
//! does nothing. What has arrived is recorded in one transaction, up to a
//! batch. A message that is not an order event is terminated (never
//! redelivered) and counted; a database failure asks for a redelivery of
//! its batch.

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
/// Events recorded in one transaction at most. A replica catching up on a
/// backlog (one just added by a scale step) commits once a batch, not once
/// an event: drained one commit at a time, a 950-event backlog crowded the
/// orders' and inventory's commits out of the shared database's WAL
/// flushes (their p50 at 6 and 59 times their bands: a false report).
const BATCH: usize = 100;

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
    // What has arrived, up to a batch, without waiting for more: one event
    // at a time while the consumer keeps up, a batch when it catches up.
    let mut batches = durable(js)
        .await?
        .stream()
        .heartbeat(HEARTBEAT)
        .messages()
        .await
        .map_err(|e| BusError::Stream(e.to_string()))?
        .ready_chunks(BATCH);
    while let Some(batch) = batches.next().await {
        let mut failed = None;
        let mut events = Vec::with_capacity(batch.len());
        for message in batch {
            let message = match message {
                Ok(message) => message,
                Err(err) => {
                    failed = Some(BusError::Stream(err.to_string()));
                    continue;
                }
            };
            match serde_json::from_slice::<OrderEvent>(&message.payload) {
                Ok(event) => events.push((message, event)),
                Err(err) => {
                    metrics.malformed.get_or_create(&metrics.label).inc();
                    tracing::warn!(subject = %message.subject, error = %err, "not an order event");
                    acknowledge(&message, AckKind::Term).await;
                }
            }
        }
        let recorded = slowed(
            faults,
            events.len(),
            record_all(pool, events.iter().map(|(_, event)| event)),
        )
        .await;
        match recorded {
            Ok(inserted) => {
                for ((message, event), new) in events.iter().zip(inserted) {
                    if new {
                        if let Some(age) = age_seconds(&event.at) {
                            metrics.delivery.get_or_create(&metrics.label).observe(age);
                        }
                    } else {
                        metrics.redelivered.get_or_create(&metrics.label).inc();
                    }
                    acknowledge(message, AckKind::Ack).await;
                }
            }
            Err(err) => {
                tracing::warn!(events = events.len(), error = %err, "events not recorded");
                for (message, _) in &events {
                    acknowledge(message, AckKind::Nak(Some(BACKOFF))).await;
                }
            }
        }
        if let Some(err) = failed {
            return Err(err);
        }
    }
    Ok(())
}

/// A lost acknowledgement means a redelivery, which [`record_all`] absorbs.
async fn acknowledge(message: &jetstream::Message, answer: AckKind) {
    if let Err(err) = message.ack_with(answer).await {
        tracing::debug!(error = %err, "acknowledgement not sent");
    }
}

/// Runs `work` once a `slow_consumer` fault in force has been waited out,
/// for each of the `events` it records.
async fn slowed<T>(faults: &FaultSet, events: usize, work: impl Future<Output = T>) -> T {
    for _ in 0..events {
        let delay = faults.event_delay(Instant::now(), &mut rand::thread_rng());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    work.await
}

/// Records each event once, all in one transaction; for each, `false` when
/// its id was recorded before.
async fn record_all<'a>(
    pool: &PgPool,
    events: impl Iterator<Item = &'a OrderEvent>,
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut inserted = Vec::new();
    for event in events {
        let rows = sqlx::query(
            "INSERT INTO events (event_id, order_id, kind, at, detail) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&event.event_id)
        .bind(&event.order_id)
        .bind(state_text(event.kind))
        .bind(&event.at)
        .bind(&event.detail)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        inserted.push(rows == 1);
    }
    tx.commit().await?;
    Ok(inserted)
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
