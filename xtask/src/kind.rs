//! `cargo xtask kind-up` and `kind-down`: homeostat and the sample OMS on a
//! kind cluster, for a machine with docker, kind and kubectl. `kind-up`
//! checks them first, creates the cluster `homeostat` unless it exists,
//! builds the three images with the root `Dockerfile`, loads them into the
//! cluster, applies the CRDs and then `deploy/overlays/kind`, waits for
//! homeostat's Deployments and the OrderSystem to be Ready, and says how to
//! open Prometheus and how to start a drill. `kind-down` deletes the cluster.
//! Neither can run on a machine without docker (this project's CI); the
//! manifests they apply are checked on the one-node cluster instead.

use std::process::Command;

use anyhow::bail;

use crate::workspace;

const CLUSTER: &str = "homeostat";
const CONTEXT: &str = "kind-homeostat";

/// The Dockerfile's targets and the references the manifests use.
fn images() -> [(&'static str, String); 3] {
    let version = env!("CARGO_PKG_VERSION");
    [
        ("oms", format!("ghcr.io/homeostat-dev/oms-sample:{version}")),
        (
            "operator",
            format!("ghcr.io/homeostat-dev/homeostat-operator:{version}"),
        ),
        (
            "detector",
            format!("ghcr.io/homeostat-dev/homeostat-detector:{version}"),
        ),
    ]
}

/// A program kind-up or kind-down needs, and where to get it.
struct Prerequisite {
    program: &'static str,
    get: &'static str,
}

const DOCKER: Prerequisite = Prerequisite {
    program: "docker",
    get: "Docker Engine (https://docs.docker.com/engine/install/), running, usable by this user",
};
const KIND: Prerequisite = Prerequisite {
    program: "kind",
    get: "kind 0.20 or newer (`go install sigs.k8s.io/kind@latest`)",
};
const KUBECTL: Prerequisite = Prerequisite {
    program: "kubectl",
    get: "kubectl 1.27 or newer (`cargo xtask test-assets` builds one into target/test-assets/)",
};

/// What of `needed` is missing, as lines to print; `found` says whether a
/// program is on the PATH, `docker_answers` whether the daemon does.
fn missing(
    needed: &[&Prerequisite],
    found: impl Fn(&str) -> bool,
    docker_answers: impl Fn() -> bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    for prerequisite in needed {
        if !found(prerequisite.program) {
            lines.push(format!(
                "`{}` is not on the PATH: install {}",
                prerequisite.program, prerequisite.get
            ));
        } else if prerequisite.program == "docker" && !docker_answers() {
            lines.push(
                "`docker info` fails: start the Docker daemon, or add this user to the `docker` group"
                    .to_owned(),
            );
        }
    }
    lines
}

fn check(needed: &[&Prerequisite]) -> anyhow::Result<()> {
    let lines = missing(
        needed,
        |program| workspace::which(program).is_some(),
        || {
            Command::new("docker")
                .arg("info")
                .output()
                .is_ok_and(|o| o.status.success())
        },
    );
    if !lines.is_empty() {
        bail!("cannot run on this machine:\n  - {}", lines.join("\n  - "));
    }
    Ok(())
}

/// One command of kind-up, with what it does in words.
#[derive(Debug, PartialEq, Eq)]
struct Step {
    what: String,
    program: &'static str,
    args: Vec<String>,
}

fn step(what: impl Into<String>, program: &'static str, args: &[&str]) -> Step {
    Step {
        what: what.into(),
        program,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// Everything after the cluster exists, in order.
fn steps() -> Vec<Step> {
    let mut steps = Vec::new();
    for (target, reference) in images() {
        steps.push(step(
            format!("building {reference}"),
            "docker",
            &["build", "--target", target, "-t", &reference, "."],
        ));
    }
    let references: Vec<String> = images().into_iter().map(|(_, r)| r).collect();
    let mut load = step(
        "loading the images into kind",
        "kind",
        &["load", "docker-image", "--name", CLUSTER],
    );
    load.args.extend(references);
    steps.push(load);
    let kubectl = |what: &str, args: &[&str]| {
        let mut all = vec!["--context", CONTEXT];
        all.extend_from_slice(args);
        step(what, "kubectl", &all)
    };
    // The CRDs first, so the custom resources of the overlay are known.
    steps.push(kubectl(
        "applying the CRDs",
        &["apply", "--server-side", "-k", "crds/"],
    ));
    steps.push(kubectl(
        "waiting for the CRDs",
        &[
            "wait",
            "--for",
            "condition=established",
            "crd",
            "--all",
            "--timeout=60s",
        ],
    ));
    steps.push(kubectl(
        "applying deploy/overlays/kind",
        &["apply", "--server-side", "-k", "deploy/overlays/kind"],
    ));
    for deployment in [
        "homeostat-operator",
        "homeostat-detector",
        "prometheus",
        "grafana",
    ] {
        steps.push(kubectl(
            &format!("waiting for {deployment}"),
            &[
                "-n",
                "homeostat-system",
                "rollout",
                "status",
                &format!("deployment/{deployment}"),
                "--timeout=300s",
            ],
        ));
    }
    steps.push(kubectl(
        "waiting for the sample OMS (its PostgreSQL and NATS pulled and started)",
        &[
            "-n",
            "shop",
            "wait",
            "--for=condition=Ready",
            "ordersystem/shop",
            "--timeout=600s",
        ],
    ));
    steps
}

const NEXT: &str = "homeostat runs on kind (context kind-homeostat).
  Prometheus:  kubectl --context kind-homeostat -n homeostat-system port-forward svc/prometheus 9090
               then open http://127.0.0.1:9090
  Grafana:     kubectl --context kind-homeostat -n homeostat-system port-forward svc/grafana 3000
               then open http://127.0.0.1:3000 (the OMS overview; homeostat's own under Dashboards)
  Reports:     kubectl --context kind-homeostat -n shop get anomalyreports -w
  A drill:     kubectl --context kind-homeostat -n shop port-forward svc/payment-primary 8081:8080 &
               TOKEN=$(kubectl --context kind-homeostat -n shop get secret shop-oms-admin -o jsonpath='{.data.token}' | base64 -d)
               curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\
                 -d '{\"kind\":\"latency\",\"latency_ms\":300,\"duration_seconds\":120}' http://127.0.0.1:8081/admin/faults
               (one replica takes it; the reroute policy moves payment traffic to payment-secondary)
  Stop:        cargo xtask kind-down";

pub fn up(args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask kind-up");
    }
    check(&[&DOCKER, &KIND, &KUBECTL])?;
    let clusters = Command::new("kind").args(["get", "clusters"]).output()?;
    let exists = String::from_utf8_lossy(&clusters.stdout)
        .lines()
        .any(|l| l.trim() == CLUSTER);
    if exists {
        eprintln!("kind-up: cluster {CLUSTER} exists; using it");
    } else {
        eprintln!("kind-up: creating the kind cluster {CLUSTER}");
        workspace::run(
            Command::new("kind").args(["create", "cluster", "--name", CLUSTER, "--wait", "120s"]),
        )?;
    }
    for step in steps() {
        eprintln!("kind-up: {}", step.what);
        workspace::run(
            Command::new(step.program)
                .current_dir(workspace::root())
                .args(&step.args),
        )?;
    }
    println!("{NEXT}");
    Ok(())
}

pub fn down(args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask kind-down");
    }
    check(&[&KIND])?;
    workspace::run(Command::new("kind").args(["delete", "cluster", "--name", CLUSTER]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_exactly_what_is_missing() {
        let none = missing(&[&DOCKER, &KIND, &KUBECTL], |_| false, || false);
        assert_eq!(none.len(), 3);
        assert!(none[0].contains("`docker` is not on the PATH"), "{none:?}");
        assert!(none[1].contains("go install sigs.k8s.io/kind"), "{none:?}");
        let daemon_down = missing(&[&DOCKER, &KIND], |_| true, || false);
        assert_eq!(daemon_down.len(), 1);
        assert!(daemon_down[0].contains("docker info"), "{daemon_down:?}");
        assert!(missing(&[&DOCKER, &KIND, &KUBECTL], |_| true, || true).is_empty());
    }

    #[test]
    fn the_crds_go_before_the_overlay_and_every_image_is_loaded() {
        let steps = steps();
        let position = |needle: &str| {
            steps
                .iter()
                .position(|s| s.args.iter().any(|a| a == needle))
                .unwrap_or_else(|| panic!("no step with {needle}"))
        };
        assert!(position("crds/") < position("deploy/overlays/kind"));
        let load = &steps[position("docker-image")];
        for (_, reference) in images() {
            assert!(load.args.contains(&reference), "{reference} not loaded");
        }
        assert!(position("docker-image") < position("crds/"));
    }

    /// Every homeostat image the kind overlay names is one kind-up builds.
    #[test]
    fn kind_up_builds_every_image_the_manifests_name() {
        let root = workspace::root();
        let built: Vec<String> = images().into_iter().map(|(_, r)| r).collect();
        let mut named = vec![homeostat_api::DEFAULT_OMS_IMAGE.to_owned()];
        for dir in ["deploy/base", "deploy/overlays/kind", "deploy/samples"] {
            for entry in std::fs::read_dir(root.join(dir))
                .expect("deploy dir")
                .flatten()
            {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                named.extend(
                    text.lines()
                        .filter_map(|l| l.trim().strip_prefix("image: "))
                        .filter(|i| i.starts_with("ghcr.io/homeostat-dev/"))
                        .map(str::to_owned),
                );
            }
        }
        for image in named {
            assert!(built.contains(&image), "{image} is named but not built");
        }
    }
}
