//! Wiring: watch RemediationPolicies and AnomalyReports, gather, decide,
//! carry out.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use homeostat_api::{AnomalyReport, RemediationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::execute::{ExecuteError, Executor};
use super::plan::{Policy, plan};
use super::world::{self, GatherError};
use crate::metrics::OperatorMetrics;

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
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One pass over one policy.
pub async fn reconcile(
    policy: Arc<RemediationPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let result = reconcile_inner(&policy, &ctx).await;
    ctx.metrics.reconcile(result.is_err());
    result
}

async fn reconcile_inner(
    cached: &RemediationPolicy,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let namespace = cached.namespace().unwrap_or_default();
    // The watch cache may not have caught up with our own last status write;
    // deciding on a stale status could repeat a step. Read it fresh.
    let api: Api<RemediationPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(policy) = api
        .get_opt(&cached.name_any())
        .await
        .map_err(GatherError::from)?
    else {
        return Ok(Action::await_change());
    };
    let policy = &policy;
    let now = unix_now();
    let reports = world::reports(&ctx.client, &namespace).await?;
    let (objects, views): (Vec<AnomalyReport>, Vec<_>) = reports.into_iter().unzip();
    let services = world::covered_services(&ctx.client, policy).await?;
    let kill_switch =
        world::kill_switch(&ctx.client, ctx.kill_switch, &ctx.operator_namespace).await?;
    let world = world::world(&ctx.client, policy, &views, &services, kill_switch, now).await?;
    let mut status = policy.status.clone().unwrap_or_default();
    let name = policy.name_any();
    let decisions = plan(
        Policy {
            name: &name,
            spec: &policy.spec,
            status: &status.clone(),
            services: &services,
        },
        &views,
        &world,
    );
    if !decisions.is_empty() {
        tracing::info!(policy = %name, ?decisions, "decided");
    }
    let outcome = Executor {
        client: &ctx.client,
        recorder: &ctx.recorder,
        policy,
        reports: &objects,
        now,
        resource_version: std::sync::Mutex::new(policy.metadata.resource_version.clone()),
    }
    .run(decisions, &mut status)
    .await?;
    ctx.metrics.record(&outcome);
    Ok(Action::requeue(ctx.resync))
}

fn error_policy(
    policy: Arc<RemediationPolicy>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(policy = %policy.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controller until `shutdown` completes.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let policies: Api<RemediationPolicy> = Api::all(ctx.client.clone());
    let reports: Api<AnomalyReport> = Api::all(ctx.client.clone());
    let controller = Controller::new(policies, watcher::Config::default());
    let store = controller.store();
    controller
        // Any change to a report may concern every policy in its namespace.
        .watches(reports, watcher::Config::default(), move |report| {
            let namespace = report.namespace();
            store
                .state()
                .into_iter()
                .filter(|p| p.namespace() == namespace)
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
