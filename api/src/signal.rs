//! What the detector measures and how bad a deviation is.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A per-service signal the detector scores.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Median server-side request latency.
    LatencyP50,
    /// 95th percentile server-side request latency.
    LatencyP95,
    /// 99th percentile server-side request latency.
    LatencyP99,
    /// Fraction of requests answered with a 5xx status.
    ErrorRatio,
    /// Requests per second.
    RequestRate,
    /// Whether the service answers at all: its scrape targets are all down,
    /// or its callers' calls to it get no answer (refused, lost, timed out).
    /// Judged by rule, not against a baseline: a dead service sends no data.
    Availability,
    /// Events the service's consumer has not processed yet: pending on the
    /// broker plus delivered and not acknowledged. Rises when the consumer
    /// is slow, whatever the producers do: it names the consumer.
    ConsumerLag,
    /// Seconds the oldest event the service has not yet published has
    /// waited in its outbox. Rises when the service cannot publish.
    OutboxAge,
}

impl Signal {
    pub const ALL: [Signal; 8] = [
        Signal::LatencyP50,
        Signal::LatencyP95,
        Signal::LatencyP99,
        Signal::ErrorRatio,
        Signal::RequestRate,
        Signal::Availability,
        Signal::ConsumerLag,
        Signal::OutboxAge,
    ];

    /// The signals scored against a baseline fitted on their history.
    pub const BASELINED: [Signal; 7] = [
        Signal::LatencyP50,
        Signal::LatencyP95,
        Signal::LatencyP99,
        Signal::ErrorRatio,
        Signal::RequestRate,
        Signal::ConsumerLag,
        Signal::OutboxAge,
    ];

    /// The signals of the requests a service serves: every service that
    /// serves has them all (the event pipeline's only those with a consumer
    /// or an outbox).
    pub const OF_REQUESTS: [Signal; 5] = [
        Signal::LatencyP50,
        Signal::LatencyP95,
        Signal::LatencyP99,
        Signal::ErrorRatio,
        Signal::RequestRate,
    ];

    /// A latency quantile.
    pub const fn is_latency(self) -> bool {
        matches!(
            self,
            Signal::LatencyP50 | Signal::LatencyP95 | Signal::LatencyP99
        )
    }

    /// The name used in the API, metrics labels and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Signal::LatencyP50 => "latency_p50",
            Signal::LatencyP95 => "latency_p95",
            Signal::LatencyP99 => "latency_p99",
            Signal::ErrorRatio => "error_ratio",
            Signal::RequestRate => "request_rate",
            Signal::Availability => "availability",
            Signal::ConsumerLag => "consumer_lag",
            Signal::OutboxAge => "outbox_age",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far outside its baseline a signal is. Ordered: `Warning < Critical`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Severity {
    /// Outside the baseline band, worth a look.
    Warning,
    /// Far outside the baseline band; customers are likely affected.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "Warning",
            Severity::Critical => "Critical",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_serialises_as_its_api_name() {
        for s in Signal::ALL {
            let json = serde_json::to_string(&s).expect("serialise");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn critical_outranks_warning() {
        assert!(Severity::Critical > Severity::Warning);
    }
}
