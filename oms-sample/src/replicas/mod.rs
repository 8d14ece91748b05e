//! `oms up --replicas N`: every service as N child processes (`oms
//! <service>`, as in a pod), each restarted when it dies, calling its peers'
//! replicas directly (`--peer`), with a front door per service for callers
//! from outside. Lets replica safety and crashes be exercised without a
//! cluster.

pub mod front;
pub mod layout;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use homeostat_api::oms::OMS_SERVICES;
use tokio::net::TcpListener;
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::throwaway::dies_with_this_process;
use crate::up::{DRAIN_TIERS, drain_tier};
use layout::{Layout, Replica};

/// How every child is started.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The `oms` binary.
    pub program: PathBuf,
    /// Flags every child gets after its service's name.
    pub args: Vec<String>,
    /// Environment every child gets: what must not show in `ps` (database
    /// URL, admin token).
    pub env: Vec<(String, String)>,
    /// How long a child may take to drain once asked to stop.
    pub shutdown_grace: Duration,
}

/// How long every replica gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// A child that ran this long before dying starts over from the shortest delay.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Runs `layout` until `shutdown` fires, then stops the children callers
/// first (see [`drain_tier`]).
pub async fn run(
    layout: Layout,
    spec: ChildSpec,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Every port is checked before any child starts, so a taken port is one
    // clear error rather than a child restarting forever.
    let mut fronts = Vec::new();
    for service in OMS_SERVICES.iter().copied() {
        let address = layout.front(service).context("every service has a front")?;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("{service} cannot listen on {address}"))?;
        fronts.push((service, listener));
    }
    for replica in layout.replicas() {
        drop(TcpListener::bind(replica.address).await.with_context(|| {
            format!("{} cannot listen on {}", replica.label(), replica.address)
        })?);
    }

    let peers = Arc::new(peer_flags(&layout));
    let spec = Arc::new(spec);
    let stops: Vec<watch::Sender<bool>> =
        (0..DRAIN_TIERS).map(|_| watch::channel(false).0).collect();
    let mut tiers: Vec<JoinSet<()>> = (0..DRAIN_TIERS).map(|_| JoinSet::new()).collect();
    for replica in layout.replicas() {
        let tier = drain_tier(replica.service);
        tiers[tier].spawn(keep_running(
            replica,
            spec.clone(),
            peers.clone(),
            stops[tier].subscribe(),
        ));
    }

    let ready = tokio::select! {
        ready = all_ready(&layout) => ready,
        _ = shutdown.wait_for(|s| *s) => Ok(()),
    };
    let (front_stop, _) = watch::channel(false);
    if ready.is_ok() && !*shutdown.borrow() {
        for (service, listener) in fronts {
            let replicas = layout
                .replicas_of(service)
                .iter()
                .map(|r| r.address)
                .collect();
            println!("{service:<18} http://{}", listener.local_addr()?);
            tokio::spawn(front::relay(listener, replicas, front_stop.subscribe()));
        }
        println!(
            "oms: {} service(s) ready, {} replica(s) each",
            OMS_SERVICES.len(),
            layout.replicas_of("orders").len()
        );
        let _ = shutdown.wait_for(|s| *s).await;
    }

    println!(
        "oms: stopping; draining for up to {:?}",
        spec.shutdown_grace
    );
    let _ = front_stop.send(true);
    for (stop, mut children) in stops.iter().zip(tiers) {
        let _ = stop.send(true);
        while children.join_next().await.is_some() {}
    }
    ready
}

/// `--peer SERVICE=URL,URL…` for every service: each child calls its
/// peers' replicas directly, not through the front doors.
fn peer_flags(layout: &Layout) -> Vec<String> {
    OMS_SERVICES
        .iter()
        .flat_map(|service| {
            let urls: Vec<String> = layout
                .replicas_of(service)
                .iter()
                .map(Replica::url)
                .collect();
            ["--peer".to_owned(), format!("{service}={}", urls.join(","))]
        })
        .collect()
}

/// Starts `replica` and starts it again whenever it exits, until `stop` fires.
async fn keep_running(
    replica: Replica,
    spec: Arc<ChildSpec>,
    peers: Arc<Vec<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*stop.borrow() {
        let started = Instant::now();
        let exited = match spawn(&replica, &spec, &peers) {
            Ok(mut child) => {
                println!(
                    "{:<18} {} (pid {})",
                    replica.label(),
                    replica.url(),
                    child.id().unwrap_or_default()
                );
                tokio::select! {
                    status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    () = stopped(&mut stop) => {
                        terminate(&mut child, spec.shutdown_grace).await;
                        return;
                    }
                }
            }
            Err(err) => format!("could not start: {err}"),
        };
        if started.elapsed() >= HEALTHY_RUN {
            failures = 0;
        }
        let delay = restart_delay(failures);
        failures = failures.saturating_add(1);
        println!(
            "oms: {} exited ({exited}); restarting in {delay:?}",
            replica.label()
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once `stop` fires; holds no borrow of its value.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn spawn(replica: &Replica, spec: &ChildSpec, peers: &[String]) -> std::io::Result<Child> {
    // A SIGKILLed supervisor runs no destructor: its children get SIGTERM.
    let mut command = tokio::process::Command::from(dies_with_this_process(&spec.program, "TERM"));
    command
        .arg(replica.service)
        .arg("--listen")
        .arg(replica.address.to_string())
        .args(peers)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        // Its URL line is printed here, with the replica's name.
        .stdout(Stdio::null())
        // Its own process group: Ctrl-C in a terminal reaches the supervisor
        // alone, which then stops the children callers first.
        .process_group(0)
        .kill_on_drop(true);
    command.spawn()
}

/// SIGTERM, so the child drains; SIGKILL if it is still there after its
/// grace period and a little more.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(grace + Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// The pause before restarting a child that exited after `failures` quick
/// exits in a row: 250 ms, doubling up to 10 s.
pub fn restart_delay(failures: u32) -> Duration {
    Duration::from_millis(250)
        .saturating_mul(1 << failures.min(6))
        .min(Duration::from_secs(10))
}

async fn all_ready(layout: &Layout) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + READY_TIMEOUT;
    for replica in layout.replicas() {
        let url = format!("{}/readyz", replica.url());
        loop {
            match http.get(&url).timeout(Duration::from_secs(2)).send().await {
                Ok(response) if response.status().is_success() => break,
                _ if Instant::now() >= deadline => anyhow::bail!(
                    "{} was not ready within {READY_TIMEOUT:?} (its log is above)",
                    replica.label()
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_to_ten_seconds() {
        let delays: Vec<u64> = [0, 1, 2, 5, 6, 7, 40, u32::MAX]
            .iter()
            .map(|f| restart_delay(*f).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [250, 500, 1_000, 8_000, 10_000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn children_call_every_replica_of_their_peers() {
        let flags = peer_flags(&Layout::new(9000, 2).expect("layout"));
        assert_eq!(flags.len(), 2 * OMS_SERVICES.len());
        assert_eq!(flags[0], "--peer");
        assert_eq!(
            flags[1],
            "orders=http://127.0.0.1:9008,http://127.0.0.1:9016"
        );
        assert_eq!(
            flags[15],
            "returns=http://127.0.0.1:9015,http://127.0.0.1:9023"
        );
    }
}
