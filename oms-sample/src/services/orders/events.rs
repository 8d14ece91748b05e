//! Order events to `notifications`: asynchronous, off the customer's critical
//! path, through a bounded queue, retried with backoff, dropped (and counted)
//! only when the queue is full.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Semaphore, mpsc};

use crate::client::ServiceClient;
use crate::contract;
use crate::metrics::ServiceMetrics;
use crate::services::notifications::{EventReceipt, OrderEvent, OrderEventKind};

/// Events waiting to be sent.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Events being sent at once.
const CONCURRENT_SENDS: usize = 32;
/// Tries per event before it is given up.
const ATTEMPTS: u32 = 5;

#[derive(Clone)]
pub struct EventPublisher {
    queue: mpsc::Sender<OrderEvent>,
    dropped: Counter,
    depth: Gauge,
}

impl EventPublisher {
    /// Starts the sender task; it runs until every publisher is dropped.
    pub fn start(client: ServiceClient, metrics: &ServiceMetrics) -> Self {
        let (queue, mut inbox) = mpsc::channel::<OrderEvent>(QUEUE_CAPACITY);
        let dropped: Counter = Counter::default();
        let failed: Counter = Counter::default();
        let depth: Gauge = Gauge::default();
        metrics.register(
            "oms_notification_events_dropped",
            "Order events dropped because the queue was full",
            dropped.clone(),
        );
        metrics.register(
            "oms_notification_events_failed",
            "Order events given up after retries",
            failed.clone(),
        );
        metrics.register(
            "oms_notification_queue_depth",
            "Order events waiting to be sent",
            depth.clone(),
        );
        let sending = Arc::new(Semaphore::new(CONCURRENT_SENDS));
        let queue_depth = depth.clone();
        tokio::spawn(async move {
            while let Some(event) = inbox.recv().await {
                queue_depth.set(i64::try_from(inbox.len()).unwrap_or(i64::MAX));
                let Ok(permit) = sending.clone().acquire_owned().await else {
                    break;
                };
                let client = client.clone();
                let failed = failed.clone();
                tokio::spawn(async move {
                    let sent: Result<EventReceipt, _> = client
                        .call_idempotent(
                            &contract::NOTIFICATIONS_PUBLISH,
                            "notifications",
                            &[],
                            Some(&event),
                            ATTEMPTS,
                        )
                        .await;
                    if let Err(err) = sent {
                        failed.inc();
                        tracing::warn!(event_id = event.event_id, error = %err, "order event not delivered");
                    }
                    drop(permit);
                });
            }
        });
        Self {
            queue,
            dropped,
            depth,
        }
    }

    /// Queues an event; never waits.
    pub fn publish(&self, order_id: &str, kind: OrderEventKind, detail: Option<String>) {
        let event = OrderEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            order_id: order_id.to_owned(),
            kind,
            at: now_rfc3339(),
            detail,
        };
        match self.queue.try_send(event) {
            Ok(()) => {
                let waiting = QUEUE_CAPACITY - self.queue.capacity();
                self.depth.set(i64::try_from(waiting).unwrap_or(i64::MAX));
            }
            Err(_) => {
                self.dropped.inc();
            }
        }
    }
}

/// The current time in RFC 3339, UTC.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}
