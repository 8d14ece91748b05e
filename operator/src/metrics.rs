//! The operator's own telemetry: `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::remediation::execute::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardLabels {
    guard: String,
}

pub struct OperatorMetrics {
    registry: Registry,
    reconciles: Counter,
    errors: Counter,
    actions: Family<ActionLabels, Counter>,
    guard_blocks: Family<GuardLabels, Counter>,
    invalid: Counter,
    pub leader: Gauge,
    ready: AtomicBool,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("homeostat_operator");
        let reconciles = Counter::default();
        let errors = Counter::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let guard_blocks = Family::<GuardLabels, Counter>::default();
        let invalid = Counter::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "RemediationPolicy reconciles",
            reconciles.clone(),
        );
        registry.register("reconcile_errors", "Reconciles that failed", errors.clone());
        registry.register(
            "actions",
            "Remediation steps by kind and outcome",
            actions.clone(),
        );
        registry.register(
            "guard_blocks",
            "Steps a guard stopped, by guard",
            guard_blocks.clone(),
        );
        registry.register(
            "invalid_policies",
            "Passes over a policy found Invalid",
            invalid.clone(),
        );
        registry.register(
            "leader",
            "1 while this process holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            actions,
            guard_blocks,
            invalid,
            leader,
            ready: AtomicBool::new(false),
        }
    }
}

impl OperatorMetrics {
    pub fn reconcile(&self, failed: bool) {
        self.reconciles.inc();
        if failed {
            self.errors.inc();
        }
    }

    pub fn record(&self, outcome: &Outcome) {
        for (kind, result) in &outcome.steps {
            self.actions
                .get_or_create(&ActionLabels {
                    kind: kind.clone(),
                    outcome: result.clone(),
                })
                .inc();
        }
        for guard in &outcome.blocked {
            self.guard_blocks
                .get_or_create(&GuardLabels {
                    guard: guard.clone(),
                })
                .inc();
        }
        if outcome.invalid.is_some() {
            self.invalid.inc();
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub fn router(metrics: Arc<OperatorMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<OperatorMetrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn ready(State(metrics): State<Arc<OperatorMetrics>>) -> impl IntoResponse {
    if metrics.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
