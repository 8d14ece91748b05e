//! `cargo xtask test-assets`: the Kubernetes commands (control plane, node,
//! kubectl) and etcd built from their Go modules (tests/control-plane), and
//! the cluster's CoreDNS (tests/cluster-dns), the in-cluster Prometheus
//! (tests/prometheus) and helm for the chart's tests (tests/helm), once,
//! into a cache under target/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::workspace;

/// The control plane of the tests, and the node of `cargo xtask cluster`.
const KUBERNETES_COMMANDS: [&str; 6] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];
const BINARIES: [&str; 10] = [
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
];
/// The files that decide what gets built, under tests/.
const INPUTS: [&str; 13] = [
    "control-plane/go.mod",
    "control-plane/go.sum",
    "control-plane/cmd/etcd/main.go",
    "cluster-dns/go.mod",
    "cluster-dns/go.sum",
    "cluster-dns/main.go",
    "prometheus/go.mod",
    "prometheus/go.sum",
    "prometheus/tools.go",
    "prometheus/plugins/plugins.go",
    "helm/go.mod",
    "helm/go.sum",
    "helm/tools.go",
];
const STAMP: &str = ".inputs-hash";
/// No debug information compiled at all (`-s -w` only drops it at the
/// link): nobody debugs these, and the compile is that much shorter.
const NO_DWARF: &str = "-gcflags=all=-dwarf=false";

/// Returns the asset directory, building it first when it is missing or was
/// built from other inputs.
pub fn ensure() -> anyhow::Result<PathBuf> {
    let tests = workspace::root().join("tests");
    let go_mod = read(&tests.join("control-plane/go.mod"))?;
    let version = required_version(&go_mod, "k8s.io/kubernetes")?;
    let inputs = inputs_hash(&tests)?;
    let dir = workspace::target_dir()
        .join("test-assets")
        .join(format!("kubernetes-{version}"));

    if is_complete(&dir, &inputs) {
        return Ok(dir);
    }
    build(&tests, &dir, &version, &inputs)?;
    Ok(dir)
}

fn is_complete(dir: &Path, inputs: &str) -> bool {
    BINARIES.iter().all(|b| dir.join(b).is_file())
        && std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|stamp| stamp == inputs)
}

fn build(tests: &Path, dir: &Path, version: &str, inputs: &str) -> anyhow::Result<()> {
    let module = tests.join("control-plane");
    let go = workspace::which("go").context(
        "the Go toolchain is needed to build kube-apiserver and etcd: install Go 1.24 or newer and put `go` on the PATH",
    )?;
    let minor = version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .context("cannot read the minor version")?;
    // Stamp the release into the binaries, as Kubernetes' own build does.
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

    let mut staging = dir.to_path_buf().into_os_string();
    staging.push(".building");
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("create {}", staging.display()))?;
    eprintln!(
        "building {} ({version}), etcd, CoreDNS, Prometheus and helm with {} into {} (a cold build, Go caches empty, took 8 minutes on 2 cores)",
        KUBERNETES_COMMANDS.join(", "),
        go.display(),
        dir.display()
    );
    let started = Instant::now();
    let mut out_dir = staging.clone().into_os_string();
    out_dir.push("/");
    workspace::run(
        Command::new(&go)
            .current_dir(&module)
            .args(["build", "-trimpath", NO_DWARF, "-ldflags", &ldflags, "-o"])
            .arg(&out_dir)
            .args(
                KUBERNETES_COMMANDS
                    .iter()
                    .map(|c| format!("k8s.io/kubernetes/cmd/{c}")),
            )
            .arg("./cmd/etcd"),
    )?;
    workspace::run(
        Command::new(&go)
            .current_dir(tests.join("cluster-dns"))
            .args(["build", "-trimpath", NO_DWARF, "-o"])
            .arg(staging.join("coredns"))
            .arg("."),
    )?;
    let prometheus_version = prometheus_release(&required_version(
        &read(&tests.join("prometheus/go.mod"))?,
        "github.com/prometheus/prometheus",
    )?)?;
    let trimmed = trimmed_prometheus(&go, &tests.join("prometheus"), &staging)?;
    workspace::run(
        Command::new(&go)
            .current_dir(tests.join("prometheus"))
            .arg("build")
            .arg(format!("-modfile={}", trimmed.display()))
            .args(["-trimpath", NO_DWARF, "-ldflags"])
            .arg(format!(
                "-s -w -X github.com/prometheus/common/version.Version={prometheus_version}"
            ))
            .arg("-o")
            .arg(staging.join("prometheus"))
            .arg("github.com/prometheus/prometheus/cmd/prometheus"),
    )?;
    let helm_version = required_version(&read(&tests.join("helm/go.mod"))?, "helm.sh/helm/v4")?;
    workspace::run(
        Command::new(&go)
            .current_dir(tests.join("helm"))
            .args(["build", "-trimpath", NO_DWARF, "-ldflags"])
            .arg(format!(
                "-s -w -X helm.sh/helm/v4/internal/version.version={helm_version}"
            ))
            .arg("-o")
            .arg(staging.join("helm"))
            .arg("helm.sh/helm/v4/cmd/helm"),
    )?;
    let _ = std::fs::remove_dir_all(staging.join(TRIMMED));
    for made in ["prometheus.mod", "prometheus.sum"] {
        let _ = std::fs::remove_file(staging.join(made));
    }
    eprintln!("built in {:.0} s", started.elapsed().as_secs_f64());

    for command in KUBERNETES_COMMANDS {
        let args: &[&str] = match command {
            "kubectl" => &["version", "--client"],
            _ => &["--version"],
        };
        verify_version(&staging.join(command), args, version)?;
    }
    let etcd_version =
        required_version(&read(&module.join("go.mod"))?, "go.etcd.io/etcd/server/v3")?;
    verify_version(
        &staging.join("etcd"),
        &["--version"],
        etcd_version.trim_start_matches('v'),
    )?;
    let coredns_version = required_version(
        &read(&tests.join("cluster-dns/go.mod"))?,
        "github.com/coredns/coredns",
    )?;
    verify_version(
        &staging.join("coredns"),
        &["-version"],
        &format!("CoreDNS-{}", coredns_version.trim_start_matches('v')),
    )?;

    verify_version(
        &staging.join("prometheus"),
        &["--version"],
        &format!("version {prometheus_version}"),
    )?;

    verify_version(
        &staging.join("helm"),
        &["version", "--template", "{{.Version}}"],
        &helm_version,
    )?;

    std::fs::write(staging.join(STAMP), inputs).context("write the inputs stamp")?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir)
        .with_context(|| format!("move the build to {}", dir.display()))?;
    Ok(())
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
fn inputs_hash(tests: &Path) -> anyhow::Result<String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in INPUTS {
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
}
