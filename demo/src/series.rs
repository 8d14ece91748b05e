//! The series the report charts, read back from Prometheus after the run.

use std::collections::BTreeMap;

use anyhow::Context;
use jiff::Timestamp;

use crate::outcome::BandPoint;
use crate::stack::RATE_WINDOW_SECONDS;

/// `(unix seconds, value)` points.
pub type Points = Vec<(f64, f64)>;

/// One service's charts.
#[derive(Debug, Clone, Default)]
pub struct ServiceSeries {
    /// p99 latency in seconds, as the OMS's histograms give it.
    pub p99: Points,
    /// The detector's band for p99 (from warm-up end).
    pub band_lower: Points,
    pub band_upper: Points,
    /// The detector's highest score over the service's signals.
    pub score: Points,
}

/// The first series `query` returns over `[start, end]`, every `step` seconds.
pub(crate) async fn range(
    http: &reqwest::Client,
    prometheus: &str,
    query: &str,
    start: Timestamp,
    end: Timestamp,
    step: f64,
) -> anyhow::Result<Points> {
    let url = format!("{prometheus}/api/v1/query_range");
    let start = start.as_second().to_string();
    let end = end.as_second().to_string();
    let step = step.to_string();
    let body: serde_json::Value = http
        .get(&url)
        .query(&[
            ("query", query),
            ("start", &start),
            ("end", &end),
            ("step", &step),
        ])
        .send()
        .await
        .with_context(|| format!("query {query}"))?
        .error_for_status()?
        .json()
        .await?;
    let values = body["data"]["result"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(values
        .iter()
        .filter_map(|p| {
            let t = p[0].as_f64()?;
            let v: f64 = p[1].as_str()?.parse().ok()?;
            v.is_finite().then_some((t, v))
        })
        .collect())
}

pub async fn fetch(
    prometheus: &str,
    services: &[String],
    start: Timestamp,
    end: Timestamp,
    step: f64,
) -> anyhow::Result<BTreeMap<String, ServiceSeries>> {
    let http = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for service in services {
        let detector =
            |metric: &str| format!(r#"{metric}{{service="{service}",signal="latency_p99"}}"#);
        let series = ServiceSeries {
            p99: range(
                &http,
                prometheus,
                &format!(r#"histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{service="{service}",http_route!~"/admin/.*"}}[{RATE_WINDOW_SECONDS}s])))"#),
                start,
                end,
                step,
            )
            .await?,
            band_lower: range(&http, prometheus, &detector("homeostat_detector_band_lower"), start, end, step).await?,
            band_upper: range(&http, prometheus, &detector("homeostat_detector_band_upper"), start, end, step).await?,
            score: range(
                &http,
                prometheus,
                &format!(r#"max(homeostat_detector_score{{service="{service}"}})"#),
                start,
                end,
                step,
            )
            .await?,
        };
        out.insert(service.clone(), series);
    }
    Ok(out)
}

/// A service's p99 as the detector saw it, with its band's upper edge.
pub async fn against_band(
    prometheus: &str,
    service: &str,
    start: Timestamp,
    end: Timestamp,
    step: f64,
) -> anyhow::Result<Vec<BandPoint>> {
    let http = reqwest::Client::new();
    let observed = range(
        &http,
        prometheus,
        &format!(r#"homeostat_detector_observed{{service="{service}",signal="latency_p99"}}"#),
        start,
        end,
        step,
    )
    .await?;
    let upper: BTreeMap<i64, f64> = range(
        &http,
        prometheus,
        &format!(r#"homeostat_detector_band_upper{{service="{service}",signal="latency_p99"}}"#),
        start,
        end,
        step,
    )
    .await?
    .into_iter()
    .map(|(t, v)| (t as i64, v))
    .collect();
    Ok(observed
        .into_iter()
        .filter_map(|(t, value)| {
            let upper = *upper.get(&(t as i64))?;
            let at = Timestamp::from_second(t as i64).ok()?;
            Some(BandPoint { at, value, upper })
        })
        .collect())
}

/// When `pod` served its first request (not a probe, a scrape or a drill):
/// the first scrape in `[from, to]` that counted one. Its request series
/// exist only once it has served one.
pub async fn first_request(
    prometheus: &str,
    pod: &str,
    from: Timestamp,
    to: Timestamp,
    step: f64,
) -> anyhow::Result<Option<Timestamp>> {
    let http = reqwest::Client::new();
    let served = range(
        &http,
        prometheus,
        &format!(
            r#"sum(http_server_request_duration_seconds_count{{pod="{pod}",http_route!~"/admin/.*"}})"#
        ),
        from,
        to,
        step,
    )
    .await?;
    Ok(served
        .into_iter()
        .find(|&(_, n)| n > 0.0)
        .and_then(|(t, _)| Timestamp::from_second(t as i64).ok()))
}
