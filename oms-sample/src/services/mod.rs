//! The OMS services. Each module holds one service: its request and response
//! types, its pure logic and its handlers.

pub mod expiry;
pub mod fulfillment;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod payment;
pub mod returns;
pub mod tax;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sqlx::PgPool;

use crate::bus::{BusConfig, BusError};
use crate::catalog;
use crate::client::{Peers, ServiceClient};
use crate::db::{DatabaseConfig, DbError, Store};
use crate::error::ApiError;
use crate::faults::FaultSet;
use crate::routing::LiveRouting;
use crate::server::{ServiceContext, service_router};
use crate::services::orders::outbox::OutboxSignal;
use utoipa_axum::router::OpenApiRouter;

/// Most lines one basket may have.
pub const MAX_LINES: usize = 50;
/// Most units of one SKU per line.
pub const MAX_QUANTITY: u32 = 1_000;

/// A SKU and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
}

/// Checks a basket: 1 to 50 lines, known SKUs, quantities from 1 to 1000.
pub fn validate_lines(lines: &[Line]) -> Result<(), ApiError> {
    if lines.is_empty() {
        return Err(ApiError::unprocessable(
            "empty_basket",
            "an order needs at least one line",
        ));
    }
    if lines.len() > MAX_LINES {
        return Err(ApiError::unprocessable(
            "too_many_lines",
            format!("at most {MAX_LINES} lines per order, got {}", lines.len()),
        ));
    }
    for line in lines {
        if catalog::product(&line.sku).is_none() {
            return Err(ApiError::unprocessable(
                "unknown_sku",
                format!("unknown SKU {:?}", line.sku),
            ));
        }
        if line.quantity == 0 || line.quantity > MAX_QUANTITY {
            return Err(ApiError::unprocessable(
                "invalid_quantity",
                format!(
                    "quantity of {} must be from 1 to {MAX_QUANTITY}, got {}",
                    line.sku, line.quantity
                ),
            ));
        }
    }
    Ok(())
}

/// A caller-chosen name: an order id, a refund or a restock id.
#[derive(Debug, Clone, Copy)]
pub enum NameField {
    OrderId,
    RefundId,
    RestockId,
}

/// Checks a caller-chosen name: 1 to 128 characters.
pub fn validate_name(field: NameField, value: &str) -> Result<(), ApiError> {
    let (code, name) = match field {
        NameField::OrderId => ("invalid_order_id", "order_id"),
        NameField::RefundId => ("invalid_refund_id", "refund_id"),
        NameField::RestockId => ("invalid_restock_id", "restock_id"),
    };
    if value.is_empty() || value.len() > 128 {
        return Err(ApiError::unprocessable(
            code,
            format!("{name} must have 1 to 128 characters"),
        ));
    }
    Ok(())
}

/// 201 for what this request created, 200 for what an earlier one did.
pub fn created_or_found(created: bool) -> axum::http::StatusCode {
    if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    }
}

/// What the services need from their surroundings.
#[derive(Clone)]
pub struct Environment {
    pub peers: Arc<Peers>,
    pub admin_token: String,
    /// `orders` only: the payment routing table in force.
    pub routing: LiveRouting,
    pub call_timeout: Duration,
    /// How long a reservation or authorisation may stay unclaimed
    /// (inventory and the payment providers).
    pub hold_ttl: Duration,
    /// What each service takes on before it sheds load.
    pub limits: crate::admission::Limits,
    /// `orders` only: how long after confirmation an order ships.
    pub ship_delay: Duration,
    /// Where the stateful services keep their state; tax needs none.
    pub database: Option<DatabaseConfig>,
    /// The NATS server of the order events: `orders` publishes them,
    /// `notifications` consumes them.
    pub bus: Option<BusConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no OMS service called {0:?}")]
    UnknownService(String),
    #[error("{0} keeps its state in PostgreSQL: pass --database-url (or set OMS_DATABASE_URL)")]
    NoDatabase(&'static str),
    #[error(
        "{0} sends or receives order events on NATS JetStream: pass --nats-url (or set OMS_NATS_URL)"
    )]
    NoBus(&'static str),
    #[error("{service}: {source}")]
    Bus {
        service: &'static str,
        #[source]
        source: BusError,
    },
    #[error("{service}: {source}")]
    Database {
        service: &'static str,
        #[source]
        source: DbError,
    },
}

fn service_name(name: &str) -> Result<&'static str, BuildError> {
    homeostat_api::oms::OMS_SERVICES
        .iter()
        .find(|s| **s == name)
        .copied()
        .ok_or_else(|| BuildError::UnknownService(name.to_owned()))
}

/// The service's API. `pool` is its store's pool (`None` only for tax);
/// `outbox` wakes the relay of the events `orders` writes.
fn service_api(
    service: &'static str,
    ctx: &ServiceContext,
    env: &Environment,
    pool: Option<PgPool>,
    outbox: OutboxSignal,
) -> Result<OpenApiRouter, BuildError> {
    let client = || {
        ServiceClient::new(
            service,
            ctx.metrics.clone(),
            env.peers.clone(),
            env.call_timeout,
        )
    };
    if service == "tax" {
        return Ok(tax::api());
    }
    let pool = pool.ok_or(BuildError::NoDatabase(service))?;
    Ok(match service {
        "orders" => orders::api(
            ctx,
            pool,
            outbox,
            client(),
            env.routing.clone(),
            env.ship_delay,
        ),
        "inventory" => inventory::api(pool),
        "fulfillment" => fulfillment::api(pool, client()),
        "notifications" => notifications::api(pool),
        "returns" => returns::api(ctx, pool, client()),
        // payment-primary and payment-secondary: one API, two providers.
        provider => payment::api(provider, pool),
    })
}

/// Whether `service` consumes the order events (and so can fall behind).
pub fn consumes_events(service: &str) -> bool {
    service == "notifications"
}

/// Starts what a service does besides answering requests: `orders` relays
/// its outbox to JetStream, `notifications` consumes the order events.
/// Returns the signal that wakes the relay (nobody listens for others).
async fn start_event_work(
    service: &'static str,
    ctx: &ServiceContext,
    env: &Environment,
    pool: Option<&PgPool>,
) -> Result<OutboxSignal, BuildError> {
    let (true, Some(pool)) = (matches!(service, "orders" | "notifications"), pool) else {
        return Ok(OutboxSignal::default());
    };
    let bus = env.bus.as_ref().ok_or(BuildError::NoBus(service))?;
    let js = bus
        .connect(service)
        .await
        .map_err(|source| BuildError::Bus { service, source })?;
    if service == "orders" {
        return Ok(orders::outbox::start(pool.clone(), js, &ctx.metrics));
    }
    notifications::consumer::start(pool.clone(), js, &ctx.metrics, ctx.faults.clone());
    Ok(OutboxSignal::default())
}

/// Starts the sweep that gives back holds no saga claims: inventory's
/// reservations and the providers' authorisations.
fn start_expiry(service: &'static str, ctx: &ServiceContext, ttl: Duration, pool: &PgPool) {
    let pool = pool.clone();
    match service {
        "inventory" => expiry::spawn("reservation", ctx.metrics.clone(), move || {
            let pool = pool.clone();
            async move { inventory::ledger::expire(&pool, ttl).await }
        }),
        "payment-primary" | "payment-secondary" => {
            expiry::spawn("authorization", ctx.metrics.clone(), move || {
                let pool = pool.clone();
                async move { payment::book::expire(&pool, ttl).await }
            });
        }
        _ => {}
    }
}

/// A service ready to serve: its router and the faults injected into it
/// (the server reads the `down` ones).
pub struct Built {
    pub router: Router,
    pub faults: Arc<FaultSet>,
}

/// Builds the router of the service called `name`: creates and migrates its
/// schema and opens its pool first. Must run inside a Tokio runtime
/// (`orders` starts its outbox relay, `notifications` its consumer).
pub async fn build(name: &str, env: &Environment) -> Result<Built, BuildError> {
    let service = service_name(name)?;
    let pool = match Store::of_service(service) {
        None => None,
        Some(store) => {
            let database = env
                .database
                .as_ref()
                .ok_or(BuildError::NoDatabase(service))?;
            let failed = |source| BuildError::Database { service, source };
            let pool = database.open(store).await.map_err(failed)?;
            if store == Store::Inventory {
                inventory::ledger::seed(&pool)
                    .await
                    .map_err(|e| failed(DbError::Seed(e)))?;
            }
            Some(pool)
        }
    };
    let ctx = ServiceContext::new(service, &env.admin_token, env.limits);
    let outbox = start_event_work(service, &ctx, env, pool.as_ref()).await?;
    if let Some(pool) = &pool {
        start_expiry(service, &ctx, env.hold_ttl, pool);
    }
    let api = service_api(service, &ctx, env, pool, outbox)?;
    let faults = ctx.faults.clone();
    Ok(Built {
        router: service_router(ctx, api),
        faults,
    })
}

/// The OpenAPI document the service called `name` publishes at
/// `/openapi.json`; connects to no database.
pub fn openapi(name: &str, env: &Environment) -> Result<utoipa::openapi::OpenApi, BuildError> {
    let service = service_name(name)?;
    let ctx = ServiceContext::new(service, &env.admin_token, env.limits);
    let database = env
        .database
        .clone()
        .unwrap_or_else(|| DatabaseConfig::new("postgres://localhost/oms"));
    let pool = Store::of_service(service)
        .map(|store| database.lazy(store))
        .transpose()
        .map_err(|source| BuildError::Database { service, source })?;
    Ok(crate::server::document(
        &ctx,
        service_api(service, &ctx, env, pool, OutboxSignal::default())?,
    ))
}
