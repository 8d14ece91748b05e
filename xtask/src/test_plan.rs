//! What `cargo xtask test` runs after its one build, and when: the test
//! executables cargo built (read from its JSON messages) in three phases of
//! two lanes side by side; and the tally of what they printed.
//!
//! Rules:
//! 1. An executable is a test when cargo built it with the test profile
//!    and says where it is; everything else cargo printed is ignored.
//! 2. The demo package's integration tests go in [`Lane::Demo`]: each plays
//!    minutes of traffic against deadlines, so no two of them overlap.
//! 3. Every other test goes in [`Lane::Suites`]: their servers sit on free
//!    loopback ports and mostly wait.
//! 4. Phase one: the local demo runs, beside only work that needs no test
//!    server of ours: the container images, then clippy.
//!    Beside the suites, whose bursts of processes starting (PostgreSQL, API
//!    servers) stall the demo's OMS on 2 cores, the local soak drew false
//!    reports in one run of two (at equal priority: before rule 8).
//! 5. Phase two: the demo on the one-node cluster, beside only the suites
//!    that start few servers of ours and the checks that need none (the NAB
//!    score). The cluster needs the images: a phase runs only when every
//!    prerequisite before it succeeded.
//! 6. Phase three: the suites that start servers by the dozen for minutes
//!    ([`SERVER_SUITES`]: API servers with etcd, PostgreSQL, Prometheus,
//!    containerd), in two lanes side by side. Their servers commit with
//!    fsync, and the disk is shared whatever their CPU priority: beside the
//!    cluster demo, at nice 19, they still stalled its OMS (inventory's and
//!    orders' p50 at 59 and 6 times their bands for 5 s: two false reports),
//!    and, starved, the OMS's crash drill missed the saga it means to strand.
//! 7. Within a lane the order is cargo's, longest-known first where a
//!    duration is known ([`EXPECTED`]).
//! 8. The suites lane runs at the lowest CPU priority, nice 19
//!    ([`Lane::niceness`]): it takes what the demo leaves. The suites stand
//!    for a node's other tenants, which a real node's kubelet holds to
//!    their share beside its pods. At equal priority on 2 cores, their
//!    dozens of processes starved the cluster demo's pods for seconds at a
//!    time: the detector reported the stalls (two false reports, in CI and
//!    in a rerun); at nice 10 the added tax replica still relieved tax only
//!    as the surge ended (65 s, over the test's 60). The demo's tolerance of
//!    a CPU-bound neighbour at full priority is measured on its own
//!    (BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

/// Where a test executable runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The demo's end-to-end runs, one at a time.
    Demo,
    /// Everything else, one at a time, beside the demo lane.
    Suites,
}

impl std::str::FromStr for Lane {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Lane> {
        match name {
            "demo" => Ok(Lane::Demo),
            "suites" => Ok(Lane::Suites),
            other => anyhow::bail!("no lane {other:?}: the lanes are demo and suites"),
        }
    }
}

impl Lane {
    /// The CPU priority (`nice`) of what runs in the lane (rule 8).
    pub fn niceness(self) -> u8 {
        match self {
            Lane::Demo => 0,
            Lane::Suites => 19,
        }
    }
}

/// What a lane runs.
#[derive(Debug, Clone)]
pub enum Job {
    /// A test executable: its tests are counted.
    Test(TestBinary),
    /// A command run in the workspace's root (clippy): it passes or fails.
    Check {
        label: String,
        program: PathBuf,
        args: Vec<String>,
    },
    /// Work of xtask's own (the images, the NAB score), run on the lane's
    /// thread: it prints as it goes.
    Task(Task),
}

impl Job {
    pub fn label(&self, root: &Path) -> String {
        match self {
            Job::Test(binary) => binary.label(root),
            Job::Check { label, .. } => label.clone(),
            Job::Task(task) => task.label.clone(),
        }
    }

    /// Later phases need what it makes (rule 5).
    pub fn is_prerequisite(&self) -> bool {
        matches!(self, Job::Task(task) if task.prerequisite)
    }
}

/// One piece of xtask's own work.
#[derive(Clone)]
pub struct Task {
    pub label: String,
    /// The later phases' tests use what it makes: when it fails they do
    /// not run, and it runs whichever lane is chosen.
    pub prerequisite: bool,
    pub run: Arc<dyn Fn() -> anyhow::Result<()> + Send + Sync>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("label", &self.label)
            .field("prerequisite", &self.prerequisite)
            .finish_non_exhaustive()
    }
}

/// One test executable cargo built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestBinary {
    /// The package's directory: the working directory `cargo test` gives it.
    pub package_dir: PathBuf,
    /// The target's name (`e2e`, `homeostat_operator`, …).
    pub target: String,
    /// The executable.
    pub executable: PathBuf,
}

impl TestBinary {
    /// `demo/e2e`: the package's directory and the target, for the log.
    pub fn label(&self, root: &Path) -> String {
        let dir = self
            .package_dir
            .strip_prefix(root)
            .unwrap_or(&self.package_dir);
        format!("{}/{}", dir.display(), self.target)
    }
}

/// The test executables among cargo's `--message-format=json` lines (rule 1).
pub fn test_binaries(messages: &str) -> Vec<TestBinary> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| {
            let executable = PathBuf::from(m["executable"].as_str()?);
            let manifest = Path::new(m["manifest_path"].as_str()?);
            Some(TestBinary {
                package_dir: manifest.parent()?.to_owned(),
                target: m["target"]["name"].as_str()?.to_owned(),
                executable,
            })
        })
        .collect()
}

/// Seconds a test executable took in a CI run on 2 cores, for the order
/// within a lane (rule 7) and the balance of phase three's lanes; unknown
/// ones count as short.
const EXPECTED: [(&str, u32); 6] = [
    ("demo/soak", 460),
    ("demo/cluster", 350),
    ("operator/suites", 215),
    ("tests/integration", 165),
    ("oms-sample/suites", 155),
    ("cli/cli", 25),
];

/// The suites of rule 6.
const SERVER_SUITES: [&str; 3] = ["operator/suites", "tests/integration", "oms-sample/suites"];

fn expected_seconds(label: &str) -> u32 {
    EXPECTED
        .iter()
        .find(|(name, _)| *name == label)
        .map_or(0, |(_, s)| *s)
}

/// The two lanes of one phase.
pub type Phase = [(Lane, Vec<Job>); 2];

/// The phases (rules 2–7), in order: `beside_local_demo` is phase one's
/// other lane, `beside_cluster` goes in phase two's.
pub fn phases(
    root: &Path,
    binaries: Vec<TestBinary>,
    beside_local_demo: Vec<Job>,
    beside_cluster: Vec<Job>,
) -> [Phase; 3] {
    let demo_dir = root.join("demo");
    let (mut demo, mut suites): (Vec<_>, Vec<_>) = binaries
        .into_iter()
        .partition(|b| b.package_dir == demo_dir && b.target != "homeostat_demo");
    for lane in [&mut demo, &mut suites] {
        // Stable: cargo's order among equals.
        lane.sort_by_key(|b| std::cmp::Reverse(expected_seconds(&b.label(root))));
    }
    let (cluster, local): (Vec<_>, Vec<_>) = demo.into_iter().partition(|b| b.target == "cluster");
    let jobs = |binaries: Vec<TestBinary>| binaries.into_iter().map(Job::Test).collect::<Vec<_>>();
    let (servers, light): (Vec<_>, Vec<_>) = suites
        .into_iter()
        .partition(|b| SERVER_SUITES.contains(&b.label(root).as_str()));
    let mut light = jobs(light);
    light.extend(beside_cluster);
    // Longest first, each into the lane with less to do.
    let mut lanes: [(u32, Vec<Job>); 2] = Default::default();
    for binary in servers {
        let lane = if lanes[0].0 <= lanes[1].0 { 0 } else { 1 };
        lanes[lane].0 += expected_seconds(&binary.label(root));
        lanes[lane].1.push(Job::Test(binary));
    }
    let [(_, first), (_, second)] = lanes;
    [
        [(Lane::Demo, jobs(local)), (Lane::Suites, beside_local_demo)],
        [(Lane::Demo, jobs(cluster)), (Lane::Suites, light)],
        [(Lane::Suites, first), (Lane::Suites, second)],
    ]
}

/// What one executable's run printed, tallied from libtest's closing line
/// (`test result: ok. 12 passed; 0 failed; 1 ignored; …`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
    pub ignored: u32,
}

impl Tally {
    /// The sum of every `test result:` line in `output`; `None` when there
    /// is none (the executable died before its harness finished).
    pub fn of_output(output: &str) -> Option<Tally> {
        let mut found = None;
        for line in output.lines() {
            let Some(rest) = line.trim().strip_prefix("test result: ") else {
                continue;
            };
            let tally: &mut Tally = found.get_or_insert_with(Tally::default);
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(word), Some(count)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(count) = count.parse::<u32>() else {
                    continue;
                };
                match word {
                    "passed" => tally.passed += count,
                    "failed" => tally.failed += count,
                    "ignored" => tally.ignored += count,
                    _ => {}
                }
            }
        }
        found
    }

    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGES: &str = r#"{"reason":"compiler-artifact","manifest_path":"/w/demo/Cargo.toml","target":{"kind":["test"],"name":"e2e"},"profile":{"test":true},"executable":"/w/target/release/deps/e2e-1"}
{"reason":"compiler-artifact","manifest_path":"/w/demo/Cargo.toml","target":{"kind":["bin"],"name":"homeostat-demo"},"profile":{"test":false},"executable":"/w/target/release/homeostat-demo"}
{"reason":"compiler-artifact","manifest_path":"/w/demo/Cargo.toml","target":{"kind":["lib"],"name":"homeostat_demo"},"profile":{"test":true},"executable":"/w/target/release/deps/homeostat_demo-2"}
{"reason":"compiler-artifact","manifest_path":"/w/api/Cargo.toml","target":{"kind":["lib"],"name":"homeostat_api"},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","manifest_path":"/w/tests/Cargo.toml","target":{"kind":["test"],"name":"integration"},"profile":{"test":true},"executable":"/w/target/release/deps/integration-3"}
{"reason":"compiler-artifact","manifest_path":"/w/demo/Cargo.toml","target":{"kind":["test"],"name":"soak"},"profile":{"test":true},"executable":"/w/target/release/deps/soak-4"}
{"reason":"build-finished","success":true}
not json at all"#;

    fn labels<T>(lane: &[T], label: impl Fn(&T, &Path) -> String) -> Vec<String> {
        lane.iter().map(|b| label(b, Path::new("/w"))).collect()
    }

    #[test]
    fn only_test_profile_artifacts_with_an_executable_are_tests() {
        let binaries = test_binaries(MESSAGES);
        assert_eq!(
            labels(&binaries, TestBinary::label),
            [
                "demo/e2e",
                "demo/homeostat_demo",
                "tests/integration",
                "demo/soak"
            ]
        );
        assert_eq!(
            binaries[0].executable,
            Path::new("/w/target/release/deps/e2e-1")
        );
        assert_eq!(binaries[0].package_dir, Path::new("/w/demo"));
    }

    fn task(label: &str, prerequisite: bool) -> Job {
        Job::Task(Task {
            label: label.into(),
            prerequisite,
            run: Arc::new(|| Ok(())),
        })
    }

    #[test]
    fn the_local_demo_then_the_cluster_each_beside_light_work_then_the_server_suites() {
        let clippy = Job::Check {
            label: "clippy".into(),
            program: "cargo".into(),
            args: vec!["clippy".into()],
        };
        let images = task("images", true);
        let nab = task("nab", false);
        let mut binaries = test_binaries(MESSAGES);
        let binary = |dir: &str, target: &str| TestBinary {
            package_dir: format!("/w/{dir}").into(),
            target: target.into(),
            executable: format!("/w/target/release/deps/{target}-5").into(),
        };
        binaries.extend([
            binary("demo", "cluster"),
            binary("oms-sample", "suites"),
            binary("operator", "suites"),
            binary("cli", "cli"),
        ]);
        let [first, second, third] =
            phases(Path::new("/w"), binaries, vec![images, clippy], vec![nab]);
        let lanes = |phase: &Phase| {
            phase
                .iter()
                .map(|(lane, jobs)| (*lane, labels(jobs, Job::label)))
                .collect::<Vec<_>>()
        };
        let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            lanes(&first),
            [
                (Lane::Demo, names(&["demo/soak", "demo/e2e"])),
                (Lane::Suites, names(&["images", "clippy"])),
            ]
        );
        // The demo crate's own unit tests are quick: with the light suites.
        assert_eq!(
            lanes(&second),
            [
                (Lane::Demo, names(&["demo/cluster"])),
                (
                    Lane::Suites,
                    names(&["cli/cli", "demo/homeostat_demo", "nab"])
                ),
            ]
        );
        // Longest first, each into the lane with less to do: the operator's
        // 215 s, then integration's 165 s beside it, then the OMS's after
        // integration (165 < 215).
        assert_eq!(
            lanes(&third),
            [
                (Lane::Suites, names(&["operator/suites"])),
                (
                    Lane::Suites,
                    names(&["tests/integration", "oms-sample/suites"])
                ),
            ]
        );
    }

    #[test]
    fn only_prerequisite_tasks_hold_back_later_phases() {
        assert!(task("images", true).is_prerequisite());
        assert!(!task("nab", false).is_prerequisite());
        let clippy = Job::Check {
            label: "clippy".into(),
            program: "cargo".into(),
            args: Vec::new(),
        };
        assert!(!clippy.is_prerequisite());
    }

    #[test]
    fn the_suites_yield_the_cpu_to_the_demo() {
        assert_eq!(Lane::Demo.niceness(), 0);
        assert!(Lane::Suites.niceness() > Lane::Demo.niceness());
    }

    #[test]
    fn the_tally_adds_every_closing_line() {
        let output = "running 3 tests\ntest a ... ok\n\
            test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
            test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(
            Tally::of_output(output),
            Some(Tally {
                passed: 6,
                failed: 1,
                ignored: 1
            })
        );
        assert_eq!(Tally::of_output("thread 'main' panicked"), None);
    }
}
