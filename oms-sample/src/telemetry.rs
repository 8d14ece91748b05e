//! Logs and traces: `tracing` to stderr (JSON with `--log-json`), and
//! OpenTelemetry traces over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set. Trace context crosses service calls as W3C `traceparent` headers.

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use homeostat_telemetry::TelemetryGuard;

/// Installs the global subscriber. `service_name` becomes the OTel resource's `service.name`.
pub fn init(service_name: &str, json_logs: bool) -> anyhow::Result<TelemetryGuard> {
    let format = if json_logs {
        homeostat_telemetry::LogFormat::Json
    } else {
        homeostat_telemetry::LogFormat::Text
    };
    homeostat_telemetry::init(service_name, format)
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the trace context carried by incoming `headers`.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
}

/// Writes the current span's trace context into outgoing `headers`.
pub fn inject_current_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers))
    });
}
