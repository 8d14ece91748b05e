//! The operator's own metrics, served with the process's by
//! `homeostat_telemetry::metrics_server` (`/metrics`, `/healthz`, `/readyz`).

use std::sync::atomic::{AtomicBool, Ordering};

use homeostat_telemetry::metrics_server::{self, Exporter};
use homeostat_telemetry::process::Build;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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

/// The operator's controllers, as their metrics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    RemediationPolicy,
    OrderSystem,
}

impl Controller {
    fn label(self) -> &'static str {
        match self {
            Controller::RemediationPolicy => "remediationpolicy",
            Controller::OrderSystem => "ordersystem",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    /// What failed, in a word (e.g. `gather`, `execute`, `conflict`).
    error: &'static str,
}

fn reconcile_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

pub struct OperatorMetrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    actions: Family<ActionLabels, Counter>,
    guard_blocks: Family<GuardLabels, Counter>,
    invalid: Counter,
    pub leader: Gauge,
    ready: AtomicBool,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("homeostat_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations: Family<ControllerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(reconcile_histogram);
        let actions = Family::<ActionLabels, Counter>::default();
        let guard_blocks = Family::<GuardLabels, Counter>::default();
        let invalid = Counter::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles, by controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and what failed",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconcile took, by controller",
            durations.clone(),
        );
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
        // Every step's and guard's series from the start: the first step or
        // block is a rise from 0 (a series born at 1 shows no increase).
        for kind in [
            homeostat_api::ActionKind::Scale,
            homeostat_api::ActionKind::Reroute,
        ] {
            for outcome in crate::remediation::execute::STEP_OUTCOMES {
                let _ = actions.get_or_create(&ActionLabels {
                    kind: kind.as_str().to_owned(),
                    outcome: outcome.to_owned(),
                });
            }
        }
        for guard in crate::remediation::plan::Guard::ALL {
            let _ = guard_blocks.get_or_create(&GuardLabels {
                guard: guard.as_str().to_owned(),
            });
        }
        // Every controller's series from the start: a standby shows 0.
        for controller in [Controller::RemediationPolicy, Controller::OrderSystem] {
            let labels = ControllerLabels {
                controller: controller.label(),
            };
            let _ = reconciles.get_or_create(&labels);
            let _ = durations.get_or_create(&labels);
        }
        Self {
            registry,
            reconciles,
            errors,
            durations,
            actions,
            guard_blocks,
            invalid,
            leader,
            ready: AtomicBool::new(false),
        }
    }
}

impl OperatorMetrics {
    /// One reconcile of `controller` that took `took` and failed with
    /// `error` (a word), or succeeded.
    pub fn reconciled(
        &self,
        controller: Controller,
        took: std::time::Duration,
        error: Option<&'static str>,
    ) {
        let controller = controller.label();
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        self.durations
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
        if let Some(error) = error {
            self.errors
                .get_or_create(&ErrorLabels { controller, error })
                .inc();
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
        metrics_server::encode(self)
    }
}

impl Exporter for OperatorMetrics {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn build(&self) -> Build {
        Build {
            component: "operator",
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    fn waiting_for(&self) -> Option<&'static str> {
        (!self.ready.load(Ordering::SeqCst)).then_some("starting")
    }
}
