//! Servers the demo and the tests run from the system's packages: installed
//! from Debian's packages when missing and we are root on Debian, otherwise
//! named exactly, so the user knows what to install.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::workspace;

/// A server the project runs but does not build.
pub struct SystemPackage {
    /// Debian's package name.
    pub debian: &'static str,
    /// Whether it is usable as it is.
    pub present: fn() -> bool,
    /// What to install on a system other than Debian.
    pub elsewhere: &'static str,
}

pub const PROMETHEUS: SystemPackage = SystemPackage {
    debian: "prometheus",
    present: || on_path("prometheus") && on_path("promtool"),
    elsewhere: "a Prometheus 2.x or 3.x release with `prometheus` and `promtool` on the PATH",
};

/// The OMS's throwaway clusters need `initdb` and `postgres` (Debian keeps
/// them in /usr/lib/postgresql/<version>/bin).
pub const POSTGRESQL: SystemPackage = SystemPackage {
    debian: "postgresql",
    present: || {
        on_path("initdb")
            || std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
                versions
                    .flatten()
                    .any(|v| v.path().join("bin/initdb").is_file())
            })
    },
    elsewhere: "PostgreSQL 13 or newer with `initdb` and `postgres` on the PATH",
};

/// The OMS's order events: `nats-server` with JetStream (Debian installs it
/// in /usr/sbin).
pub const NATS: SystemPackage = SystemPackage {
    debian: "nats-server",
    present: || on_path("nats-server") || Path::new("/usr/sbin/nats-server").is_file(),
    elsewhere: "nats-server 2.9 or newer on the PATH",
};

/// Builds the container images (`cargo xtask images`).
pub const BUILDAH: SystemPackage = SystemPackage {
    debian: "buildah",
    present: || on_path("buildah"),
    elsewhere: "buildah 1.28 or newer on the PATH",
};

/// What the one-node cluster's node runs on.
pub const NODE: [&SystemPackage; 4] = [&CONTAINERD, &RUNC, &CNI_PLUGINS, &IPTABLES];

/// Runs the images in the tests (with `ctr`); runc runs the containers.
pub const CONTAINERD: SystemPackage = SystemPackage {
    debian: "containerd",
    present: || on_path("containerd") && on_path("ctr"),
    elsewhere: "containerd 1.6 or newer with `ctr` on the PATH",
};

pub const RUNC: SystemPackage = SystemPackage {
    debian: "runc",
    present: || on_path("runc"),
    elsewhere: "runc on the PATH",
};

/// The pod network of the local cluster: bridge, host-local, portmap, loopback.
pub const CNI_PLUGINS: SystemPackage = SystemPackage {
    debian: "containernetworking-plugins",
    present: || Path::new("/usr/lib/cni/bridge").is_file(),
    elsewhere: "the CNI plugins (bridge, host-local, portmap, loopback) in /usr/lib/cni",
};

/// The kubelet's and the CNI plugins' chains.
pub const IPTABLES: SystemPackage = SystemPackage {
    debian: "iptables",
    present: || on_path("iptables") || Path::new("/usr/sbin/iptables").is_file(),
    elsewhere: "iptables (nft or legacy) on the PATH",
};

/// The console's browser tests: headless chromium driven by chromedriver
/// (where Debian puts both).
pub const CHROMIUM: SystemPackage = SystemPackage {
    debian: "chromium",
    present: || Path::new("/usr/bin/chromium").is_file(),
    elsewhere: "Chromium at /usr/bin/chromium",
};

pub const CHROMEDRIVER: SystemPackage = SystemPackage {
    debian: "chromium-driver",
    present: || Path::new("/usr/bin/chromedriver").is_file(),
    elsewhere: "ChromeDriver matching the Chromium, at /usr/bin/chromedriver",
};

fn on_path(binary: &str) -> bool {
    workspace::which(binary).is_some()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs whichever of `packages` is missing, or says what to install.
pub fn ensure(packages: &[&SystemPackage]) -> anyhow::Result<()> {
    let missing: Vec<&SystemPackage> = packages
        .iter()
        .copied()
        .filter(|p| !(p.present)())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.debian).collect();
    if Path::new("/etc/debian_version").is_file() && is_root() {
        eprintln!(
            "installing from Debian's packages: apt-get install {}",
            names.join(" ")
        );
        workspace::run(Command::new("apt-get").arg("update"))?;
        workspace::run(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&names)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        return Ok(());
    }
    let elsewhere: Vec<&str> = missing.iter().map(|p| p.elsewhere).collect();
    bail!(
        "not installed: {} (Debian/Ubuntu: `sudo apt-get install {}`; elsewhere {}); install and run again",
        names.join(", "),
        names.join(" "),
        elsewhere.join("; ")
    )
}
