//! The detector's own metrics, served with the process's by
//! `homeostat_telemetry::metrics_server` (`/metrics`, `/healthz`, `/readyz`:
//! ready once baselines are fitted).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use homeostat_telemetry::metrics_server::{self, Exporter};
use homeostat_telemetry::process::Build;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::TickScores;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeriesLabels {
    service: String,
    signal: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    service: String,
    peer_service: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the detector exports.
pub struct DetectorMetrics {
    registry: Registry,
    score: Family<SeriesLabels, FloatGauge>,
    observed: Family<SeriesLabels, FloatGauge>,
    band_lower: Family<SeriesLabels, FloatGauge>,
    band_upper: Family<SeriesLabels, FloatGauge>,
    joint_score: Family<ServiceLabels, FloatGauge>,
    edge_score: Family<EdgeLabels, FloatGauge>,
    pub fit_duration: Histogram,
    pub query_errors: Counter,
    pub report_write_errors: Counter,
    /// Report status writes made, and left out because nothing changed.
    pub report_status_written: Counter,
    pub report_status_unchanged: Counter,
    pub degraded: Gauge,
    pub ticks: Counter,
    pub reports_opened: Counter,
    pub reports_resolved: Counter,
    pub open_reports: Gauge,
    /// Seconds since the oldest open report opened; 0 with none open.
    pub oldest_open_report_age: FloatGauge,
    ready: AtomicBool,
}

impl Default for DetectorMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("homeostat_detector");
        let score = Family::<SeriesLabels, FloatGauge>::default();
        let joint_score = Family::<ServiceLabels, FloatGauge>::default();
        let edge_score = Family::<EdgeLabels, FloatGauge>::default();
        let fit_duration = Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0]);
        let metrics = Self {
            score,
            observed: Family::default(),
            band_lower: Family::default(),
            band_upper: Family::default(),
            joint_score,
            edge_score,
            fit_duration,
            query_errors: Counter::default(),
            report_write_errors: Counter::default(),
            report_status_written: Counter::default(),
            report_status_unchanged: Counter::default(),
            degraded: Gauge::default(),
            ticks: Counter::default(),
            reports_opened: Counter::default(),
            reports_resolved: Counter::default(),
            open_reports: Gauge::default(),
            oldest_open_report_age: FloatGauge::default(),
            ready: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register(
            "score",
            "Anomaly score per service and signal, 0 to 1",
            metrics.score.clone(),
        );
        registry.register(
            "observed",
            "Value of each signal the detector scored last tick (seconds, ratio or requests/s)",
            metrics.observed.clone(),
        );
        registry.register(
            "band_lower",
            "Lower edge of the baseline band of each signal, in its units",
            metrics.band_lower.clone(),
        );
        registry.register(
            "band_upper",
            "Upper edge of the baseline band of each signal (beyond it the score passes the threshold)",
            metrics.band_upper.clone(),
        );
        registry.register(
            "joint_score",
            "Anomaly score of a service's signals taken together (Gaussian mixture)",
            metrics.joint_score.clone(),
        );
        registry.register(
            "edge_score",
            "Anomaly score of a caller's client latency to a callee",
            metrics.edge_score.clone(),
        );
        registry.register(
            "fit_duration_seconds",
            "Time to fit every baseline from history",
            metrics.fit_duration.clone(),
        );
        registry.register(
            "query_errors",
            "Failed queries to the metrics source",
            metrics.query_errors.clone(),
        );
        registry.register(
            "report_write_errors",
            "Failed writes of AnomalyReports",
            metrics.report_write_errors.clone(),
        );
        registry.register(
            "report_status_written",
            "AnomalyReport status writes made",
            metrics.report_status_written.clone(),
        );
        registry.register(
            "report_status_unchanged",
            "AnomalyReport status writes left out: nothing a reader acts on changed",
            metrics.report_status_unchanged.clone(),
        );
        registry.register(
            "degraded",
            "1 while the detector lacks data (metrics source unreachable or no fit)",
            metrics.degraded.clone(),
        );
        registry.register("ticks", "Evaluation ticks run", metrics.ticks.clone());
        registry.register(
            "reports_opened",
            "AnomalyReports opened",
            metrics.reports_opened.clone(),
        );
        registry.register(
            "reports_resolved",
            "AnomalyReports resolved",
            metrics.reports_resolved.clone(),
        );
        registry.register(
            "open_reports",
            "AnomalyReports open now",
            metrics.open_reports.clone(),
        );
        registry.register_with_unit(
            "oldest_open_report_age",
            "Time since the oldest open AnomalyReport opened; 0 when none is open",
            prometheus_client::registry::Unit::Seconds,
            metrics.oldest_open_report_age.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl DetectorMetrics {
    /// Records one tick's scores.
    pub fn record(&self, scores: &TickScores) {
        for ((service, signal), tick) in &scores.series {
            let labels = SeriesLabels {
                service: service.clone(),
                signal: signal.as_str().to_owned(),
            };
            self.score.get_or_create(&labels).set(tick.score);
            self.observed.get_or_create(&labels).set(tick.observed);
            if let Some([lower, _, upper]) = scores.bands.get(&(service.clone(), *signal)) {
                self.band_lower.get_or_create(&labels).set(*lower);
                self.band_upper.get_or_create(&labels).set(*upper);
            }
        }
        for (service, score) in &scores.joint {
            self.joint_score
                .get_or_create(&ServiceLabels {
                    service: service.clone(),
                })
                .set(*score);
        }
        for ((caller, callee), tick) in &scores.edges {
            self.edge_score
                .get_or_create(&EdgeLabels {
                    service: caller.clone(),
                    peer_service: callee.clone(),
                })
                .set(tick.score);
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn encode(&self) -> String {
        metrics_server::encode(self)
    }
}

impl Exporter for DetectorMetrics {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn build(&self) -> Build {
        Build {
            component: "detector",
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    fn waiting_for(&self) -> Option<&'static str> {
        (!self.ready.load(Ordering::SeqCst)).then_some("baselines not fitted yet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_api::Signal;

    use crate::model::Tick;

    #[test]
    fn every_metric_the_dashboard_charts_is_exported() {
        let metrics = DetectorMetrics::default();
        let mut scores = TickScores::default();
        let tick = Tick {
            score: 0.5,
            z: 4.0,
            observed: 2.0,
            expected: 1.0,
            news: 0.0,
            novelty: 0.0,
        };
        scores
            .series
            .insert(("orders".into(), Signal::LatencyP99), tick);
        scores
            .bands
            .insert(("orders".into(), Signal::LatencyP99), [0.5, 1.0, 1.5]);
        scores.joint.insert("orders".into(), 0.1);
        scores.edges.insert(("orders".into(), "tax".into()), tick);
        metrics.record(&scores);
        metrics.fit_duration.observe(0.2);
        let exported = metrics.encode();

        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/homeostat.json");
        let dashboard = std::fs::read_to_string(path).expect("dashboard JSON");
        let names: Vec<&str> = dashboard
            .match_indices("homeostat_detector_")
            .map(|(at, _)| {
                let rest = &dashboard[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(names.len() >= 8, "{names:?}");
        for name in names {
            assert!(
                exported.lines().any(|l| l.starts_with(name)),
                "{name} is charted but not exported:\n{exported}"
            );
        }
        assert!(
            exported
                .contains(r#"homeostat_detector_score{service="orders",signal="latency_p99"} 0.5"#)
        );
    }
}
