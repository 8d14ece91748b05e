//! `homeostat-operator`: carries out RemediationPolicies (leader-elected).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use homeostat_operator::run::{OperatorConfig, run};
use homeostat_operator::scope::WatchScope;
use homeostat_telemetry::LogFormat;

#[derive(Parser)]
#[command(name = "homeostat-operator", version, about = "The homeostat operator")]
struct Cli {
    /// Namespace of the leader Lease; its annotation homeostat.dev/kill-switch="true" stops every action.
    #[arg(
        long,
        env = "HOMEOSTAT_OPERATOR_NAMESPACE",
        default_value = "homeostat-system"
    )]
    namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "homeostat-operator")]
    lease_name: String,
    /// This process's identity (defaults to the pod name, else the host name and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Take no action at all (plans are still recorded as blocked).
    #[arg(long)]
    kill_switch: bool,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9465")]
    listen: SocketAddr,
    /// Seconds between looks at a policy when nothing changes.
    #[arg(long, default_value_t = 5)]
    resync_seconds: u64,
    /// Lease duration in seconds (a new leader takes over within this time).
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Watch only these namespaces (comma-separated), each with controllers
    /// of its own: the operator then lists and watches nothing outside
    /// them. Every namespace when unset.
    #[arg(long, env = "HOMEOSTAT_WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Serve the web console for people on call here (off when unset).
    #[arg(long, env = "HOMEOSTAT_CONSOLE_LISTEN")]
    console_listen: Option<SocketAddr>,
    /// Prometheus's base URL, for the console's charts.
    #[arg(
        long,
        env = "HOMEOSTAT_CONSOLE_PROMETHEUS",
        requires = "console_listen"
    )]
    console_prometheus: Option<String>,
    /// Grafana's base URL, for the console's links to a service's dashboard.
    #[arg(long, env = "HOMEOSTAT_CONSOLE_GRAFANA", requires = "console_listen")]
    console_grafana: Option<String>,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "HOMEOSTAT_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _telemetry = match homeostat_telemetry::init("homeostat-operator", cli.log_format) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("homeostat-operator: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let identity = cli.identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "homeostat".into());
        format!("{}-{}", host.trim(), std::process::id())
    });
    let scope = match WatchScope::from_names(&cli.watch_namespaces) {
        Ok(scope) => scope,
        Err(err) => {
            eprintln!("homeostat-operator: {err}");
            return ExitCode::from(2);
        }
    };
    let config = OperatorConfig {
        scope,
        namespace: cli.namespace,
        lease_name: cli.lease_name,
        identity,
        kill_switch: cli.kill_switch,
        listen: cli.listen,
        resync: Duration::from_secs(cli.resync_seconds.max(1)),
        lease_seconds: cli.lease_seconds.max(3),
        console: cli
            .console_listen
            .map(|listen| homeostat_operator::console::ConsoleConfig {
                listen,
                prometheus: cli.console_prometheus,
                grafana: cli.console_grafana,
            }),
    };
    let result = tokio::runtime::Runtime::new()
        .context("start the async runtime")
        .and_then(|rt| {
            rt.block_on(async move {
                let client = kube::Client::try_default()
                    .await
                    .context("connect to the Kubernetes API (KUBECONFIG or in-cluster)")?;
                // SIGTERM or Ctrl-C: finish the pass, release the Lease, exit.
                run(config, client, homeostat_telemetry::shutdown::requested()).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("homeostat-operator: {err:#}");
            ExitCode::FAILURE
        }
    }
}
