//! What a scenario plays on: the quick local stack (processes standing in
//! for pods) or the one-node cluster (pods), behind one set of operations,
//! with the load generators on this machine either way.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cluster::ClusterStack;
use crate::load::LoadGenerators;
use crate::local::LocalStack;
use crate::pods::PodRecord;
use crate::scenario::Load;
use crate::timeline::Timeline;

/// Namespace of the sample OrderSystem and policies.
pub const NAMESPACE: &str = "shop";
/// Scrape interval and detector tick: "a scrape interval of a few seconds".
pub const SCRAPE: Duration = Duration::from_secs(2);
/// The detector's rate window.
pub const RATE_WINDOW_SECONDS: u64 = 20;

/// Where the demo finds its parts.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The checkout: crds/, deploy/ and tests/scenarios/.
    pub root: PathBuf,
    /// `oms`, `homeostat-operator` and `homeostat-detector`.
    pub bin_dir: PathBuf,
    /// Logs of every process.
    pub log_dir: PathBuf,
}

impl Layout {
    pub fn binary(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.bin_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            bail!(
                "{} is missing: build it with `cargo build --release --bins` (cargo xtask demo does)",
                path.display()
            )
        }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }
}

/// Runs `command` to the end; its output is the error when it fails.
pub fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Posts a fault to the OMS replica at `base_url` (its `/admin/faults`).
pub async fn post_fault(
    base_url: &str,
    admin_token: &str,
    body: &serde_json::Value,
    replica: &str,
) -> anyhow::Result<()> {
    let url = format!("{base_url}/admin/faults");
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(admin_token)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    if !response.status().is_success() {
        bail!(
            "{replica} refused the fault ({}): {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Where the scenario runs.
#[derive(Debug, Clone)]
pub enum Runtime {
    /// Processes on loopback, with a control plane of their own.
    Local,
    /// Pods on the one-node cluster whose state is in `state`, brought up
    /// with the image archives in `images` when it is not running.
    Cluster { state: PathBuf, images: PathBuf },
}

enum Parts {
    // Boxed: the local stack holds every process handle.
    Local(Box<LocalStack>),
    Cluster(ClusterStack),
}

pub struct Stack {
    // Field order is drop order: the traffic stops first.
    load: LoadGenerators,
    parts: Parts,
    pub client: kube::Client,
}

impl Stack {
    /// Starts (or, on the cluster, deploys) everything up to the traffic.
    /// `policies` are YAML files; none means the sample policies.
    pub async fn start(
        runtime: &Runtime,
        layout: Layout,
        policies: Option<&[PathBuf]>,
        timeline: &mut Timeline,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&layout.log_dir)?;
        let load = LoadGenerators::new(layout.binary("oms")?, layout.log_dir.clone());
        let parts = match runtime {
            Runtime::Local => Parts::Local(Box::new(
                LocalStack::start(layout, policies, timeline).await?,
            )),
            Runtime::Cluster { state, images } => Parts::Cluster(
                ClusterStack::start(layout, state, images, policies, timeline).await?,
            ),
        };
        let client = match &parts {
            Parts::Local(local) => local.client.clone(),
            Parts::Cluster(cluster) => cluster.client.clone(),
        };
        Ok(Self {
            load,
            parts,
            client,
        })
    }

    pub fn prometheus_url(&self) -> &str {
        match &self.parts {
            Parts::Local(local) => local.prometheus.url(),
            Parts::Cluster(cluster) => &cluster.prometheus_url,
        }
    }

    /// Where `service` answers: its process, or its Service's cluster IP.
    pub fn oms_url(&self, service: &str) -> String {
        match &self.parts {
            Parts::Local(local) => local.oms_url(service),
            Parts::Cluster(cluster) => cluster.oms_url(service),
        }
    }

    /// The customers' traffic at `rate`, for `seconds`.
    pub fn set_load(&mut self, load: &Load, rate: f64, seconds: f64) -> anyhow::Result<()> {
        let orders = self.oms_url("orders");
        self.load.customers(&orders, load, rate, seconds)
    }

    /// A surge of `rate` requests a second straight to `service` (tax).
    pub fn surge(&mut self, service: &str, rate: f64, seconds: f64) -> anyhow::Result<()> {
        let url = self.oms_url(service);
        self.load.quote_surge(&url, rate, seconds)
    }

    /// Restarts every replica of `service` as a deploy does (cluster only:
    /// `Scenario::needs_cluster` keeps such a scenario off the local stack).
    pub async fn restart(&self, service: &str) -> anyhow::Result<()> {
        match &self.parts {
            Parts::Local(_) => anyhow::bail!(
                "cannot restart {service} on the local stack: the OMS is one process there"
            ),
            Parts::Cluster(cluster) => cluster.restart(service).await,
        }
    }

    /// Injects a fault into `service` (every replica running now).
    pub async fn inject(&self, service: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        match &self.parts {
            Parts::Local(local) => local.inject(service, body).await,
            Parts::Cluster(cluster) => cluster.inject(service, body).await,
        }
    }

    /// Starts the detector, fitting its baselines on the last
    /// `history_seconds` of live traffic, and waits until it has.
    pub async fn start_detector(&mut self, history_seconds: u64) -> anyhow::Result<()> {
        match &mut self.parts {
            Parts::Local(local) => local.start_detector(history_seconds).await,
            Parts::Cluster(cluster) => cluster.start_detector(history_seconds).await,
        }
    }

    /// An error naming the first part that stopped.
    pub async fn check_alive(&mut self) -> anyhow::Result<()> {
        match &mut self.parts {
            Parts::Local(local) => local.check_alive(),
            Parts::Cluster(cluster) => cluster.check_alive().await,
        }
    }

    /// Notes the OMS's pods as they are now (on the cluster; processes
    /// have none).
    pub async fn observe_pods(&mut self) {
        if let Parts::Cluster(cluster) = &mut self.parts {
            cluster.observe_pods().await;
        }
    }

    /// Every OMS pod seen during the run, on the cluster.
    pub fn pods(&self) -> Option<Vec<PodRecord>> {
        match &self.parts {
            Parts::Local(_) => None,
            Parts::Cluster(cluster) => Some(cluster.pods()),
        }
    }
}
