//! Real infrastructure for homeostat's tests: an etcd + kube-apiserver control
//! plane, a Prometheus server and a containerd, each started on free loopback
//! ports (or a socket) in a temporary directory and stopped on drop.
//!
//! The binaries come from `cargo xtask test-assets` (kube-apiserver, etcd and
//! kubectl built from their Go modules) and Debian's `prometheus` package. A
//! fixture that cannot find them fails with the command that provides them;
//! nothing is skipped silently.

pub mod assets;
pub mod audit;
pub mod browser;
mod certs;
pub mod cluster;
pub mod containerd;
pub mod control_plane;
pub mod dashboards;
mod error;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod rbac;
pub mod reports;
pub mod schema;
pub mod scrape;
pub mod wait;

pub use assets::TestAssets;
pub use control_plane::ControlPlane;
pub use error::SupportError;
pub use ports::{free_port, free_port_block};
pub use process::ManagedProcess;
pub use prometheus::{Prometheus, PrometheusConfig, ScrapeTarget};
pub use schema::loosen_crd;
pub use scrape::metric_value;
pub use wait::{wait_for_ok, wait_until};

/// kube uses rustls with ring; make ring the process-wide provider so that
/// every TLS client in the process agrees. Safe to call more than once.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
