//! etcd + kube-apiserver on free loopback ports: a real Kubernetes API with no
//! nodes. Objects are stored and validated exactly as on a cluster; nothing
//! runs pods, so Deployments never get ready replicas. Every request is
//! written to an audit log (who, what, allowed or not) for tests to read.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use tempfile::TempDir;

use crate::assets::TestAssets;
use crate::certs::ControlPlanePki;
use crate::ports::free_port;
use crate::process::ManagedProcess;
use crate::{SupportError, install_crypto_provider};

const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Who did what to which object, and whether RBAC allowed it; no bodies.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";
/// How long a ServiceAccount token minted for a test lasts.
const TOKEN_SECONDS: i64 = 3 * 3600;
const POLL: Duration = Duration::from_millis(200);

/// A running control plane. Dropping it stops both processes and deletes its
/// directory (certificates, etcd data, logs).
pub struct ControlPlane {
    // Field order is drop order: the controllers, then the API server, then its etcd.
    garbage_collector: Option<ManagedProcess>,
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    /// How etcd was started, to start it again on its data.
    etcd_ports: EtcdPorts,
    server_url: String,
    kubeconfig_path: PathBuf,
    assets: TestAssets,
    dir: TempDir,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver from the test assets and waits until
    /// `/readyz` is ok and the `default` namespace exists.
    pub async fn start() -> Result<Self, SupportError> {
        install_crypto_provider();
        let assets = TestAssets::locate()?;
        let dir = tempfile::Builder::new()
            .prefix("homeostat-control-plane-")
            .tempdir()
            .map_err(SupportError::io("create the control plane directory"))?;
        let root = dir.path();

        let pki = ControlPlanePki::generate()?;
        let files = [
            ("ca.crt", &pki.ca_cert),
            ("apiserver.crt", &pki.serving_cert),
            ("apiserver.key", &pki.serving_key),
            ("admin.crt", &pki.admin_cert),
            ("admin.key", &pki.admin_key),
            ("service-account.key", &pki.service_account_key),
            ("service-account.pub", &pki.service_account_public_key),
        ];
        for (name, pem) in files {
            write(&root.join(name), pem)?;
        }
        write(&root.join("audit-policy.yaml"), AUDIT_POLICY)?;

        let etcd_ports = EtcdPorts {
            client: free_port()?,
            peer: free_port()?,
        };
        let mut etcd = start_etcd(&assets, root, etcd_ports, &root.join("etcd.log")).await?;
        let etcd_url = etcd_ports.client_url();

        let port = free_port()?;
        let server_url = format!("https://127.0.0.1:{port}");
        let mut apiserver = ManagedProcess::spawn(
            "kube-apiserver",
            apiserver_command(&assets.kube_apiserver()?, root, port, &etcd_url),
            &root.join("kube-apiserver.log"),
        )?;

        let kubeconfig_path = root.join("kubeconfig");
        write(
            &kubeconfig_path,
            &kubeconfig_yaml(
                &server_url,
                &root.join("ca.crt"),
                "homeostat-admin",
                client_certificate(root, "admin"),
            ),
        )?;

        let plane_client = client_for(&kubeconfig_path).await?;
        wait_ready(&plane_client, &mut apiserver, &mut etcd).await?;

        Ok(Self {
            garbage_collector: None,
            apiserver,
            etcd,
            etcd_ports,
            server_url,
            kubeconfig_path,
            assets,
            dir,
        })
    }

    /// A cluster-admin client.
    pub async fn client(&self) -> Result<kube::Client, SupportError> {
        client_for(&self.kubeconfig_path).await
    }

    /// A kubeconfig file with cluster-admin credentials, for processes and kubectl.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The directory holding certificates, data and the servers' logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API server's audit log: one JSON event per request (see [`crate::audit`]).
    pub fn audit_log_path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// A token for the ServiceAccount `namespace/name` from the TokenRequest
    /// API, as a pod's projected token is; RBAC then decides what it may do.
    /// The ServiceAccount must exist.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, SupportError> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(self.client().await?, namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        accounts
            .create_token_request(name, &Default::default(), &request)
            .await?
            .status
            .map(|s| s.token)
            .ok_or_else(|| SupportError::Kubeconfig(format!("no token for {namespace}/{name}")))
    }

    /// A kubeconfig that authenticates as the ServiceAccount `namespace/name`
    /// (see [`Self::service_account_token`]).
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, SupportError> {
        // A token file, as a pod's projected token is.
        let token = self.service_account_token(namespace, name).await?;
        let token_file = self.dir.path().join(format!("token-{namespace}-{name}"));
        write(&token_file, &token)?;
        let auth = AuthInfo {
            token_file: Some(token_file.display().to_string()),
            ..AuthInfo::default()
        };
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{namespace}-{name}"));
        write(
            &path,
            &kubeconfig_yaml(&self.server_url, &self.ca_path(), name, auth),
        )?;
        Ok(path)
    }

    /// The CA that signed the API server's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A client authenticated as the ServiceAccount `namespace/name`.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, SupportError> {
        client_for(&self.service_account_kubeconfig(namespace, name).await?).await
    }

    /// The log files of kube-apiserver and etcd.
    pub fn log_paths(&self) -> [&Path; 2] {
        [self.apiserver.log_path(), self.etcd.log_path()]
    }

    /// Process ids of kube-apiserver and etcd.
    pub fn pids(&self) -> [u32; 2] {
        [self.apiserver.pid(), self.etcd.pid()]
    }

    /// A `kubectl` command bound to this control plane.
    pub fn kubectl(&self) -> Result<Command, SupportError> {
        let mut command = Command::new(self.assets.kubectl()?);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig_path)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"));
        Ok(command)
    }

    /// Starts kube-controller-manager with only its garbage collector, so
    /// that deleting an owner deletes what it owns, as on a real cluster.
    /// (No other controller runs: Deployments still never get pods.)
    pub fn start_garbage_collector(&mut self) -> Result<(), SupportError> {
        if self.garbage_collector.is_some() {
            return Ok(());
        }
        let mut command = Command::new(self.assets.kube_controller_manager()?);
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig_path.display()))
            .arg("--controllers=garbagecollector")
            .arg("--leader-elect=false")
            .arg("--use-service-account-credentials=false")
            // It serves nothing the tests need.
            .arg("--secure-port=0");
        let process = ManagedProcess::spawn(
            "kube-controller-manager",
            command,
            &self.dir.path().join("kube-controller-manager.log"),
        )?;
        self.garbage_collector = Some(process);
        Ok(())
    }

    /// Kills kube-apiserver (SIGKILL: no graceful shutdown) and starts it
    /// again on the same port and etcd; returns once it is ready. Clients
    /// keep their address and credentials.
    pub async fn restart_apiserver(&mut self) -> Result<(), SupportError> {
        self.apiserver.stop();
        let port = self
            .server_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server URL ends in its port");
        let root = self.dir.path();
        self.apiserver = ManagedProcess::spawn(
            "kube-apiserver",
            apiserver_command(
                &self.assets.kube_apiserver()?,
                root,
                port,
                &self.etcd_ports.client_url(),
            ),
            &root.join("kube-apiserver.restarted.log"),
        )?;
        let client = self.client().await?;
        wait_ready(&client, &mut self.apiserver, &mut self.etcd).await
    }

    /// Kills etcd (SIGKILL) and starts it again on its data directory and
    /// ports; returns once kube-apiserver is ready on it again.
    pub async fn restart_etcd(&mut self) -> Result<(), SupportError> {
        self.etcd.stop();
        let root = self.dir.path();
        self.etcd = start_etcd(
            &self.assets,
            root,
            self.etcd_ports,
            &root.join("etcd.restarted.log"),
        )
        .await?;
        let client = self.client().await?;
        wait_ready(&client, &mut self.apiserver, &mut self.etcd).await
    }

    /// Fails with the server's log when either process has died.
    pub fn check_alive(&mut self) -> Result<(), SupportError> {
        self.etcd.check_alive()?;
        self.apiserver.check_alive()
    }
}

/// etcd's loopback ports, kept to start it again where clients expect it.
#[derive(Debug, Clone, Copy)]
struct EtcdPorts {
    client: u16,
    peer: u16,
}

impl EtcdPorts {
    fn client_url(self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    fn peer_url(self) -> String {
        format!("http://127.0.0.1:{}", self.peer)
    }
}

async fn start_etcd(
    assets: &TestAssets,
    root: &Path,
    ports: EtcdPorts,
    log: &Path,
) -> Result<ManagedProcess, SupportError> {
    let client_url = ports.client_url();
    let peer_url = ports.peer_url();
    let mut command = Command::new(assets.etcd()?);
    command
        .arg("--name=homeostat")
        .arg(format!("--data-dir={}", root.join("etcd").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=homeostat={peer_url}"))
        // Test data is thrown away: trade durability for speed.
        .arg("--unsafe-no-fsync")
        .arg("--log-level=warn");
    let mut etcd = ManagedProcess::spawn("etcd", command, log)?;

    let http = reqwest::Client::new();
    let health = format!("{client_url}/health");
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        etcd.check_alive()?;
        if let Ok(response) = http.get(&health).send().await
            && let Ok(body) = response.text().await
            && body.contains("\"health\":\"true\"")
        {
            return Ok(etcd);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SupportError::NotReady {
                what: "etcd",
                timeout: READY_TIMEOUT,
                log_tail: etcd.log_tail(40),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn apiserver_command(binary: &Path, root: &Path, port: u16, etcd_url: &str) -> Command {
    let file = |name: &str| root.join(name).display().to_string();
    let mut command = Command::new(binary);
    command
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg(format!("--cert-dir={}", file("apiserver-certs")))
        .arg(format!("--tls-cert-file={}", file("apiserver.crt")))
        .arg(format!("--tls-private-key-file={}", file("apiserver.key")))
        .arg(format!("--client-ca-file={}", file("ca.crt")))
        .arg(format!(
            "--service-account-key-file={}",
            file("service-account.pub")
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            file("service-account.key")
        ))
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg("--service-cluster-ip-range=10.96.0.0/16")
        .arg("--authorization-mode=RBAC")
        .arg(format!("--audit-policy-file={}", file("audit-policy.yaml")))
        .arg(format!("--audit-log-path={}", file("audit.log")))
        .arg("--audit-log-format=json")
        // Written before the response is sent: a test reads it complete.
        .arg("--audit-log-mode=blocking")
        // No nodes and no controller-manager: nothing would create the
        // ServiceAccount tokens this admission plugin waits for.
        .arg("--disable-admission-plugins=ServiceAccount")
        .arg("--profiling=false")
        .arg("--v=1");
    command
}

/// A kubeconfig for `user` at `server_url`, trusting the CA `ca` and
/// authenticating with `auth`.
pub(crate) fn kubeconfig_yaml(server_url: &str, ca: &Path, user: &str, auth: AuthInfo) -> String {
    let named = |name: &str| name.to_owned();
    let config = Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: named("homeostat"),
            cluster: Some(Cluster {
                server: Some(server_url.to_owned()),
                certificate_authority: Some(ca.display().to_string()),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: named(user),
            auth_info: Some(auth),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: named("homeostat"),
            context: Some(Context {
                cluster: named("homeostat"),
                user: Some(named(user)),
                namespace: Some(named("default")),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(named("homeostat")),
        ..Kubeconfig::default()
    };
    serde_norway::to_string(&config).expect("a kubeconfig serialises")
}

/// The client certificate and key in `pki` (`<stem>.crt`, `<stem>.key`).
pub(crate) fn client_certificate(pki: &Path, stem: &str) -> AuthInfo {
    AuthInfo {
        client_certificate: Some(pki.join(format!("{stem}.crt")).display().to_string()),
        client_key: Some(pki.join(format!("{stem}.key")).display().to_string()),
        ..AuthInfo::default()
    }
}

async fn client_for(kubeconfig_path: &Path) -> Result<kube::Client, SupportError> {
    install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path)
        .map_err(|e| SupportError::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| SupportError::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}

async fn wait_ready(
    client: &kube::Client,
    apiserver: &mut ManagedProcess,
    etcd: &mut ManagedProcess,
) -> Result<(), SupportError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    loop {
        etcd.check_alive()?;
        apiserver.check_alive()?;
        let ready = match client.request_text(readyz_request()).await {
            Ok(body) => {
                body.trim() == "ok" && namespaces.get_opt("default").await.ok().flatten().is_some()
            }
            Err(_) => false,
        };
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SupportError::NotReady {
                what: "kube-apiserver",
                timeout: READY_TIMEOUT,
                log_tail: apiserver.log_tail(40),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn readyz_request() -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = http::Uri::from_static("/readyz");
    request
}

fn write(path: &Path, contents: &str) -> Result<(), SupportError> {
    std::fs::write(path, contents).map_err(SupportError::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_names_its_user_context_and_credentials_as_kubectl_reads_them() {
        let auth = AuthInfo {
            token_file: Some("/tmp/token".into()),
            ..AuthInfo::default()
        };
        let yaml = kubeconfig_yaml(
            "https://127.0.0.1:6443",
            Path::new("/tmp/ca.crt"),
            "op",
            auth,
        );
        for line in [
            "current-context: homeostat",
            "tokenFile: /tmp/token",
            "certificate-authority: /tmp/ca.crt",
            "users:",
        ] {
            assert!(yaml.contains(line), "{line} in {yaml}");
        }
        let parsed = Kubeconfig::from_yaml(&yaml).expect("parses");
        assert_eq!(parsed.auth_infos[0].name, "op");
        let cert = client_certificate(Path::new("/pki"), "admin");
        assert_eq!(cert.client_key.as_deref(), Some("/pki/admin.key"));
    }
}
