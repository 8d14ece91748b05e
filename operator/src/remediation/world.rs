//! Gathering what the decision needs from the API server.

use std::collections::{BTreeMap, BTreeSet};

use homeostat_api::{AnomalyReport, RemediationPolicy, ReportState, Silence, Target};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::kinds;
use super::plan::{self, Report, World};
use crate::decode;

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
        degraded: status
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "True"),
        verdicts: status.approvals.clone(),
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

/// The workloads HorizontalPodAutoscalers scale in `namespace`, with the
/// HPA's name.
pub async fn autoscaled(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<Target, String>, GatherError> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|hpa| {
            let target = &hpa.spec.as_ref()?.scale_target_ref;
            let workload = match target.kind.as_str() {
                "Deployment" => Target::Deployment(target.name.clone()),
                "StatefulSet" => Target::StatefulSet(target.name.clone()),
                _ => return None,
            };
            Some((workload, hpa.name_any()))
        })
        .collect())
}

/// Targets the other policies of `policy`'s namespace hold, with the policy.
pub async fn held_elsewhere(
    client: &Client,
    policy: &RemediationPolicy,
) -> Result<BTreeMap<Target, String>, GatherError> {
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

/// The services silenced in `namespace` at `now`, with the Silence.
pub async fn silenced(
    client: &Client,
    namespace: &str,
    now: i64,
) -> Result<BTreeMap<String, String>, GatherError> {
    // Decoded one by one: a Silence this version cannot read must not
    // stop every policy of its namespace, restores included.
    Ok(decode::list::<Silence>(client, namespace)
        .await?
        .into_iter()
        .flat_map(|silence| {
            let name = silence.name_any();
            silence
                .spec
                .services
                .iter()
                .filter(|service| silence.holds(service, now))
                .map(|service| (service.clone(), name.clone()))
                .collect::<Vec<_>>()
        })
        .collect())
}

/// The world as `policy` sees it: every target it may change for the
/// services it covers or has reports on, and every target it holds.
pub async fn world(
    client: &Client,
    policy: &RemediationPolicy,
    reports: &[Report],
    services: &BTreeSet<String>,
    kill_switch: bool,
    now: i64,
) -> Result<World, GatherError> {
    let namespace = policy.namespace().unwrap_or_default();
    let names: BTreeSet<&str> = services
        .iter()
        .chain(reports.iter().map(|r| &r.service))
        .map(String::as_str)
        .collect();
    let names: Vec<&str> = names.into_iter().collect();
    let mut targets = plan::targets(&policy.spec, &names);
    targets.extend(
        policy
            .status
            .iter()
            .flat_map(|s| s.active.iter().map(|a| a.target.clone())),
    );
    let mut states = BTreeMap::new();
    let mut uids = BTreeMap::new();
    for target in targets {
        if let Some(observed) = kinds::read(client, &namespace, &target).await? {
            if let Some(uid) = observed.uid {
                uids.insert(target.clone(), uid);
            }
            states.insert(target, observed.state);
        }
    }
    Ok(World {
        now,
        autoscaled: autoscaled(client, &namespace).await?,
        held_elsewhere: held_elsewhere(client, policy).await?,
        silenced: silenced(client, &namespace, now).await?,
        states,
        uids,
        anomalous: reports
            .iter()
            .filter(|r| r.state != ReportState::Resolved)
            .map(|r| r.service.clone())
            .collect(),
        kill_switch,
    })
}
