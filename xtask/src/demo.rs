//! `cargo xtask demo [--scenario FILE] [--json FILE] [--html FILE]`: builds
//! what the demo needs (test assets, release binaries), makes sure Prometheus
//! is installed, then runs `homeostat-demo`.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::{test_assets, workspace};

/// The demo's processes: the OMS, the operator, the detector and the player.
const PACKAGES: [&str; 4] = [
    "homeostat-oms",
    "homeostat-operator",
    "homeostat-detector",
    "homeostat-demo",
];

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian's `prometheus` when missing and we may, or says exactly
/// what to install.
pub fn ensure_prometheus() -> anyhow::Result<()> {
    if on_path("prometheus") && on_path("promtool") {
        return Ok(());
    }
    if Path::new("/etc/debian_version").is_file() && is_root() {
        eprintln!("installing Prometheus from Debian's packages (apt-get install prometheus)");
        workspace::run(Command::new("apt-get").arg("update"))?;
        workspace::run(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "prometheus"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        return Ok(());
    }
    bail!(
        "Prometheus is not installed: install it (Debian/Ubuntu: `sudo apt-get install prometheus`; \
         elsewhere a Prometheus 2.x or 3.x release with `prometheus` and `promtool` on the PATH) and run again"
    )
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let assets = test_assets::ensure()?;
    ensure_prometheus()?;
    let mut build = workspace::cargo(&["build", "--release", "--locked", "--bins"]);
    for package in PACKAGES {
        build.args(["-p", package]);
    }
    workspace::run(&mut build)?;
    let release = workspace::target_dir().join("release");
    workspace::run(
        Command::new(release.join("homeostat-demo"))
            .env("HOMEOSTAT_TEST_ASSETS", &assets)
            .env("HOMEOSTAT_ROOT", workspace::root())
            .arg("--bin-dir")
            .arg(&release)
            .args(args),
    )
}
