//! Which metrics and labels hold the detector's signals: the OMS's
//! OpenTelemetry names by default, or another convention read from a mapping
//! file (`run --metrics-naming FILE`), e.g. Istio's
//! `istio_request_duration_milliseconds` with `destination_service_name`.
//! Every query renames the mapped labels to `service` and `peer_service`, so
//! nothing past the queries knows the convention.

use serde::Deserialize;

/// How a label is compared, as in PromQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Matches,
    #[serde(rename = "!~")]
    NotMatches,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Matches => "=~",
            MatchOp::NotMatches => "!~",
        }
    }
}

/// One label matcher; the value is escaped when the query is built.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

impl Matcher {
    fn new(label: &str, op: MatchOp, value: &str) -> Self {
        Self {
            label: label.to_owned(),
            op,
            value: value.to_owned(),
        }
    }
}

/// The server-side request histogram: what a service answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerNaming {
    /// Histogram base name (`_bucket` and `_count` are appended).
    pub metric: String,
    /// Seconds per unit of the histogram (0.001 for milliseconds).
    #[serde(default = "one")]
    pub seconds_per_unit: f64,
    /// The label naming the service that answered.
    pub service_label: String,
    /// Selects the answers that failed (5xx).
    pub failed: Vec<Matcher>,
    /// Selects this side's series, when one metric holds both sides
    /// (Istio's `reporter="destination"`); and leaves out what is not
    /// customer traffic.
    #[serde(default)]
    pub only: Vec<Matcher>,
}

/// The client-side request histogram: what a caller saw of a callee.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientNaming {
    pub metric: String,
    #[serde(default = "one")]
    pub seconds_per_unit: f64,
    /// The label naming the caller.
    pub caller_label: String,
    /// The label naming the callee.
    pub callee_label: String,
    /// Selects the calls that got no answer (refused, lost, timed out).
    pub unanswered: Vec<Matcher>,
    #[serde(default)]
    pub only: Vec<Matcher>,
}

/// The metric names and labels the detector reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricNaming {
    pub server: ServerNaming,
    pub client: ClientNaming,
    /// The label that names a scrape target's service on `up`.
    pub target_service_label: String,
    /// The event pipeline's gauges (absent from a mapping: the OMS's names;
    /// a cluster without them simply has no such series).
    #[serde(default)]
    pub events: EventNaming,
}

/// The event pipeline's gauges, one series per service, labelled as the
/// server histogram is (`server.service_label`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventNaming {
    /// Events a service's consumer has not processed: pending plus
    /// delivered and not acknowledged.
    pub consumer_lag: String,
    /// Seconds the oldest event a service has not yet published has waited.
    pub outbox_age: String,
}

impl Default for EventNaming {
    fn default() -> Self {
        Self {
            consumer_lag: "oms_event_consumer_lag".into(),
            outbox_age: "oms_outbox_oldest_unpublished_age_seconds".into(),
        }
    }
}

fn one() -> f64 {
    1.0
}

/// Why a mapping file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NamingError {
    #[error(transparent)]
    Parse(#[from] serde_norway::Error),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl Default for MetricNaming {
    /// The OMS's OpenTelemetry semantic-convention names.
    fn default() -> Self {
        let not_admin = Matcher::new("http_route", MatchOp::NotMatches, "/admin/.*");
        Self {
            server: ServerNaming {
                metric: "http_server_request_duration_seconds".into(),
                seconds_per_unit: 1.0,
                service_label: "service".into(),
                failed: vec![Matcher::new(
                    "http_response_status_code",
                    MatchOp::Matches,
                    "5..",
                )],
                only: vec![not_admin.clone()],
            },
            client: ClientNaming {
                metric: "http_client_request_duration_seconds".into(),
                seconds_per_unit: 1.0,
                caller_label: "service".into(),
                callee_label: "peer_service".into(),
                unanswered: vec![Matcher::new("error_type", MatchOp::NotEqual, "")],
                only: vec![not_admin],
            },
            target_service_label: "service".into(),
            events: EventNaming::default(),
        }
    }
}

impl MetricNaming {
    /// Reads and checks a mapping file's YAML.
    pub fn from_yaml(text: &str) -> Result<Self, NamingError> {
        let naming: Self = serde_norway::from_str(text)?;
        naming.check()?;
        Ok(naming)
    }

    fn check(&self) -> Result<(), NamingError> {
        let unit = |field, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(NamingError::Invalid {
                    field,
                    message: format!("must be a positive number, got {v}"),
                })
            }
        };
        unit("server.seconds_per_unit", self.server.seconds_per_unit)?;
        unit("client.seconds_per_unit", self.client.seconds_per_unit)?;
        let required = |field, matchers: &[Matcher]| {
            if matchers.is_empty() {
                Err(NamingError::Invalid {
                    field,
                    message: "needs at least one matcher".into(),
                })
            } else {
                Ok(())
            }
        };
        required("server.failed", &self.server.failed)?;
        required("client.unanswered", &self.client.unanswered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping shipped for Istio's standard metrics.
    const ISTIO: &str = include_str!("../../deploy/metrics-naming/istio.yaml");

    #[test]
    fn an_istio_mapping_reads() {
        let naming = MetricNaming::from_yaml(ISTIO).expect("mapping");
        assert_eq!(naming.server.seconds_per_unit, 0.001);
        assert_eq!(naming.client.unanswered[0].op, MatchOp::Equal);
        assert_eq!(naming.target_service_label, "app");
    }

    #[test]
    fn a_bad_mapping_says_what_is_wrong() {
        let zero = ISTIO.replacen("seconds_per_unit: 0.001", "seconds_per_unit: 0", 1);
        let err = MetricNaming::from_yaml(&zero).expect_err("zero unit");
        assert!(
            err.to_string().starts_with("server.seconds_per_unit"),
            "{err}"
        );
        let typo = ISTIO.replacen("caller_label", "caler_label", 1);
        let err = MetricNaming::from_yaml(&typo).expect_err("unknown field");
        assert!(err.to_string().contains("caler_label"), "{err}");
        let bad_op = ISTIO.replacen(r#"op: "=~""#, r#"op: "~""#, 1);
        assert!(MetricNaming::from_yaml(&bad_op).is_err());
    }
}
