//! The relay from the orders outbox to JetStream. Events enter the outbox in
//! the transaction that changes the order (see `store.rs`); the relay sends
//! the unpublished ones in `seq` order, waits for the broker's
//! acknowledgement of each, and only then marks them published. A relay that
//! dies between the two republishes; the event id is the message id, so the
//! broker drops the copy. One replica relays at a time (an advisory lock),
//! which keeps the events of one order in the order they happened.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::bus;
use crate::db::parse_state;
use crate::metrics::{ServiceLabel, ServiceMetrics};
use crate::services::notifications::{OrderEvent, OrderEventKind};

/// Events sent per transaction.
const BATCH: i64 = 256;
/// How often the outbox is looked at when nothing signals it: events that
/// another replica wrote, or that a failed attempt left behind.
const POLL: Duration = Duration::from_millis(100);
/// The wait after a failed attempt (broker or database down).
const BACKOFF: Duration = Duration::from_millis(500);
/// How often the outbox gauges are refreshed: a scrape interval's worth,
/// not every relay pass.
const MEASURE_INTERVAL: Duration = Duration::from_secs(1);
/// Taken for the length of one batch: one relay at a time.
const RELAY_LOCK: i64 = 0x6f75_7462_6f78; // "outbox"

/// Tells the relay that events are waiting.
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

#[derive(Clone)]
struct RelayMetrics {
    label: ServiceLabel,
    published: Family<ServiceLabel, Counter>,
    failures: Family<ServiceLabel, Counter>,
    unpublished: Family<ServiceLabel, Gauge>,
    oldest_age: Family<ServiceLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl RelayMetrics {
    fn register(metrics: &ServiceMetrics) -> Self {
        let this = Self {
            label: metrics.service_label(),
            published: Family::default(),
            failures: Family::default(),
            unpublished: Family::default(),
            oldest_age: Family::default(),
        };
        metrics.register(
            "oms_outbox_published",
            "Order events published to JetStream and acknowledged by it",
            this.published.clone(),
        );
        metrics.register(
            "oms_outbox_relay_failures",
            "Attempts to relay the outbox that failed (broker or database unavailable)",
            this.failures.clone(),
        );
        metrics.register(
            "oms_outbox_unpublished",
            "Order events in the outbox not yet acknowledged by JetStream",
            this.unpublished.clone(),
        );
        metrics.register(
            "oms_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest order event not yet acknowledged by JetStream (0 when none)",
            this.oldest_age.clone(),
        );
        this
    }
}

#[derive(sqlx::FromRow)]
struct PendingEvent {
    seq: i64,
    event_id: uuid::Uuid,
    order_id: uuid::Uuid,
    kind: String,
    detail: Option<String>,
    at: String,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("outbox: {0}")]
    Database(#[from] sqlx::Error),
    #[error("outbox row {seq}: {message}")]
    Row { seq: i64, message: String },
    #[error("JetStream: {0}")]
    Broker(String),
}

fn broker(err: impl std::fmt::Display) -> RelayError {
    RelayError::Broker(err.to_string())
}

/// Starts the relay; it runs until the runtime stops. Returns the signal
/// that wakes it.
pub fn start(pool: PgPool, js: jetstream::Context, metrics: &ServiceMetrics) -> OutboxSignal {
    let signal = OutboxSignal::default();
    let metrics = RelayMetrics::register(metrics);
    let wake = signal.0.clone();
    tokio::spawn(async move {
        let mut measured_at: Option<tokio::time::Instant> = None;
        loop {
            let pause = match relay(&pool, &js, &metrics).await {
                Ok(()) => POLL,
                Err(err) => {
                    metrics.failures.get_or_create(&metrics.label).inc();
                    tracing::warn!(error = %err, "outbox not relayed; retrying");
                    BACKOFF
                }
            };
            if measured_at.is_none_or(|at| at.elapsed() >= MEASURE_INTERVAL) {
                measure(&pool, &metrics).await;
                measured_at = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    });
    signal
}

/// Sends batches until the outbox has nothing left to send (or another
/// replica holds the relay).
async fn relay(
    pool: &PgPool,
    js: &jetstream::Context,
    metrics: &RelayMetrics,
) -> Result<(), RelayError> {
    loop {
        let sent = relay_batch(pool, js).await?;
        metrics
            .published
            .get_or_create(&metrics.label)
            .inc_by(sent as u64);
        if sent < BATCH as usize {
            return Ok(());
        }
    }
}

async fn relay_batch(pool: &PgPool, js: &jetstream::Context) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let relaying: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !relaying {
        return Ok(0);
    }
    let pending: Vec<PendingEvent> = sqlx::query_as(
        r#"SELECT seq, event_id, order_id, kind, detail,
                  to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at
           FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1"#,
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    // Send them all, then wait for the acknowledgements: one round trip's
    // wait for the batch, not one per event.
    let mut acks = Vec::with_capacity(pending.len());
    for row in &pending {
        let kind: OrderEventKind = parse_state(&row.kind).map_err(|e| RelayError::Row {
            seq: row.seq,
            message: e.message,
        })?;
        let event = OrderEvent {
            event_id: row.event_id.to_string(),
            order_id: row.order_id.to_string(),
            kind,
            at: row.at.clone(),
            detail: row.detail.clone(),
        };
        let payload = serde_json::to_vec(&event).map_err(|e| RelayError::Row {
            seq: row.seq,
            message: e.to_string(),
        })?;
        let message = PublishMessage::build()
            .payload(payload.into())
            .message_id(&event.event_id);
        acks.push(
            js.send_publish(bus::subject(kind), message)
                .await
                .map_err(broker)?,
        );
    }
    for ack in acks {
        ack.await.map_err(broker)?;
    }
    let seqs: Vec<i64> = pending.iter().map(|row| row.seq).collect();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(pending.len())
}

/// Updates the outbox gauges; a failure leaves them as they were.
async fn measure(pool: &PgPool, metrics: &RelayMetrics) {
    let measured: Result<(i64, f64), _> = sqlx::query_as(
        "SELECT count(*),
                coalesce(extract(epoch FROM clock_timestamp() - min(at))::float8, 0)
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await;
    if let Ok((unpublished, oldest)) = measured {
        metrics
            .unpublished
            .get_or_create(&metrics.label)
            .set(unpublished);
        metrics
            .oldest_age
            .get_or_create(&metrics.label)
            .set(oldest.max(0.0));
    }
}
