//! Prometheus metrics with OpenTelemetry semantic-convention names.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets from 0.5 ms to 10 s, each 25% wider than the last, so a
/// p99 anywhere from 1 ms to 10 s is resolved to within about 12%.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    std::iter::successors(Some(0.0005_f64), |edge| {
        (*edge < 10.0).then_some(edge * 1.25)
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub service: String,
    pub http_route: String,
    pub http_request_method: String,
    pub http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabels {
    /// The calling service.
    pub service: String,
    /// The called service.
    pub peer_service: String,
    pub http_route: String,
    pub http_request_method: String,
    /// 0 when no response arrived (see `error_type`).
    pub http_response_status_code: u16,
    /// Empty, `timeout` or `connect`.
    pub error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub service: String,
    pub outcome: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// The metrics of one service, with its own registry so that `/metrics` of a
/// service shows only that service even when `oms up` runs all in one process.
#[derive(Clone)]
pub struct ServiceMetrics {
    pub service: String,
    registry: Arc<Mutex<Registry>>,
    pub server_duration: HistogramFamily<ServerLabels>,
    pub client_duration: HistogramFamily<ClientLabels>,
    /// Saga outcomes (orders) and other business outcomes, by reason.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Requests currently being served.
    pub in_flight: Family<ServiceLabel, Gauge>,
    /// Faults currently active on this service.
    pub active_faults: Family<ServiceLabel, Gauge>,
}

impl ServiceMetrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::default();
        let server_duration: HistogramFamily<ServerLabels> =
            Family::new_with_constructor(latency_histogram);
        let client_duration: HistogramFamily<ClientLabels> =
            Family::new_with_constructor(latency_histogram);
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let in_flight = Family::<ServiceLabel, Gauge>::default();
        let active_faults = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests",
            server_duration.clone(),
        );
        registry.register(
            "http_client_request_duration_seconds",
            "Duration of HTTP client requests to other OMS services",
            client_duration.clone(),
        );
        registry.register(
            "oms_outcomes",
            "Business outcomes: orders confirmed or rejected, returns",
            outcomes.clone(),
        );
        registry.register(
            "http_server_active_requests",
            "Requests being served",
            in_flight.clone(),
        );
        registry.register(
            "oms_active_faults",
            "Injected faults in force",
            active_faults.clone(),
        );
        Self {
            service: service.to_owned(),
            registry: Arc::new(Mutex::new(registry)),
            server_duration,
            client_duration,
            outcomes,
            in_flight,
            active_faults,
        }
    }

    pub fn service_label(&self) -> ServiceLabel {
        ServiceLabel {
            service: self.service.clone(),
        }
    }

    /// Counts one business outcome.
    pub fn outcome(&self, outcome: &str, reason: &str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                service: self.service.clone(),
                outcome: outcome.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Registers a service-specific metric.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(name, help, metric);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Ok(registry) = self.registry.lock() {
            homeostat_telemetry::process::encode_with_process_metrics(
                &mut text,
                &registry,
                homeostat_telemetry::process::Build {
                    component: "oms",
                    version: env!("CARGO_PKG_VERSION"),
                },
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_span_half_a_millisecond_to_ten_seconds_finely() {
        let buckets: Vec<f64> = latency_buckets().collect();
        assert!((buckets[0] - 0.0005).abs() < 1e-12);
        assert!(*buckets.last().expect("buckets") >= 10.0);
        for pair in buckets.windows(2) {
            assert!(pair[1] / pair[0] <= 1.26, "{pair:?}");
        }
    }

    #[test]
    fn exposition_uses_semantic_convention_names() {
        let metrics = ServiceMetrics::new("tax");
        metrics
            .server_duration
            .get_or_create(&ServerLabels {
                service: "tax".into(),
                http_route: "/v1/quotes".into(),
                http_request_method: "POST".into(),
                http_response_status_code: 200,
            })
            .observe(0.004);
        let text = metrics.encode();
        assert!(
            text.contains("http_server_request_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(text.contains("http_route=\"/v1/quotes\""), "{text}");
        assert!(text.contains("http_response_status_code=\"200\""), "{text}");
    }
}
