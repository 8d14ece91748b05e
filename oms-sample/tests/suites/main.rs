//! The OMS end to end: `oms up` processes on real PostgreSQL and NATS, one
//! module a topic. One test executable: one link, and the helpers in
//! `common.rs` compiled once.

mod capacity;
mod common;
mod crashes;
mod durability;
mod events;
mod faults;
mod loadgen;
mod overload;
mod recovery;
mod replicas;
mod returns;
mod routing;
mod saga;
mod traces;
