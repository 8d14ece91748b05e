//! Paths and commands shared by the tasks.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::cargo_messages::{self, TestBinary};

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

/// The binaries the demo tests run as processes (their own package's
/// binary, `homeostat-demo`, comes with them).
const DEMO_BINS: [&str; 3] = ["oms", "homeostat-operator", "homeostat-detector"];

/// The targets a [`build_release`] makes.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// These test targets (`--test NAME`, in whichever package has them)
    /// and the binaries they run ([`DEMO_BINS`]).
    DemoTests(&'a [&'a str]),
    /// Every target: binaries, libraries, unit tests, integration tests.
    All,
}

/// What a release build made.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The test executables, fresh or rebuilt.
    pub tests: Vec<TestBinary>,
    /// Every warning (clippy's lints among them) rustc gave our crates, as
    /// rendered, each once: cargo replays a fresh unit's warnings, so a
    /// build of every target lists all of them.
    pub warnings: Vec<String>,
}

/// Builds `targets` of the workspace optimised, for the tests. Every such
/// build selects the whole workspace and a test target, so cargo resolves
/// the same features each time (dev-dependencies included) and a later
/// build reuses all an earlier one compiled. Our
/// crates go through clippy's driver ([`CLIPPY_DRIVER`]): clippy's lints
/// come with the one compile instead of a second, check-only build of the
/// workspace and its dependencies. Diagnostics are printed as they come.
pub fn build_release(targets: Targets) -> anyhow::Result<Built> {
    let mut build = cargo(&[
        "build",
        "--release",
        "--locked",
        "--workspace",
        "--message-format=json",
    ]);
    match targets {
        Targets::DemoTests(names) => {
            for bin in DEMO_BINS {
                build.args(["--bin", bin]);
            }
            for name in names {
                build.args(["--test", name]);
            }
        }
        Targets::All => {
            build.arg("--all-targets");
        }
    }
    if let Ok(driver) = clippy_driver() {
        build.env("RUSTC_WORKSPACE_WRAPPER", driver);
    }
    let mut child = build
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start cargo build")?;
    let stdout = child.stdout.take().context("cargo build's output")?;
    let mut messages = String::new();
    let mut built = Built::default();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.context("read cargo build's output")?;
        if let Some(diagnostic) = cargo_messages::diagnostic(&line) {
            eprint!("{}", diagnostic.rendered);
            if diagnostic.is_warning && !built.warnings.contains(&diagnostic.rendered) {
                built.warnings.push(diagnostic.rendered);
            }
        }
        messages.push_str(&line);
        messages.push('\n');
    }
    let status = child.wait().context("wait for cargo build")?;
    if !status.success() {
        bail!("cargo build --release --workspace ({targets:?}) failed: {status}");
    }
    built.tests = cargo_messages::test_binaries(&messages);
    Ok(built)
}

/// Where the release binaries are.
pub fn release_dir() -> PathBuf {
    target_dir().join("release")
}

/// clippy's rustc driver, in the toolchain's sysroot (`rustup component add
/// clippy` puts it there).
pub fn clippy_driver() -> anyhow::Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("run rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let driver = sysroot.join("bin").join("clippy-driver");
    if driver.is_file() {
        Ok(driver)
    } else {
        bail!(
            "{} is missing: clippy is not installed (rustup component add clippy)",
            driver.display()
        )
    }
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
