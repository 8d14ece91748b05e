//! PromQL for the signals, built safely.
//!
//! Label values that come from configuration or resources are written as
//! PromQL string literals with every special character escaped, so a value
//! such as `x"} or vector(1) #` stays one harmless string.

use homeostat_api::Signal;

/// `name="value"` with `value` escaped as a PromQL double-quoted string.
pub fn label_matcher(name: &str, value: &str) -> Result<String, PromqlError> {
    if !is_label_name(name) {
        return Err(PromqlError::LabelName(name.to_owned()));
    }
    let mut out = String::with_capacity(value.len() + name.len() + 3);
    out.push_str(name);
    out.push_str("=\"");
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromqlError {
    #[error("{0:?} is not a Prometheus label name")]
    LabelName(String),
    #[error("rate window must be at least 1s, got {0}s")]
    Window(u64),
}

/// Builds the detector's queries over the OMS's OpenTelemetry-named metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    /// Extra matchers, already escaped, e.g. `namespace="shop"`.
    matchers: Vec<String>,
    window: String,
}

const SERVER: &str = "http_server_request_duration_seconds";
const CLIENT: &str = "http_client_request_duration_seconds";
/// Admin calls (fault injection) are not customer traffic.
const NOT_ADMIN: &str = r#"http_route!~"/admin/.*""#;

impl Queries {
    /// `labels` restrict every query (e.g. to one namespace or job);
    /// `window_seconds` is the rate window.
    pub fn new(labels: &[(String, String)], window_seconds: u64) -> Result<Self, PromqlError> {
        if window_seconds == 0 {
            return Err(PromqlError::Window(window_seconds));
        }
        let matchers = labels
            .iter()
            .map(|(n, v)| label_matcher(n, v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            matchers,
            window: format!("{window_seconds}s"),
        })
    }

    fn selector(&self, extra: &[&str]) -> String {
        let all: Vec<&str> = self
            .matchers
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(NOT_ADMIN))
            .chain(extra.iter().copied())
            .collect();
        format!("{{{}}}", all.join(","))
    }

    fn server_rate(&self, suffix: &str, extra: &[&str], by: &str) -> String {
        format!(
            "sum by ({by}) (rate({SERVER}_{suffix}{}[{}]))",
            self.selector(extra),
            self.window
        )
    }

    /// One value per `service` label for `signal`.
    pub fn signal(&self, signal: Signal) -> String {
        let quantile = |q: f64| {
            format!(
                "histogram_quantile({q}, {})",
                self.server_rate("bucket", &[], "service, le")
            )
        };
        match signal {
            Signal::LatencyP50 => quantile(0.5),
            Signal::LatencyP95 => quantile(0.95),
            Signal::LatencyP99 => quantile(0.99),
            Signal::ErrorRatio => {
                let all = self.server_rate("count", &[], "service");
                let failed =
                    self.server_rate("count", &[r#"http_response_status_code=~"5..""#], "service");
                // No 5xx at all is a ratio of 0, not a missing series.
                format!("({failed} or {all} * 0) / {all}")
            }
            Signal::RequestRate => self.server_rate("count", &[], "service"),
            Signal::Availability => self.targets_up(),
        }
    }

    /// Calls per second to each `peer_service`, all of them or (with
    /// `unanswered`) those that got no answer: refused, lost or timed out.
    pub fn calls(&self, unanswered: bool) -> String {
        let extra: &[&str] = if unanswered {
            &[r#"error_type!="""#]
        } else {
            &[]
        };
        format!(
            "sum by (peer_service) (rate({CLIENT}_count{}[{}]))",
            self.selector(extra),
            self.window
        )
    }

    /// The highest `up` of each `service`'s scrape targets: 0 when all are down.
    pub fn targets_up(&self) -> String {
        let matchers = self.matchers.join(",");
        format!("max by (service) (up{{{matchers}}})")
    }

    /// Client-side p99 latency per `service` (caller) and `peer_service` (callee).
    pub fn edges(&self) -> String {
        format!(
            "histogram_quantile(0.99, sum by (service, peer_service, le) (rate({CLIENT}_bucket{}[{}])))",
            self.selector(&[]),
            self.window
        )
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
        let q = Queries::new(&[("namespace".into(), "shop".into())], 15).expect("queries");
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
        assert_eq!(Queries::new(&[], 0), Err(PromqlError::Window(0)));
    }
}
