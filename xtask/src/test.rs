//! `cargo xtask test`: the whole check, as CI runs it.

use std::sync::Arc;

use crate::test_plan::{Job, Lane, Task};
use crate::{images, nab, system, test_assets, test_lanes, test_plan, workspace};

/// Builds test assets and installs Prometheus, PostgreSQL, NATS, buildah,
/// containerd and chromium (with its driver) when missing, then runs
/// rustfmt, then every test, the container images' build, clippy and the
/// detector's NAB target check in the lanes of [`test_plan`]. `--lane demo|suites` runs that lane
/// alone; other arguments go to every test executable (e.g. a test name
/// filter). With either, the NAB check is left out.
///
/// Everything is built once, optimised (`--release`): the tests, and the
/// binaries the end-to-end tests run as processes (a debug OMS on 2 busy
/// cores is slow enough to look like an incident). The test executables
/// then run in three phases of two lanes side by side ([`test_plan`]).
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
    // The images test and the cluster test run what `cargo xtask images`
    // builds: built beside the local demo, before the phase that needs them.
    let images = {
        let (release, assets) = (release.clone(), assets.clone());
        Job::Task(Task {
            label: "images".to_owned(),
            prerequisite: true,
            run: Arc::new(move || images::build(&release, &assets).map(drop)),
        })
    };
    let nab = (args.is_empty() && only.is_none()).then(|| {
        let detector = release.join("homeostat-detector");
        Job::Task(Task {
            label: "nab".to_owned(),
            prerequisite: false,
            run: Arc::new(move || nab::check(&detector, nab::TARGET)),
        })
    });
    let root = workspace::root();
    test_lanes::run(
        &root,
        &workspace::target_dir().join("test-logs"),
        test_plan::phases(&root, binaries, vec![images, clippy()], Vec::from_iter(nab)).map(
            |phase| {
                phase.map(|(lane, jobs)| {
                    // A lane left out runs nothing but what the other needs.
                    let chosen = only.is_none_or(|only| only == lane);
                    let jobs = jobs
                        .into_iter()
                        .filter(|job| chosen || job.is_prerequisite())
                        .collect();
                    (lane, jobs)
                })
            },
        ),
        &[
            ("HOMEOSTAT_TEST_ASSETS", assets),
            ("HOMEOSTAT_DEMO_BIN_DIR", release),
            ("HOMEOSTAT_IMAGES_DIR", images::dir()),
        ],
        args,
    )
}

/// `cargo clippy` on every target, warnings denied: in the suites lane, at
/// its lowest CPU priority, beside the local demo ([`test_plan`] rule 4).
fn clippy() -> Job {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Job::Check {
        label: "clippy".to_owned(),
        program: cargo.into(),
        args: [
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]
        .map(String::from)
        .to_vec(),
    }
}
