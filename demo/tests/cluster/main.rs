//! The one-node cluster, brought up once for three things in turn:
//! 1. the node itself (`node.rs`): restricted pods scheduled, run, served
//!    through Services and DNS; a second cluster refused;
//! 2. the self-healing loop, as `cargo xtask demo --cluster` runs it:
//!    homeostat and the sample OMS as pods from deploy/overlays/local under
//!    Pod Security `restricted`, and the surge-then-slow-consumer scenario
//!    (tests/scenarios/surge-then-slow-consumer.yaml): first quotes beyond
//!    what tax's two replicas can work through — the scale action must start
//!    a pod that becomes Ready and serves requests, tax must come back inside
//!    its band while the surge is still on (the added capacity, nothing else,
//!    relieved it), and the replicas must be restored after the stable time;
//!    then a notifications consumer too slow for the order events — the
//!    report must name notifications by its consumer lag, and the replica
//!    the scale policy adds must drain the lag while the slow replica is
//!    still slow. Judged on the demo's JSON outcome and on the API server
//!    (the replicas, the policy's holds);
//! 3. the overlay the demo applied (`overlay.rs`): every pod Ready under
//!    the shipped RBAC, never refused, orders taken, Prometheus scraping;
//!
//! then `down`, which must leave nothing behind. Uses the cluster's fixed
//! addresses: no other cluster may run.

use std::path::{Path, PathBuf};
use std::process::Command;

use homeostat_api::RemediationPolicy;
use homeostat_test_support::TestAssets;
use homeostat_test_support::cluster::{self, Cluster, config};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use serde_json::Value;

mod node;
mod overlay;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn time_of(value: &Value) -> Option<jiff::Timestamp> {
    value.as_str()?.parse().ok()
}

fn env_dir(name: &str, how: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{name} is not set: {how} (cargo xtask test does)"))
}

/// Runs the demo on a cluster in `state`; the outcome JSON, or the failure
/// with where its logs are.
fn play_scenario(state: &Path, out: &Path) -> Result<Value, String> {
    let demo = PathBuf::from(env!("CARGO_BIN_EXE_homeostat-demo"));
    let bin_dir = env_dir(
        "HOMEOSTAT_DEMO_BIN_DIR",
        "build the release binaries and point it at target/release",
    );
    let images = env_dir("HOMEOSTAT_IMAGES_DIR", "run `cargo xtask images`");
    let json_path = out.join("outcome.json");
    let status = Command::new(&demo)
        .env("HOMEOSTAT_ROOT", root())
        .arg("--cluster")
        .arg("--cluster-state")
        .arg(state)
        .arg("--images")
        .arg(images)
        .arg("--scenario")
        .arg(root().join("tests/scenarios/surge-then-slow-consumer.yaml"))
        .arg("--json")
        .arg(&json_path)
        .arg("--out-dir")
        .arg(out)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .status()
        .map_err(|e| format!("run homeostat-demo: {e}"))?;
    if !status.success() {
        return Err(format!("the demo failed ({status})"));
    }
    let text = std::fs::read_to_string(&json_path).map_err(|e| format!("outcome JSON: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("outcome JSON: {e}"))
}

fn judge(outcome: &Value, context: &str) {
    // Detected, tax named, nothing else blamed or touched.
    let reports = outcome["reports"].as_array().expect("reports");
    assert!(!reports.is_empty(), "{context}");
    assert_eq!(reports[0]["culprit"], "tax", "{context}");
    assert_eq!(outcome["false_reports"], 0, "{context}");
    assert_eq!(outcome["false_actions"], 0, "{context}");
    let ttd = outcome["ttd_seconds"].as_f64().expect("detected");
    assert!(ttd <= 40.0, "{context}");

    // The first scale action: two Ready pods before, a third started that
    // became Ready and served requests of its own.
    let actions = outcome["actions"].as_array().expect("actions");
    let scale = actions
        .iter()
        .find(|a| {
            a["kind"] == "scale"
                && a["target"] == "tax"
                && a["blocked_by"].is_null()
                && a["dry_run"] == false
        })
        .unwrap_or_else(|| panic!("no scale action on tax: {context}"));
    assert_eq!(scale["target"], "tax", "{context}");
    assert_eq!(
        (&scale["from"], &scale["to"]),
        (&"2".into(), &"3".into()),
        "{context}"
    );
    let pods = &scale["scale"];
    assert_eq!(pods["ready_before"], 2, "{context}");
    assert_eq!(pods["ready_after"], 3, "{context}");
    let new_pods = pods["new_pods"].as_array().expect("new pods");
    assert_eq!(new_pods.len(), 1, "{context}");
    assert!(new_pods[0]["ready_seconds"].as_f64().is_some(), "{context}");
    assert!(
        new_pods[0]["first_request_seconds"].as_f64().is_some(),
        "the new pod served nothing: {context}"
    );

    // tax back inside its band while the surge was still on: the added
    // replica, not the surge's end, relieved it.
    let recovered = outcome["service_recovery_seconds"]
        .as_f64()
        .unwrap_or_else(|| {
            panic!("tax never came back inside its band during the surge: {context}")
        });
    assert!(recovered <= 60.0, "{context}");

    judge_slow_consumer(outcome, actions, context);

    // Restored once tax had been healthy for the policy's 45 s.
    let resolved = reports
        .iter()
        .filter(|r| r["culprit"] == "tax")
        .filter_map(|r| time_of(&r["resolved_at"]))
        .max()
        .unwrap_or_else(|| panic!("a report still open: {context}"));
    let restored = time_of(&scale["restored_at"]).expect("restored");
    assert!(
        (restored - resolved).get_seconds() >= 45,
        "restored before the stable time: {context}"
    );
}

/// The first of the outcome's `list` whose `field` is `value`.
fn first_where<'a>(
    outcome: &'a Value,
    list: &str,
    field: &str,
    value: &str,
    context: &str,
) -> &'a Value {
    outcome[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}: {context}"))
        .iter()
        .find(|item| item[field] == value)
        .unwrap_or_else(|| panic!("none of the {list} has {field} {value}: {context}"))
}

/// The slow consumer: named by its lag, scaled, and drained by the new
/// replica while the fault was still on.
fn judge_slow_consumer(outcome: &Value, actions: &[Value], context: &str) {
    let fault = first_where(outcome, "faults", "service", "notifications", context);
    let fault_end = time_of(&fault["ended_at"]).expect("the fault ended");
    let report = first_where(outcome, "reports", "culprit", "notifications", context);
    assert_eq!(report["signal"], "consumer_lag", "{context}");
    let scale = actions
        .iter()
        .find(|a| {
            a["target"] == "notifications" && a["kind"] == "scale" && a["blocked_by"].is_null()
        })
        .unwrap_or_else(|| panic!("notifications was not scaled: {context}"));
    assert_eq!(
        (&scale["from"], &scale["to"]),
        (&"1".into(), &"2".into()),
        "{context}"
    );
    assert_eq!(scale["scale"]["ready_after"], 2, "{context}");
    // Calm again (the report's resolution dates from the first calm tick)
    // after the new replica came and before the slow one was healed.
    let calm = time_of(&report["resolved_at"])
        .unwrap_or_else(|| panic!("the lag never drained: {context}"));
    let scaled = time_of(&scale["at"]).expect("scaled at");
    assert!(scaled < calm && calm < fault_end, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_runs_restricted_pods_heals_a_tax_surge_with_a_new_pod_and_down_leaves_nothing()
{
    homeostat_test_support::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("cluster");
    let out = dir.path().join("demo");
    let images = env_dir("HOMEOSTAT_IMAGES_DIR", "run `cargo xtask images`");
    let cluster = Cluster::new(&state);
    let assets = TestAssets::locate().expect("test assets");
    // One bring-up for everything below: the node's own checks, the demo
    // (which finds the cluster up and applies the overlay to it), then the
    // overlay's checks on what the demo left running.
    let up = cluster.up(&assets, &images).await;
    let phases = match &up {
        Ok(()) => Some(
            tokio::spawn({
                let (cluster, state, out) = (cluster.clone(), state.clone(), out.clone());
                async move {
                    node::exercise(&cluster, &images).await;
                    let played = tokio::task::spawn_blocking(move || play_scenario(&state, &out))
                        .await
                        .expect("join");
                    let after = after_the_demo(&cluster).await;
                    if played.is_ok() {
                        overlay::check(&cluster).await;
                    }
                    (played, after)
                }
            })
            .await,
        ),
        Err(_) => None,
    };
    // Keep the logs for a failure's post-mortem, then take the cluster down
    // whatever happened above, then judge.
    let kept = std::env::temp_dir().join("homeostat-e2e-cluster-logs");
    let _ = std::fs::remove_dir_all(&kept);
    let _ = Command::new("cp")
        .arg("-r")
        .arg(out.join("logs"))
        .arg(&kept)
        .status();
    let _ = Command::new("cp")
        .arg("-r")
        .arg(state.join("logs"))
        .arg(kept.join("cluster"))
        .status();
    for file in ["outcome.json", "report.html"] {
        let _ = std::fs::copy(out.join(file), kept.join(file));
    }
    if up.is_ok() {
        keep_pod_logs(&cluster, &kept.join("pods")).await;
    }
    cluster.down().await.expect("cluster down");
    up.expect("cluster up");
    let (played, after) = match phases.expect("phases ran") {
        Ok(results) => results,
        Err(panic) => std::panic::resume_unwind(panic.into_panic()),
    };

    let context = |outcome: &str| format!("{outcome}\nlogs in {}", kept.display());
    let outcome = played.unwrap_or_else(|e| panic!("{}", context(&e)));
    judge(&outcome, &context(&outcome.to_string()));
    let (replicas, holds) = after.unwrap_or_else(|e| panic!("{}", context(&e)));
    assert_eq!(replicas, Some(2), "tax restored to two replicas");
    assert_eq!(holds, 0, "the policy holds nothing once restored");
    assert!(out.join("report.html").is_file());

    // Down left nothing: no process, mount, chain, link or namespace.
    let state_text = state.display().to_string();
    assert_eq!(
        cluster::processes_mentioning(&state_text),
        Vec::<u32>::new()
    );
    assert!(!state.exists(), "the state directory is gone");
    assert_eq!(cluster::mounts_under(&state), Vec::<String>::new());
    assert_eq!(cluster::leftover_chains(), Vec::<String>::new());
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(config::BRIDGE), "{links}");
    assert!(!links.contains("veth"), "{links}");
    let netns: Vec<_> = std::fs::read_dir("/var/run/netns")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !netns
            .iter()
            .any(|n| n.to_string_lossy().starts_with("cni-")),
        "{netns:?}"
    );
}

/// The API server's view once the demo is over, while the cluster still
/// runs: tax's replicas and the scale policy's holds.
/// Every running container's log, as `namespace_pod_container.log` in
/// `into`: the OMS's, the detector's and the operator's side of a failure.
/// Best effort: a post-mortem must not hide the failure it explains.
async fn keep_pod_logs(cluster: &Cluster, into: &Path) {
    let Ok(client) = cluster.client().await else {
        return;
    };
    let pods = Api::<Pod>::all(client.clone());
    let Ok(list) = pods.list(&Default::default()).await else {
        return;
    };
    let _ = std::fs::create_dir_all(into);
    for pod in list {
        let (Some(namespace), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
            continue;
        };
        let containers = pod.spec.map(|s| s.containers).unwrap_or_default();
        let api = Api::<Pod>::namespaced(client.clone(), &namespace);
        for container in containers {
            let params = LogParams {
                container: Some(container.name.clone()),
                timestamps: true,
                ..Default::default()
            };
            if let Ok(text) = api.logs(&name, &params).await {
                let file = into.join(format!("{namespace}_{name}_{}.log", container.name));
                let _ = std::fs::write(file, text);
            }
        }
    }
}

async fn after_the_demo(cluster: &Cluster) -> Result<(Option<i32>, usize), String> {
    let client = cluster.client().await.map_err(|e| e.to_string())?;
    let tax = Api::<Deployment>::namespaced(client.clone(), "shop")
        .get("tax")
        .await
        .map_err(|e| e.to_string())?;
    let holds = Api::<RemediationPolicy>::namespaced(client.clone(), "shop")
        .get("scale-tax")
        .await
        .map_err(|e| e.to_string())?
        .status
        .map(|s| s.active.len())
        .unwrap_or(0);
    Ok((tax.spec.and_then(|s| s.replicas), holds))
}
