//! A real one-node Kubernetes cluster on this machine: etcd, kube-apiserver
//! (Node and RBAC authorization, Pod Security admission), the controller
//! manager, the scheduler, a kubelet running pods under containerd and
//! runc on a CNI bridge, kube-proxy and CoreDNS, all built from the pinned modules
//! (`cargo xtask test-assets`) or taken from Debian's packages.
//!
//! [`up`] starts what is not running and waits for a Ready node; [`down`]
//! stops everything and removes what `up` made: processes, the bridge, the
//! iptables chains, mounts and the state directory. Pod addresses live on
//! the bridge only: nothing is masqueraded, nothing routes off the machine.

pub mod config;
mod daemon;
pub mod dns;
mod pki;
pub mod storage;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::assets::TestAssets;
use crate::{SupportError, install_crypto_provider};
use config::{
    BRIDGE, BRIDGE_ADDRESS, ETCD_CLIENT, ETCD_PEER, KUBERNETES_SERVICE_IP, NODE, NODE_IP,
};
use daemon::Daemon;
use pki::{Client, Pki};

/// The parts, in start order; stopped in reverse.
const PARTS: [&str; 8] = [
    "etcd",
    "kube-apiserver",
    "coredns",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
];
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Who applies the cluster's own objects (DNS, storage).
const FIELD_MANAGER: &str = "homeostat-cluster";
/// Debian's containernetworking-plugins.
const CNI_BIN: &str = "/usr/lib/cni";

/// A cluster's state directory and what is in it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub state: PathBuf,
}

impl Cluster {
    pub fn new(state: impl Into<PathBuf>) -> Self {
        Self {
            state: state.into(),
        }
    }

    fn pki(&self) -> PathBuf {
        self.state.join("pki")
    }

    /// cluster-admin's kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("admin.kubeconfig")
    }

    fn component_kubeconfig(&self, client: Client) -> PathBuf {
        self.state.join(format!("{}.kubeconfig", client.file()))
    }

    fn containerd_dir(&self) -> PathBuf {
        self.state.join("containerd")
    }

    pub fn containerd_socket(&self) -> PathBuf {
        config::containerd_socket(&self.containerd_dir())
    }

    fn daemon(&self, name: &'static str) -> Daemon<'_> {
        Daemon {
            name,
            state: &self.state,
        }
    }

    /// The log of one part.
    pub fn log(&self, part: &'static str) -> PathBuf {
        self.daemon(part).log_file()
    }

    /// A cluster-admin client.
    pub async fn client(&self) -> Result<kube::Client, SupportError> {
        install_crypto_provider();
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig())
            .map_err(|e| SupportError::Kubeconfig(e.to_string()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| SupportError::Kubeconfig(e.to_string()))?;
        Ok(kube::Client::try_from(config)?)
    }

    /// The node's addresses are fixed, so two clusters cannot run at once;
    /// and a cluster of another state directory would answer this one's
    /// health checks. Say so, rather than fail later on a port in use.
    fn refuse_another_cluster(&self) -> Result<(), SupportError> {
        let apiserver = format!("{NODE_IP}:{}", config::APISERVER_PORT);
        let parts = [
            ("etcd", ETCD_CLIENT.trim_start_matches("http://")),
            ("kube-apiserver", apiserver.as_str()),
        ];
        // Bound, not connected to: no packet leaves, even when the bridge
        // (and so the node's address) is not there yet.
        let in_use = |address: &str| {
            matches!(
                std::net::TcpListener::bind(address),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
            )
        };
        let taken = parts
            .into_iter()
            .find(|(part, address)| self.daemon(part).running().is_none() && in_use(address));
        match taken {
            None => Ok(()),
            Some((_, address)) => Err(SupportError::Failed(format!(
                "another one-node cluster is running ({address} is in use, and not by {}): \
                 stop it first (`cargo xtask cluster down` stops the one in target/cluster)",
                self.state.display()
            ))),
        }
    }

    /// Starts every part that is not running, imports the image archives in
    /// `images` (the pause image among them), and waits until the node is
    /// Ready. Safe to run again: what runs is left running.
    pub async fn up(&self, assets: &TestAssets, images: &Path) -> Result<(), SupportError> {
        install_crypto_provider();
        let started = Instant::now();
        let progress = |what: &str| {
            eprintln!("cluster: {what} ({:.0} s)", started.elapsed().as_secs_f64());
        };
        self.refuse_another_cluster()?;
        self.write_files()?;
        bridge_up()?;

        progress("etcd");
        self.daemon("etcd")
            .start(&assets.etcd()?, &self.etcd_args())?;
        self.wait("etcd", || async {
            let ok = reqwest::get(format!("{ETCD_CLIENT}/health"))
                .await
                .ok()?
                .text()
                .await
                .ok()?
                .contains("true");
            ok.then_some(())
        })
        .await?;

        progress("kube-apiserver");
        self.daemon("kube-apiserver")
            .start(&assets.kube_apiserver()?, &self.apiserver_args())?;
        let client = self.client().await?;
        // /readyz covers the bootstrap RBAC roles the other parts need.
        self.wait("kube-apiserver", || async {
            let mut readyz = http::Request::new(Vec::new());
            *readyz.uri_mut() = http::Uri::from_static("/readyz");
            let body = client.request_text(readyz).await.ok()?;
            (body.trim() == "ok").then_some(())
        })
        .await?;

        progress("cluster DNS");
        dns::apply_objects(&client).await?;
        self.daemon("coredns").start(
            &assets.binary("coredns")?,
            &[
                "-conf".into(),
                self.state.join("Corefile").display().to_string(),
            ],
        )?;

        progress("storage");
        storage::apply_objects(&client, &self.state.join("volumes")).await?;

        progress("kube-controller-manager and kube-scheduler");
        self.daemon("kube-controller-manager").start(
            &assets.kube_controller_manager()?,
            &self.controller_manager_args(),
        )?;
        self.daemon("kube-scheduler")
            .start(&assets.binary("kube-scheduler")?, &self.scheduler_args())?;

        progress("containerd");
        let containerd = which("containerd").ok_or(SupportError::AssetMissing {
            what: "containerd",
            path: PathBuf::from("containerd"),
            hint: "apt-get install containerd runc containernetworking-plugins",
        })?;
        self.daemon("containerd").start(
            &containerd,
            &[
                "--config".into(),
                self.containerd_dir()
                    .join("config.toml")
                    .display()
                    .to_string(),
            ],
        )?;
        self.wait("containerd", || async {
            self.ctr()
                .arg("version")
                .output()
                .ok()?
                .status
                .success()
                .then_some(())
        })
        .await?;
        progress("importing images");
        self.import_images(images)?;

        progress("kubelet");
        self.daemon("kubelet")
            .start(&assets.binary("kubelet")?, &self.kubelet_args())?;
        let nodes: Api<Node> = Api::all(client);
        self.wait("kubelet", || async {
            let node = nodes.get_opt(NODE).await.ok().flatten()?;
            let ready = node
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        })
        .await?;
        progress("kube-proxy");
        self.daemon("kube-proxy").start(
            &assets.binary("kube-proxy")?,
            &[format!(
                "--config={}",
                self.state.join("kube-proxy.yaml").display()
            )],
        )?;
        // Its rules are in once the kubernetes Service has a chain.
        self.wait("kube-proxy", || async {
            let rules = Command::new("iptables")
                .args(["-t", "nat", "-S", "KUBE-SERVICES"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&rules.stdout)
                .contains("default/kubernetes")
                .then_some(())
        })
        .await?;
        // A pod's first lookup goes through the kube-dns Service, so this
        // waits for kube-proxy's rule as well as for CoreDNS's caches.
        self.wait("coredns", || async {
            let found = dns::resolve("kubernetes.default.svc.cluster.local")
                .await
                .ok()?;
            found
                .contains(&KUBERNETES_SERVICE_IP.parse().ok()?)
                .then_some(())
        })
        .await?;
        progress("node Ready, Services routed, cluster DNS answers");
        Ok(())
    }

    /// Polls `check` until it answers, failing with the part's log when
    /// the part died or the time ran out.
    async fn wait<F, Fut>(&self, part: &'static str, check: F) -> Result<(), SupportError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.daemon(part).check_alive()?;
            if check().await.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SupportError::NotReady {
                    what: part,
                    timeout: READY_TIMEOUT,
                    log_tail: self.daemon(part).log_tail(40),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn write_files(&self) -> Result<(), SupportError> {
        let pki = self.pki();
        let write = |path: &Path, text: &str| {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(SupportError::io(format!("create {}", parent.display())))?;
            }
            std::fs::write(path, text)
                .map_err(SupportError::io(format!("write {}", path.display())))
        };
        // Certificates are made once: a second `up` keeps the cluster's identity.
        if !pki.join("ca.crt").is_file() {
            let generated = Pki::generate(NODE, &[NODE_IP, "127.0.0.1", KUBERNETES_SERVICE_IP])?;
            for (name, pem) in &generated.files {
                write(&pki.join(name), pem)?;
            }
        }
        write(&self.kubeconfig(), &config::kubeconfig(&pki, Client::Admin))?;
        for client in [
            Client::ControllerManager,
            Client::Scheduler,
            Client::Kubelet,
            Client::Proxy,
            Client::Dns,
        ] {
            write(
                &self.component_kubeconfig(client),
                &config::kubeconfig(&pki, client),
            )?;
        }
        let cni_conf = self.state.join("cni/net.d");
        write(
            &cni_conf.join("10-homeostat.conflist"),
            &config::cni(&self.state.join("cni/ipam")),
        )?;
        write(
            &self.containerd_dir().join("config.toml"),
            &config::containerd(&self.containerd_dir(), &cni_conf, Path::new(CNI_BIN)),
        )?;
        write(
            &self.state.join("kubelet.yaml"),
            &config::kubelet(&self.containerd_dir(), &pki),
        )?;
        write(
            &self.state.join("Corefile"),
            &dns::corefile(&self.component_kubeconfig(Client::Dns)),
        )?;
        write(
            &self.state.join("kube-proxy.yaml"),
            &config::kube_proxy(&self.component_kubeconfig(Client::Proxy)),
        )?;
        Ok(())
    }

    fn etcd_args(&self) -> Vec<String> {
        vec![
            "--name=homeostat".into(),
            format!("--data-dir={}", self.state.join("etcd").display()),
            format!("--listen-client-urls={ETCD_CLIENT}"),
            format!("--advertise-client-urls={ETCD_CLIENT}"),
            format!("--listen-peer-urls={ETCD_PEER}"),
            format!("--initial-advertise-peer-urls={ETCD_PEER}"),
            format!("--initial-cluster=homeostat={ETCD_PEER}"),
            "--log-level=warn".into(),
        ]
    }

    fn apiserver_args(&self) -> Vec<String> {
        let pki = |name: &str| self.pki().join(name).display().to_string();
        vec![
            format!("--etcd-servers={ETCD_CLIENT}"),
            format!("--bind-address={NODE_IP}"),
            format!("--advertise-address={NODE_IP}"),
            format!("--secure-port={}", config::APISERVER_PORT),
            format!("--cert-dir={}", pki("apiserver-certs")),
            format!("--tls-cert-file={}", pki("apiserver.crt")),
            format!("--tls-private-key-file={}", pki("apiserver.key")),
            format!("--client-ca-file={}", pki("ca.crt")),
            format!("--service-account-key-file={}", pki("service-account.pub")),
            format!(
                "--service-account-signing-key-file={}",
                pki("service-account.key")
            ),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-cluster-ip-range={}", config::SERVICE_RANGE),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            format!(
                "--kubelet-client-certificate={}",
                pki("apiserver-kubelet-client.crt")
            ),
            format!(
                "--kubelet-client-key={}",
                pki("apiserver-kubelet-client.key")
            ),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ]
    }

    /// What kube-controller-manager and kube-scheduler share: their
    /// credentials (for the API and for checking callers) and a secure port
    /// on loopback.
    fn component_args(&self, client: Client, port: u16) -> Vec<String> {
        let kubeconfig = self.component_kubeconfig(client).display().to_string();
        vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            "--v=1".into(),
        ]
    }

    fn controller_manager_args(&self) -> Vec<String> {
        let pki = |name: &str| self.pki().join(name).display().to_string();
        let mut args = self.component_args(Client::ControllerManager, 10257);
        args.extend([
            format!("--root-ca-file={}", pki("ca.crt")),
            format!("--cluster-signing-cert-file={}", pki("ca.crt")),
            format!("--cluster-signing-key-file={}", pki("ca.key")),
            format!(
                "--service-account-private-key-file={}",
                pki("service-account.key")
            ),
            "--use-service-account-credentials=true".into(),
        ]);
        args
    }

    fn scheduler_args(&self) -> Vec<String> {
        self.component_args(Client::Scheduler, 10259)
    }

    fn kubelet_args(&self) -> Vec<String> {
        vec![
            format!(
                "--kubeconfig={}",
                self.component_kubeconfig(Client::Kubelet).display()
            ),
            format!("--config={}", self.state.join("kubelet.yaml").display()),
            format!("--root-dir={}", self.state.join("kubelet").display()),
            format!("--cert-dir={}", self.state.join("kubelet-pki").display()),
            format!("--node-ip={NODE_IP}"),
            format!("--hostname-override={NODE}"),
            "--v=1".into(),
        ]
    }

    /// `ctr` on the cluster's containerd, in Kubernetes' namespace.
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["--namespace", "k8s.io"]);
        command
    }

    fn import_images(&self, images: &Path) -> Result<(), SupportError> {
        let archives = std::fs::read_dir(images)
            .map_err(SupportError::io(format!("read {}", images.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tar"));
        for archive in archives {
            let out = self
                .ctr()
                .args(["images", "import"])
                .arg(&archive)
                .output()
                .map_err(SupportError::io("run ctr"))?;
            if !out.status.success() {
                return Err(SupportError::Exited {
                    what: "ctr images import",
                    status: out.status.to_string(),
                    log_tail: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
        }
        Ok(())
    }

    /// Stops every part and removes what `up` made. Pods go first, through
    /// the kubelet, so their network namespaces and interfaces are torn down
    /// by the CNI plugins that made them; whatever is still running after
    /// that is killed through containerd before it stops.
    pub async fn down(&self) -> Result<(), SupportError> {
        // No new pods: the scheduler and controllers stop first.
        for part in ["kube-scheduler", "kube-controller-manager"] {
            self.daemon(part).stop(Duration::from_secs(10));
        }
        if self.daemon("kubelet").running().is_some()
            && self.daemon("kube-apiserver").running().is_some()
        {
            self.delete_pods().await;
        }
        self.daemon("kubelet").stop(Duration::from_secs(15));
        if self.daemon("containerd").running().is_some() {
            self.kill_containers();
        }
        for part in PARTS.iter().rev() {
            self.daemon(part).stop(Duration::from_secs(15));
        }
        // containerd's shims outlive it.
        kill_matching(&self.containerd_socket().display().to_string());
        remove_netns();
        unmount_under(&self.state);
        remove_chains();
        remove_bridge();
        if self.state.exists() {
            std::fs::remove_dir_all(&self.state)
                .map_err(SupportError::io(format!("remove {}", self.state.display())))?;
        }
        Ok(())
    }

    /// Deletes every pod (gracefully: the kubelet confirms each) and waits,
    /// up to a minute, until none is left and every pod address is given
    /// back (the CNI plugins ran their teardown).
    async fn delete_pods(&self) {
        let Ok(client) = self.client().await else {
            return;
        };
        let pods: Api<Pod> = Api::all(client.clone());
        if let Ok(list) = pods.list(&Default::default()).await {
            for pod in list {
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let _ = Api::<Pod>::namespaced(client.clone(), &namespace)
                    .delete(&name, &DeleteParams::default().grace_period(1))
                    .await;
            }
        }
        let ipam = self.state.join("cni/ipam/homeostat");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let pods_left = pods
                .list(&Default::default())
                .await
                .map(|l| l.items.len())
                .unwrap_or(0);
            if pods_left == 0 && addresses_held(&ipam) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Kills and deletes every container containerd still runs.
    fn kill_containers(&self) {
        crate::containerd::remove_all_containers(|| self.ctr());
    }
}

/// Server-side applies `object` as the cluster's own (forced: ours alone).
async fn apply<K>(api: Api<K>, object: &K) -> Result<(), SupportError>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(object)
        .map_err(|e| SupportError::Kubeconfig(format!("serialise {name}: {e}")))?;
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}

/// Addresses host-local still holds: one file per address (named after it).
fn addresses_held(ipam: &Path) -> usize {
    std::fs::read_dir(ipam)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

/// The bridge, and any pod interface still attached to it.
fn remove_bridge() {
    let attached = Command::new("ip")
        .args(["-o", "link", "show", "master", BRIDGE])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for line in attached.lines() {
        // `12: vethabc@if2: <…` → vethabc
        if let Some(name) = line
            .split(": ")
            .nth(1)
            .map(|n| n.split('@').next().unwrap_or(n))
        {
            let _ = Command::new("ip").args(["link", "delete", name]).output();
        }
    }
    let _ = Command::new("ip").args(["link", "delete", BRIDGE]).output();
}

fn bridge_up() -> Result<(), SupportError> {
    let exists = Command::new("ip")
        .args(["link", "show", BRIDGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        for args in [
            vec!["link", "add", BRIDGE, "type", "bridge"],
            vec!["addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE],
            vec!["link", "set", BRIDGE, "up"],
            // Service addresses stay on the machine even before kube-proxy
            // has its rules (the route goes with the bridge).
            vec!["route", "add", config::SERVICE_RANGE, "dev", BRIDGE],
        ] {
            let out = Command::new("ip")
                .args(&args)
                .output()
                .map_err(SupportError::io("run ip"))?;
            if !out.status.success() {
                return Err(SupportError::Exited {
                    what: "ip",
                    status: format!("{} ({})", out.status, args.join(" ")),
                    log_tail: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
        }
    }
    Ok(())
}

/// SIGKILLs every process whose command line mentions `needle`.
fn kill_matching(needle: &str) {
    for pid in processes_mentioning(needle) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Live processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id() && daemon::alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// The network namespaces containerd made for pods (`cni-…`).
fn remove_netns() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.starts_with("cni-")) {
            let _ = Command::new("ip")
                .args(["netns", "delete"])
                .arg(&name)
                .output();
        }
    }
}

/// Unmounts everything mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    for mount in mounts_under(dir).iter().rev() {
        let _ = Command::new("umount").args(["--lazy"]).arg(mount).output();
    }
}

/// Mount points under `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// The iptables chains the kubelet, kube-proxy and the CNI plugins make.
const CHAIN_PREFIXES: [&str; 2] = ["KUBE-", "CNI-"];
const TABLES: [&str; 3] = ["filter", "nat", "mangle"];

/// Chains of ours still in iptables or ip6tables, as `tool table chain`.
pub fn leftover_chains() -> Vec<String> {
    let mut left = Vec::new();
    for tool in ["iptables", "ip6tables"] {
        for table in TABLES {
            for chain in chains(tool, table) {
                left.push(format!("{tool} {table} {chain}"));
            }
        }
    }
    left
}

fn chains(tool: &str, table: &str) -> Vec<String> {
    Command::new(tool)
        .args(["-t", table, "-S"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("-N "))
                .filter(|c| CHAIN_PREFIXES.iter().any(|p| c.starts_with(p)))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes our chains and every rule in or into them: the table is saved,
/// filtered and restored in one step (rules keep their quoting that way).
fn remove_chains() {
    for (save, restore) in [
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    ] {
        for table in TABLES {
            let Ok(saved) = Command::new(save).args(["-t", table]).output() else {
                continue;
            };
            let saved = String::from_utf8_lossy(&saved.stdout).into_owned();
            let filtered = without_our_chains(&saved);
            if filtered == saved {
                continue;
            }
            let Ok(mut child) = Command::new(restore)
                .stdin(std::process::Stdio::piped())
                .spawn()
            else {
                continue;
            };
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                let _ = stdin.write_all(filtered.as_bytes());
            }
            let _ = child.wait();
        }
    }
}

/// An `iptables-save` text without our chains and the rules in or into them.
fn without_our_chains(saved: &str) -> String {
    let ours = |chain: &str| CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p));
    saved
        .lines()
        .filter(|line| {
            if let Some(declared) = line.strip_prefix(':') {
                return !ours(declared.split_whitespace().next().unwrap_or_default());
            }
            if let Some(rule) = line.strip_prefix("-A ") {
                let chain = rule.split_whitespace().next().unwrap_or_default();
                let target = rule
                    .split_whitespace()
                    .skip_while(|w| *w != "-j" && *w != "-g")
                    .nth(1)
                    .unwrap_or_default();
                return !ours(chain) && !ours(target);
            }
            true
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::without_our_chains;

    #[test]
    fn only_our_chains_and_the_jumps_into_them_go() {
        let saved = "*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:KUBE-SERVICES - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT -j CNI-HOSTPORT-DNAT
-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-NPX46M4PTMTKRN6Y
COMMIT
";
        assert_eq!(
            without_our_chains(saved),
            "*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
COMMIT
"
        );
    }
}
