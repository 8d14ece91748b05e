//! A report's signal over its incident, read from Prometheus: the
//! detector's own exported series (`homeostat_detector_observed` and the
//! band's `_lower`/`_upper`), so nothing here knows how a signal is
//! computed. Prometheus is reached at a URL, or through the API server's
//! service proxy with the kubeconfig's credentials (the in-cluster
//! `homeostat-system/prometheus`), as kubectl would.

use std::collections::BTreeMap;

use homeostat_api::Signal;
use kube::Client;
use serde::Deserialize;

/// Where Prometheus answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Its HTTP API at this base URL.
    Url(String),
    /// A Service, through the API server's proxy.
    ServiceProxy {
        namespace: String,
        service: String,
        port: String,
    },
}

impl Source {
    /// The sample's in-cluster Prometheus (`deploy/samples`).
    pub fn in_cluster() -> Self {
        Source::ServiceProxy {
            namespace: "homeostat-system".into(),
            service: "prometheus".into(),
            port: "web".into(),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Url(url) => f.write_str(url),
            Source::ServiceProxy {
                namespace,
                service,
                port,
            } => write!(f, "service {namespace}/{service}:{port} (API server proxy)"),
        }
    }
}

/// One instant: the value and the band the detector judged it against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: i64,
    pub observed: f64,
    pub band: Option<(f64, f64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("Prometheus at {source_}: {message}")]
    Query { source_: String, message: String },
    #[error("Prometheus at {0} has no {1} series for this report's time")]
    Empty(String, &'static str),
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    data: Option<Matrix>,
}

#[derive(Deserialize)]
struct Matrix {
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    values: Vec<(f64, String)>,
}

/// About sixty points over `from..to`, never closer than the detector's tick.
pub fn step_for(from: i64, to: i64) -> i64 {
    ((to - from) / 60).max(2)
}

/// The PromQL of `service`'s `signal`: observed, band lower, band upper.
pub fn queries(service: &str, signal: Signal) -> [String; 3] {
    ["observed", "band_lower", "band_upper"].map(|metric| {
        format!(r#"max(homeostat_detector_{metric}{{service="{service}",signal="{signal}"}})"#)
    })
}

/// `service`'s `signal` and its band from `from` to `to` (Unix seconds).
pub async fn fetch(
    client: &Client,
    source: &Source,
    service: &str,
    signal: Signal,
    from: i64,
    to: i64,
) -> Result<Vec<Point>, HistoryError> {
    let step = step_for(from, to);
    let [observed, lower, upper] = queries(service, signal);
    let observed = query_range(client, source, &observed, from, to, step).await?;
    if observed.is_empty() {
        return Err(HistoryError::Empty(
            source.to_string(),
            "homeostat_detector_observed",
        ));
    }
    let lower = query_range(client, source, &lower, from, to, step).await?;
    let upper = query_range(client, source, &upper, from, to, step).await?;
    Ok(observed
        .into_iter()
        .map(|(at, observed)| Point {
            at,
            observed,
            band: lower.get(&at).copied().zip(upper.get(&at).copied()),
        })
        .collect())
}

/// `query` from `from` to `to` every `step` seconds, summed into one
/// value per instant (the caller's query should yield one series).
pub async fn query_range(
    client: &Client,
    source: &Source,
    query: &str,
    from: i64,
    to: i64,
    step: i64,
) -> Result<BTreeMap<i64, f64>, HistoryError> {
    let params = [
        ("query", query.to_owned()),
        ("start", from.to_string()),
        ("end", to.to_string()),
        ("step", step.to_string()),
    ];
    let failed = |message: String| HistoryError::Query {
        source_: source.to_string(),
        message,
    };
    let body = match source {
        Source::Url(base) => reqwest::Client::new()
            .get(format!("{}/api/v1/query_range", base.trim_end_matches('/')))
            .query(&params)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?
            .text()
            .await
            .map_err(|e| failed(e.to_string()))?,
        Source::ServiceProxy {
            namespace,
            service,
            port,
        } => {
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encoded(v)))
                .collect();
            let uri = format!(
                "/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/api/v1/query_range?{}",
                query.join("&")
            );
            let request = http::Request::get(uri)
                .body(Vec::new())
                .map_err(|e| failed(e.to_string()))?;
            client
                .request_text(request)
                .await
                .map_err(|e| failed(e.to_string()))?
        }
    };
    let answer: Answer = serde_json::from_str(&body)
        .map_err(|e| failed(format!("not a Prometheus answer ({e})")))?;
    if answer.status != "success" {
        return Err(failed(answer.error));
    }
    Ok(answer
        .data
        .into_iter()
        .flat_map(|m| m.result)
        .flat_map(|s| s.values)
        .filter_map(|(at, value)| {
            let value: f64 = value.parse().ok()?;
            value.is_finite().then_some((at as i64, value))
        })
        .collect())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded_for_the_proxy_path() {
        assert_eq!(
            percent_encoded(r#"max(x{service="tax"})"#),
            "max%28x%7Bservice%3D%22tax%22%7D%29"
        );
        assert_eq!(percent_encoded("a-b_c.d~9"), "a-b_c.d~9");
    }

    #[test]
    fn about_sixty_points_never_closer_than_a_tick() {
        assert_eq!(step_for(0, 600), 10);
        assert_eq!(step_for(0, 30), 2);
    }
}
