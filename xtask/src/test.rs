//! `cargo xtask test`: the whole check, as CI runs it.

use crate::{test_assets, workspace};

/// Builds test assets when missing, then runs rustfmt, clippy and every test.
/// Extra arguments go to `cargo test` (e.g. a test name filter).
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
    workspace::run(
        workspace::cargo(&["test", "--workspace", "--locked"])
            .env("HOMEOSTAT_TEST_ASSETS", &assets)
            .args(args),
    )
}
