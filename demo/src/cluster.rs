//! The scenario on the one-node cluster of `cargo xtask cluster up`: the
//! operator, the detector, Prometheus and the OMS run as pods from
//! `deploy/overlays/local`, as a user would run them; the demo only drives
//! them. It turns the OrderSystem's own load generator off (the demo's
//! traffic is the scenario's), holds the detector at zero replicas until
//! the warm-up is over (so its baselines are fitted on warm-up traffic, as
//! on the quick path), and notes the OMS pods as they come and go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use homeostat_api::oms::{OMS_SERVICES, is_oms_service};
use homeostat_api::{OrderSystem, RemediationPolicy};
use homeostat_test_support::cluster::Cluster;
use homeostat_test_support::{TestAssets, wait_until};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::pods::PodRecord;
use crate::stack::{Layout, NAMESPACE, post_fault, run};
use crate::timeline::Timeline;

/// Where homeostat's own pods run.
const SYSTEM_NAMESPACE: &str = "homeostat-system";
const DETECTOR: &str = "homeostat-detector";
/// The sample OrderSystem of the overlay.
const ORDER_SYSTEM: &str = "shop";
/// Pulling nothing, the slowest part is the OMS's PostgreSQL initialising.
const SETTLE: Duration = Duration::from_secs(300);
/// Every OMS service listens here in its pod.
const OMS_PORT: u16 = 8080;
const PROMETHEUS_PORT: u16 = 9090;

pub struct ClusterStack {
    pub client: kube::Client,
    pub prometheus_url: String,
    service_ips: BTreeMap<String, String>,
    admin_token: String,
    pods: BTreeMap<String, PodRecord>,
}

fn ready(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::now(), |t| t.0)
        })
}

fn kubectl(assets: &TestAssets, kubeconfig: &Path, root: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(assets.kubectl()?);
    command.env("KUBECONFIG", kubeconfig).current_dir(root);
    Ok(command)
}

async fn service_ip(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    Api::<Service>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .with_context(|| format!("Service {namespace}/{name}"))?
        .spec
        .and_then(|s| s.cluster_ip)
        .with_context(|| format!("Service {namespace}/{name} has no cluster IP"))
}

/// Waits until every replica a Deployment asks for is Ready.
async fn deployment_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    wait_until(
        &format!("Deployment {namespace}/{name} Ready"),
        SETTLE,
        Duration::from_millis(500),
        || async {
            let d = api.get(name).await.map_err(|e| e.to_string())?;
            let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = d.status.unwrap_or_default();
            let ready = status.ready_replicas.unwrap_or(0);
            let all = status.replicas.unwrap_or(0);
            if ready == wanted && all == wanted {
                Ok(())
            } else {
                Err(format!("{ready} of {wanted} Ready, {all} pods"))
            }
        },
    )
    .await
    .map_err(anyhow::Error::msg)
}

/// When the pod's deletion began: its deletionTimestamp is the deadline
/// (the moment plus the grace period), not the moment.
fn deletion_started(pod: &Pod) -> Option<Timestamp> {
    let deadline = pod.metadata.deletion_timestamp.as_ref()?.0;
    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
    Some(deadline - jiff::SignedDuration::from_secs(grace))
}

impl ClusterStack {
    pub async fn start(
        layout: Layout,
        state: &Path,
        images: &Path,
        policies: Option<&[PathBuf]>,
        timeline: &mut Timeline,
    ) -> anyhow::Result<Self> {
        let assets = TestAssets::locate()?;
        let cluster = Cluster::new(state);
        timeline.say(&format!(
            "bringing the one-node cluster up (state in {})",
            state.display()
        ));
        cluster.up(&assets, images).await?;
        let mut client = cluster.client().await?;
        // A run starts from nothing: an earlier run's reports, replicas and
        // orders would colour this one.
        if Api::<Namespace>::all(client.clone())
            .get_opt(NAMESPACE)
            .await?
            .is_some()
        {
            timeline.say(&format!(
                "the cluster already runs an OMS (namespace {NAMESPACE}): taking it down and up again for a clean run"
            ));
            cluster.down().await?;
            cluster.up(&assets, images).await?;
            client = cluster.client().await?;
        }
        let kubeconfig = cluster.kubeconfig();
        let root = &layout.root;

        timeline.say("applying crds/ and deploy/overlays/local (kubectl apply -k)");
        let mut crds = kubectl(&assets, &kubeconfig, root)?;
        crds.args(["apply", "--server-side", "-k", "crds/"]);
        run(crds, "kubectl apply -k crds/")?;
        let mut established = kubectl(&assets, &kubeconfig, root)?;
        established.args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ]);
        run(established, "kubectl wait for the CRDs")?;
        let mut overlay = kubectl(&assets, &kubeconfig, root)?;
        overlay.args(["apply", "--server-side", "-k", "deploy/overlays/local"]);
        run(overlay, "kubectl apply -k deploy/overlays/local")?;

        // The detector waits for the warm-up; the traffic is the scenario's.
        let merge = PatchParams::default();
        Api::<Deployment>::namespaced(client.clone(), SYSTEM_NAMESPACE)
            .patch(
                DETECTOR,
                &merge,
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await
            .context("hold the detector at zero replicas")?;
        Api::<OrderSystem>::namespaced(client.clone(), NAMESPACE)
            .patch(
                ORDER_SYSTEM,
                &merge,
                &Patch::Merge(json!({"spec": {"loadGenerator": {"enabled": false}}})),
            )
            .await
            .context("turn the OrderSystem's load generator off")?;
        if let Some(files) = policies {
            timeline.say("replacing the sample policies with the scenario's");
            Api::<RemediationPolicy>::namespaced(client.clone(), NAMESPACE)
                .delete_collection(&DeleteParams::default(), &ListParams::default())
                .await
                .context("delete the sample policies")?;
            for file in files {
                let mut apply = kubectl(&assets, &kubeconfig, root)?;
                apply.args(["apply", "-n", NAMESPACE, "-f"]).arg(file);
                run(apply, &format!("kubectl apply {}", file.display()))?;
            }
        }

        timeline.say(
            "waiting for the OMS, its PostgreSQL and NATS, the operator and Prometheus to be Ready",
        );
        let systems: Api<OrderSystem> = Api::namespaced(client.clone(), NAMESPACE);
        wait_until(
            "the OrderSystem Ready",
            SETTLE,
            Duration::from_secs(1),
            || async {
                let os = systems.get(ORDER_SYSTEM).await.map_err(|e| e.to_string())?;
                let ready = os
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
                match ready {
                    Some(c) if c.status == "True" => Ok(()),
                    Some(c) => Err(c.message.clone()),
                    None => Err("no Ready condition yet".to_owned()),
                }
            },
        )
        .await
        .map_err(anyhow::Error::msg)?;
        for name in ["homeostat-operator", "prometheus"] {
            deployment_ready(&client, SYSTEM_NAMESPACE, name).await?;
        }
        deployment_ready(&client, NAMESPACE, &format!("{ORDER_SYSTEM}-loadgen")).await?;

        let mut service_ips = BTreeMap::new();
        for service in OMS_SERVICES {
            service_ips.insert(
                service.to_owned(),
                service_ip(&client, NAMESPACE, service).await?,
            );
        }
        let prometheus_url = format!(
            "http://{}:{PROMETHEUS_PORT}",
            service_ip(&client, SYSTEM_NAMESPACE, "prometheus").await?
        );
        let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
            .get(&format!("{ORDER_SYSTEM}-oms-admin"))
            .await
            .context("the OMS admin Secret")?;
        let admin_token = secret
            .data
            .and_then(|d| d.get("token").cloned())
            .map(|t| String::from_utf8_lossy(&t.0).into_owned())
            .context("the OMS admin Secret has no token")?;

        timeline.say("waiting until Prometheus scrapes every OMS service's pods");
        let http = reqwest::Client::new();
        let query = format!(r#"count(count by (service) (up{{namespace="{NAMESPACE}"}} == 1))"#);
        wait_until(
            "Prometheus scraping all 8 OMS services",
            Duration::from_secs(120),
            Duration::from_secs(1),
            || async {
                let body: serde_json::Value = http
                    .get(format!("{prometheus_url}/api/v1/query"))
                    .query(&[("query", &query)])
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let n = body["data"]["result"][0]["value"][1]
                    .as_str()
                    .unwrap_or("0")
                    .to_owned();
                if n == OMS_SERVICES.len().to_string() {
                    Ok(())
                } else {
                    Err(format!("{n} services scraped"))
                }
            },
        )
        .await
        .map_err(anyhow::Error::msg)?;

        let mut stack = Self {
            client,
            prometheus_url,
            service_ips,
            admin_token,
            pods: BTreeMap::new(),
        };
        stack.observe_pods().await;
        Ok(stack)
    }

    pub fn oms_url(&self, service: &str) -> String {
        let ip = self.service_ips.get(service).map_or("", String::as_str);
        format!("http://{ip}:{OMS_PORT}")
    }

    /// The pods of `service` that are Ready now.
    async fn ready_pods(&self, service: &str) -> anyhow::Result<Vec<Pod>> {
        let selector =
            format!("app.kubernetes.io/name={service},app.kubernetes.io/instance={ORDER_SYSTEM}");
        let pods = Api::<Pod>::namespaced(self.client.clone(), NAMESPACE)
            .list(&ListParams::default().labels(&selector))
            .await?;
        Ok(pods
            .items
            .into_iter()
            .filter(|p| ready(p).is_some() && p.metadata.deletion_timestamp.is_none())
            .collect())
    }

    /// A rolling restart of `service`'s Deployment, the write `kubectl
    /// rollout restart` makes: a new pod template, so each replica is
    /// replaced by the Deployment's rolling update.
    pub async fn restart(&self, service: &str) -> anyhow::Result<()> {
        let template = json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": Timestamp::now().to_string()
        }}}}});
        Api::<Deployment>::namespaced(self.client.clone(), NAMESPACE)
            .patch(service, &PatchParams::default(), &Patch::Merge(template))
            .await
            .with_context(|| format!("restart Deployment {NAMESPACE}/{service}"))?;
        Ok(())
    }

    /// Injects the fault into every Ready replica of `service`: each has
    /// its own fault injector. Replicas started later run without it.
    pub async fn inject(&self, service: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        let pods = self.ready_pods(service).await?;
        if pods.is_empty() {
            bail!("{service} has no Ready pod to inject the fault into");
        }
        for pod in pods {
            let ip = pod
                .status
                .and_then(|s| s.pod_ip)
                .with_context(|| format!("a {service} pod has no IP"))?;
            let replica = format!("{service} ({ip})");
            post_fault(
                &format!("http://{ip}:{OMS_PORT}"),
                &self.admin_token,
                body,
                &replica,
            )
            .await?;
        }
        Ok(())
    }

    /// Lets the detector start, fitted on the last `history_seconds`, and
    /// waits until its pod is Ready (its baselines fitted). The change is
    /// conditional on the Deployment read: a concurrent edit fails it.
    pub async fn start_detector(&mut self, history_seconds: u64) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), SYSTEM_NAMESPACE);
        let mut detector = api.get(DETECTOR).await?;
        let spec = detector.spec.as_mut().context("the detector has no spec")?;
        spec.replicas = Some(1);
        let container = spec
            .template
            .spec
            .as_mut()
            .and_then(|s| s.containers.first_mut())
            .context("the detector has no container")?;
        let args = container.args.get_or_insert_with(Vec::new);
        args.retain(|a| !a.starts_with("--history"));
        args.push(format!("--history={history_seconds}s"));
        api.replace(DETECTOR, &PostParams::default(), &detector)
            .await
            .context("start the detector")?;
        deployment_ready(&self.client, SYSTEM_NAMESPACE, DETECTOR)
            .await
            .context("the detector fitting its baselines")
    }

    /// The API server still answers.
    pub async fn check_alive(&mut self) -> anyhow::Result<()> {
        self.client
            .apiserver_version()
            .await
            .context("the cluster's API server stopped answering")?;
        Ok(())
    }

    /// Notes every OMS pod: new ones, Ready ones, deleted ones.
    pub async fn observe_pods(&mut self) {
        let selector =
            format!("app.kubernetes.io/part-of=oms,app.kubernetes.io/instance={ORDER_SYSTEM}");
        let Ok(list) = Api::<Pod>::namespaced(self.client.clone(), NAMESPACE)
            .list(&ListParams::default().labels(&selector))
            .await
        else {
            return;
        };
        let now = Timestamp::now();
        let mut seen = Vec::new();
        for pod in &list.items {
            let labels = pod.metadata.labels.as_ref();
            let Some(service) = labels
                .and_then(|l| l.get("app.kubernetes.io/name"))
                .filter(|s| is_oms_service(s))
            else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            seen.push(name.clone());
            let record = self.pods.entry(name.clone()).or_insert_with(|| PodRecord {
                name,
                service: service.clone(),
                created_at: pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(now, |t| t.0),
                ready_at: None,
                gone_at: None,
            });
            if record.ready_at.is_none() {
                record.ready_at = ready(pod);
            }
            if record.gone_at.is_none() {
                record.gone_at = deletion_started(pod);
            }
        }
        for record in self.pods.values_mut() {
            if record.gone_at.is_none() && !seen.contains(&record.name) {
                record.gone_at = Some(now);
            }
        }
    }

    pub fn pods(&self) -> Vec<PodRecord> {
        self.pods.values().cloned().collect()
    }
}
