//! Order events on NATS JetStream. `orders` writes each event to its outbox
//! in the transaction that changes the order, and its relay publishes it to
//! one stream, [`STREAM`], on the subject `oms.orders.<kind>`, with the event
//! id as the message id (a republish within [`DUPLICATE_WINDOW`] is dropped
//! by the server). Consumers are durable: the broker remembers what each one
//! has acknowledged, and they acknowledge only after their effect commits.

pub mod local;

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::db::state_text;
use crate::services::notifications::OrderEventKind;

/// The stream every order event goes to.
pub const STREAM: &str = "OMS_ORDER_EVENTS";
const SUBJECTS: &str = "oms.orders.>";
/// How long the server remembers a message id. A relay that published but
/// died before marking the event sent republishes it within seconds.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Events older than this leave the stream; every consumer is far closer
/// behind than this unless it has been down for a week.
const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a call to the broker may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The subject of an event of `kind`.
pub fn subject(kind: OrderEventKind) -> String {
    format!("oms.orders.{}", state_text(kind))
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid NATS URL {url:?}: {source}")]
    Url {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("JetStream stream {STREAM}: {0}")]
    Stream(String),
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    pub url: String,
}

impl BusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }

    /// A JetStream context on a client that keeps reconnecting: a service
    /// starts, and takes orders, while the broker is down; its events wait
    /// in the outbox until the broker is back.
    pub async fn connect(&self, service: &str) -> Result<jetstream::Context, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("homeostat-oms {service}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(self.url.as_str())
            .await
            .map_err(|source| BusError::Url {
                url: self.url.clone(),
                source,
            })?;
        Ok(jetstream::new(client))
    }
}

/// The stream of order events, created if it does not exist yet (by
/// whichever service gets there first; the configuration is the same).
pub async fn order_events(js: &jetstream::Context) -> Result<stream::Stream, BusError> {
    js.get_or_create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: RETENTION,
        ..Default::default()
    })
    .await
    .map_err(|e| BusError::Stream(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_kind_is_its_subjects_last_token() {
        assert_eq!(subject(OrderEventKind::Confirmed), "oms.orders.confirmed");
        assert_eq!(subject(OrderEventKind::Returned), "oms.orders.returned");
    }
}
