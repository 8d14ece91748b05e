//! Keep-alive connections are recycled: the response to a connection's
//! `REQUESTS_PER_CONNECTION`th request, or to its first request once it is
//! `MAX_CONNECTION_AGE` old, carries `Connection: close`, so the caller opens
//! a new one — which the Service may send to another replica (nginx's
//! `keepalive_requests`, gRPC's `MAX_CONNECTION_AGE`). Without it a caller's
//! pooled connections stay on the replicas that existed when they were
//! opened, and a replica added by a scale action gets nothing from callers
//! already running: scaling would not relieve the replicas that are
//! overloaded. The age matters most then: an overloaded replica answers
//! each connection rarely, so counting requests alone would take minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

/// Requests one connection serves before it is closed.
pub const REQUESTS_PER_CONNECTION: u32 = 100;
/// Past this age a connection is closed after its next request.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(10);

/// One accepted connection: when, and how many requests it has served.
#[derive(Debug, Clone)]
pub struct Connection {
    opened: Instant,
    served: Arc<AtomicU32>,
}

impl Connection {
    fn opened_at(opened: Instant) -> Self {
        Self {
            opened,
            served: Arc::default(),
        }
    }

    /// Counts one more request at `now`; true when it is the connection's last.
    fn serve_one(&self, now: Instant) -> bool {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        served >= REQUESTS_PER_CONNECTION || now.duration_since(self.opened) >= MAX_CONNECTION_AGE
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Connection {
    fn connect_info(_: IncomingStream<'_, TcpListener>) -> Self {
        Self::opened_at(Instant::now())
    }
}

/// Middleware: closes the connection after its last request's response.
pub async fn recycle(request: Request, next: Next) -> Response {
    let last = request
        .extensions()
        .get::<ConnectInfo<Connection>>()
        .is_some_and(|ConnectInfo(c)| c.serve_one(Instant::now()));
    let mut response = next.run(request).await;
    if last {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hundredth_request_is_a_connections_last() {
        let opened = Instant::now();
        let c = Connection::opened_at(opened);
        let lasts: Vec<bool> = (0..REQUESTS_PER_CONNECTION)
            .map(|_| c.serve_one(opened))
            .collect();
        assert!(lasts[..lasts.len() - 1].iter().all(|last| !last));
        assert!(lasts[lasts.len() - 1]);
        // A fresh connection starts its own count.
        assert!(!Connection::opened_at(opened).serve_one(opened));
    }

    #[test]
    fn an_old_connections_next_request_is_its_last() {
        let opened = Instant::now();
        let c = Connection::opened_at(opened);
        assert!(!c.serve_one(opened + MAX_CONNECTION_AGE - Duration::from_millis(1)));
        assert!(c.serve_one(opened + MAX_CONNECTION_AGE));
    }
}
