//! `cargo xtask demo [--scenario FILE] [--json FILE] [--html FILE]`: builds
//! what the demo needs (test assets, release binaries), makes sure Prometheus
//! and PostgreSQL are installed, then runs `homeostat-demo`.

use std::process::Command;

use crate::{system, test_assets, workspace};

/// The demo's processes: the OMS, the operator, the detector and the player.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let assets = test_assets::ensure()?;
    system::ensure(&[&system::PROMETHEUS, &system::POSTGRESQL, &system::NATS])?;
    let release = workspace::build_release_bins()?;
    workspace::run(
        Command::new(release.join("homeostat-demo"))
            .env("HOMEOSTAT_TEST_ASSETS", &assets)
            .env("HOMEOSTAT_ROOT", workspace::root())
            .arg("--bin-dir")
            .arg(&release)
            .args(args),
    )
}
