//! One `/metrics`, `/healthz` and `/readyz` server for every binary: its
//! own registry, then the process metrics and `homeostat_build_info`
//! ([`process`](crate::process)), and its readiness.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::process::{Build, encode_with_process_metrics};

/// What a binary exports.
pub trait Exporter: Send + Sync + 'static {
    /// Its own metrics.
    fn registry(&self) -> &Registry;
    /// Which binary it is.
    fn build(&self) -> Build;
    /// `None` when ready; else what it waits for, as `/readyz` says it.
    fn waiting_for(&self) -> Option<&'static str>;
}

/// Everything `/metrics` serves, in the OpenMetrics text format.
pub fn encode(exporter: &impl Exporter) -> String {
    let mut out = String::new();
    encode_with_process_metrics(&mut out, exporter.registry(), exporter.build());
    out
}

/// `/metrics`, `/healthz` (the process answers) and `/readyz` (503 with
/// what it waits for, until ready).
pub fn router<E: Exporter>(exporter: Arc<E>) -> Router {
    Router::new()
        .route("/metrics", get(scrape::<E>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::<E>))
        .with_state(exporter)
}

async fn scrape<E: Exporter>(State(exporter): State<Arc<E>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        encode(exporter.as_ref()),
    )
}

async fn ready<E: Exporter>(State(exporter): State<Arc<E>>) -> impl IntoResponse {
    match exporter.waiting_for() {
        None => (StatusCode::OK, "ok"),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use prometheus_client::metrics::counter::Counter;

    use super::*;

    struct Fake {
        registry: Registry,
        ready: AtomicBool,
    }

    impl Exporter for Fake {
        fn registry(&self) -> &Registry {
            &self.registry
        }
        fn build(&self) -> Build {
            Build {
                component: "operator",
                version: "9.9.9",
            }
        }
        fn waiting_for(&self) -> Option<&'static str> {
            (!self.ready.load(Ordering::SeqCst)).then_some("starting")
        }
    }

    async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response[9..12].parse().expect("status");
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        (status, head.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn serves_the_binarys_metrics_with_the_process_and_build_and_its_readiness() {
        let mut registry = Registry::with_prefix("homeostat_operator");
        let reconciles = Counter::<u64>::default();
        registry.register("reconciles", "Reconciles", reconciles.clone());
        reconciles.inc();
        let fake = Arc::new(Fake {
            registry,
            ready: AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(axum::serve(listener, router(fake.clone())).into_future());

        let (status, head, body) = get(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(head.to_lowercase().contains("application/openmetrics-text"));
        assert!(
            body.contains("homeostat_operator_reconciles_total 1"),
            "{body}"
        );
        assert!(body.contains("process_resident_memory_bytes"), "{body}");
        assert!(
            body.contains(r#"homeostat_build_info{component="operator",version="9.9.9"} 1"#),
            "{body}"
        );
        assert_eq!(get(address, "/healthz").await.0, 200);
        let (status, _, body) = get(address, "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "starting"));
        fake.ready.store(true, Ordering::SeqCst);
        let (status, _, body) = get(address, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
}
