//! Running `homeostat-demo` on the local stack from a test: the binaries,
//! a scenario, and the outcome JSON, with the logs kept after a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One finished run of the demo.
pub struct Run {
    pub status: ExitStatus,
    /// The outcome JSON as written (empty when the demo wrote none).
    pub text: String,
    /// The run's directory: logs, report.html.
    pub out: tempfile::TempDir,
    name: &'static str,
}

impl Run {
    pub fn outcome(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("outcome JSON: {e}; {}", self.context()))
    }

    /// The outcome of a run that succeeded with one report, naming
    /// `culprit`, and nothing reported or done that the faults did not
    /// call for; with the context for later failure messages.
    // Each test binary compiles this module; the soak judges otherwise.
    #[allow(dead_code)]
    pub fn one_true_report(&self, culprit: &str) -> (serde_json::Value, String) {
        assert!(self.status.success(), "demo failed: {}", self.context());
        let outcome = self.outcome();
        let context = self.context();
        let reports = outcome["reports"].as_array().expect("reports");
        assert_eq!(reports.len(), 1, "{context}");
        assert_eq!(reports[0]["culprit"], culprit, "{context}");
        assert_eq!(outcome["false_reports"], 0, "{context}");
        assert_eq!(outcome["false_actions"], 0, "{context}");
        (outcome, context)
    }

    /// The outcome and where the logs were kept, for a failure's message.
    pub fn context(&self) -> String {
        // Copied out of the temporary directory for the post-mortem.
        let kept = std::env::temp_dir().join(format!("homeostat-{}-logs", self.name));
        let _ = std::fs::remove_dir_all(&kept);
        let _ = Command::new("cp")
            .arg("-r")
            .arg(self.out.path().join("logs"))
            .arg(&kept)
            .status();
        format!("{}\nlogs in {}", self.text, kept.display())
    }
}

/// Plays `scenario` (under tests/scenarios/) with `extra` arguments.
pub fn play(name: &'static str, scenario: &str, extra: &[&str]) -> Run {
    let demo = PathBuf::from(env!("CARGO_BIN_EXE_homeostat-demo"));
    // The processes under test: release builds when given (cargo xtask test
    // gives them, as the demo runs them), else the ones beside this test.
    let bin_dir = std::env::var_os("HOMEOSTAT_DEMO_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| demo.parent().expect("target dir").to_owned());
    for binary in ["oms", "homeostat-operator", "homeostat-detector"] {
        assert!(
            bin_dir.join(binary).is_file(),
            "{} is missing: build it first (`cargo build --release --bins -p homeostat-oms \
             -p homeostat-operator -p homeostat-detector`, with HOMEOSTAT_DEMO_BIN_DIR=target/release; \
             cargo xtask test does both)",
            bin_dir.join(binary).display()
        );
    }
    let out = tempfile::tempdir().expect("tempdir");
    let json_path = out.path().join("outcome.json");
    let status = Command::new(&demo)
        .env("HOMEOSTAT_ROOT", root())
        .arg("--scenario")
        .arg(root().join("tests/scenarios").join(scenario))
        .arg("--json")
        .arg(&json_path)
        .arg("--out-dir")
        .arg(out.path())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .args(extra)
        .status()
        .expect("run homeostat-demo");
    Run {
        status,
        text: std::fs::read_to_string(&json_path).unwrap_or_default(),
        out,
        name,
    }
}
