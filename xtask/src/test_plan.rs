//! What `cargo xtask test` runs, and when: the test executables cargo
//! built (read from its JSON messages) in three phases of lanes side by
//! side, with the build itself staged between them; and the tally of what
//! they printed.
//!
//! Rules:
//! 1. The demo package's integration tests go in [`Lane::Demo`]: each plays
//!    minutes of traffic against deadlines, so no two of them overlap.
//! 2. Every other test goes in [`Lane::Suites`]: their servers sit on free
//!    loopback ports and mostly wait.
//! 3. Before phase one, at full priority on both cores, only what the local
//!    demo runs is built: its binaries, its test executable and the
//!    control plane's Go commands. The rest is built beside the demo runs,
//!    which leave most of a core idle (measured: the soak takes about 30 %
//!    of the two cores, the cluster demo 40–50 %).
//! 4. Phase one: the local demo, beside only work that needs no test
//!    server of ours: the build of what phase two needs (the node's Go
//!    commands and the cluster's test executable), the container images,
//!    then helm (Go beside the soak left it undisturbed). Beside the suites, whose bursts of processes starting
//!    (PostgreSQL, API servers) stall the demo's OMS on 2 cores, the local
//!    soak drew false reports in one run of two (at equal priority: before
//!    rule 8). Beside cargo building the test executables, in the soak's
//!    last two minutes, fulfillment's p99 rose 8.6 times (a false report,
//!    the cold run of 2026-12-07): the cgroup holds the CPU, not the memory
//!    and disk that linking takes.
//! 5. Phase two: the demo on the one-node cluster, beside cargo's build of
//!    everything else (every other target) and the report of its
//!    warnings (clippy's lints, compiled with it). The cluster demo passed
//!    beside it (0 false reports). The cluster needs the images and the
//!    node's commands: a phase runs only when every prerequisite before it
//!    succeeded.
//! 6. Phase three: every other test, in [`SUITE_LANES`] lanes side by
//!    side, longest first, each into the lane with the least to do. The
//!    suites that start servers by the dozen for minutes ([`SERVER_SUITES`]:
//!    API servers with etcd, PostgreSQL, Prometheus, containerd) are kept
//!    from the demo runs: their servers commit with fsync, and the disk is
//!    shared whatever their CPU priority. Beside the cluster demo, at nice
//!    19, they still stalled its OMS (inventory's and orders' p50 at 59 and
//!    6 times their bands for 5 s: two false reports), and, starved, the
//!    OMS's crash drill missed the saga it means to strand. Among
//!    themselves they mostly wait: phase three's two lanes left half the
//!    machine idle.
//! 7. Within a lane the order is cargo's, longest-known first where a
//!    duration is known ([`EXPECTED`]).
//! 8. The suites lanes run at the lowest CPU priority ([`Lane::niceness`]
//!    and a cpu cgroup of the smallest weight: `background.rs`): they take
//!    what the demo leaves. The suites and the builds stand for a node's
//!    other tenants, which a real node's kubelet holds to their share beside
//!    its pods. At equal priority on 2 cores, the suites' dozens of
//!    processes starved the cluster demo's pods for seconds at a time (two
//!    false reports, in CI and in a rerun). Nice alone is not enough beside
//!    the cluster: with autogroup, the pods (sessions and cgroups of their
//!    own) compete with a nice-19 lane as peers, and the build beside the
//!    cluster demo took 40–48 % of the CPU while its OMS stalled (two false
//!    reports, cold run of 2026-12-07). The demo's tolerance of a CPU-bound
//!    neighbour at full priority is measured on its own (BENCHMARKS.md).

use std::path::Path;
use std::sync::Arc;

pub use crate::cargo_messages::TestBinary;

/// Where a test executable runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The demo's end-to-end runs, one at a time.
    Demo,
    /// Everything else, one at a time, beside the demo lane or another
    /// suites lane.
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
    /// Work of xtask's own (a stage of the build, the images, the NAB
    /// score), run on the lane's thread: it prints as it goes.
    Task(Task),
}

impl Job {
    pub fn label(&self, root: &Path) -> String {
        match self {
            Job::Test(binary) => binary.label(root),
            Job::Task(task) => task.label.clone(),
        }
    }

    /// Later phases need what it makes (rule 5): a stage of the build, the
    /// images.
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

/// Seconds a test executable took in a CI run on 2 cores, for the order
/// within a lane (rule 7) and the balance of phase three's lanes; unknown
/// ones count as short.
const EXPECTED: [(&str, u32); 6] = [
    ("demo/soak", 460),
    ("demo/cluster", 345),
    ("operator/suites", 205),
    ("tests/integration", 180),
    ("oms-sample/suites", 130),
    ("cli/cli", 26),
];

/// The suites of rule 6.
const SERVER_SUITES: [&str; 3] = ["operator/suites", "tests/integration", "oms-sample/suites"];

/// Phase three's lanes (rule 6): with two, half the machine was idle.
pub const SUITE_LANES: usize = 3;

fn expected_seconds(label: &str) -> u32 {
    EXPECTED
        .iter()
        .find(|(name, _)| *name == label)
        .map_or(0, |(_, s)| *s)
}

/// The lanes of one phase, side by side.
pub type Phase = Vec<(Lane, Vec<Job>)>;

/// The test executables by the phase they run in (rules 1, 2, 4–6).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    /// The local demo's runs: phase one.
    pub local_demo: Vec<TestBinary>,
    /// The cluster demo's: phase two.
    pub cluster_demo: Vec<TestBinary>,
    /// Everything else: phase three.
    pub suites: Vec<TestBinary>,
}

/// Sorts `binaries` into [`Sorted`], each group longest-known first (rule
/// 7), cargo's order among equals.
pub fn sort(root: &Path, binaries: Vec<TestBinary>) -> Sorted {
    let demo_dir = root.join("demo");
    let mut sorted = Sorted::default();
    for binary in binaries {
        let demo = binary.package_dir == demo_dir && binary.target != "homeostat_demo";
        let group = match (demo, binary.target.as_str()) {
            (true, "cluster") => &mut sorted.cluster_demo,
            (true, _) => &mut sorted.local_demo,
            (false, _) => &mut sorted.suites,
        };
        // Built again by a later stage of the build: once is enough.
        if !group.contains(&binary) {
            group.push(binary);
        }
    }
    for group in [
        &mut sorted.local_demo,
        &mut sorted.cluster_demo,
        &mut sorted.suites,
    ] {
        // Stable: cargo's order among equals.
        group.sort_by_key(|b| std::cmp::Reverse(expected_seconds(&b.label(root))));
    }
    sorted
}

/// A demo phase (one or two): the demo's runs, and beside them at nice 19
/// `beside` (rules 4, 5).
pub fn demo_phase(demo: Vec<TestBinary>, beside: Vec<Job>) -> Phase {
    vec![
        (Lane::Demo, demo.into_iter().map(Job::Test).collect()),
        (Lane::Suites, beside),
    ]
}

/// Phase three (rule 6): the suites that start servers first, longest
/// first, each into the lane with the least to do; then the others and
/// `extra` the same way.
pub fn suites_phase(root: &Path, suites: Vec<TestBinary>, extra: Vec<Job>) -> Phase {
    let (servers, light): (Vec<_>, Vec<_>) = suites
        .into_iter()
        .partition(|b| SERVER_SUITES.contains(&b.label(root).as_str()));
    let jobs = servers.into_iter().chain(light).map(Job::Test).chain(extra);
    let mut lanes: Vec<(u32, Vec<Job>)> = (0..SUITE_LANES).map(|_| (0, Vec::new())).collect();
    for job in jobs {
        let seconds = match &job {
            Job::Test(binary) => expected_seconds(&binary.label(root)),
            Job::Task(_) => 0,
        };
        // The first of the least loaded: a tie goes to the earlier lane.
        let lane = lanes
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("SUITE_LANES is not 0");
        lane.0 += seconds;
        lane.1.push(job);
    }
    lanes
        .into_iter()
        .map(|(_, jobs)| (Lane::Suites, jobs))
        .collect()
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

    fn binary(dir: &str, target: &str) -> TestBinary {
        TestBinary {
            package_dir: format!("/w/{dir}").into(),
            target: target.into(),
            executable: format!("/w/target/release/deps/{target}-5").into(),
        }
    }

    fn labels(jobs: &[Job]) -> Vec<String> {
        jobs.iter().map(|j| j.label(Path::new("/w"))).collect()
    }

    fn task(label: &str, prerequisite: bool) -> Job {
        Job::Task(Task {
            label: label.into(),
            prerequisite,
            run: Arc::new(|| Ok(())),
        })
    }

    #[test]
    fn the_demo_runs_go_in_the_first_two_phases_and_everything_else_in_the_third() {
        let first_stage = vec![binary("demo", "soak")];
        let later_stage = vec![
            binary("tests", "integration"),
            binary("demo", "homeostat_demo"),
            binary("cli", "cli"),
            binary("demo", "soak"),
            binary("demo", "cluster"),
            binary("oms-sample", "suites"),
            binary("operator", "suites"),
        ];
        let root = Path::new("/w");
        let early = sort(root, first_stage);
        assert_eq!(early.local_demo, [binary("demo", "soak")]);
        assert!(early.cluster_demo.is_empty() && early.suites.is_empty());
        let all = sort(root, later_stage);
        assert_eq!(all.local_demo, [binary("demo", "soak")]);
        assert_eq!(all.cluster_demo, [binary("demo", "cluster")]);
        // The demo crate's own unit tests are quick: with the suites.
        let suites: Vec<_> = all.suites.iter().map(|b| b.label(root)).collect();
        assert_eq!(
            suites,
            [
                "operator/suites",
                "tests/integration",
                "oms-sample/suites",
                "cli/cli",
                "demo/homeostat_demo",
            ]
        );

        let one = demo_phase(all.local_demo, vec![task("build for the cluster", true)]);
        assert_eq!(one.len(), 2);
        assert_eq!(one[0].0, Lane::Demo);
        assert_eq!(labels(&one[0].1), ["demo/soak"]);
        assert_eq!(one[1].0, Lane::Suites);
        assert_eq!(labels(&one[1].1), ["build for the cluster"]);
    }

    #[test]
    fn phase_three_puts_the_server_suites_in_lanes_of_their_own_and_the_rest_where_least_is_left() {
        let root = Path::new("/w");
        let suites = sort(
            root,
            vec![
                binary("cli", "cli"),
                binary("api", "homeostat_api"),
                binary("oms-sample", "suites"),
                binary("tests", "integration"),
                binary("operator", "suites"),
            ],
        )
        .suites;
        let phase = suites_phase(root, suites, vec![task("nab", false)]);
        let lanes: Vec<_> = phase
            .iter()
            .map(|(lane, jobs)| (*lane, labels(jobs)))
            .collect();
        let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        // 205 | 180 | 130, then the CLI (26) and the quick ones (0) onto the
        // OMS's lane, the least loaded throughout.
        assert_eq!(
            lanes,
            [
                (Lane::Suites, names(&["operator/suites"])),
                (Lane::Suites, names(&["tests/integration"])),
                (
                    Lane::Suites,
                    names(&["oms-sample/suites", "cli/cli", "api/homeostat_api", "nab"])
                ),
            ]
        );
    }

    #[test]
    fn only_prerequisite_tasks_hold_back_later_phases() {
        assert!(task("images", true).is_prerequisite());
        assert!(!task("nab", false).is_prerequisite());
        assert!(!Job::Test(binary("cli", "cli")).is_prerequisite());
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
