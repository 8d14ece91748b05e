//! The quick path: everything as processes on loopback, started in order
//! and stopped on drop (also on Ctrl-C and on failure): the control plane,
//! the operator, the OMS (`oms up`, one process standing in for the pods),
//! Prometheus and, after warm-up, the detector.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use homeostat_api::oms::OMS_SERVICES;
use homeostat_test_support::ports::free_port;
use homeostat_test_support::{
    ControlPlane, ManagedProcess, Prometheus, PrometheusConfig, ScrapeTarget,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::stack::{Layout, NAMESPACE, RATE_WINDOW_SECONDS, SCRAPE, post_fault, run};
use crate::timeline::Timeline;

const ADMIN_TOKEN_BYTES: usize = 16;

pub struct LocalStack {
    // Field order is drop order: the clients of the API server first.
    detector: Option<ManagedProcess>,
    pub prometheus: Prometheus,
    oms: ManagedProcess,
    operator: ManagedProcess,
    pub plane: ControlPlane,
    pub client: kube::Client,
    pub layout: Layout,
    pub oms_base_port: u16,
    pub admin_token: String,
    pub detector_port: u16,
}

fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    (0..ADMIN_TOKEN_BYTES / 8)
        .map(|_| format!("{:016x}", RandomState::new().build_hasher().finish()))
        .collect()
}

async fn wait_http_ok(what: &str, url: &str, process: &mut ManagedProcess) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        process.check_alive()?;
        match http.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            _ if tokio::time::Instant::now() > deadline => {
                bail!(
                    "{what} did not answer {url} within 60 s; its log:\n{}",
                    process.log_tail(30)
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

impl LocalStack {
    /// Starts everything up to the load generator. `policies` are YAML
    /// files; none: the sample policies.
    pub async fn start(
        layout: Layout,
        policies: Option<&[PathBuf]>,
        timeline: &mut Timeline,
    ) -> anyhow::Result<Self> {
        let samples = [layout.root.join("deploy/samples/policies.yaml")];
        let policies = policies.unwrap_or(&samples);
        let mut say = |line: &str| timeline.say(line);
        std::fs::create_dir_all(&layout.log_dir)
            .with_context(|| format!("create {}", layout.log_dir.display()))?;
        let oms_bin = layout.binary("oms")?;
        let operator_bin = layout.binary("homeostat-operator")?;
        layout.binary("homeostat-detector")?;

        say("starting etcd and kube-apiserver on loopback");
        let plane = ControlPlane::start()
            .await
            .context("start the control plane")?;
        let client = plane.client().await?;
        let kubeconfig = plane.kubeconfig_path().to_owned();

        say("installing the CRDs, the sample OrderSystem and the policies");
        let mut apply = plane.kubectl()?;
        apply
            .args(["apply", "--server-side", "-k"])
            .arg(layout.root.join("crds"));
        run(apply, "kubectl apply -k crds/")?;
        // The control plane is the demo's own: its only CRDs are ours.
        let mut wait = plane.kubectl()?;
        wait.args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ]);
        run(wait, "kubectl wait for the CRDs")?;
        let mut ns = plane.kubectl()?;
        ns.args(["create", "namespace", "homeostat-system"]);
        run(ns, "kubectl create namespace homeostat-system")?;
        let mut system = plane.kubectl()?;
        system
            .args(["apply", "-f"])
            .arg(layout.root.join("deploy/samples/order-system.yaml"));
        run(system, "kubectl apply the sample OrderSystem")?;
        for file in policies {
            let mut policy = plane.kubectl()?;
            policy.args(["apply", "-n", NAMESPACE, "-f"]).arg(file);
            run(policy, &format!("kubectl apply {}", file.display()))?;
        }

        say("starting the operator");
        let operator_port = free_port()?;
        let mut command = Command::new(operator_bin);
        command
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .args(["--namespace", "homeostat-system", "--resync-seconds", "2"])
            .arg(format!("--listen=127.0.0.1:{operator_port}"));
        let mut operator =
            ManagedProcess::spawn("homeostat-operator", command, &layout.log("operator"))?;
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            operator.check_alive()?;
            if configmaps.get_opt("oms-routing").await?.is_some() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the operator did not create shop/oms-routing within 60 s; its log:\n{}",
                    operator.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        say("starting the OMS on a throwaway PostgreSQL (its routing table follows the ConfigMap)");
        let oms_base_port = homeostat_test_support::free_port_block(OMS_SERVICES.len() as u16)?;
        let admin_token = random_token();
        let mut command = Command::new(&oms_bin);
        command
            .env("KUBECONFIG", &kubeconfig)
            .env("OMS_ADMIN_TOKEN", &admin_token)
            .args([
                "up",
                "--routing-configmap",
                &format!("{NAMESPACE}/oms-routing"),
            ])
            .arg(format!("--base-port={oms_base_port}"));
        let mut oms = ManagedProcess::spawn("oms up", command, &layout.log("oms"))?
            .with_grace(Duration::from_secs(10));
        for (i, service) in OMS_SERVICES.iter().enumerate() {
            let url = format!("http://127.0.0.1:{}/readyz", oms_base_port + i as u16);
            wait_http_ok(service, &url, &mut oms).await?;
        }

        say("starting Prometheus (2 s scrapes of the OMS, the operator and the detector)");
        let detector_port = free_port()?;
        let mut targets: Vec<ScrapeTarget> = OMS_SERVICES
            .iter()
            .enumerate()
            .map(|(i, service)| {
                // `service` on the target, so its `up` names the service (as
                // the cluster's scrape config does).
                let mut target = ScrapeTarget::new(
                    format!("oms-{service}"),
                    format!("127.0.0.1:{}", oms_base_port + i as u16),
                );
                target
                    .labels
                    .insert("service".into(), (*service).to_owned());
                target
            })
            .collect();
        targets.push(ScrapeTarget::new(
            "homeostat-operator",
            format!("127.0.0.1:{operator_port}"),
        ));
        targets.push(ScrapeTarget::new(
            "homeostat-detector",
            format!("127.0.0.1:{detector_port}"),
        ));
        let prometheus = Prometheus::start(PrometheusConfig {
            scrape_interval: SCRAPE,
            targets,
            ..PrometheusConfig::default()
        })
        .await
        .context("start Prometheus")?;

        Ok(Self {
            detector: None,
            prometheus,
            oms,
            operator,
            plane,
            client,
            layout,
            oms_base_port,
            admin_token,
            detector_port,
        })
    }

    pub fn oms_url(&self, service: &str) -> String {
        let index = OMS_SERVICES.iter().position(|s| *s == service).unwrap_or(0);
        format!("http://127.0.0.1:{}", self.oms_base_port + index as u16)
    }

    /// Starts the detector, fitting its baselines on the last `history`
    /// seconds of live traffic, and waits until it has.
    pub async fn start_detector(&mut self, history_seconds: u64) -> anyhow::Result<()> {
        let mut command = Command::new(self.layout.binary("homeostat-detector")?);
        command
            .env("KUBECONFIG", self.plane.kubeconfig_path())
            .env("RUST_LOG", "info")
            .args(["run", "--prometheus-url", self.prometheus.url()])
            .args(["--namespace", NAMESPACE])
            .arg(format!("--tick={}s", SCRAPE.as_secs()))
            .arg(format!("--rate-window={RATE_WINDOW_SECONDS}s"))
            .arg(format!("--history={history_seconds}s"))
            .arg(format!("--listen=127.0.0.1:{}", self.detector_port));
        let mut detector =
            ManagedProcess::spawn("homeostat-detector", command, &self.layout.log("detector"))?;
        let url = format!("http://127.0.0.1:{}/readyz", self.detector_port);
        wait_http_ok("the detector (baselines fitted)", &url, &mut detector).await?;
        self.detector = Some(detector);
        Ok(())
    }

    /// An error naming the first process that died, with its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.operator.check_alive()?;
        self.oms.check_alive()?;
        if let Some(d) = &mut self.detector {
            d.check_alive()?;
        }
        self.plane.check_alive()?;
        Ok(())
    }

    /// Injects a fault into `service` through its admin endpoint.
    pub async fn inject(&self, service: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        post_fault(&self.oms_url(service), &self.admin_token, body, service).await
    }
}
