//! Running services: one (`oms <service>`, as in a container) or all of them
//! in one process (`oms up`, for local use).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use homeostat_api::routing::RoutingTable;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bus::BusConfig;
use crate::client::Peers;
use crate::db::DatabaseConfig;
use crate::routing::{LiveRouting, RoutingSource, follow};
use crate::server;
use crate::services::{self, Environment};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The services to run and the address each listens on.
    pub services: Vec<(String, SocketAddr)>,
    pub peers: Peers,
    pub admin_token: String,
    pub routing_source: RoutingSource,
    pub initial_routing: RoutingTable,
    pub call_timeout: Duration,
    pub limits: crate::admission::Limits,
    pub hold_ttl: Duration,
    pub ship_delay: Duration,
    /// How long a stopping process waits for its requests to finish.
    pub shutdown_grace: Duration,
    /// Where the stateful services keep their state.
    pub database: Option<DatabaseConfig>,
    /// Where order events go.
    pub bus: Option<BusConfig>,
}

/// Binds every listener first (so a taken port fails before anything
/// serves), prints each service's URL, then serves until `shutdown` fires.
pub async fn run(options: RunOptions, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let routing = LiveRouting::new(&options.initial_routing);
    let env = Environment {
        peers: Arc::new(options.peers.clone()),
        admin_token: options.admin_token.clone(),
        routing: routing.clone(),
        call_timeout: options.call_timeout,
        limits: options.limits,
        hold_ttl: options.hold_ttl,
        ship_delay: options.ship_delay,
        database: options.database.clone(),
        bus: options.bus.clone(),
    };

    let mut listeners = Vec::new();
    for (name, address) in &options.services {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("{name} cannot listen on {address}"))?;
        let built = services::build(name, &env).await?;
        listeners.push((name.clone(), listener, built));
    }

    let mut background = tokio::task::JoinSet::new();
    let source = options.routing_source.clone();
    let runs_orders = options.services.iter().any(|(n, _)| n == "orders");
    if runs_orders {
        background.spawn(async move {
            follow(source, routing)
                .await
                .context("routing table source")
        });
    }
    // One stop signal per drain tier (see `drain_tier`).
    let stops: Vec<watch::Sender<bool>> =
        (0..DRAIN_TIERS).map(|_| watch::channel(false).0).collect();
    let mut servers = tokio::task::JoinSet::new();
    let mut per_tier = [0usize; DRAIN_TIERS];
    for (name, listener, built) in listeners {
        let address = listener.local_addr()?;
        println!("{name:<18} http://{address}");
        let tier = drain_tier(&name);
        per_tier[tier] += 1;
        let stop = stops[tier].subscribe();
        servers.spawn(async move {
            let served = server::serve(listener, built.router, built.faults, stop)
                .await
                .with_context(|| format!("{name} stopped"));
            (tier, served)
        });
    }
    println!("oms: {} service(s) ready", options.services.len());

    tokio::select! {
        _ = shutdown.wait_for(|s| *s) => {}
        Some(result) = servers.join_next() => {
            // A server ended on its own: that is a failure.
            result?.1?;
            anyhow::bail!("a service stopped unexpectedly");
        }
        Some(result) = background.join_next() => {
            result??;
            anyhow::bail!("the routing table source stopped unexpectedly");
        }
    }
    // Drain, callers first: each tier stops accepting and finishes the
    // requests it has (an order's request waits for its saga) while the
    // services it calls still serve, all within the grace period.
    println!(
        "oms: stopping; draining for up to {:?}",
        options.shutdown_grace
    );
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        let mut stopped = [0usize; DRAIN_TIERS];
        for (tier, stop) in stops.iter().enumerate() {
            let _ = stop.send(true);
            while stopped[tier] < per_tier[tier] {
                let Some(result) = servers.join_next().await else {
                    return;
                };
                match result {
                    Ok((done_tier, served)) => {
                        if let Err(err) = served {
                            tracing::warn!(error = %err, "a service failed while draining");
                        }
                        stopped[done_tier] += 1;
                    }
                    // Only a panic ends a server task this way; nothing to wait for.
                    Err(err) => {
                        tracing::warn!(error = %err, "a server task failed while draining");
                        return;
                    }
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace = ?options.shutdown_grace,
            "requests still in flight at the end of the grace period; their sagas settle after their lease"
        );
    }
    servers.shutdown().await;
    background.shutdown().await;
    Ok(())
}

/// Drain tiers: a service stops after every service that calls it.
pub(crate) const DRAIN_TIERS: usize = 3;

/// The tier of a service: the entry points first (orders and returns call
/// the rest), then fulfillment (it calls inventory), then everything else.
pub(crate) fn drain_tier(service: &str) -> usize {
    match service {
        "orders" | "returns" => 0,
        "fulfillment" => 1,
        _ => 2,
    }
}
