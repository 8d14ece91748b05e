//! What xtask reads in cargo's `--message-format=json` lines: the test
//! executables it built, and the diagnostics rustc (or clippy's driver)
//! gave our crates.

use std::path::{Path, PathBuf};

use serde_json::Value;

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

/// The test executables among cargo's JSON lines: the artifacts cargo
/// built with the test profile and says where they are; everything else
/// it printed is ignored.
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

/// A diagnostic the compiler gave, as it would print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub rendered: String,
    /// A warning (a lint at its default level among them), not an error
    /// or a note.
    pub is_warning: bool,
}

/// The diagnostic in one of cargo's JSON lines, if it is one.
pub fn diagnostic(line: &str) -> Option<Diagnostic> {
    let message: Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-message" {
        return None;
    }
    let inner = &message["message"];
    Some(Diagnostic {
        rendered: inner["rendered"].as_str()?.to_owned(),
        is_warning: inner["level"] == "warning",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGES: &str = r#"{"reason":"compiler-artifact","manifest_path":"/w/demo/Cargo.toml","target":{"kind":["test"],"name":"e2e"},"profile":{"test":true},"executable":"/w/target/release/deps/e2e-1"}
{"reason":"compiler-artifact","manifest_path":"/w/demo/Cargo.toml","target":{"kind":["bin"],"name":"homeostat-demo"},"profile":{"test":false},"executable":"/w/target/release/homeostat-demo"}
{"reason":"compiler-artifact","manifest_path":"/w/demo/Cargo.toml","target":{"kind":["lib"],"name":"homeostat_demo"},"profile":{"test":true},"executable":"/w/target/release/deps/homeostat_demo-2"}
{"reason":"compiler-artifact","manifest_path":"/w/api/Cargo.toml","target":{"kind":["lib"],"name":"homeostat_api"},"profile":{"test":false},"executable":null}
{"reason":"compiler-message","package_id":"path+file:///w/api#0.1.0","message":{"level":"warning","code":{"code":"clippy::len_zero"},"rendered":"warning: length comparison to zero\n"}}
{"reason":"compiler-artifact","manifest_path":"/w/tests/Cargo.toml","target":{"kind":["test"],"name":"integration"},"profile":{"test":true},"executable":"/w/target/release/deps/integration-3"}
{"reason":"build-finished","success":true}
not json at all"#;

    #[test]
    fn only_test_profile_artifacts_with_an_executable_are_tests() {
        let binaries = test_binaries(MESSAGES);
        let labels: Vec<_> = binaries.iter().map(|b| b.label(Path::new("/w"))).collect();
        assert_eq!(
            labels,
            ["demo/e2e", "demo/homeostat_demo", "tests/integration"]
        );
        assert_eq!(
            binaries[0].executable,
            Path::new("/w/target/release/deps/e2e-1")
        );
        assert_eq!(binaries[0].package_dir, Path::new("/w/demo"));
    }

    #[test]
    fn a_compiler_message_is_a_diagnostic_and_its_level_is_kept() {
        let found: Vec<_> = MESSAGES.lines().filter_map(diagnostic).collect();
        assert_eq!(
            found,
            [Diagnostic {
                rendered: "warning: length comparison to zero\n".into(),
                is_warning: true
            }]
        );
        let error = r#"{"reason":"compiler-message","message":{"level":"error","rendered":"error[E0308]: mismatched types\n"}}"#;
        assert_eq!(diagnostic(error).map(|d| d.is_warning), Some(false));
    }
}
