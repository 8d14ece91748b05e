//! Calls from one OMS service to another: every call is a [`ClientCall`] from
//! the contract, measured in `http_client_request_duration_seconds` with the
//! callee as `peer_service`, bounded by a timeout, and carrying the trace context.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::contract::ClientCall;
use crate::error::ErrorBody;
use crate::metrics::{ClientLabels, ServiceMetrics};
use crate::telemetry;

/// Makes ring the process-wide rustls provider (kube uses ring; reqwest is
/// built without one). Safe to call more than once.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where each service listens: one URL per replica.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    urls: BTreeMap<String, Vec<String>>,
}

impl Peers {
    /// Every OMS service at `template` with `{service}` replaced, e.g. `http://{service}:8080`.
    pub fn from_template(template: &str) -> Self {
        let urls = homeostat_api::oms::OMS_SERVICES
            .iter()
            .map(|s| ((*s).to_owned(), vec![template.replace("{service}", s)]))
            .collect();
        Self { urls }
    }

    /// Every OMS service on loopback, `orders` at `base_port` and the rest after it.
    pub fn local(base_port: u16) -> Self {
        let urls = homeostat_api::oms::OMS_SERVICES
            .iter()
            .zip(base_port..)
            .map(|(s, port)| ((*s).to_owned(), vec![format!("http://127.0.0.1:{port}")]))
            .collect();
        Self { urls }
    }

    /// Overrides one service's URL.
    pub fn set(&mut self, service: &str, url: &str) {
        self.set_replicas(service, [url]);
    }

    /// Overrides one service's URLs: calls spread across them.
    pub fn set_replicas<'a>(&mut self, service: &str, urls: impl IntoIterator<Item = &'a str>) {
        let urls = urls
            .into_iter()
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        self.urls.insert(service.to_owned(), urls);
    }

    /// The replicas of `service`; empty when it has none.
    pub fn replicas(&self, service: &str) -> &[String] {
        self.urls
            .get(service)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// `SERVICE=URL[,URL...]`, as `--peer` takes it.
pub fn parse_peer(text: &str) -> Result<(String, Vec<String>), String> {
    let (service, urls) = text
        .split_once('=')
        .ok_or_else(|| format!("expected SERVICE=URL[,URL...], got {text:?}"))?;
    if !homeostat_api::oms::OMS_SERVICES.contains(&service) {
        return Err(format!(
            "{service:?} is no OMS service (one of {})",
            homeostat_api::oms::OMS_SERVICES.join(", ")
        ));
    }
    let urls: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
    if let Some(bad) = urls
        .iter()
        .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
    {
        return Err(format!("{bad:?} is no http(s) URL"));
    }
    Ok((service.to_owned(), urls))
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("{peer} answered {status}: {}", body.message)]
    Status {
        peer: String,
        status: u16,
        body: ErrorBody,
    },
    #[error("{peer} did not answer within {timeout:?}")]
    Timeout { peer: String, timeout: Duration },
    #[error("cannot reach {peer}: {message}")]
    Connect { peer: String, message: String },
    /// The request went out and the answer broke off: the callee may have acted.
    #[error("the answer from {peer} was lost: {message}")]
    Lost { peer: String, message: String },
    #[error("unexpected answer from {peer}: {message}")]
    Decode { peer: String, message: String },
    #[error("no address configured for {peer}")]
    UnknownPeer { peer: String },
}

impl CallError {
    /// Worth trying again: the callee may recover (overload, restart, network).
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Status { status, .. } => matches!(status, 502..=504),
            CallError::Timeout { .. } | CallError::Connect { .. } | CallError::Lost { .. } => true,
            CallError::Decode { .. } | CallError::UnknownPeer { .. } => false,
        }
    }

    /// Whether the call certainly did nothing: the callee refused it with an
    /// answer, or it never reached the callee. A timeout or a lost answer may
    /// hide a done call; so may a 500 or 504 (the callee or a proxy may have
    /// failed after acting). The OMS services answer 502 and 503 only
    /// before acting or after rolling back.
    pub fn did_nothing(&self) -> bool {
        match self {
            CallError::Status { status, .. } => !matches!(status, 500 | 504),
            CallError::Connect { .. } | CallError::UnknownPeer { .. } => true,
            CallError::Timeout { .. } | CallError::Lost { .. } | CallError::Decode { .. } => false,
        }
    }

    /// The callee's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Status { body, .. } => Some(&body.error),
            _ => None,
        }
    }
}

/// A service's client to its peers.
#[derive(Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    caller: &'static str,
    metrics: ServiceMetrics,
    peers: Arc<Peers>,
    timeout: Duration,
    /// Where the next call starts in a service's replica list.
    turn: Arc<AtomicUsize>,
}

impl ServiceClient {
    pub fn new(
        caller: &'static str,
        metrics: ServiceMetrics,
        peers: Arc<Peers>,
        timeout: Duration,
    ) -> Self {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            caller,
            metrics,
            peers,
            timeout,
            turn: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How long one call may take before it is given up.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls `call` on `peer` with `params` filling the path's `{…}` segments.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: &ClientCall,
        peer: &str,
        params: &[&str],
        body: Option<&Req>,
    ) -> Result<Resp, CallError> {
        self.call_within(call, peer, params, body, self.timeout)
            .await
    }

    /// [`call`](Self::call) given up after `timeout` instead of the
    /// client's own: for a callee whose work takes calls of its own (a
    /// return refunds and restocks).
    pub async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: &ClientCall,
        peer: &str,
        params: &[&str],
        body: Option<&Req>,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let span = tracing::info_span!("http.client", peer.service = peer, http.route = call.path);
        self.call_in_span(call, peer, params, body, timeout)
            .instrument(span)
            .await
    }

    /// Spreads calls across the peer's replicas in turn. A replica that
    /// cannot be reached never got the call, so the next one is tried; any
    /// other outcome is the call's.
    async fn call_in_span<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: &ClientCall,
        peer: &str,
        params: &[&str],
        body: Option<&Req>,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let replicas = self.peers.replicas(peer);
        if replicas.is_empty() {
            return Err(CallError::UnknownPeer {
                peer: peer.to_owned(),
            });
        }
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut outcome = Err(CallError::UnknownPeer {
            peer: peer.to_owned(),
        });
        for i in 0..replicas.len() {
            let base = &replicas[(first + i) % replicas.len()];
            outcome = self
                .call_replica(call, peer, base, params, body, timeout)
                .await;
            if !matches!(outcome, Err(CallError::Connect { .. })) {
                break;
            }
        }
        outcome
    }

    async fn call_replica<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: &ClientCall,
        peer: &str,
        base: &str,
        params: &[&str],
        body: Option<&Req>,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("{base}{}", call.render_path(params));
        let method =
            reqwest::Method::from_bytes(call.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut headers = HeaderMap::new();
        telemetry::inject_current_context(&mut headers);
        let mut request = self
            .http
            .request(method, &url)
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }

        let started = Instant::now();
        let result = request.send().await;
        let (status, error_type, outcome) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = response.bytes().await;
                let outcome = match bytes {
                    Ok(bytes) if (200..300).contains(&status) => {
                        serde_json::from_slice::<Resp>(&bytes).map_err(|e| CallError::Decode {
                            peer: peer.to_owned(),
                            message: e.to_string(),
                        })
                    }
                    Ok(bytes) => Err(CallError::Status {
                        peer: peer.to_owned(),
                        status,
                        body: serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
                            error: "unknown".to_owned(),
                            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                        }),
                    }),
                    Err(e) => Err(CallError::Lost {
                        peer: peer.to_owned(),
                        message: e.to_string(),
                    }),
                };
                let error_type = if matches!(outcome, Err(CallError::Lost { .. })) {
                    "lost"
                } else {
                    ""
                };
                (status, error_type, outcome)
            }
            Err(e) if e.is_timeout() => (
                0,
                "timeout",
                Err(CallError::Timeout {
                    peer: peer.to_owned(),
                    timeout,
                }),
            ),
            Err(e) if e.is_connect() => (
                0,
                "connect",
                Err(CallError::Connect {
                    peer: peer.to_owned(),
                    message: e.to_string(),
                }),
            ),
            // Sent, and the connection broke before an answer came.
            Err(e) => (
                0,
                "lost",
                Err(CallError::Lost {
                    peer: peer.to_owned(),
                    message: e.to_string(),
                }),
            ),
        };
        self.metrics
            .client_duration
            .get_or_create(&ClientLabels {
                service: self.caller.to_owned(),
                peer_service: peer.to_owned(),
                http_route: call.path.to_owned(),
                http_request_method: call.method.to_owned(),
                http_response_status_code: status,
                error_type: error_type.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// [`call`](Self::call) with up to `attempts` tries on transient failures.
    /// Only for calls the callee handles idempotently.
    pub async fn call_idempotent<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: &ClientCall,
        peer: &str,
        params: &[&str],
        body: Option<&Req>,
        attempts: u32,
    ) -> Result<Resp, CallError> {
        let mut backoff = Duration::from_millis(20);
        let mut attempt = 1;
        loop {
            match self.call(call, peer, params, body).await {
                Err(err) if err.is_transient() && attempt < attempts => {
                    tracing::debug!(peer, call = call.name, attempt, error = %err, "retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 4;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Peers, parse_peer};

    #[test]
    fn a_peer_flag_names_a_service_and_its_replicas() {
        assert_eq!(
            parse_peer("inventory=http://127.0.0.1:9001,http://127.0.0.1:9009/"),
            Ok((
                "inventory".to_owned(),
                vec![
                    "http://127.0.0.1:9001".to_owned(),
                    "http://127.0.0.1:9009/".to_owned()
                ]
            ))
        );
        assert!(parse_peer("inventory").is_err());
        assert!(parse_peer("warehouse=http://x:1").is_err());
        assert!(parse_peer("tax=x:1").is_err());
    }

    #[test]
    fn replicas_replace_the_template_url() {
        let mut peers = Peers::from_template("http://{service}:8080");
        assert_eq!(peers.replicas("tax"), ["http://tax:8080"]);
        peers.set_replicas("tax", ["http://a:1/", "http://b:2"]);
        assert_eq!(peers.replicas("tax"), ["http://a:1", "http://b:2"]);
        assert!(peers.replicas("nobody").is_empty());
    }
}
