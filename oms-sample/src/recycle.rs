//! Keep-alive connections are recycled: the response to a connection's
//! `REQUESTS_PER_CONNECTION`th request carries `Connection: close`, so the
//! caller opens a new one — which the Service may send to another replica,
//! as nginx's `keepalive_requests` does. Without it a caller's pooled
//! connections stay on the replicas that existed when they were opened, and
//! a replica added by a scale action gets nothing from callers already
//! running: scaling would not relieve the replicas that are overloaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

/// Requests one connection serves before it is closed.
pub const REQUESTS_PER_CONNECTION: u32 = 100;

/// One accepted connection: how many requests it has served.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    served: Arc<AtomicU32>,
}

impl Connection {
    /// Counts one more request; true when it is the connection's last.
    fn serve_one(&self) -> bool {
        self.served.fetch_add(1, Ordering::Relaxed) + 1 >= REQUESTS_PER_CONNECTION
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Connection {
    fn connect_info(_: IncomingStream<'_, TcpListener>) -> Self {
        Self::default()
    }
}

/// Middleware: closes the connection after its last request's response.
pub async fn recycle(request: Request, next: Next) -> Response {
    let last = request
        .extensions()
        .get::<ConnectInfo<Connection>>()
        .is_some_and(|ConnectInfo(c)| c.serve_one());
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
        let c = Connection::default();
        let lasts: Vec<bool> = (0..REQUESTS_PER_CONNECTION)
            .map(|_| c.serve_one())
            .collect();
        assert!(lasts[..lasts.len() - 1].iter().all(|last| !last));
        assert!(lasts[lasts.len() - 1]);
        // A fresh connection starts its own count.
        assert!(!Connection::default().serve_one());
    }
}
