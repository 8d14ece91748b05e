//! The reference order management system bundled with homeostat.
//!
//! Eight services (see [`homeostat_api::oms::OMS_SERVICES`]) that behave like a
//! real OMS under load: `orders` orchestrates a saga with compensations over
//! `inventory`, `tax`, the two payment providers and `fulfillment`, and
//! publishes events to `notifications`; `returns` handles reverse logistics.
//! Every service exposes OpenTelemetry-named Prometheus metrics, health
//! endpoints, its OpenAPI document and a token-protected fault injector.
//! Every stateful service keeps its state in its own PostgreSQL schema
//! ([`db`]), so any service can run with replicas and survives restarts.

pub mod admission;
pub mod audit;
pub mod bus;
pub mod capacity;
pub mod catalog;
pub mod client;
pub mod contract;
pub mod db;
pub mod error;
pub mod faults;
pub mod loadgen;
pub mod metrics;
pub mod recycle;
pub mod replicas;
pub mod routing;
pub mod server;
pub mod services;
pub mod sync;
pub mod telemetry;
pub mod throwaway;
pub mod up;
