//! Developer tasks for homeostat, run as `cargo xtask <task>`.

mod background;
mod cargo_messages;
mod catalogue;
mod cluster;
mod crds;
mod demo;
mod images;
mod kind;
mod nab;
mod system;
mod test;
mod test_assets;
mod test_lanes;
mod test_plan;
mod workspace;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  demo [--scenario FILE] [--json FILE] [--html FILE]
                 run the local self-healing demo (default: tests/scenarios/payment-latency.yaml)
  soak [--quick] [--json FILE]
                 30 minutes of load with a fault every 4 minutes (--quick: the 6-minute
                 CI version); fails if a process's memory or tasks grow, a report stays
                 open or an action is never undone
  catalogue [NAME...]
                 play the fault catalogue (tests/scenarios/catalogue/) on the local stack,
                 and its cluster/ scenarios on the one-node cluster (as root);
                 print top-1 culprit accuracy, time to detect and false reports per
                 scenario; fail below AC@1 0.9 or on a report in a quiet run
  test [--lane demo|suites] [FILTER...]
                 fmt, then one optimised build (clippy's lints with it) in stages:
                 what the local demo needs, then the rest beside the demo runs (at
                 nice 19); the local demo, the cluster demo, then every other test
                 executable and NAB, three at a time
  test-assets    build the Kubernetes commands, etcd, CoreDNS, Prometheus and helm once; print their directory
  control-plane  run etcd + kube-apiserver in the foreground (Ctrl-C stops it)
  cluster up|down
                 a real one-node cluster (kubelet, containerd) on this machine, as root;
                 up prints the kubeconfig path, down removes everything it made
  kind-up        homeostat and the sample OMS on kind (needs docker, kind, kubectl)
  kind-down      delete the kind cluster kind-up made
  crds [--check] write crds/ from the Rust types (--check: fail on drift)
  images [--import SOCKET] [--namespace NS]
                 build the container images with buildah into target/images/; import
                 them into the containerd at SOCKET (namespace k8s.io) when asked
  nab [--min S]  score the detector on the NAB development set; fail below S (65)";

/// The control plane from the release binaries every task shares, so that
/// running it never rebuilds what another task built (a `cargo run` of one
/// package unifies features differently and recompiled shared crates).
fn control_plane(args: &[String]) -> anyhow::Result<()> {
    let assets = test_assets::ensure(&[test_assets::Assets::ControlPlane])?;
    let release = workspace::build_release_bins()?;
    workspace::run(
        std::process::Command::new(release.join("homeostat-control-plane"))
            .env("HOMEOSTAT_TEST_ASSETS", assets)
            .args(args),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match task.as_str() {
        "crds" => crds::run(rest),
        "test-assets" => test_assets::ensure_all().map(|dir| println!("{}", dir.display())),
        "control-plane" => control_plane(rest),
        "test" => test::run(rest),
        "nab" => nab::run(rest),
        "demo" => demo::run(rest),
        "soak" => demo::soak(rest),
        "catalogue" => catalogue::run(rest),
        "images" => images::run(rest),
        "cluster" => cluster::run(rest),
        "kind-up" => kind::up(rest),
        "kind-down" => kind::down(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("unknown task {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask {task}: {err:#}");
            ExitCode::FAILURE
        }
    }
}
