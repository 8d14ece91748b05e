//! Where metrics come from: a small trait, and Prometheus behind it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use homeostat_api::Signal;
use prometheus_http_query::Client;
use prometheus_http_query::response::Data;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use crate::access::{AccessError, SourceAccess};
use crate::availability::Reach;
use crate::engine::{History, Observation};
use crate::promql::Queries;

/// Why metrics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("query {query:?}: {message}")]
    Query { query: String, message: String },
    #[error("cannot reach the metrics source: {0}")]
    Client(String),
}

/// A source of the detector's signals.
pub trait MetricsSource {
    /// Every signal and edge at `unix_seconds`.
    fn observe(
        &self,
        unix_seconds: i64,
    ) -> impl Future<Output = Result<Observation, SourceError>> + Send;

    /// Every signal and edge from `start` to `end`, one point per `step`.
    fn history(
        &self,
        start: i64,
        end: i64,
        step_seconds: f64,
    ) -> impl Future<Output = Result<History, SourceError>> + Send;
}

/// Prometheus through its HTTP API.
#[derive(Clone)]
pub struct PrometheusSource {
    client: Client,
    /// For the bearer token, read again for each query.
    access: SourceAccess,
    queries: Queries,
    /// Only these services are scored.
    services: BTreeSet<String>,
}

impl PrometheusSource {
    /// The query API at `url` (a path prefix such as Mimir's `/prometheus`
    /// is kept), reached as `access` says.
    pub fn new(
        url: &str,
        access: &SourceAccess,
        queries: Queries,
        services: impl IntoIterator<Item = String>,
        timeout: Duration,
    ) -> Result<Self, SourceError> {
        let refused = |e: AccessError| SourceError::Client(e.to_string());
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .default_headers(access.header_map().map_err(refused)?)
            .tls_certs_merge(access.roots().map_err(refused)?)
            .build()
            .map_err(|e| SourceError::Client(e.to_string()))?;
        // A token that cannot be read now would fail every query: say so
        // at start rather than on the first tick.
        access.authorization().map_err(refused)?;
        // The API's paths are appended to the URL's path: a trailing slash
        // on a prefix would double.
        let mut base = reqwest::Url::parse(url)
            .map_err(|e| SourceError::Client(format!("metrics URL {url:?}: {e}")))?;
        if base.path() != "/" {
            let path = base.path().trim_end_matches('/').to_owned();
            base.set_path(&path);
        }
        let client =
            Client::from(http, base.as_str()).map_err(|e| SourceError::Client(e.to_string()))?;
        Ok(Self {
            client,
            access: access.clone(),
            queries,
            services: services.into_iter().collect(),
        })
    }

    fn authorization(&self) -> Result<Option<HeaderValue>, SourceError> {
        self.access
            .authorization()
            .map_err(|e| SourceError::Client(e.to_string()))
    }

    fn wanted(&self, service: &str) -> bool {
        self.services.contains(service)
    }

    async fn instant(&self, query: String, at: i64) -> Result<Data, SourceError> {
        let mut request = self.client.query(&query).at(at);
        if let Some(token) = self.authorization()? {
            request = request.header(AUTHORIZATION, token);
        }
        let result = request.get().await;
        result
            .map(|r| r.data().clone())
            .map_err(|e| SourceError::Query {
                query,
                message: e.to_string(),
            })
    }

    /// An instant vector as one value per wanted service named by `label`.
    async fn by_label(
        &self,
        query: String,
        label: &str,
        at: i64,
    ) -> Result<BTreeMap<String, f64>, SourceError> {
        let data = self.instant(query, at).await?;
        Ok(data
            .as_vector()
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|sample| {
                let service = sample.metric().get(label)?;
                self.wanted(service)
                    .then(|| (service.clone(), sample.sample().value()))
            })
            .collect())
    }

    async fn range(
        &self,
        query: String,
        start: i64,
        end: i64,
        step: f64,
    ) -> Result<Data, SourceError> {
        let mut request = self.client.query_range(&query, start, end, step);
        if let Some(token) = self.authorization()? {
            request = request.header(AUTHORIZATION, token);
        }
        let result = request.get().await;
        result
            .map(|r| r.data().clone())
            .map_err(|e| SourceError::Query {
                query,
                message: e.to_string(),
            })
    }
}

impl MetricsSource for PrometheusSource {
    async fn observe(&self, unix_seconds: i64) -> Result<Observation, SourceError> {
        let mut observation = Observation::default();
        for signal in Signal::BASELINED {
            let data = self
                .instant(self.queries.signal(signal), unix_seconds)
                .await?;
            for sample in data.as_vector().map(|v| v.as_slice()).unwrap_or_default() {
                let Some(service) = sample.metric().get("service") else {
                    continue;
                };
                if self.wanted(service) {
                    observation
                        .series
                        .insert((service.clone(), signal), sample.sample().value());
                }
            }
        }
        let data = self.instant(self.queries.edges(), unix_seconds).await?;
        for sample in data.as_vector().map(|v| v.as_slice()).unwrap_or_default() {
            if let Some(edge) = edge_key(sample.metric(), |s| self.wanted(s)) {
                observation.edges.insert(edge, sample.sample().value());
            }
        }
        let calls = self
            .by_label(self.queries.calls(false), "peer_service", unix_seconds)
            .await?;
        let unanswered = self
            .by_label(self.queries.calls(true), "peer_service", unix_seconds)
            .await?;
        for (callee, calls) in calls {
            let unanswered = unanswered.get(&callee).copied().unwrap_or(0.0);
            observation
                .reach
                .insert(callee, Reach { calls, unanswered });
        }
        observation.targets_up = self
            .by_label(self.queries.targets_up(), "service", unix_seconds)
            .await?;
        Ok(observation)
    }

    async fn history(&self, start: i64, end: i64, step: f64) -> Result<History, SourceError> {
        let mut history = History::default();
        let points = |samples: &[prometheus_http_query::response::Sample]| -> Vec<(i64, f64)> {
            samples
                .iter()
                .map(|s| (s.timestamp().round() as i64, s.value()))
                .collect()
        };
        for signal in Signal::BASELINED {
            let data = self
                .range(self.queries.signal(signal), start, end, step)
                .await?;
            for series in data.as_matrix().map(|m| m.as_slice()).unwrap_or_default() {
                let Some(service) = series.metric().get("service") else {
                    continue;
                };
                if self.wanted(service) {
                    history
                        .series
                        .insert((service.clone(), signal), points(series.samples()));
                }
            }
        }
        let data = self.range(self.queries.edges(), start, end, step).await?;
        for series in data.as_matrix().map(|m| m.as_slice()).unwrap_or_default() {
            if let Some(edge) = edge_key(series.metric(), |s| self.wanted(s)) {
                history.edges.insert(edge, points(series.samples()));
            }
        }
        Ok(history)
    }
}

fn edge_key(
    labels: &HashMap<String, String>,
    wanted: impl Fn(&str) -> bool,
) -> Option<(String, String)> {
    let caller = labels.get("service")?;
    let callee = labels.get("peer_service")?;
    (wanted(caller) && wanted(callee)).then(|| (caller.clone(), callee.clone()))
}
