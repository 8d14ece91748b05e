//! Runs the phases of [`test_plan`](crate::test_plan) one after the other,
//! the lanes of each at once, each job after the other within its lane,
//! at its lane's CPU priority (the lane's thread takes it): a test executable as `cargo test` would run
//! it (its package's directory, cargo's variables), a task of xtask's own
//! on the lane's thread. A test's output is kept in a file and printed whole when it ends, so two lanes
//! never interleave; the closing line sums the tests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::background::{self, Lowered};
use crate::test_plan::{Job, Lane, Phase, Tally};

/// Longer than any executable takes on a busy machine (the soak, 7 min):
/// one that hangs is stopped, and the run ends within CI's limit.
const TIMEOUT: Duration = Duration::from_secs(25 * 60);

/// How one executable ended.
struct Ran {
    label: String,
    lane: Lane,
    seconds: f64,
    /// `None` when its harness printed no closing line, or for a task.
    tally: Option<Tally>,
    success: bool,
    /// A test executable, not a task.
    is_test: bool,
    prerequisite: bool,
}

/// Runs every lane to its end (a failure does not stop the others), then
/// prints where the time went and `N passed, N failed`. Fails when any
/// executable failed.
pub fn run(
    root: &Path,
    logs: &Path,
    phases: impl IntoIterator<Item = Phase>,
    env: &[(&str, PathBuf)],
    args: &[String],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(logs).with_context(|| format!("create {}", logs.display()))?;
    let started = Instant::now();
    let mut ran: Vec<Ran> = Vec::new();
    for lanes in phases {
        if let Some(missing) = ran.iter().find(|r| r.prerequisite && !r.success) {
            eprintln!(
                "== the later phases do not run: {} failed, and their tests need it",
                missing.label
            );
            break;
        }
        ran.extend(std::thread::scope(|scope| {
            let handles: Vec<_> = lanes
                .into_iter()
                .map(|(lane, jobs)| {
                    scope.spawn(move || {
                        take_priority(lane);
                        jobs.iter()
                            .map(|job| run_one(root, logs, lane, job, env, args))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect::<Vec<_>>()
        }));
    }

    let mut total = Tally::default();
    let mut broken = Vec::new();
    eprintln!(
        "\n== where the test time went ({:.0} s in all)",
        started.elapsed().as_secs_f64()
    );
    for r in &ran {
        let verdict = match (r.success, r.tally) {
            (true, _) => "ok",
            (false, None) if r.is_test => "DIED",
            (false, _) => "FAILED",
        };
        eprintln!(
            "{:>7.1} s  {:<6}  {:<6}  {}",
            r.seconds,
            format!("{:?}", r.lane).to_lowercase(),
            verdict,
            r.label
        );
        if let Some(tally) = r.tally {
            total.add(tally);
        }
        if !r.success {
            broken.push(r.label.clone());
        }
    }
    // A task that failed, or an executable that died before its closing
    // line, counts as one failure.
    let died = ran
        .iter()
        .filter(|r| !r.success && r.tally.is_none())
        .count() as u32;
    println!(
        "tests: {} passed, {} failed",
        total.passed,
        total.failed + died
    );
    if broken.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("failed: {}", broken.join(", "))
    }
}

fn run_one(
    root: &Path,
    logs: &Path,
    lane: Lane,
    job: &Job,
    env: &[(&str, PathBuf)],
    args: &[String],
) -> Ran {
    let label = job.label(root);
    let log = logs.join(format!("{}.log", label.replace('/', "-")));
    let started = Instant::now();
    eprintln!("== {label} ({lane:?} lane): started");
    let mut command = match job {
        Job::Task(task) => {
            let result = (task.run)();
            let seconds = started.elapsed().as_secs_f64();
            match &result {
                Ok(()) => eprintln!("== {label} ({lane:?} lane, {seconds:.1} s): ok"),
                Err(error) => eprintln!("== {label} ({lane:?} lane, {seconds:.1} s): {error:#}"),
            }
            return Ran {
                label,
                lane,
                seconds,
                tally: None,
                success: result.is_ok(),
                is_test: false,
                prerequisite: task.prerequisite,
            };
        }
        Job::Test(binary) => {
            let mut command = Command::new(&binary.executable);
            command
                .current_dir(&binary.package_dir)
                .env("CARGO_MANIFEST_DIR", &binary.package_dir)
                .args(args);
            for (name, value) in env {
                command.env(name, value);
            }
            command
        }
    };
    let success = match spawn_and_wait(&mut command, &log) {
        Ok(success) => success,
        Err(error) => {
            // After whatever it printed before it was stopped.
            use std::io::Write;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| writeln!(f, "{error:#}"));
            false
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    // One write, so the other lane's report cannot land inside it.
    print!("== {label} ({lane:?} lane, {seconds:.1} s)\n{output}\n");
    Ran {
        label,
        lane,
        seconds,
        tally: Tally::of_output(&output),
        success,
        is_test: matches!(job, Job::Test(_)),
        prerequisite: false,
    }
}

/// Gives the calling thread (a lane's) the lane's CPU priority
/// ([`background`]): whatever it starts, and a task it runs, inherits it;
/// the other lanes keep theirs.
fn take_priority(lane: Lane) {
    let niceness = lane.niceness();
    if niceness == 0 {
        return;
    }
    match background::lower_this_thread(niceness) {
        Ok(Lowered {
            cgroup: Err(why), ..
        }) => {
            eprintln!(
                "== the {lane:?} lane runs at nice {niceness}, in no background cgroup: {why}"
            )
        }
        Ok(_) => {}
        Err(error) => eprintln!("== the {lane:?} lane keeps its parent's priority: {error:#}"),
    }
}

/// Runs `command` with its output in `log`; whether it passed. Stopped
/// after [`TIMEOUT`].
fn spawn_and_wait(command: &mut Command, log: &Path) -> anyhow::Result<bool> {
    let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("start {command:?}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "{command:?} ran longer than {} s and was stopped",
                TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
