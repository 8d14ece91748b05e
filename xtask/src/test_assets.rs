//! `cargo xtask test-assets`: the Kubernetes commands (control plane, node,
//! kubectl) and etcd built from their Go modules (tests/control-plane), the
//! cluster's CoreDNS (tests/cluster-dns), the in-cluster Prometheus
//! (tests/prometheus) and helm for the chart's tests (tests/helm), once,
//! into a cache under target/.
//!
//! They are built in three groups ([`Assets`]), each when first needed:
//! the local demo and the API-server tests need the control plane alone,
//! and `cargo xtask test` builds the node's commands and helm beside the
//! first tests instead of before them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::workspace;

/// A group of assets built together, named by what needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assets {
    /// etcd, kube-apiserver, kube-controller-manager and kubectl: every
    /// API-server test and the local demo.
    ControlPlane,
    /// The one-node cluster's kubelet, kube-scheduler and kube-proxy, its
    /// CoreDNS, and the Prometheus its images carry.
    Node,
    /// helm, for the chart's tests.
    Helm,
}

/// Every group: what `cargo xtask test-assets` builds.
pub const ALL: [Assets; 3] = [Assets::ControlPlane, Assets::Node, Assets::Helm];

impl Assets {
    /// The Kubernetes commands of the group (from tests/control-plane).
    fn kubernetes_commands(self) -> &'static [&'static str] {
        match self {
            Assets::ControlPlane => &["kube-apiserver", "kube-controller-manager", "kubectl"],
            Assets::Node => &["kube-scheduler", "kubelet", "kube-proxy"],
            Assets::Helm => &[],
        }
    }

    /// Every binary the group puts in the assets' directory.
    fn binaries(self) -> Vec<&'static str> {
        let others: &[&str] = match self {
            Assets::ControlPlane => &["etcd"],
            Assets::Node => &["coredns", "prometheus"],
            Assets::Helm => &["helm"],
        };
        [self.kubernetes_commands(), others].concat()
    }

    /// The files under tests/ that decide what the group's build makes.
    fn inputs(self) -> &'static [&'static str] {
        match self {
            Assets::ControlPlane => &[
                "control-plane/go.mod",
                "control-plane/go.sum",
                "control-plane/cmd/etcd/main.go",
            ],
            Assets::Node => &[
                "control-plane/go.mod",
                "control-plane/go.sum",
                "cluster-dns/go.mod",
                "cluster-dns/go.sum",
                "cluster-dns/main.go",
                "prometheus/go.mod",
                "prometheus/go.sum",
                "prometheus/tools.go",
                "prometheus/plugins/plugins.go",
            ],
            Assets::Helm => &["helm/go.mod", "helm/go.sum", "helm/tools.go"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Assets::ControlPlane => "control-plane",
            Assets::Node => "node",
            Assets::Helm => "helm",
        }
    }

    /// The file that records the inputs the group was built from.
    fn stamp(self) -> String {
        format!(".{}.inputs-hash", self.name())
    }
}

/// No debug information compiled at all (`-s -w` only drops it at the
/// link): nobody debugs these, and the compile is that much shorter.
const NO_DWARF: &str = "-gcflags=all=-dwarf=false";

/// Every group: the assets' directory.
pub fn ensure_all() -> anyhow::Result<PathBuf> {
    ensure(&ALL)
}

/// Returns the assets' directory, building first each of `groups` that is
/// missing there or was built from other inputs.
pub fn ensure(groups: &[Assets]) -> anyhow::Result<PathBuf> {
    let tests = workspace::root().join("tests");
    let version = required_version(
        &read(&tests.join("control-plane/go.mod"))?,
        "k8s.io/kubernetes",
    )?;
    let dir = dir(&version);
    for &group in groups {
        let inputs = inputs_hash(&tests, group.inputs())?;
        if !is_complete(&dir, group, &inputs) {
            build(&tests, &dir, &version, group, &inputs)?;
        }
    }
    Ok(dir)
}

fn dir(version: &str) -> PathBuf {
    workspace::target_dir()
        .join("test-assets")
        .join(format!("kubernetes-{version}"))
}

fn is_complete(dir: &Path, group: Assets, inputs: &str) -> bool {
    group.binaries().iter().all(|b| dir.join(b).is_file())
        && std::fs::read_to_string(dir.join(group.stamp())).is_ok_and(|stamp| stamp == inputs)
}

/// Builds the group into a staging directory, checks the version each
/// binary prints, then moves them into `dir` and writes the stamp last.
fn build(
    tests: &Path,
    dir: &Path,
    version: &str,
    group: Assets,
    inputs: &str,
) -> anyhow::Result<()> {
    let go = workspace::which("go").context(
        "the Go toolchain is needed to build kube-apiserver and etcd: install Go 1.24 or newer and put `go` on the PATH",
    )?;
    let staging = dir.join(format!(".{}.building", group.name()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("create {}", staging.display()))?;
    eprintln!(
        "building {} with {} into {}",
        group.binaries().join(", "),
        go.display(),
        dir.display()
    );
    let started = Instant::now();
    match group {
        Assets::ControlPlane => {
            build_kubernetes(&go, tests, &staging, version, group, &["./cmd/etcd"])?;
            let etcd = required_version(
                &read(&tests.join("control-plane/go.mod"))?,
                "go.etcd.io/etcd/server/v3",
            )?;
            verify_version(
                &staging.join("etcd"),
                &["--version"],
                etcd.trim_start_matches('v'),
            )?;
        }
        Assets::Node => {
            build_kubernetes(&go, tests, &staging, version, group, &[])?;
            build_coredns(&go, tests, &staging)?;
            build_prometheus(&go, tests, &staging)?;
        }
        Assets::Helm => build_helm(&go, tests, &staging)?,
    }
    eprintln!(
        "built the {} group in {:.0} s",
        group.name(),
        started.elapsed().as_secs_f64()
    );
    for binary in group.binaries() {
        std::fs::rename(staging.join(binary), dir.join(binary))
            .with_context(|| format!("move {binary} to {}", dir.display()))?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::write(dir.join(group.stamp()), inputs).context("write the inputs stamp")?;
    Ok(())
}

/// The group's Kubernetes commands, and `extra` packages of the same
/// module, stamped with the release as Kubernetes' own build does.
fn build_kubernetes(
    go: &Path,
    tests: &Path,
    staging: &Path,
    version: &str,
    group: Assets,
    extra: &[&str],
) -> anyhow::Result<()> {
    let minor = version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .context("cannot read the minor version")?;
    let ldflags = [
        ("k8s.io/component-base/version", "gitVersion", version),
        ("k8s.io/component-base/version", "gitMajor", "1"),
        ("k8s.io/component-base/version", "gitMinor", minor),
        ("k8s.io/component-base/version", "gitTreeState", "clean"),
        ("k8s.io/client-go/pkg/version", "gitVersion", version),
        ("k8s.io/client-go/pkg/version", "gitMajor", "1"),
        ("k8s.io/client-go/pkg/version", "gitMinor", minor),
    ]
    .iter()
    .map(|(pkg, var, value)| format!("-X {pkg}.{var}={value}"))
    // No symbol table or DWARF: nobody debugs these, and linking six
    // large commands without them is minutes less of a cold build.
    .chain(["-s -w".to_owned()])
    .collect::<Vec<_>>()
    .join(" ");
    let mut out_dir = staging.as_os_str().to_owned();
    out_dir.push("/");
    let commands = group.kubernetes_commands();
    workspace::run(
        Command::new(go)
            .current_dir(tests.join("control-plane"))
            .args(["build", "-trimpath", NO_DWARF, "-ldflags", &ldflags, "-o"])
            .arg(&out_dir)
            .args(
                commands
                    .iter()
                    .map(|c| format!("k8s.io/kubernetes/cmd/{c}")),
            )
            .args(extra),
    )?;
    for command in commands {
        let args: &[&str] = match *command {
            "kubectl" => &["version", "--client"],
            _ => &["--version"],
        };
        verify_version(&staging.join(command), args, version)?;
    }
    Ok(())
}

fn build_coredns(go: &Path, tests: &Path, staging: &Path) -> anyhow::Result<()> {
    workspace::run(
        Command::new(go)
            .current_dir(tests.join("cluster-dns"))
            .args(["build", "-trimpath", NO_DWARF, "-o"])
            .arg(staging.join("coredns"))
            .arg("."),
    )?;
    let version = required_version(
        &read(&tests.join("cluster-dns/go.mod"))?,
        "github.com/coredns/coredns",
    )?;
    verify_version(
        &staging.join("coredns"),
        &["-version"],
        &format!("CoreDNS-{}", version.trim_start_matches('v')),
    )
}

fn build_prometheus(go: &Path, tests: &Path, staging: &Path) -> anyhow::Result<()> {
    let version = prometheus_release(&required_version(
        &read(&tests.join("prometheus/go.mod"))?,
        "github.com/prometheus/prometheus",
    )?)?;
    let trimmed = trimmed_prometheus(go, &tests.join("prometheus"), staging)?;
    workspace::run(
        Command::new(go)
            .current_dir(tests.join("prometheus"))
            .arg("build")
            .arg(format!("-modfile={}", trimmed.display()))
            .args(["-trimpath", NO_DWARF, "-ldflags"])
            .arg(format!(
                "-s -w -X github.com/prometheus/common/version.Version={version}"
            ))
            .arg("-o")
            .arg(staging.join("prometheus"))
            .arg("github.com/prometheus/prometheus/cmd/prometheus"),
    )?;
    verify_version(
        &staging.join("prometheus"),
        &["--version"],
        &format!("version {version}"),
    )
}

fn build_helm(go: &Path, tests: &Path, staging: &Path) -> anyhow::Result<()> {
    let version = required_version(&read(&tests.join("helm/go.mod"))?, "helm.sh/helm/v4")?;
    workspace::run(
        Command::new(go)
            .current_dir(tests.join("helm"))
            .args(["build", "-trimpath", NO_DWARF, "-ldflags"])
            .arg(format!(
                "-s -w -X helm.sh/helm/v4/internal/version.version={version}"
            ))
            .arg("-o")
            .arg(staging.join("helm"))
            .arg("helm.sh/helm/v4/cmd/helm"),
    )?;
    verify_version(
        &staging.join("helm"),
        &["version", "--template", "{{.Version}}"],
        &version,
    )
}

/// Where, under the staging directory, the trimmed Prometheus module is made.
const TRIMMED: &str = "prometheus-module";

/// A copy of the Prometheus module whose `plugins/plugins.go` is
/// `module/plugins/plugins.go` (the service discoveries the cluster uses),
/// and a go.mod (with its go.sum beside it) that replaces the module with
/// it: returns that go.mod, for `go build -modfile`. Go refuses overlays of
/// files in its module cache, hence the copy.
fn trimmed_prometheus(go: &Path, module: &Path, staging: &Path) -> anyhow::Result<PathBuf> {
    let download = Command::new(go)
        .current_dir(module)
        .args([
            "mod",
            "download",
            "-json",
            "github.com/prometheus/prometheus",
        ])
        .output()
        .context("go mod download github.com/prometheus/prometheus")?;
    let info: serde_json::Value =
        serde_json::from_slice(&download.stdout).context("read go mod download's answer")?;
    let Some(source) = info["Dir"].as_str().filter(|_| download.status.success()) else {
        bail!(
            "go mod download github.com/prometheus/prometheus failed: {}{}",
            String::from_utf8_lossy(&download.stdout),
            String::from_utf8_lossy(&download.stderr)
        );
    };
    let copy = staging.join(TRIMMED);
    // Go's module cache is read-only: the copy must not be.
    workspace::run(
        Command::new("cp")
            .args(["-R", "--no-preserve=mode"])
            .arg(source)
            .arg(&copy),
    )?;
    std::fs::copy(
        module.join("plugins/plugins.go"),
        copy.join("plugins/plugins.go"),
    )
    .context("replace Prometheus's plugins/plugins.go")?;
    let go_mod = format!(
        "{}\nreplace github.com/prometheus/prometheus => {}\n",
        read(&module.join("go.mod"))?,
        copy.display()
    );
    let modfile = staging.join("prometheus.mod");
    std::fs::write(&modfile, go_mod).context("write the trimmed go.mod")?;
    std::fs::copy(module.join("go.sum"), staging.join("prometheus.sum")).context("copy go.sum")?;
    Ok(modfile)
}

fn verify_version(binary: &Path, args: &[&str], expected: &str) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .args(args)
        .output()
        .with_context(|| format!("run {}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !text.contains(expected) {
        bail!(
            "{} {:?} printed {text:?}, expected {expected}",
            binary.display(),
            args
        );
    }
    eprintln!("{}", text.lines().next().unwrap_or_default());
    Ok(())
}

/// The version a `go.mod` requires of `module`.
fn required_version(go_mod: &str, module: &str) -> anyhow::Result<String> {
    go_mod
        .lines()
        .find_map(|line| {
            // In a require block, or a one-line `require module version`.
            let line = line.trim().trim_start_matches("require ");
            let mut words = line.split_whitespace();
            (words.next() == Some(module))
                .then(|| words.next())
                .flatten()
        })
        .map(str::to_owned)
        .with_context(|| format!("go.mod does not require {module}"))
}

/// FNV-1a over the files that decide what gets built.
fn inputs_hash(tests: &Path, inputs: &[&str]) -> anyhow::Result<String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in inputs {
        for byte in read(&tests.join(file))?.bytes().chain(file.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(format!("{hash:016x}"))
}

/// Prometheus's release from its Go module's version: v0.53.2 is 2.53.2.
pub fn prometheus_release(module_version: &str) -> anyhow::Result<String> {
    match module_version.strip_prefix("v0.") {
        Some(rest) => Ok(format!("2.{rest}")),
        None => bail!("Prometheus module version {module_version} is not v0.MINOR.PATCH"),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_required_versions_from_go_mod() {
        let go_mod = "module x\n\nrequire (\n\tgo.etcd.io/etcd/server/v3 v3.5.21\n\tk8s.io/kubernetes v1.33.13\n)\n";
        assert_eq!(
            required_version(go_mod, "k8s.io/kubernetes").ok(),
            Some("v1.33.13".into())
        );
        assert_eq!(
            required_version(go_mod, "go.etcd.io/etcd/server/v3").ok(),
            Some("v3.5.21".into())
        );
        assert!(required_version(go_mod, "k8s.io/api").is_err());
        assert_eq!(prometheus_release("v0.53.2").ok(), Some("2.53.2".into()));
        assert!(prometheus_release("v3.0.0").is_err());
        assert_eq!(
            required_version(
                "module y\n\nrequire github.com/coredns/coredns v1.12.0\n",
                "github.com/coredns/coredns"
            )
            .ok(),
            Some("v1.12.0".into())
        );
    }

    #[test]
    fn every_asset_is_built_by_one_group_from_inputs_that_exist() {
        let mut binaries: Vec<_> = ALL.iter().flat_map(|group| group.binaries()).collect();
        binaries.sort_unstable();
        let count = binaries.len();
        binaries.dedup();
        assert_eq!(binaries.len(), count, "a binary in two groups");
        for needed in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
            "kube-proxy",
            "kubectl",
            "etcd",
            "coredns",
            "prometheus",
            "helm",
        ] {
            assert!(binaries.contains(&needed), "no group builds {needed}");
        }
        // What the tests' `TestAssets::locate` asks for, the control plane has.
        for needed in [
            "kube-apiserver",
            "kube-controller-manager",
            "etcd",
            "kubectl",
        ] {
            assert!(Assets::ControlPlane.binaries().contains(&needed));
        }
        let tests = workspace::root().join("tests");
        for group in ALL {
            for input in group.inputs() {
                assert!(tests.join(input).is_file(), "{input} is missing");
            }
        }
    }
}
