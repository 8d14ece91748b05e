//! Paths and commands shared by the tasks.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::test_plan::{self, TestBinary};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// A `cargo` command in the workspace root, using the same cargo that runs xtask.
pub fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root()).args(args);
    command
}

/// The binaries every task runs optimised. One set for all tasks: cargo
/// unifies features over the packages it is asked for, so building the
/// detector alone and then with the others compiled it (and shared
/// dependencies) twice.
const RELEASE_PACKAGES: [&str; 5] = [
    "homeostat-oms",
    "homeostat-operator",
    "homeostat-detector",
    "homeostat-demo",
    // homeostat-cluster, for `cargo xtask cluster`.
    "homeostat-test-support",
];

/// Builds the release binaries of [`RELEASE_PACKAGES`] (a no-op when they
/// are up to date); returns their directory.
pub fn build_release_bins() -> anyhow::Result<PathBuf> {
    let mut build = cargo(&["build", "--release", "--locked", "--bins"]);
    for package in RELEASE_PACKAGES {
        build.args(["-p", package]);
    }
    run(&mut build)?;
    Ok(target_dir().join("release"))
}

/// Builds every target of the workspace optimised, once: the binaries the
/// tasks run and the test executables, in cargo's test profile features
/// (dev-dependencies included). Returns the binaries' directory and the
/// test executables.
pub fn build_release_tests() -> anyhow::Result<(PathBuf, Vec<TestBinary>)> {
    let output = cargo(&[
        "build",
        "--release",
        "--locked",
        "--workspace",
        "--all-targets",
        "--message-format=json-render-diagnostics",
    ])
    .stderr(Stdio::inherit())
    .output()
    .context("cannot start cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build --release --workspace --all-targets failed: {}",
            output.status
        );
    }
    let binaries = test_plan::test_binaries(&String::from_utf8_lossy(&output.stdout));
    Ok((target_dir().join("release"), binaries))
}

/// Runs a command with inherited output; fails with the command line when it fails.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let line = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {line}"))?;
    if !status.success() {
        bail!("{line} failed: {status}");
    }
    Ok(())
}

/// `program` on the PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
