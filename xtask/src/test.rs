//! `cargo xtask test`: the whole check, as CI runs it.

use crate::test_plan::{Job, Lane};
use crate::{images, nab, system, test_assets, test_lanes, test_plan, workspace};

/// Builds test assets and installs Prometheus, PostgreSQL, NATS, buildah,
/// containerd and chromium (with its driver) when missing, then runs
/// rustfmt, every test (with the container images built), clippy and the
/// detector's NAB target check. `--lane demo|suites` runs that lane
/// alone; other arguments go to every test executable (e.g. a test name
/// filter). With either, the NAB check is left out.
///
/// Everything is built once, optimised (`--release`): the tests, and the
/// binaries the end-to-end tests run as processes (a debug OMS on 2 busy
/// cores is slow enough to look like an incident). The test executables
/// then run in two phases of two lanes side by side ([`test_plan`]).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (only, args) = match args {
        [flag, lane, rest @ ..] if flag == "--lane" => (Some(lane.parse::<Lane>()?), rest),
        _ => (None, args),
    };
    // The Kubernetes commands (Go) build beside the workspace (cargo): each
    // leaves a core idle for minutes at a time (one large crate, a link),
    // and the other fills it.
    let assets = std::thread::spawn(test_assets::ensure);
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
    let (release, binaries) = workspace::build_release_tests()?;
    let assets = assets
        .join()
        .map_err(|_| anyhow::anyhow!("the test assets' build panicked"))??;
    eprintln!("test assets: {}", assets.display());
    if args.is_empty() && only.is_none() {
        nab::check(&release.join("homeostat-detector"), nab::TARGET)?;
    }
    // The images test and the cluster test run what `cargo xtask images` builds.
    let images = images::build(&release, &assets)?;
    let root = workspace::root();
    test_lanes::run(
        &root,
        &workspace::target_dir().join("test-logs"),
        test_plan::phases(&root, binaries, vec![clippy()]).map(|phase| {
            phase.map(|(lane, jobs)| {
                // A lane left out runs nothing.
                let chosen = only.is_none_or(|only| only == lane);
                (lane, if chosen { jobs } else { Vec::new() })
            })
        }),
        &[
            ("HOMEOSTAT_TEST_ASSETS", assets),
            ("HOMEOSTAT_DEMO_BIN_DIR", release),
            ("HOMEOSTAT_IMAGES_DIR", images),
        ],
        args,
    )
}

/// `cargo clippy` on every target, warnings denied, at the lowest CPU
/// priority: it runs beside the demo's end-to-end runs ([`test_plan`] rule
/// 4) and takes only what they leave.
fn clippy() -> Job {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["-n".to_owned(), "19".to_owned()];
    args.push(cargo.to_string_lossy().into_owned());
    args.extend(
        [
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]
        .map(String::from),
    );
    Job::Check {
        label: "clippy".to_owned(),
        program: "nice".into(),
        args,
    }
}
