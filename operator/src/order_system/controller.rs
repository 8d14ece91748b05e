//! The OrderSystem controller: apply the rendered children, report status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use homeostat_api::oms::OMS_SERVICES;
use homeostat_api::{
    OrderSystem, OrderSystemStatus, RemediationPolicy, ServiceStatus, StatusWrite, Target,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::backing;
use super::render::{
    Child, FIELD_MANAGER, LiveDeployment, managed_by_selector, render, service_monitor,
};
use crate::backoff::{Failures, retry_delay};
use crate::decode;
use crate::metrics::{Controller as ControllerKind, OperatorMetrics};
use crate::reconciled::tracked;
use crate::remediation::record::set_condition;
use crate::scope;

pub struct Context {
    pub client: Client,
    /// Events about OrderSystems the operator cannot read.
    pub recorder: Recorder,
    pub resync: Duration,
    pub metrics: Arc<OperatorMetrics>,
    /// Failed reconciles in a row, by OrderSystem: the retry backs off.
    pub failures: Failures,
    /// Unreadable objects already marked, by version.
    pub marked: decode::Marked,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReconcileError(#[from] kube::Error);

impl ReconcileError {
    /// A child changed between our read and our apply.
    fn is_conflict(&self) -> bool {
        matches!(&self.0, kube::Error::Api(e) if e.code == 409)
    }

    /// What failed, in a word, for the `error` label.
    pub fn metric_label(&self) -> &'static str {
        match &self.0 {
            _ if self.is_conflict() => "conflict",
            kube::Error::Api(_) => "api",
            _ => "transport",
        }
    }
}

fn key(os: &DynamicObject) -> String {
    format!("{}/{}", os.namespace().unwrap_or_default(), os.name_any())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn api_for(client: &Client, namespace: &str, child: &Child) -> Api<DynamicObject> {
    let (group, version) = child
        .api_version
        .split_once('/')
        .unwrap_or(("", child.api_version));
    let gvk = GroupVersionKind::gvk(group, version, child.kind);
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, child.plural),
    )
}

/// The OMS Deployments that exist, read *before* the holds: a remediation
/// records its hold before it scales, so either we see the hold, or the
/// scale changes the resourceVersion we apply against and the apply conflicts.
async fn live_deployments(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, LiveDeployment>, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut live = BTreeMap::new();
    for service in OMS_SERVICES {
        if let Some(d) = deployments.get_opt(service).await? {
            live.insert(
                service.to_owned(),
                LiveDeployment {
                    replicas: d.spec.and_then(|s| s.replicas).unwrap_or(1),
                    resource_version: d.metadata.resource_version.unwrap_or_default(),
                    held: false,
                },
            );
        }
    }
    let held: BTreeSet<String> = decode::list::<RemediationPolicy>(client, namespace)
        .await?
        .into_iter()
        .flat_map(|p| p.status.map(|s| s.active).unwrap_or_default())
        .filter_map(|a| match a.target {
            Target::Deployment(name) => Some(name),
            _ => None,
        })
        .collect();
    // An HPA owns the replicas of the Deployment it scales, too.
    let autoscaled = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|hpa| hpa.spec.map(|s| s.scale_target_ref))
        .filter(|target| target.kind == "Deployment")
        .map(|target| target.name);
    for name in held.into_iter().chain(autoscaled) {
        if let Some(d) = live.get_mut(&name) {
            d.held = true;
        }
    }
    Ok(live)
}

/// What became of one child.
enum Applied {
    Written,
    /// An object of that name exists and is not this OrderSystem's: left
    /// alone, never adopted.
    NotOurs(String),
}

/// Writes `child`, unless an object of its name exists that `owner` (the
/// OrderSystem's uid) does not own. Secrets are never read (the operator
/// may not): they are created only, never written over.
async fn apply(
    client: &Client,
    namespace: &str,
    child: &Child,
    owner: Option<&str>,
) -> Result<Applied, kube::Error> {
    let api = api_for(client, namespace, child);
    if child.kind != "Secret"
        && let Some(existing) = api.get_opt(&child.name).await?
        && !owned_by(&existing.metadata, owner)
    {
        return Ok(Applied::NotOurs(format!("{}/{}", child.kind, child.name)));
    }
    let mut body = child.body.clone();
    body["apiVersion"] = json!(child.api_version);
    body["kind"] = json!(child.kind);
    if child.create_only {
        let object: DynamicObject =
            serde_json::from_value(body).map_err(kube::Error::SerdeError)?;
        return match api.create(&PostParams::default(), &object).await {
            Ok(_) => Ok(Applied::Written),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Applied::Written),
            Err(e) => Err(e),
        };
    }
    api.patch(
        &child.name,
        &crate::writes::apply(FIELD_MANAGER),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(Applied::Written)
}

/// Whether the object names `owner` among its owners.
fn owned_by(meta: &ObjectMeta, owner: Option<&str>) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| Some(r.uid.as_str()) == owner)
}

async fn service_monitors_installed(client: &Client) -> Result<bool, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    Ok(crds
        .get_opt("servicemonitors.monitoring.coreos.com")
        .await?
        .is_some())
}

/// One pass over one OrderSystem, in a span naming it (and the trace, when
/// traces are exported).
#[tracing::instrument(skip_all, fields(
    order_system = %os.name_any(),
    namespace = %os.namespace().unwrap_or_default(),
    trace_id = tracing::field::Empty,
))]
pub async fn reconcile(
    os: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    homeostat_telemetry::record_trace_id(&tracing::Span::current());
    tracked(
        ControllerKind::OrderSystem,
        &key(&os),
        &ctx.metrics,
        &ctx.failures,
        ReconcileError::metric_label,
        reconcile_raw(&os, &ctx),
    )
    .await
}

/// Decodes the OrderSystem on its own: one that cannot be read is marked
/// Invalid and renders nothing.
async fn reconcile_raw(raw: &DynamicObject, ctx: &Context) -> Result<Action, ReconcileError> {
    match decode::decode::<OrderSystem>(raw) {
        Ok(os) => reconcile_inner(&os, ctx).await,
        Err(bad) => {
            tracing::warn!(order_system = %bad.name, error = %bad.error, "cannot decode the OrderSystem: marked Invalid");
            let api = decode::raw_api::<OrderSystem>(&ctx.client, raw.namespace().as_deref());
            decode::mark_undecodable(&ctx.marked, &ctx.recorder, &api, raw, &bad, unix_now()).await;
            Ok(Action::await_change())
        }
    }
}

async fn reconcile_inner(os: &OrderSystem, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = os.namespace().unwrap_or_default();
    let live = live_deployments(&ctx.client, &namespace).await?;
    // Used only when the database's and the admin Secrets are first created.
    let password = uuid::Uuid::new_v4().simple().to_string();
    let admin_token = uuid::Uuid::new_v4().simple().to_string();
    let servers = backing::render(os, &password);
    let mut children: Vec<Child> = servers
        .iter()
        .cloned()
        .chain(render(os, &live, &admin_token))
        .collect();
    if os.spec.service_monitors && service_monitors_installed(&ctx.client).await? {
        children.push(service_monitor(os));
    }
    let owner = os.metadata.uid.as_deref();
    let mut not_ours = Vec::new();
    for child in &children {
        if let Applied::NotOurs(object) = apply(&ctx.client, &namespace, child, owner).await? {
            not_ours.push(object);
        }
    }
    if !not_ours.is_empty() {
        let note = format!(
            "{} exist and belong to someone else: left alone (delete or rename them for the OrderSystem to make its own)",
            not_ours.join(", ")
        );
        tracing::warn!(order_system = %os.name_any(), %note, "not adopting objects it did not create");
        let event = Event {
            type_: EventType::Warning,
            reason: "NotOwned".to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: "Render".to_owned(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &os.object_ref(&())).await {
            tracing::warn!(%error, "cannot publish the NotOwned Event");
        }
    }
    // Status: what the Deployments ask for and have.
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut services = Vec::new();
    for service in OMS_SERVICES {
        let d = deployments.get_opt(service).await?;
        let desired = d
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let ready = d
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        services.push(ServiceStatus {
            name: service.to_owned(),
            desired_replicas: desired,
            ready_replicas: ready,
        });
    }
    let ready_count = services
        .iter()
        .filter(|s| s.ready_replicas >= s.desired_replicas.max(1))
        .count();
    // The servers it runs for the OMS count too.
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut servers_not_ready = Vec::new();
    for server in servers.iter().filter(|c| c.kind == "StatefulSet") {
        let ready = statefulsets
            .get_opt(&server.name)
            .await?
            .and_then(|s| s.status)
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        if ready < 1 {
            servers_not_ready.push(server.name.as_str());
        }
    }
    let all_ready = ready_count == services.len() && servers_not_ready.is_empty();
    let now = unix_now();
    let generation = os.metadata.generation;
    let mut status = os.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.summary = Some(format!("{ready_count}/{}", services.len()));
    let not_ready: Vec<&str> = servers_not_ready
        .into_iter()
        .chain(
            services
                .iter()
                .filter(|s| s.ready_replicas < s.desired_replicas.max(1))
                .map(|s| s.name.as_str()),
        )
        .collect();
    let waiting = format!("waiting for {}", not_ready.join(", "));
    set_condition(
        &mut status.conditions,
        "Ready",
        all_ready,
        if all_ready { "AllReady" } else { "NotReady" },
        if all_ready {
            "every service has its replicas ready"
        } else {
            &waiting
        },
        now,
        generation,
    );
    set_condition(
        &mut status.conditions,
        "Progressing",
        !all_ready,
        if all_ready { "Stable" } else { "RollingOut" },
        if all_ready {
            "nothing to roll out"
        } else {
            &waiting
        },
        now,
        generation,
    );
    let degraded: Vec<&str> = services
        .iter()
        .filter(|s| s.desired_replicas > 0 && s.ready_replicas == 0)
        .map(|s| s.name.as_str())
        .collect();
    let (is_degraded, reason, message) = match (not_ours.is_empty(), degraded.is_empty()) {
        (false, _) => (
            true,
            "NotOwned",
            format!(
                "not this OrderSystem's, left alone: {}",
                not_ours.join(", ")
            ),
        ),
        (true, false) => (
            true,
            "NoReadyReplicas",
            format!("no ready replica: {}", degraded.join(", ")),
        ),
        (true, true) => (false, "Serving", "every service serves".to_owned()),
    };
    set_condition(
        &mut status.conditions,
        "Degraded",
        is_degraded,
        reason,
        &message,
        now,
        generation,
    );
    status.services = services;
    write_status(&ctx.client, os, &status).await?;
    Ok(Action::requeue(ctx.resync))
}

async fn write_status(
    client: &Client,
    os: &OrderSystem,
    status: &OrderSystemStatus,
) -> Result<(), kube::Error> {
    let api: Api<OrderSystem> =
        Api::namespaced(client.clone(), &os.namespace().unwrap_or_default());
    api.patch_status(
        &os.name_any(),
        &crate::writes::patch(),
        &Patch::Merge(StatusWrite::of::<OrderSystem>(status)),
    )
    .await?;
    Ok(())
}

fn error_policy(os: Arc<DynamicObject>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        // A child changed since we read it (a remediation scaled it): read
        // again at once; not a failure of ours.
        tracing::debug!(order_system = %os.name_any(), %error, "child changed while applying; again");
        return Action::requeue(Duration::from_millis(200));
    }
    let delay = retry_delay(ctx.failures.failed(&key(&os)));
    tracing::warn!(order_system = %os.name_any(), %error, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// The watch of one kind of child: only what the operator made (its
/// `managed-by` label), not every Deployment, Service and ConfigMap in the
/// cluster.
fn children() -> watcher::Config {
    watcher::Config::default().labels(&managed_by_selector())
}

/// Runs until `shutdown`, over `namespace` (every one when `None`):
/// children that drift (deleted, edited) are put back on the next pass,
/// which their own change triggers.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Raw objects, decoded one by one in the reconcile.
    let systems = decode::raw_api::<OrderSystem>(&ctx.client, namespace.as_deref());
    let ns = namespace.as_deref();
    Controller::new_with(
        systems,
        watcher::Config::default(),
        decode::resource::<OrderSystem>(),
    )
    .owns(scope::api::<Deployment>(&ctx.client, ns), children())
    .owns(scope::api::<StatefulSet>(&ctx.client, ns), children())
    .owns(scope::api::<Service>(&ctx.client, ns), children())
    .owns(scope::api::<ConfigMap>(&ctx.client, ns), children())
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|_| futures::future::ready(()))
    .await;
}
