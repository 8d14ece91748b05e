//! Active health checks of the payment providers. Every backend of the
//! payment route, whatever its weight, is asked for its status at a steady
//! rate, as a service mesh's active health checks do. A provider that a
//! reroute drained keeps producing the latency and error figures that show
//! when it has healed; without them it would go silent, and an incident on
//! it could never be seen to end.

use std::time::Duration;

use homeostat_api::routing::PAYMENT_ROUTE;
use tokio::time::MissedTickBehavior;

use crate::client::ServiceClient;
use crate::contract::PAYMENT_STATUS;
use crate::routing::LiveRouting;
use crate::services::payment::ProviderStatus;

/// Two probes a second per provider: enough for a p99 over a 10 s window,
/// a rounding error next to customer traffic.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Probes every payment backend in `routing` (or `fallback` when the route
/// lists none) each `interval`, until the runtime stops.
pub fn spawn(
    client: ServiceClient,
    routing: LiveRouting,
    fallback: &'static str,
    interval: Duration,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let mut backends: Vec<String> = routing.weights(PAYMENT_ROUTE).into_keys().collect();
            if backends.is_empty() {
                backends.push(fallback.to_owned());
            }
            for backend in backends {
                // One task per probe: a slow provider never delays the other's.
                let client = client.clone();
                tokio::spawn(async move {
                    let probe = client
                        .call::<(), ProviderStatus>(&PAYMENT_STATUS, &backend, &[], None)
                        .await;
                    if let Err(error) = probe {
                        tracing::debug!(%backend, %error, "payment probe failed");
                    }
                });
            }
        }
    });
}
