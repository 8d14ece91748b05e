//! `cargo xtask nab`: the running detector's per-series score (`score-csv`:
//! baseline, novelty, online learning, as `run` scores every series) on the
//! NAB development set, scored by the team's scorer, failing below the target.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace;

/// The target for the standard profile on the development set.
pub const TARGET: f64 = 65.0;

/// The shared folder beside the checkout, or `HOMEOSTAT_SHARED`.
fn shared_dir() -> PathBuf {
    std::env::var_os("HOMEOSTAT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace::root().join("..").join("shared"))
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let min = match args {
        [] => TARGET,
        [flag, value] if flag == "--min" => value
            .parse()
            .with_context(|| format!("--min takes a number, got {value:?}"))?,
        _ => bail!("usage: cargo xtask nab [--min SCORE]"),
    };
    let detector = workspace::build_release_bins()?.join("homeostat-detector");
    check(&detector, min)
}

/// Scores `detector` (a built `homeostat-detector`); fails below `min`.
pub fn check(detector: &std::path::Path, min: f64) -> anyhow::Result<()> {
    let shared = shared_dir();
    let scorer = shared.join("tools").join("nab_score.py");
    let data = shared.join("data").join("nab-dev");
    if !scorer.is_file() || !data.is_dir() {
        bail!(
            "the NAB development set is not at {} (set HOMEOSTAT_SHARED to the shared folder)",
            shared.display()
        );
    }
    let numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .status()
        .context("cannot run python3")?;
    if !numpy.success() {
        bail!("the scorer needs numpy: pip install numpy");
    }
    let figure = score(
        &scorer,
        &data,
        &format!("{} score-csv {{input}}", detector.display()),
    )?;
    if figure < min {
        bail!("NAB standard score {figure} is below {min}");
    }
    eprintln!("NAB standard score of the running detector {figure} (target {min}): ok");
    Ok(())
}

/// Runs the scorer with `detector_cmd`; its standard-profile score.
fn score(
    scorer: &std::path::Path,
    data: &std::path::Path,
    detector_cmd: &str,
) -> anyhow::Result<f64> {
    let output = Command::new("python3")
        .arg(scorer)
        .arg("--detector-cmd")
        .arg(detector_cmd)
        .arg("--data-dir")
        .arg(data)
        .arg("--labels")
        .arg(data.join("combined_windows.json"))
        .args(["--jobs", "2"])
        .output()
        .context("cannot run the NAB scorer")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        bail!(
            "the NAB scorer failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("nab_standard="))
        .next_back()
        .and_then(|v| v.trim().parse().ok())
        .context("the scorer printed no nab_standard= line")
}
