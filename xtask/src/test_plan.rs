//! What `cargo xtask test` runs after its one build, and when: the test
//! executables cargo built (read from its JSON messages) in two phases of
//! two lanes side by side; and the tally of what they printed.
//!
//! Rules:
//! 1. An executable is a test when cargo built it with the test profile
//!    and says where it is; everything else cargo printed is ignored.
//! 2. The demo package's integration tests go in [`Lane::Demo`]: each plays
//!    minutes of traffic against deadlines, so no two of them overlap.
//! 3. Every other test goes in [`Lane::Suites`]: their servers sit on free
//!    loopback ports and mostly wait.
//! 4. Phase one: the local demo runs, beside only the checks that need no
//!    build of ours (clippy, at the lowest CPU priority: the CPU-bound
//!    neighbour the demo must take in its stride). Beside the suites, whose
//!    bursts of processes starting (PostgreSQL, API servers) stall the
//!    demo's OMS on 2 cores, the local soak drew false reports in one run of
//!    two.
//! 5. Phase two: the demo on the one-node cluster (its pods have CPU
//!    requests of their own), beside every suite.
//! 6. Within a lane the order is cargo's, longest-known first where a
//!    duration is known ([`EXPECTED`]).

use std::path::{Path, PathBuf};

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

/// What a lane runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A test executable: its tests are counted.
    Test(TestBinary),
    /// A command run in the workspace's root (clippy): it passes or fails.
    Check {
        label: String,
        program: PathBuf,
        args: Vec<String>,
    },
}

impl Job {
    pub fn label(&self, root: &Path) -> String {
        match self {
            Job::Test(binary) => binary.label(root),
            Job::Check { label, .. } => label.clone(),
        }
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

/// Seconds a test executable took in a cold CI run on 2 cores, for the
/// order within a lane (rule 4); unknown ones count as short.
const EXPECTED: [(&str, u32); 5] = [
    ("demo/soak", 480),
    ("demo/cluster", 400),
    ("oms-sample/suites", 300),
    ("tests/integration", 240),
    ("operator/suites", 240),
];

fn expected_seconds(label: &str) -> u32 {
    EXPECTED
        .iter()
        .find(|(name, _)| *name == label)
        .map_or(0, |(_, s)| *s)
}

/// The two lanes of one phase.
pub type Phase = [(Lane, Vec<Job>); 2];

/// The phases (rules 2–6), in order.
pub fn phases(root: &Path, binaries: Vec<TestBinary>, checks: Vec<Job>) -> [Phase; 2] {
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
    [
        [(Lane::Demo, jobs(local)), (Lane::Suites, checks)],
        [(Lane::Demo, jobs(cluster)), (Lane::Suites, jobs(suites))],
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

    #[test]
    fn the_local_demo_runs_beside_the_checks_then_the_cluster_beside_the_suites() {
        let clippy = Job::Check {
            label: "clippy".into(),
            program: "cargo".into(),
            args: vec!["clippy".into()],
        };
        let mut binaries = test_binaries(MESSAGES);
        binaries.push(TestBinary {
            package_dir: "/w/demo".into(),
            target: "cluster".into(),
            executable: "/w/target/release/deps/cluster-5".into(),
        });
        let [first, second] = phases(Path::new("/w"), binaries, vec![clippy]);
        let lanes = |phase: &Phase| {
            phase
                .iter()
                .map(|(lane, jobs)| (*lane, labels(jobs, Job::label)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lanes(&first),
            [
                (
                    Lane::Demo,
                    vec!["demo/soak".to_owned(), "demo/e2e".to_owned()]
                ),
                (Lane::Suites, vec!["clippy".to_owned()]),
            ]
        );
        // The demo crate's own unit tests are quick: with the suites.
        assert_eq!(
            lanes(&second),
            [
                (Lane::Demo, vec!["demo/cluster".to_owned()]),
                (
                    Lane::Suites,
                    vec![
                        "tests/integration".to_owned(),
                        "demo/homeostat_demo".to_owned()
                    ]
                ),
            ]
        );
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
