//! Inbound protection for every service: a replica serves at most
//! `max_in_flight` API requests at once and sheds the rest at once with 503
//! and `Retry-After` — no queue, since a queue only adds latency for every
//! caller and memory for none — and every admitted request, reading its body
//! included, ends within `request_timeout`. Health, metrics and admin
//! endpoints are outside the limit, so a replica under overload still says
//! it is alive and shows why it sheds.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Semaphore;

use crate::capacity::Capacity;
use crate::error::ApiError;
use crate::metrics::ServiceMetrics;

/// How much one replica of a service takes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// How fast it works; unbounded without it (see [`crate::capacity`]).
    pub capacity: Option<Capacity>,
}

/// Above the saga's deadline and its settling; an order whose request
/// times out still completes (its saga runs on its own).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Requests in flight per replica and service.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 256;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT as usize,
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            capacity: None,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    service: String,
    /// `overloaded` (over the limit) or `timeout` (admitted, too slow).
    reason: String,
}

/// The limit of one service replica, shared by its request handlers.
#[derive(Clone)]
pub struct Admission {
    limits: Limits,
    permits: Arc<Semaphore>,
    service: &'static str,
    shed: Family<ShedLabels, Counter>,
}

impl Admission {
    pub fn new(service: &'static str, limits: Limits, metrics: &ServiceMetrics) -> Self {
        let shed = Family::<ShedLabels, Counter>::default();
        metrics.register(
            "oms_requests_shed",
            "Requests answered 503 by the replica's own protection, by reason",
            shed.clone(),
        );
        Self {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_in_flight)),
            service,
            shed,
        }
    }

    fn count_shed(&self, reason: &str) {
        self.shed
            .get_or_create(&ShedLabels {
                service: self.service.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// The middleware: admit within the limit and the deadline, or shed.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let Ok(_permit) = admission.permits.clone().try_acquire_owned() else {
        admission.count_shed("overloaded");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "{} is serving {} requests, its limit; retry later",
                admission.service, admission.limits.max_in_flight
            ),
        )
        .into_response();
    };
    match tokio::time::timeout(admission.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            admission.count_shed("timeout");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "not answered within {:?}; retrying with the same Idempotency-Key is safe",
                    admission.limits.request_timeout
                ),
            )
            .into_response()
        }
    }
}
