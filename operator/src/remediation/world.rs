//! Gathering what the decision needs from the API server.

use std::collections::{BTreeMap, BTreeSet};

use homeostat_api::{ActionKind, AnomalyReport, RemediationPolicy, ReportState};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::plan::{Report, World, router_key, scale_target};
use crate::decode;
use crate::router::{TrafficRouter, router_for};

/// Annotation that stops every action of every policy while it is "true".
pub const KILL_SWITCH_ANNOTATION: &str = "homeostat.dev/kill-switch";

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Router(#[from] crate::router::RouterError),
    #[error("label selector: {0}")]
    Selector(String),
}

/// The reports of `namespace`, as the decision reads them.
pub async fn reports(
    client: &Client,
    namespace: &str,
) -> Result<Vec<(AnomalyReport, Report)>, GatherError> {
    Ok(decode::list::<AnomalyReport>(client, namespace)
        .await?
        .into_iter()
        .filter_map(|r| {
            let view = report_view(&r)?;
            Some((r, view))
        })
        .collect())
}

fn report_view(r: &AnomalyReport) -> Option<Report> {
    let status = r.status.as_ref()?;
    Some(Report {
        name: r.name_any(),
        service: r.spec.service.clone(),
        signal: r.spec.signal,
        state: status.state,
        score: status.score,
        severity: status.severity,
        opened_at: status.opened_at.0.as_second(),
        resolved_at: status.resolved_at.as_ref().map(|t| t.0.as_second()),
        recorded: status.actions.iter().map(|a| a.id.clone()).collect(),
    })
}

/// The services `policy` covers: its names, and the Deployments its selector selects.
pub async fn covered_services(
    client: &Client,
    policy: &RemediationPolicy,
) -> Result<BTreeSet<String>, GatherError> {
    let mut services: BTreeSet<String> = policy.spec.services.names.iter().cloned().collect();
    if let Some(selector) = &policy.spec.services.selector {
        let selector: kube::core::Selector = selector
            .clone()
            .try_into()
            .map_err(|e: kube::core::ParseExpressionError| GatherError::Selector(e.to_string()))?;
        let api: Api<Deployment> =
            Api::namespaced(client.clone(), &policy.namespace().unwrap_or_default());
        let listed = api
            .list(&ListParams::default().labels_from(&selector))
            .await?;
        services.extend(listed.into_iter().map(|d| d.name_any()));
    }
    Ok(services)
}

/// Replicas of a `kind/name` workload, or `None` when it does not exist.
pub async fn replicas(
    client: &Client,
    namespace: &str,
    workload: &str,
) -> Result<Option<i32>, GatherError> {
    let (kind, name) = workload.split_once('/').unwrap_or(("deployment", workload));
    let scale = match kind {
        "statefulset" => {
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .get_scale(name)
                .await
        }
        _ => {
            Api::<Deployment>::namespaced(client.clone(), namespace)
                .get_scale(name)
                .await
        }
    };
    match scale {
        Ok(s) => Ok(Some(s.spec.and_then(|s| s.replicas).unwrap_or(0))),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether the kill switch is on: the flag, or the annotation on the
/// operator's namespace.
pub async fn kill_switch(
    client: &Client,
    flag: bool,
    operator_namespace: &str,
) -> Result<bool, GatherError> {
    if flag {
        return Ok(true);
    }
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(operator_namespace)
        .await?;
    Ok(namespace.is_some_and(|ns| {
        ns.annotations()
            .get(KILL_SWITCH_ANNOTATION)
            .is_some_and(|v| v == "true")
    }))
}

/// The workloads HorizontalPodAutoscalers scale in `namespace`, by
/// `kind/name`, with the HPA's name.
pub async fn autoscaled(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, String>, GatherError> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|hpa| {
            let target = &hpa.spec.as_ref()?.scale_target_ref;
            let workload = format!("{}/{}", target.kind.to_ascii_lowercase(), target.name);
            Some((workload, hpa.name_any()))
        })
        .collect())
}

/// Targets the other policies of `policy`'s namespace hold, with the policy.
pub async fn held_elsewhere(
    client: &Client,
    policy: &RemediationPolicy,
) -> Result<BTreeMap<String, String>, GatherError> {
    let name = policy.name_any();
    Ok(
        decode::list::<RemediationPolicy>(client, &policy.namespace().unwrap_or_default())
            .await?
            .into_iter()
            .filter(|other| other.name_any() != name)
            .flat_map(|other| {
                let holder = other.name_any();
                other
                    .status
                    .map(|s| s.active)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |a| (a.target, holder.clone()))
            })
            .collect(),
    )
}

/// The world as `policy` sees it.
pub async fn world(
    client: &Client,
    policy: &RemediationPolicy,
    reports: &[Report],
    services: &BTreeSet<String>,
    kill_switch: bool,
    now: i64,
) -> Result<World, GatherError> {
    let namespace = policy.namespace().unwrap_or_default();
    let mut workloads = BTreeSet::new();
    let mut routers = BTreeMap::new();
    for action in &policy.spec.actions {
        if let Some(scale) = &action.scale {
            match &scale.target {
                Some(_) => {
                    workloads.insert(scale_target(scale, ""));
                }
                None => {
                    let names = services.iter().chain(reports.iter().map(|r| &r.service));
                    workloads.extend(names.map(|s| scale_target(scale, s)));
                }
            }
        }
        if let Some(reroute) = &action.reroute {
            let router = router_for(
                client.clone(),
                &namespace,
                reroute.router.kind,
                &reroute.router.name,
            );
            if let Some(weights) = router.weights().await? {
                routers.insert(router_key(reroute), weights);
            }
        }
    }
    for active in &policy
        .status
        .as_ref()
        .map(|s| s.active.clone())
        .unwrap_or_default()
    {
        if active.kind == ActionKind::Scale {
            workloads.insert(active.target.clone());
        }
    }
    let mut replicas_by_workload = BTreeMap::new();
    for workload in workloads {
        if let Some(n) = replicas(client, &namespace, &workload).await? {
            replicas_by_workload.insert(workload, n);
        }
    }
    Ok(World {
        now,
        autoscaled: autoscaled(client, &namespace).await?,
        held_elsewhere: held_elsewhere(client, policy).await?,
        replicas: replicas_by_workload,
        routers,
        anomalous: reports
            .iter()
            .filter(|r| r.state != ReportState::Resolved)
            .map(|r| r.service.clone())
            .collect(),
        kill_switch,
    })
}
