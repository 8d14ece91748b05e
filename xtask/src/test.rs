//! `cargo xtask test`: the whole check, as CI runs it.

use crate::{nab, system, test_assets, workspace};

/// Builds test assets and installs Prometheus and PostgreSQL when missing,
/// then runs rustfmt, clippy, every test
/// and the detector's NAB target check. Extra arguments go to `cargo test`
/// (e.g. a test name filter); with them the NAB check is left out.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let assets = test_assets::ensure()?;
    eprintln!("test assets: {}", assets.display());
    system::ensure(&[&system::PROMETHEUS, &system::POSTGRESQL, &system::NATS])?;

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
    workspace::run(
        workspace::cargo(&["test", "--workspace", "--locked"])
            .env("HOMEOSTAT_TEST_ASSETS", &assets)
            .env("HOMEOSTAT_DEMO_BIN_DIR", release)
            .args(args),
    )
}
