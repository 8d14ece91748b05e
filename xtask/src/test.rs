//! `cargo xtask test`: the whole check, as CI runs it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::test_assets::{self, Assets};
use crate::test_plan::{Job, Lane, Phase, Task};
use crate::workspace::{self, Built, Targets};
use crate::{images, nab, system, test_lanes, test_plan};

/// Installs Prometheus, PostgreSQL, NATS, buildah, containerd and chromium
/// (with its driver) when missing, runs rustfmt, then builds and runs every
/// test, the container images' build, clippy's lints and the detector's NAB
/// target check in the phases of [`test_plan`]. `--lane demo|suites` runs
/// that lane alone (and what it needs); other arguments go to every test
/// executable (e.g. a test name filter). With either, the NAB check is left
/// out.
///
/// Everything is built once, optimised (`--release`): the tests, and the
/// binaries the end-to-end tests run as processes (a debug OMS on 2 busy
/// cores is slow enough to look like an incident). What the local demo
/// needs is built first; the rest beside the demo runs ([`test_plan`]
/// rules 3–5).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (only, args) = match args {
        [flag, lane, rest @ ..] if flag == "--lane" => (Some(lane.parse::<Lane>()?), rest),
        _ => (None, args),
    };
    // The control plane's Go commands build beside the workspace (cargo):
    // each leaves a core idle for minutes at a time (one large crate, a
    // link), and the other fills it.
    let control_plane = std::thread::spawn(|| test_assets::ensure(&[Assets::ControlPlane]));
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
    let first = workspace::build_release(Targets::DemoTests(&["soak"]))?;
    let assets = control_plane
        .join()
        .map_err(|_| anyhow::anyhow!("the control plane's build panicked"))??;
    eprintln!("test assets: {}", assets.display());
    let release = workspace::release_dir();
    let root = workspace::root();

    let for_cluster = Stage::default();
    let the_rest = Stage::default();
    let phase_one = test_plan::demo_phase(
        test_plan::sort(&root, first.tests).local_demo,
        vec![
            for_cluster.build(
                "build for the cluster",
                &[Assets::Node],
                Targets::DemoTests(&["cluster"]),
            ),
            images(release.clone(), assets.clone()),
            // Go beside the soak left it undisturbed; cargo's linking did
            // not (test_plan rule 4).
            helm(),
        ],
    );
    let phase_two = {
        let (root, for_cluster, the_rest) = (root.clone(), for_cluster.clone(), the_rest.clone());
        move || -> Phase {
            test_plan::demo_phase(
                test_plan::sort(&root, for_cluster.tests()).cluster_demo,
                vec![
                    the_rest.build("build the rest", &[], Targets::All),
                    the_rest.lints(),
                ],
            )
        }
    };
    let phase_three = {
        let root = root.clone();
        let nab = (args.is_empty() && only.is_none()).then(|| {
            let detector = release.join("homeostat-detector");
            Job::Task(Task {
                label: "nab".to_owned(),
                prerequisite: false,
                run: Arc::new(move || nab::check(&detector, nab::TARGET)),
            })
        });
        move || -> Phase {
            let suites = test_plan::sort(&root, the_rest.tests()).suites;
            test_plan::suites_phase(&root, suites, Vec::from_iter(nab))
        }
    };
    let phases = std::iter::once(phase_one)
        .chain(std::iter::once_with(phase_two))
        .chain(std::iter::once_with(phase_three))
        .map(|phase| {
            phase
                .into_iter()
                .map(|(lane, jobs)| {
                    // A lane left out runs nothing but what the other needs.
                    let chosen = only.is_none_or(|only| only == lane);
                    let jobs = jobs
                        .into_iter()
                        .filter(|job| chosen || job.is_prerequisite())
                        .collect();
                    (lane, jobs)
                })
                .collect()
        });
    test_lanes::run(
        &root,
        &workspace::target_dir().join("test-logs"),
        phases,
        &[
            ("HOMEOSTAT_TEST_ASSETS", assets),
            ("HOMEOSTAT_DEMO_BIN_DIR", release),
            ("HOMEOSTAT_IMAGES_DIR", images::dir()),
        ],
        args,
    )
}

/// One later stage of the build: its Go assets and cargo's targets side
/// by side, and what it built once it has.
#[derive(Clone, Default)]
struct Stage(Arc<Mutex<Option<Built>>>);

/// Builds `assets` (Go) and, beside them, `targets` (cargo), on the
/// calling thread's priority: a new thread inherits its nice value and
/// cgroup.
fn build_stage(assets: &'static [Assets], targets: Targets<'static>) -> anyhow::Result<Built> {
    let go = std::thread::spawn(move || test_assets::ensure(assets));
    let built = workspace::build_release(targets);
    go.join()
        .map_err(|_| anyhow::anyhow!("the Go build panicked"))??;
    built
}

impl Stage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Built>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn task(label: &str, run: impl Fn() -> anyhow::Result<()> + Send + Sync + 'static) -> Job {
        Job::Task(Task {
            label: label.to_owned(),
            // The later phases' tests are what it builds.
            prerequisite: true,
            run: Arc::new(run),
        })
    }

    /// The stage, built before the lane goes on.
    fn build(&self, label: &str, assets: &'static [Assets], targets: Targets<'static>) -> Job {
        let stage = self.clone();
        Self::task(label, move || {
            let built = build_stage(assets, targets);
            if let Ok(built) = &built {
                *stage.lock() = Some(built.clone());
            }
            built.map(drop)
        })
    }

    /// The test executables it built; none when it failed or is not done.
    fn tests(&self) -> Vec<test_plan::TestBinary> {
        self.lock()
            .as_ref()
            .map(|built| built.tests.clone())
            .unwrap_or_default()
    }

    /// clippy's lints and rustc's warnings on our crates, which the build
    /// of every target compiled with it (`workspace::build_release`): fails
    /// when there is one, as `cargo clippy -- -D warnings` would.
    fn lints(&self) -> Job {
        let stage = self.clone();
        Job::Task(Task {
            label: "clippy".to_owned(),
            prerequisite: false,
            run: Arc::new(move || {
                workspace::clippy_driver()?;
                let state = stage.lock();
                let Some(built) = &*state else {
                    anyhow::bail!("the build of every target did not finish");
                };
                for warning in &built.warnings {
                    eprint!("{warning}");
                }
                anyhow::ensure!(
                    built.warnings.is_empty(),
                    "{} warnings on our crates (clippy's lints among them; printed above)",
                    built.warnings.len()
                );
                Ok(())
            }),
        })
    }
}

/// helm, for the chart's tests in phase three.
fn helm() -> Job {
    Job::Task(Task {
        label: "build helm".to_owned(),
        prerequisite: true,
        run: Arc::new(|| test_assets::ensure(&[Assets::Helm]).map(drop)),
    })
}

/// The container images the images test and the cluster test run: built
/// beside the local demo, before the phase that needs them.
fn images(release: PathBuf, assets: PathBuf) -> Job {
    Job::Task(Task {
        label: "images".to_owned(),
        prerequisite: true,
        run: Arc::new(move || images::build(&release, &assets).map(drop)),
    })
}
