//! `cargo xtask test`: the whole check, as CI runs it.

use crate::{nab, test_assets, workspace};

/// Builds test assets when missing, then runs rustfmt, clippy, every test
/// and the detector's NAB target check. Extra arguments go to `cargo test`
/// (e.g. a test name filter); with them the NAB check is left out.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let assets = test_assets::ensure()?;
    eprintln!("test assets: {}", assets.display());

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
    // The end-to-end tests run the binaries as processes.
    workspace::run(&mut workspace::cargo(&[
        "build",
        "--workspace",
        "--bins",
        "--locked",
    ]))?;
    workspace::run(
        workspace::cargo(&["test", "--workspace", "--locked"])
            .env("HOMEOSTAT_TEST_ASSETS", &assets)
            .args(args),
    )
}
