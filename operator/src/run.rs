//! The operator process: leader election, controllers, telemetry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube_lease_manager::LeaseManagerBuilder;

use crate::fence::{Fence, LeaseSeen};
use crate::metrics::OperatorMetrics;
use crate::order_system;
use crate::remediation::controller::{self, Context};
use crate::scope::WatchScope;
use homeostat_telemetry::metrics_server::router;

#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Where the leader Lease lives, and whose annotation is the kill switch.
    pub namespace: String,
    pub lease_name: String,
    /// This process, in the Lease and in Events.
    pub identity: String,
    pub kill_switch: bool,
    /// The namespaces the controllers watch.
    pub scope: WatchScope,
    pub listen: SocketAddr,
    pub resync: Duration,
    pub lease_seconds: u64,
    /// The web console, on every replica (it reads, and acts, through the
    /// API server), when configured.
    pub console: Option<crate::console::ConsoleConfig>,
}

/// Runs until `shutdown` completes: acts only while it holds the Lease.
pub async fn run(
    config: OperatorConfig,
    client: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(OperatorMetrics::default());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen on {}", config.listen))?;
    let server = tokio::spawn(axum::serve(listener, router(metrics.clone())).into_future());
    let console = config
        .console
        .clone()
        .map(|console| tokio::spawn(crate::console::serve(client.clone(), console)));
    let lease = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.lease_seconds)
        .with_grace((config.lease_seconds / 3).max(1))
        .build()
        .await
        .context("set up the leader Lease")?;
    let (leading, lease_task) = lease.watch().await;
    let grace = Duration::from_secs((config.lease_seconds / 3).max(1));
    let (mut leading, fence_task) = fenced(
        Api::namespaced(client.clone(), &config.namespace),
        &config,
        grace,
        leading,
    );
    metrics.set_ready(true);
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "homeostat-operator".into(),
                instance: Some(config.identity.clone()),
            },
        ),
        client,
        kill_switch: config.kill_switch,
        operator_namespace: config.namespace.clone(),
        metrics: metrics.clone(),
        resync: config.resync,
        failures: Default::default(),
        marked: Default::default(),
    });
    tokio::pin!(shutdown);
    loop {
        if *leading.borrow_and_update() {
            tracing::info!(identity = %config.identity, "leading: controllers start");
            metrics.leader.set(1);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let systems_ctx = Arc::new(order_system::controller::Context {
                client: ctx.client.clone(),
                recorder: ctx.recorder.clone(),
                resync: Duration::from_secs(30),
                metrics: metrics.clone(),
                failures: Default::default(),
                marked: Default::default(),
            });
            // One of each controller per watched namespace (one in all for
            // the whole cluster).
            let mut controllers = tokio::task::JoinSet::new();
            for namespace in config.scope.partitions() {
                controllers.spawn(controller::run(
                    ctx.clone(),
                    namespace.clone(),
                    until_stopped(stopped.clone()),
                ));
                controllers.spawn(order_system::controller::run(
                    systems_ctx.clone(),
                    namespace,
                    until_stopped(stopped.clone()),
                ));
            }
            let lost = async {
                while leading.changed().await.is_ok() {
                    if !*leading.borrow() {
                        return;
                    }
                }
            };
            let done = tokio::select! {
                () = &mut shutdown => true,
                () = lost => false,
            };
            let _ = stop.send(true);
            controllers.join_all().await;
            metrics.leader.set(0);
            if done {
                break;
            }
            tracing::warn!("lost the Lease: controllers stopped");
        } else {
            tokio::select! {
                () = &mut shutdown => break,
                changed = leading.changed() => if changed.is_err() { break },
            }
        }
    }
    // Dropping the receiver ends the fence, whose end drops the lease
    // manager's receiver: the lease task then releases the Lease.
    drop(leading);
    let _ = fence_task.await;
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    server.abort();
    if let Some(console) = console {
        console.abort();
    }
    Ok(())
}

/// Whether to act: the lease manager's word, fenced by this process's own
/// reads of the Lease (see [`Fence`]).
fn fenced(
    leases: Api<Lease>,
    config: &OperatorConfig,
    grace: Duration,
    mut leading: tokio::sync::watch::Receiver<bool>,
) -> (
    tokio::sync::watch::Receiver<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (acting, rx) = tokio::sync::watch::channel(false);
    let lease_name = config.lease_name.clone();
    let identity = config.identity.clone();
    let mut fence = Fence::new(Duration::from_secs(config.lease_seconds), grace);
    // Often enough to see each renewal well before the fence closes.
    let poll = (grace / 10).max(Duration::from_millis(100));
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = acting.closed() => break,
                changed = leading.changed() => if changed.is_err() { break },
                // Only a leader needs to check: a standby reads nothing.
                _ = ticks.tick(), if *leading.borrow() => {
                    let seen = match tokio::time::timeout(poll, leases.get_opt(&lease_name)).await {
                        Ok(Ok(lease)) => lease_seen(lease, &identity),
                        Ok(Err(_)) | Err(_) => LeaseSeen::Unreadable,
                    };
                    fence.saw(seen);
                }
            }
            let act = *leading.borrow() && fence.holds(SystemTime::now());
            acting.send_if_modified(|was| std::mem::replace(was, act) != act);
        }
    });
    (rx, task)
}

fn lease_seen(lease: Option<Lease>, identity: &str) -> LeaseSeen {
    let Some(spec) = lease.and_then(|l| l.spec) else {
        return LeaseSeen::NotOurs;
    };
    match (spec.holder_identity, spec.renew_time) {
        (Some(holder), Some(renewed)) if holder == identity => LeaseSeen::Ours {
            renewed: SystemTime::from(renewed.0),
        },
        _ => LeaseSeen::NotOurs,
    }
}
