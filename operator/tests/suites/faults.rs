//! The fault suite, on a real API server: the operator killed at each point
//! of a step, and the API server and etcd restarted in the middle of a
//! remediation. Each time the outcome is checked, not a counter: the
//! workload is scaled exactly once (a doubled step would leave it one
//! replica higher) and put back after the report resolves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use homeostat_operator::crash::{CRASH_AT_ENV, CrashPoint};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One step of one replica up to at most 5, then nothing for an hour: a
/// second step could only come from a step done twice.
fn one_step_policy() -> serde_json::Value {
    json!({
        "services": {"names": ["tax"]},
        "trigger": {"signals": ["latency_p99"], "minScore": 0.8},
        "actions": [{"scale": {"step": 1, "minReplicas": 1, "maxReplicas": 5}}],
        "guards": {"cooldown": "1h", "maxActionsPerHour": 10},
        "stableFor": "2s"
    })
}

/// A control plane with namespace `shop`: tax at 2 replicas under
/// [`one_step_policy`].
async fn shop_with_one_step_policy() -> (homeostat_test_support::ControlPlane, kube::Client) {
    let (plane, client) = plane().await;
    namespace(&client, OPERATOR_NAMESPACE).await;
    namespace(&client, "shop").await;
    deployment(&client, "shop", "tax", 2).await;
    policy(&client, "shop", "scale-tax", one_step_policy()).await;
    (plane, client)
}

/// The step done once, recorded once, nothing pending: in the workload, the
/// policy and the report.
async fn stepped_once(client: &kube::Client, ns: &str, report: &str, operator: &Operator) {
    wait_replicas(client, ns, "tax", 3).await;
    eventually("the step recorded done", 60, || async {
        let status = get_policy(client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        match status.active.as_slice() {
            [active] if active.pending.is_none() && active.steps == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually("the report tells of one step done", 60, || async {
        let actions = get_report(client, ns, report)
            .await
            .status
            .map(|s| s.actions)
            .unwrap_or_default();
        let done: Vec<_> = actions.iter().filter(|a| a.done_at.is_some()).collect();
        match done.as_slice() {
            [one] if one.target == "deployment/tax 2→3" => Ok(()),
            _ => Err(format!("{actions:?}")),
        }
    })
    .await;
    // Passes after the step change nothing more.
    operator.wait_reconciles(5.0).await;
    assert_eq!(replicas(client, ns, "tax").await, 3, "the step was doubled");
    let status = get_policy(client, ns, "scale-tax")
        .await
        .status
        .expect("status");
    assert_eq!(status.actions_taken, 1, "{status:?}");
}

/// Resolved: tax back at 2, the policy holds nothing, the report says restored.
async fn restored(client: &kube::Client, ns: &str, report: &str) {
    wait_replicas(client, ns, "tax", 2).await;
    holds_nothing(client, ns).await;
    eventually("the report says restored", 60, || async {
        let actions = get_report(client, ns, report)
            .await
            .status
            .map(|s| s.actions)
            .unwrap_or_default();
        if actions
            .iter()
            .filter(|a| a.done_at.is_some())
            .all(|a| a.restored_at.is_some())
        {
            Ok(())
        } else {
            Err(format!("{actions:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_each_point_of_a_step_the_operator_neither_doubles_nor_loses_it() {
    let (plane, client) = plane().await;
    namespace(&client, OPERATOR_NAMESPACE).await;
    for point in CrashPoint::ALL {
        let ns = format!("crash-{}", point.name());
        namespace(&client, &ns).await;
        deployment(&client, &ns, "tax", 2).await;
        policy(&client, &ns, "scale-tax", one_step_policy()).await;

        let mut doomed = Operator::start_with_env(
            &plane,
            &format!("doomed-{}", point.name()),
            &[(CRASH_AT_ENV, point.name())],
        );
        let report = open_report(&client, &ns, "tax").await;
        let exit = doomed.exited(60).await;
        assert!(!exit.success(), "{}: {exit:?}", point.name());
        let expected = match point {
            CrashPoint::BeforeChange => 2,
            CrashPoint::AfterChange | CrashPoint::AfterReport => 3,
        };
        assert_eq!(
            replicas(&client, &ns, "tax").await,
            expected,
            "killed {}",
            point.name()
        );

        // Another operator takes over once the dead one's Lease runs out.
        let survivor = Operator::start(&plane, &format!("survivor-{}", point.name()), &[]);
        stepped_once(&client, &ns, &report, &survivor).await;
        resolve(&client, &ns, &report).await;
        restored(&client, &ns, &report).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_and_etcd_restarting_mid_remediation_lose_nothing() {
    let (mut plane, client) = shop_with_one_step_policy().await;
    let ns = "shop";
    let operator = Operator::start(&plane, "a", &[]);
    operator.wait_reconciles(2.0).await;

    // The API server goes away as the step begins.
    let report = open_report(&client, ns, "tax").await;
    plane
        .restart_apiserver()
        .await
        .unwrap_or_else(|e| panic!("restart kube-apiserver: {e}"));
    stepped_once(&client, ns, &report, &operator).await;

    // etcd goes away as the restore begins.
    resolve(&client, ns, &report).await;
    plane
        .restart_etcd()
        .await
        .unwrap_or_else(|e| panic!("restart etcd: {e}"));
    restored(&client, ns, &report).await;
    assert_eq!(
        get_policy(&client, ns, "scale-tax")
            .await
            .status
            .expect("status")
            .actions_taken,
        1
    );
}

/// A TCP relay in front of the API server that can cut its clients off
/// (open connections dropped, new ones refused) and let them back: a
/// network partition between one process and the control plane.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepting: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("https://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (is_cut, open) = (cut.clone(), connections.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let relayed = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().expect("lock").push(relayed);
            }
        });
        Self {
            port,
            cut,
            connections,
            accepting,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_stops_before_the_other_takes_over() {
    let (plane, client) = shop_with_one_step_policy().await;
    let ns = "shop";

    // Operator a reaches the API server through the relay, b directly.
    let relay = Relay::start(plane.server_url()).await;
    let kubeconfig = std::fs::read_to_string(plane.kubeconfig_path())
        .expect("kubeconfig")
        .replace(
            plane.server_url(),
            &format!("https://127.0.0.1:{}", relay.port),
        );
    let relayed = plane.dir().join("kubeconfig-relayed");
    std::fs::write(&relayed, kubeconfig).expect("write kubeconfig");
    let relayed = relayed.to_str().expect("path").to_owned();
    let a = Operator::start_with_env(&plane, "a", &[("KUBECONFIG", relayed.as_str())]);
    let leader = "homeostat_operator_leader";
    eventually("a leads", 60, || async {
        match a.metric(leader).await {
            Ok(1.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let b = Operator::start(&plane, "b", &[]);
    eventually("b follows", 60, || async {
        match b.metric(leader).await {
            Ok(0.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    relay.cut();
    let cut_at = Instant::now();
    let (mut a_stopped, mut b_started) = (None, None);
    while b_started.is_none() && cut_at.elapsed() < Duration::from_secs(30) {
        if a_stopped.is_none() && a.metric(leader).await == Ok(0.0) {
            a_stopped = Some(cut_at.elapsed());
        }
        if b.metric(leader).await == Ok(1.0) {
            b_started = Some(cut_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("after the cut: a stopped at {a_stopped:?}, b started at {b_started:?}");
    let b_started = b_started.expect("b took over within 30 s");
    let a_stopped = a_stopped.expect("a stopped acting");
    assert!(a_stopped < b_started, "{a_stopped:?} vs {b_started:?}");
    // Within the Lease's 3 s, plus b's time to notice.
    assert!(b_started < Duration::from_secs(8), "{b_started:?}");

    // The new leader acts; a, let back, stays a follower and adds nothing.
    let report = open_report(&client, ns, "tax").await;
    stepped_once(&client, ns, &report, &b).await;
    relay.heal();
    b.wait_reconciles(10.0).await;
    assert_eq!(a.metric(leader).await, Ok(0.0));
    assert_eq!(replicas(&client, ns, "tax").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_deleted_and_recreated_mid_remediation_is_left_to_its_new_owner() {
    let (plane, client) = shop_with_one_step_policy().await;
    let ns = "shop";
    let operator = Operator::start(&plane, "a", &[]);
    let report = open_report(&client, ns, "tax").await;
    stepped_once(&client, ns, &report, &operator).await;

    // Someone deletes tax and makes it again while the report is open, at
    // the very count the policy left (3): only its uid tells it apart.
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), ns);
    deployments
        .delete("tax", &Default::default())
        .await
        .expect("delete tax");
    eventually("the policy says its target is gone", 60, || async {
        let status = get_policy(&client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        let invalid = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Invalid")
            .ok_or("no Invalid condition")?;
        if invalid.status == "True" && invalid.message.contains("deployment/tax") {
            Ok(())
        } else {
            Err(format!("{invalid:?}"))
        }
    })
    .await;
    deployment(&client, ns, "tax", 3).await;

    // The new tax is not the policy's: recorded as changed by others, never
    // scaled while the report stays open, never "restored".
    eventually("the new tax recorded as someone else's", 60, || async {
        let status = get_policy(&client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        match status.active.as_slice() {
            [active] if active.changed_by_others.is_some() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    operator.wait_reconciles(5.0).await;
    assert_eq!(
        replicas(&client, ns, "tax").await,
        3,
        "the new tax was scaled"
    );

    // Resolved: left at 3, not "restored" to the old tax's 2.
    resolve(&client, ns, &report).await;
    holds_nothing(&client, ns).await;
    operator.wait_reconciles(3.0).await;
    assert_eq!(replicas(&client, ns, "tax").await, 3);
    assert!(
        event_reasons(&client, ns, &report)
            .await
            .iter()
            .any(|r| r == "ChangedByOthers")
    );
}
