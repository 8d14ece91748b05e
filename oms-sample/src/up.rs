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
        let router = services::build(name, &env).await?;
        listeners.push((name.clone(), listener, router));
    }

    let mut tasks = tokio::task::JoinSet::new();
    let source = options.routing_source.clone();
    let runs_orders = options.services.iter().any(|(n, _)| n == "orders");
    if runs_orders {
        tasks.spawn(async move {
            follow(source, routing)
                .await
                .context("routing table source")
        });
    }
    for (name, listener, router) in listeners {
        let address = listener.local_addr()?;
        println!("{name:<18} http://{address}");
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            server::serve(listener, router, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .with_context(|| format!("{name} stopped"))
        });
    }
    println!("oms: {} service(s) ready", options.services.len());

    tokio::select! {
        _ = shutdown.wait_for(|s| *s) => {}
        Some(result) = tasks.join_next() => {
            // A server or the routing source ended on its own: that is a failure.
            result??;
            anyhow::bail!("a service stopped unexpectedly");
        }
    }
    tasks.shutdown().await;
    Ok(())
}
