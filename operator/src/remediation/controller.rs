//! Wiring: watch RemediationPolicies and AnomalyReports, gather, decide,
//! carry out.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use homeostat_api::{AnomalyReport, RemediationPolicy};
use kube::api::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::execute::{ExecuteError, Executor};
use super::finalizer;
use super::plan::{Decision, Policy, plan};
use super::world::{self, GatherError};
use crate::backoff::{Failures, retry_delay};
use crate::decode;
use crate::metrics::{Controller as ControllerKind, OperatorMetrics};
use crate::reconciled::tracked;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    /// `--kill-switch`: no action at all.
    pub kill_switch: bool,
    /// Namespace whose `homeostat.dev/kill-switch` annotation stops every action.
    pub operator_namespace: String,
    pub metrics: Arc<OperatorMetrics>,
    /// How often a policy is looked at again without a change (hold and stable times).
    pub resync: Duration,
    /// Failed reconciles in a row, by policy: the retry backs off.
    pub failures: Failures,
    /// Unreadable objects already marked, by version.
    pub marked: decode::Marked,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

impl ReconcileError {
    /// What failed, in a word, for the `error` label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::Gather(_) => "gather",
            ReconcileError::Execute(_) => "execute",
        }
    }
}

fn key(policy: &DynamicObject) -> String {
    format!(
        "{}/{}",
        policy.namespace().unwrap_or_default(),
        policy.name_any()
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One pass over one policy, in a span naming it (and the trace, when
/// traces are exported).
#[tracing::instrument(skip_all, fields(
    policy = %policy.name_any(),
    namespace = %policy.namespace().unwrap_or_default(),
    trace_id = tracing::field::Empty,
))]
pub async fn reconcile(
    policy: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    homeostat_telemetry::record_trace_id(&tracing::Span::current());
    tracked(
        ControllerKind::RemediationPolicy,
        &key(&policy),
        &ctx.metrics,
        &ctx.failures,
        ReconcileError::metric_label,
        reconcile_inner(&policy, &ctx),
    )
    .await
}

async fn reconcile_inner(cached: &DynamicObject, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = cached.namespace().unwrap_or_default();
    // The watch cache may not have caught up with our own last status write;
    // deciding on a stale status could repeat a step. Read it fresh.
    let raw = decode::raw_api::<RemediationPolicy>(&ctx.client, Some(&namespace));
    let Some(fresh) = raw
        .get_opt(&cached.name_any())
        .await
        .map_err(GatherError::from)?
    else {
        return Ok(Action::await_change());
    };
    let policy = match decode::decode::<RemediationPolicy>(&fresh) {
        Ok(policy) => policy,
        Err(bad) => {
            tracing::warn!(policy = %bad.name, error = %bad.error, "cannot decode the policy: marked Invalid");
            decode::mark_undecodable(&ctx.marked, &ctx.recorder, &raw, &fresh, &bad, unix_now())
                .await;
            return Ok(Action::await_change());
        }
    };
    let policy = &policy;
    let api: Api<RemediationPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = unix_now();
    let reports = world::reports(&ctx.client, &namespace).await?;
    let (objects, views): (Vec<AnomalyReport>, Vec<_>) = reports.into_iter().unzip();
    let services = world::covered_services(&ctx.client, policy).await?;
    let kill_switch =
        world::kill_switch(&ctx.client, ctx.kill_switch, &ctx.operator_namespace).await?;
    let world = world::world(&ctx.client, policy, &views, &services, kill_switch, now).await?;
    let mut status = policy.status.clone().unwrap_or_default();
    let name = policy.name_any();
    let deleting = policy.metadata.deletion_timestamp.is_some();
    let decisions = plan(
        Policy {
            name: &name,
            spec: &policy.spec,
            status: &status.clone(),
            services: &services,
            deleting,
        },
        &views,
        &world,
    );
    if !decisions.is_empty() {
        tracing::info!(policy = %name, ?decisions, "decided");
    }
    // Before the first change: a policy deleted from now on restores first.
    let acts = decisions.iter().any(|d| matches!(d, Decision::Act(_)));
    let mut resource_version = policy.metadata.resource_version.clone();
    if acts && !finalizer::present(policy) {
        let added = finalizer::add(&api, policy)
            .await
            .map_err(GatherError::from)?;
        resource_version = added.metadata.resource_version;
    }
    let outcome = Executor {
        client: &ctx.client,
        recorder: &ctx.recorder,
        policy,
        reports: &objects,
        now,
        resource_version: std::sync::Mutex::new(resource_version),
    }
    .run(decisions, &mut status)
    .await?;
    ctx.metrics.record(&outcome);
    // Nothing left to put back: deleting it need not wait for the operator.
    if status.active.is_empty() && finalizer::present(policy) {
        finalizer::remove(&api, &name)
            .await
            .map_err(GatherError::from)?;
    }
    Ok(Action::requeue(ctx.resync))
}

fn error_policy(policy: Arc<DynamicObject>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let delay = retry_delay(ctx.failures.failed(&key(&policy)));
    tracing::warn!(policy = %policy.name_any(), %error, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// Runs the controller over `namespace` (every one when `None`) until
/// `shutdown` completes.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Raw objects, decoded one by one in the reconcile: one the operator
    // cannot read is marked Invalid and never stops the others.
    let policy_resource = decode::resource::<RemediationPolicy>();
    let policies = decode::raw_api::<RemediationPolicy>(&ctx.client, namespace.as_deref());
    let reports = decode::raw_api::<AnomalyReport>(&ctx.client, namespace.as_deref());
    let controller = Controller::new_with(
        policies,
        watcher::Config::default(),
        policy_resource.clone(),
    );
    let store = controller.store();
    controller
        // Any change to a report may concern every policy in its namespace.
        .watches_with(
            reports,
            decode::resource::<AnomalyReport>(),
            watcher::Config::default(),
            move |report| {
                let namespace = report.namespace();
                store
                    .state()
                    .into_iter()
                    .filter(|p| p.namespace() == namespace)
                    .map(|p| ObjectRef::from_obj_with(&*p, policy_resource.clone()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
