//! `cargo xtask cluster up|down`: a real one-node Kubernetes cluster on this
//! machine (as root), from the pinned modules, Debian's containerd, runc and
//! CNI plugins, and the images of `cargo xtask images`. State, logs and the
//! kubeconfig live in `target/cluster/`; `up` prints the kubeconfig path as
//! its last line.

use crate::test_assets::{self, Assets};
use crate::{images, system, workspace};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let command = match args {
        [command] if command == "up" || command == "down" => command.as_str(),
        _ => anyhow::bail!("usage: cargo xtask cluster up|down"),
    };
    let state = workspace::target_dir().join("cluster");
    // Built with the other release binaries: one feature set, no rebuilds.
    let release = workspace::build_release_bins()?;
    let mut cluster = std::process::Command::new(release.join("homeostat-cluster"));
    cluster.args([command, "--state"]).arg(&state);
    if command == "up" {
        system::ensure(&system::NODE)?;
        let assets = test_assets::ensure(&[Assets::ControlPlane, Assets::Node])?;
        eprintln!("cluster: building the images");
        let images = images::build(&release, &assets)?;
        cluster
            .arg("--images")
            .arg(images)
            .env("HOMEOSTAT_TEST_ASSETS", assets);
    }
    workspace::run(&mut cluster)
}
