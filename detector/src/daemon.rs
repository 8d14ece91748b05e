//! `homeostat-detector run`: fit from Prometheus, evaluate every tick, write
//! AnomalyReports, serve the detector's own metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::time::MissedTickBehavior;

use crate::access::SourceAccess;
use crate::engine::{Engine, EngineConfig, ReportEvent};
use crate::metrics::DetectorMetrics;
use crate::naming::MetricNaming;
use crate::outage::OutageGuard;
use crate::promql::Queries;
use crate::reports::{ReportWriter, Written, Wrote};
use crate::source::{MetricsSource, PrometheusSource};
use homeostat_telemetry::metrics_server::router;

/// Which kind of metrics source to read. Adding one is a file implementing
/// [`MetricsSource`], a variant here and its arm in [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// Prometheus's HTTP query API, as Prometheus serves it and as Thanos
    /// Query, VictoriaMetrics and Mimir (under `/prometheus`) do.
    #[default]
    Prometheus,
}

/// Where the metrics come from and how they are named.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Base URL of the query API, path prefix included (Mimir: `…/prometheus`).
    pub url: String,
    /// Headers, bearer token and CA of every query.
    pub access: SourceAccess,
    pub naming: MetricNaming,
}

impl SourceConfig {
    /// Prometheus at `url`, the OMS's names, plain access.
    pub fn prometheus(url: &str) -> Self {
        Self {
            kind: SourceKind::Prometheus,
            url: url.to_owned(),
            access: SourceAccess::default(),
            naming: MetricNaming::default(),
        }
    }
}

/// Everything `run` needs to know.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub source: SourceConfig,
    /// Namespace of the AnomalyReports.
    pub namespace: String,
    pub services: Vec<String>,
    /// Label matchers added to every query, e.g. `namespace=shop`.
    pub labels: Vec<(String, String)>,
    pub tick: Duration,
    pub history: Duration,
    pub refit: Duration,
    pub rate_window: Duration,
    pub query_timeout: Duration,
    pub engine: EngineConfig,
    pub listen: SocketAddr,
}

/// Most points a history query asks for per series.
const HISTORY_POINTS: f64 = 2500.0;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Runs until `shutdown` completes. Errors only for what cannot work at all
/// (bad configuration, port in use, API server unreachable at start).
pub async fn run(
    config: DaemonConfig,
    client: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let queries = Queries::new(
        &config.labels,
        config.rate_window.as_secs().max(1),
        config.source.naming.clone(),
    )?;
    match config.source.kind {
        SourceKind::Prometheus => {
            let source = PrometheusSource::new(
                &config.source.url,
                &config.source.access,
                queries,
                config.services.iter().cloned(),
                config.query_timeout,
            )?;
            run_with(source, config, client, shutdown).await
        }
    }
}

async fn run_with<S: MetricsSource>(
    source: S,
    config: DaemonConfig,
    client: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(DetectorMetrics::default());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let server = tokio::spawn(axum::serve(listener, router(metrics.clone())).into_future());

    let writer = ReportWriter::new(client, &config.namespace);
    let mut engine = Engine::new(EngineConfig {
        rate_window_seconds: config.rate_window.as_secs_f64(),
        ..config.engine
    });
    let open = writer
        .open_reports()
        .await
        .context("list open AnomalyReports")?;
    for report in &open {
        tracing::info!(report = %report.name, service = %report.service, "continuing an open report");
        engine.resume(
            &report.service,
            report.signal,
            report.opened_at,
            report.peak_score,
        );
    }
    metrics.open_reports.set(open.len() as i64);

    let rate_window_seconds = config.rate_window.as_secs() as i64;
    let mut daemon = Daemon {
        config,
        source,
        engine,
        writer,
        metrics,
        last_fit: None,
        outage: OutageGuard::new(rate_window_seconds),
    };
    let result = tokio::select! {
        () = shutdown => Ok(()),
        () = daemon.evaluate_forever() => Ok(()),
    };
    server.abort();
    result
}

struct Daemon<S> {
    config: DaemonConfig,
    source: S,
    engine: Engine,
    writer: ReportWriter,
    metrics: Arc<DetectorMetrics>,
    last_fit: Option<Instant>,
    outage: OutageGuard,
}

impl<S: MetricsSource> Daemon<S> {
    async fn evaluate_forever(&mut self) {
        let mut ticks = tokio::time::interval(self.config.tick);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let due = self
                .last_fit
                .is_none_or(|at| at.elapsed() >= self.config.refit);
            if due {
                self.fit().await;
            }
            if self.engine.is_fitted() {
                self.tick().await;
            }
        }
    }

    async fn fit(&mut self) {
        let end = unix_now();
        let span = self.config.history.as_secs() as i64;
        let step = (span as f64 / HISTORY_POINTS).max(self.config.tick.as_secs_f64());
        let started = Instant::now();
        match self.source.history(end - span, end, step).await {
            Ok(history) => {
                let problems = self.engine.fit(&history);
                for p in &problems {
                    tracing::warn!(series = %p.series, error = %p.error, "no baseline");
                }
                let seconds = started.elapsed().as_secs_f64();
                self.metrics.fit_duration.observe(seconds);
                self.last_fit = Some(Instant::now());
                if self.engine.is_fitted() {
                    self.metrics.set_ready(true);
                    tracing::info!(seconds, series = history.series.len(), "baselines fitted");
                } else {
                    self.metrics.degraded.set(1);
                    tracing::warn!("no series could be fitted; retrying next tick");
                    self.last_fit = None;
                }
            }
            Err(error) => {
                self.metrics.query_errors.inc();
                self.metrics.degraded.set(1);
                tracing::error!(%error, "cannot read history; retrying next tick");
            }
        }
    }

    async fn tick(&mut self) {
        let now = unix_now();
        let observation = match self.source.observe(now).await {
            Ok(o) => Some(o),
            Err(error) => {
                self.metrics.query_errors.inc();
                tracing::error!(%error, "no data this tick: opening nothing, holding open reports");
                None
            }
        };
        let was_recovering = self.outage.recovering();
        let trusted = self.outage.trusted(now, observation.is_some());
        if observation.is_some() && !trusted && !was_recovering {
            tracing::warn!(
                "metrics are back; their rate windows span the outage: degraded one window more"
            );
        }
        self.metrics.degraded.set(if trusted { 0 } else { 1 });
        let observation = observation.filter(|_| trusted);
        let outcome = self.engine.tick(now, observation.as_ref());
        if !outcome.held_as_shared.is_empty() {
            tracing::info!(
                services = ?outcome.held_as_shared,
                "deviations began together in services no call connects: held for the stale hold as a shared cause (node, database)"
            );
        }
        self.metrics.ticks.inc();
        self.metrics.record(&outcome.scores);
        for Written { event, result } in self.writer.write_all(outcome.events).await {
            if let Ok((_, wrote)) = &result {
                match wrote {
                    Wrote::Written => self.metrics.report_status_written.inc(),
                    Wrote::Unchanged => self.metrics.report_status_unchanged.inc(),
                };
            }
            match result {
                Ok((name, _)) => match &event {
                    ReportEvent::Open(u) => {
                        self.metrics.reports_opened.inc();
                        tracing::warn!(report = %name, service = %u.service, signal = %u.signal, score = u.score, "anomaly opened");
                    }
                    ReportEvent::Resolve { update, .. } => {
                        self.metrics.reports_resolved.inc();
                        tracing::info!(report = %name, service = %update.service, "anomaly resolved");
                    }
                    ReportEvent::Update(_) => {}
                },
                Err(error) => {
                    self.metrics.report_write_errors.inc();
                    tracing::error!(%error, service = %event.update().service, "cannot write AnomalyReport; retrying next tick");
                }
            }
        }
        let incidents = self.engine.incidents();
        self.metrics.open_reports.set(incidents.len() as i64);
        let oldest = incidents.values().map(|i| i.opened_at).min();
        self.metrics
            .oldest_open_report_age
            .set(oldest.map_or(0.0, |opened| (now - opened).max(0) as f64));
    }
}
