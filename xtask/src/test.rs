//! `cargo xtask test`: the whole check, as CI runs it.

use crate::{images, nab, system, test_assets, workspace};

/// Builds test assets and installs Prometheus, PostgreSQL, NATS, buildah,
/// containerd and chromium (with its driver) when missing, then runs
/// rustfmt, clippy, every test (with the container images built) and the
/// detector's NAB target check. Extra arguments go to `cargo test`
/// (e.g. a test name filter); with them the NAB check is left out.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let assets = test_assets::ensure()?;
    eprintln!("test assets: {}", assets.display());
    system::ensure(&[
        &system::PROMETHEUS,
        &system::POSTGRESQL,
        &system::NATS,
        &system::BUILDAH,
        &system::CONTAINERD,
        &system::RUNC,
        &system::CNI_PLUGINS,
        &system::IPTABLES,
        &system::CHROMIUM,
        &system::CHROMEDRIVER,
    ])?;

    workspace::run(&mut workspace::cargo(&["fmt", "--all", "--", "--check"]))?;
    workspace::run(&mut workspace::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    if args.is_empty() {
        nab::run(&[])?;
    }
    // The end-to-end tests run the binaries as processes; the demo's runs
    // them optimised, as `cargo xtask demo` does (a debug OMS on 2 busy
    // cores is slow enough to look like an incident).
    workspace::run(&mut workspace::cargo(&[
        "build",
        "--workspace",
        "--bins",
        "--locked",
    ]))?;
    let release = workspace::build_release_bins()?;
    // The images test runs what `cargo xtask images` builds.
    let images = images::build(&release, &assets)?;
    workspace::run(
        workspace::cargo(&["test", "--workspace", "--locked"])
            .env("HOMEOSTAT_TEST_ASSETS", &assets)
            .env("HOMEOSTAT_DEMO_BIN_DIR", release)
            .env("HOMEOSTAT_IMAGES_DIR", images)
            .args(args),
    )
}
