//! `cargo xtask demo [--cluster] [--scenario FILE] [--json FILE] [--html FILE]`:
//! builds what the demo needs (test assets, release binaries; with
//! `--cluster` the images too), makes sure the system packages it runs are
//! installed, then runs `homeostat-demo`. `cargo xtask soak [--quick]` plays
//! the soak scenario on the same stack and judges it as a soak.

use std::process::Command;

use crate::test_assets::{self, Assets};
use crate::{images, system, workspace};

/// The demo's processes: the OMS, the operator, the detector and the player.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let on_cluster = args.iter().any(|a| a == "--cluster");
    let mut demo = prepare(on_cluster)?;
    workspace::run(demo.args(args))
}

/// Builds and installs what the demo needs; the player command, ready for
/// its arguments. Callers that play several scenarios build once.
pub fn prepare(on_cluster: bool) -> anyhow::Result<Command> {
    let assets = if on_cluster {
        test_assets::ensure(&[Assets::ControlPlane, Assets::Node])?
    } else {
        test_assets::ensure(&[Assets::ControlPlane])?
    };
    if on_cluster {
        // The pods bring their own PostgreSQL, NATS and Prometheus images.
        system::ensure(&system::NODE)?;
    } else {
        system::ensure(&[&system::PROMETHEUS, &system::POSTGRESQL, &system::NATS])?;
    }
    let release = workspace::build_release_bins()?;
    let mut demo = Command::new(release.join("homeostat-demo"));
    if on_cluster {
        eprintln!("demo: building the images");
        demo.env("HOMEOSTAT_IMAGES_DIR", images::build(&release, &assets)?);
    }
    demo.env("HOMEOSTAT_TEST_ASSETS", &assets)
        .env("HOMEOSTAT_ROOT", workspace::root())
        .arg("--bin-dir")
        .arg(&release);
    Ok(demo)
}

/// `cargo xtask soak [--quick] [--json FILE] [--html FILE]`: the 30-minute
/// soak (tests/scenarios/soak.yaml), or with `--quick` the 6-minute one CI
/// runs (tests/scenarios/ci-soak.yaml).
pub fn soak(args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let scenario = if quick { "ci-soak" } else { "soak" };
    let mut demo_args = vec![
        "--soak".to_owned(),
        "--scenario".to_owned(),
        workspace::root()
            .join(format!("tests/scenarios/{scenario}.yaml"))
            .display()
            .to_string(),
    ];
    demo_args.extend(args.iter().filter(|a| *a != "--quick").cloned());
    run(&demo_args)
}
