//! PromQL for the signals, built safely.
//!
//! Label values that come from configuration or resources are written as
//! PromQL string literals with every special character escaped, so a value
//! such as `x"} or vector(1) #` stays one harmless string.

use homeostat_api::Signal;

use crate::naming::{MatchOp, Matcher, MetricNaming};

/// `name="value"` with `value` escaped as a PromQL double-quoted string.
pub fn label_matcher(name: &str, value: &str) -> Result<String, PromqlError> {
    matcher(name, MatchOp::Equal, value)
}

/// `name<op>"value"` with `value` escaped as a PromQL double-quoted string.
pub fn matcher(name: &str, op: MatchOp, value: &str) -> Result<String, PromqlError> {
    if !is_label_name(name) {
        return Err(PromqlError::LabelName(name.to_owned()));
    }
    let mut out = String::with_capacity(value.len() + name.len() + 4);
    out.push_str(name);
    out.push_str(op.as_str());
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromqlError {
    #[error("{0:?} is not a Prometheus label name")]
    LabelName(String),
    #[error("{0:?} is not a Prometheus metric name")]
    MetricName(String),
    #[error("rate window must be at least 1s, got {0}s")]
    Window(u64),
}

/// Builds the detector's queries over the metrics `naming` names. Every
/// result names its service `service` (and a call's callee `peer_service`),
/// whatever the convention's labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Queries {
    naming: MetricNaming,
    window: String,
    /// Selectors, escaped: every server series, the failed ones; every
    /// client series, the unanswered ones; the `up` series.
    server: String,
    server_failed: String,
    client: String,
    client_unanswered: String,
    up: String,
    /// The event pipeline's gauges: the common labels only.
    gauge: String,
}

impl Queries {
    /// `labels` restrict every query (e.g. to one namespace or job);
    /// `window_seconds` is the rate window.
    pub fn new(
        labels: &[(String, String)],
        window_seconds: u64,
        naming: MetricNaming,
    ) -> Result<Self, PromqlError> {
        if window_seconds == 0 {
            return Err(PromqlError::Window(window_seconds));
        }
        for metric in [
            &naming.server.metric,
            &naming.client.metric,
            &naming.events.consumer_lag,
            &naming.events.outbox_age,
        ] {
            if !is_metric_name(metric) {
                return Err(PromqlError::MetricName(metric.clone()));
            }
        }
        for label in [
            &naming.server.service_label,
            &naming.client.caller_label,
            &naming.client.callee_label,
            &naming.target_service_label,
        ] {
            if !is_label_name(label) {
                return Err(PromqlError::LabelName(label.clone()));
            }
        }
        let common = labels
            .iter()
            .map(|(n, v)| label_matcher(n, v))
            .collect::<Result<Vec<_>, _>>()?;
        let selector = |groups: &[&[Matcher]]| -> Result<String, PromqlError> {
            let mut all = common.clone();
            for m in groups.iter().flat_map(|g| g.iter()) {
                all.push(matcher(&m.label, m.op, &m.value)?);
            }
            Ok(format!("{{{}}}", all.join(",")))
        };
        let (server, client) = (&naming.server, &naming.client);
        Ok(Self {
            server: selector(&[&server.only])?,
            server_failed: selector(&[&server.only, &server.failed])?,
            client: selector(&[&client.only])?,
            client_unanswered: selector(&[&client.only, &client.unanswered])?,
            up: selector(&[])?,
            gauge: selector(&[])?,
            window: format!("{window_seconds}s"),
            naming,
        })
    }

    /// The OMS's own names.
    pub fn oms(labels: &[(String, String)], window_seconds: u64) -> Result<Self, PromqlError> {
        Self::new(labels, window_seconds, MetricNaming::default())
    }

    fn rate(&self, metric: &str, suffix: &str, selector: &str, by: &str) -> String {
        format!(
            "sum by ({by}) (rate({metric}_{suffix}{selector}[{}]))",
            self.window
        )
    }

    fn quantile(&self, q: f64, rate: String, seconds_per_unit: f64) -> String {
        let quantile = format!("histogram_quantile({q}, {rate})");
        if seconds_per_unit == 1.0 {
            quantile
        } else {
            format!("{quantile} * {seconds_per_unit}")
        }
    }

    /// One value per `service` label for `signal`.
    pub fn signal(&self, signal: Signal) -> String {
        let server = &self.naming.server;
        let label = server.service_label.as_str();
        let by_le = format!("{label}, le");
        let quantile = |q: f64| {
            let rate = self.rate(&server.metric, "bucket", &self.server, &by_le);
            self.quantile(q, rate, server.seconds_per_unit)
        };
        let query = match signal {
            Signal::LatencyP50 => quantile(0.5),
            Signal::LatencyP95 => quantile(0.95),
            Signal::LatencyP99 => quantile(0.99),
            Signal::ErrorRatio => {
                let all = self.rate(&server.metric, "count", &self.server, label);
                let failed = self.rate(&server.metric, "count", &self.server_failed, label);
                // No failed answer at all is a ratio of 0, not a missing series.
                format!("({failed} or {all} * 0) / {all}")
            }
            Signal::RequestRate => self.rate(&server.metric, "count", &self.server, label),
            Signal::Availability => return self.targets_up(),
            // Every replica reads the same consumer (or outbox): the worst.
            Signal::ConsumerLag => {
                format!(
                    "max by ({label}) ({}{})",
                    self.naming.events.consumer_lag, self.gauge
                )
            }
            Signal::OutboxAge => {
                format!(
                    "max by ({label}) ({}{})",
                    self.naming.events.outbox_age, self.gauge
                )
            }
        };
        renamed(query, label, "service")
    }

    /// Client-side p99 latency per `service` (caller) and `peer_service` (callee).
    pub fn edges(&self) -> String {
        let client = &self.naming.client;
        let by = format!("{}, {}, le", client.caller_label, client.callee_label);
        let rate = self.rate(&client.metric, "bucket", &self.client, &by);
        let query = self.quantile(0.99, rate, client.seconds_per_unit);
        // The callee first: the caller's label may be called `peer_service`.
        let query = renamed(query, &client.callee_label, "peer_service");
        renamed(query, &client.caller_label, "service")
    }

    /// Calls per second to each `peer_service`, all of them or (with
    /// `unanswered`) those that got no answer: refused, lost or timed out.
    pub fn calls(&self, unanswered: bool) -> String {
        let client = &self.naming.client;
        let selector = if unanswered {
            &self.client_unanswered
        } else {
            &self.client
        };
        let query = self.rate(&client.metric, "count", selector, &client.callee_label);
        renamed(query, &client.callee_label, "peer_service")
    }

    /// The highest `up` of each `service`'s scrape targets: 0 when all are down.
    pub fn targets_up(&self) -> String {
        let label = &self.naming.target_service_label;
        renamed(
            format!("max by ({label}) (up{})", self.up),
            label,
            "service",
        )
    }
}

/// `query` with its `from` label copied to `to` (nothing when they are one).
fn renamed(query: String, from: &str, to: &str) -> String {
    if from == to {
        query
    } else {
        format!(r#"label_replace({query}, "{to}", "$1", "{from}", "(.*)")"#)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_label_values_stay_inside_their_string() {
        let m = label_matcher("namespace", "x\"} or vector(1) #\\").expect("matcher");
        assert_eq!(m, r#"namespace="x\"} or vector(1) #\\""#);
        let m = label_matcher("job", "a\nb").expect("matcher");
        assert_eq!(m, r#"job="a\nb""#);
    }

    #[test]
    fn label_names_are_checked_not_escaped() {
        assert_eq!(
            label_matcher("job\"}", "x"),
            Err(PromqlError::LabelName("job\"}".into()))
        );
        assert!(label_matcher("_ok_9", "x").is_ok());
    }

    #[test]
    fn signal_queries_carry_the_matchers_and_window() {
        let q = Queries::oms(&[("namespace".into(), "shop".into())], 15).expect("queries");
        assert_eq!(
            q.signal(Signal::LatencyP99),
            r#"histogram_quantile(0.99, sum by (service, le) (rate(http_server_request_duration_seconds_bucket{namespace="shop",http_route!~"/admin/.*"}[15s])))"#
        );
        let errors = q.signal(Signal::ErrorRatio);
        assert!(
            errors.contains(r#"http_response_status_code=~"5..""#),
            "{errors}"
        );
        assert!(errors.contains(" or "), "{errors}");
        assert!(q.edges().contains("by (service, peer_service, le)"));
        assert_eq!(
            q.calls(true),
            r#"sum by (peer_service) (rate(http_client_request_duration_seconds_count{namespace="shop",http_route!~"/admin/.*",error_type!=""}[15s]))"#
        );
        assert_eq!(q.targets_up(), r#"max by (service) (up{namespace="shop"})"#);
        assert_eq!(
            q.signal(Signal::ConsumerLag),
            r#"max by (service) (oms_event_consumer_lag{namespace="shop"})"#
        );
        assert_eq!(
            q.signal(Signal::OutboxAge),
            r#"max by (service) (oms_outbox_oldest_unpublished_age_seconds{namespace="shop"})"#
        );
        assert_eq!(Queries::oms(&[], 0), Err(PromqlError::Window(0)));
    }

    #[test]
    fn another_conventions_labels_are_renamed_and_its_units_scaled() {
        let istio = MetricNaming::from_yaml(include_str!("../../deploy/metrics-naming/istio.yaml"))
            .expect("mapping");
        let q = Queries::new(&[], 20, istio.clone()).expect("queries");
        assert_eq!(
            q.signal(Signal::LatencyP99),
            r#"label_replace(histogram_quantile(0.99, sum by (destination_service_name, le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination"}[20s]))) * 0.001, "service", "$1", "destination_service_name", "(.*)")"#
        );
        let edges = q.edges();
        assert!(
            edges.starts_with(r#"label_replace(label_replace(histogram_quantile(0.99, sum by (source_workload, destination_service_name, le)"#),
            "{edges}"
        );
        assert!(
            q.calls(true)
                .contains(r#"reporter="source",response_code="0""#)
        );
        assert_eq!(
            q.targets_up(),
            r#"label_replace(max by (app) (up{}), "service", "$1", "app", "(.*)")"#
        );
        // A name from the file is checked like any other.
        let mut hostile = istio;
        hostile.server.metric = "x{} or vector(1)".into();
        assert!(matches!(
            Queries::new(&[], 20, hostile),
            Err(PromqlError::MetricName(_))
        ));
    }
}
