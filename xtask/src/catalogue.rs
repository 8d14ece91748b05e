//! `cargo xtask catalogue [NAME...]`: plays the fault catalogue
//! (tests/scenarios/catalogue/, or the named scenarios of it) one scenario
//! after another — on the local stack, and those in catalogue/cluster/ (a
//! bounded capacity, a rolling restart) on the one-node cluster — and
//! prints per scenario and overall
//! whether the first report named the faulted service (top-1 culprit
//! accuracy, AC@1), the time to detect and the false reports. A scenario
//! named `quiet-…` has no culprit: any report in it is false. Fails when
//! AC@1 is below 0.9 or a quiet run reported anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{demo, workspace};

/// The goal: the first report names the faulted service in nine runs of ten.
const AC1_GOAL: f64 = 0.9;

/// What one scenario run showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    /// The faulted service; `None` for a quiet run.
    pub expected: Option<String>,
    /// The culprit of the first report opened, if any.
    pub first_culprit: Option<String>,
    pub ttd_seconds: Option<f64>,
    /// Reports naming a service the scenario did not fault (all of them in a quiet run).
    pub false_reports: u64,
    /// Restarts the scenario made that did not replace every pod: a quiet
    /// run whose restart never rolled proves nothing.
    pub restarts_not_rolled: usize,
}

impl Row {
    /// Reads a demo outcome (the `--json` file).
    pub fn of(name: &str, outcome: &Value) -> Self {
        let stem = name.rsplit('/').next().unwrap_or(name);
        let quiet = stem.starts_with("quiet-");
        let reports = outcome["reports"].as_array().cloned().unwrap_or_default();
        let first = reports
            .iter()
            .min_by_key(|r| r["opened_at"].as_str().unwrap_or_default().to_owned());
        let expected = outcome["faults"][0]["service"]
            .as_str()
            .filter(|_| !quiet)
            .map(str::to_owned);
        Self {
            name: name.to_owned(),
            expected,
            first_culprit: first.and_then(|r| r["culprit"].as_str()).map(str::to_owned),
            ttd_seconds: outcome["ttd_seconds"].as_f64().filter(|_| !quiet),
            false_reports: if quiet {
                reports.len() as u64
            } else {
                outcome["false_reports"].as_u64().unwrap_or(0)
            },
            restarts_not_rolled: outcome["restarts"].as_array().map_or(0, |restarts| {
                restarts.iter().filter(|r| !rolled(&r["rollout"])).count()
            }),
        }
    }

    /// Whether the run did what it should: the right culprit first, or
    /// nothing at all in a quiet run; and its restarts rolled.
    pub fn passed(&self) -> bool {
        let judged = match &self.expected {
            Some(service) => self.first_culprit.as_ref() == Some(service),
            None => self.false_reports == 0,
        };
        judged && self.restarts_not_rolled == 0
    }
}

/// A restart's rollout (the demo's `RolloutOutcome`) replaced every pod
/// Ready at the restart with a Ready new one.
fn rolled(rollout: &Value) -> bool {
    rollout["done"].as_bool() == Some(true)
}

/// The catalogue's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub faulted: usize,
    pub ac1: f64,
    pub median_ttd_seconds: Option<f64>,
    pub false_reports: u64,
    pub quiet_runs: usize,
    pub quiet_runs_with_reports: usize,
}

pub fn summarise(rows: &[Row]) -> Summary {
    let faulted: Vec<&Row> = rows.iter().filter(|r| r.expected.is_some()).collect();
    let correct = faulted.iter().filter(|r| r.passed()).count();
    let mut ttds: Vec<f64> = faulted.iter().filter_map(|r| r.ttd_seconds).collect();
    ttds.sort_by(f64::total_cmp);
    let quiet: Vec<&Row> = rows.iter().filter(|r| r.expected.is_none()).collect();
    Summary {
        faulted: faulted.len(),
        ac1: if faulted.is_empty() {
            0.0
        } else {
            correct as f64 / faulted.len() as f64
        },
        median_ttd_seconds: ttds.get(ttds.len() / 2).copied(),
        false_reports: rows.iter().map(|r| r.false_reports).sum(),
        quiet_runs: quiet.len(),
        quiet_runs_with_reports: quiet.iter().filter(|r| !r.passed()).count(),
    }
}

/// The rows and the summary as a Markdown table, for BENCHMARKS.md.
pub fn table(rows: &[Row], summary: &Summary) -> String {
    let mut out = String::from(
        "| scenario | faulted | first report names | time to detect | false reports | ok |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.expected.as_deref().unwrap_or("— (quiet)"),
            r.first_culprit.as_deref().unwrap_or("—"),
            r.ttd_seconds
                .map_or("—".to_owned(), |t| format!("{t:.1} s")),
            r.false_reports,
            match (r.passed(), r.restarts_not_rolled) {
                (true, _) => "yes".to_owned(),
                (false, 0) => "**no**".to_owned(),
                (false, n) => format!("**no** ({n} restart(s) did not roll)"),
            },
        ));
    }
    out.push_str(&format!(
        "\nAC@1 {:.2} over {} faulted runs; median time to detect {}; false reports {}; quiet runs with a report {} of {}\n",
        summary.ac1,
        summary.faulted,
        summary
            .median_ttd_seconds
            .map_or("—".to_owned(), |t| format!("{t:.1} s")),
        summary.false_reports,
        summary.quiet_runs_with_reports,
        summary.quiet_runs,
    ));
    out
}

/// A catalogue scenario and where it is played.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    path: PathBuf,
    on_cluster: bool,
}

impl Entry {
    /// `latency-tax`, or `cluster/surge-tax` for one played on the cluster.
    fn name(&self) -> String {
        let stem = stem(&self.path);
        if self.on_cluster {
            format!("cluster/{stem}")
        } else {
            stem.to_owned()
        }
    }
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The catalogue in `dir`, local scenarios first; or the ones named (by
/// file stem, or `cluster/stem`), in the order named.
fn scenarios(dir: &Path, names: &[String]) -> anyhow::Result<Vec<Entry>> {
    let local = yaml_files(dir)?.into_iter().map(|path| Entry {
        path,
        on_cluster: false,
    });
    let cluster = yaml_files(&dir.join("cluster"))?
        .into_iter()
        .map(|path| Entry {
            path,
            on_cluster: true,
        });
    let all: Vec<Entry> = local.chain(cluster).collect();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|name| {
            all.iter()
                .find(|e| e.name() == *name || stem(&e.path) == name.as_str())
                .cloned()
                .with_context(|| format!("no scenario {name:?} in {}", dir.display()))
        })
        .collect()
}

fn stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}

/// Plays one scenario with the prepared demo and reads its outcome.
fn play(demo: &Command, entry: &Entry, out_dir: &Path) -> anyhow::Result<Row> {
    let name = entry.name();
    eprintln!("catalogue: {name}");
    let json = out_dir.join(format!("{}.json", name.replace('/', "-")));
    let _ = std::fs::remove_file(&json);
    let mut player = Command::new(demo.get_program());
    player
        .envs(demo.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .args(demo.get_args())
        .args(entry.on_cluster.then_some("--cluster"))
        .arg("--scenario")
        .arg(&entry.path)
        .arg("--json")
        .arg(&json);
    let played = workspace::run(&mut player);
    // A run that failed still wrote what it saw, when it got that far.
    if let Err(error) = &played {
        eprintln!("catalogue: {name}: {error:#}");
    }
    let text = std::fs::read_to_string(&json)
        .with_context(|| format!("{name}: the demo wrote no outcome"))?;
    let outcome: Value = serde_json::from_str(&text).with_context(|| format!("{name}: outcome"))?;
    Ok(Row::of(&name, &outcome))
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let entries = scenarios(&workspace::root().join("tests/scenarios/catalogue"), args)?;
    let out_dir = workspace::root().join("target/catalogue");
    std::fs::create_dir_all(&out_dir)?;
    let mut rows = Vec::new();
    // Prepared once for each place: the binaries (and images) are the same for every scenario.
    for on_cluster in [false, true] {
        let here: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.on_cluster == on_cluster)
            .collect();
        if here.is_empty() {
            continue;
        }
        let demo = demo::prepare(on_cluster)?;
        for entry in here {
            rows.push(play(&demo, entry, &out_dir)?);
        }
    }
    let summary = summarise(&rows);
    print!("{}", table(&rows, &summary));
    if summary.ac1 < AC1_GOAL && summary.faulted > 0 {
        bail!("AC@1 {:.2} is below {AC1_GOAL}", summary.ac1);
    }
    if summary.quiet_runs_with_reports > 0 {
        bail!(
            "{} quiet run(s) opened a report",
            summary.quiet_runs_with_reports
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(faulted: &str, culprits: &[(&str, &str)], false_reports: u64) -> Value {
        let reports: Vec<Value> = culprits
            .iter()
            .map(|(culprit, at)| json!({"culprit": culprit, "opened_at": at}))
            .collect();
        json!({
            "faults": [{"service": faulted}],
            "reports": reports,
            "ttd_seconds": 12.0,
            "false_reports": false_reports,
        })
    }

    #[test]
    fn the_first_report_opened_is_the_top_1_culprit() {
        let o = outcome(
            "tax",
            &[
                ("orders", "2026-12-05T00:00:20Z"),
                ("tax", "2026-12-05T00:00:10Z"),
            ],
            1,
        );
        let row = Row::of("latency-tax", &o);
        assert_eq!(row.first_culprit.as_deref(), Some("tax"));
        assert!(row.passed());
        let wrong = Row::of(
            "latency-tax",
            &outcome("tax", &[("orders", "2026-12-05T00:00:05Z")], 1),
        );
        assert!(!wrong.passed());
        let missed = Row::of("latency-tax", &outcome("tax", &[], 0));
        assert!(!missed.passed());
    }

    #[test]
    fn any_report_in_a_quiet_run_is_false_whatever_it_names() {
        let o = outcome("tax", &[("tax", "2026-12-05T00:00:10Z")], 0);
        let row = Row::of("quiet-restart-tax", &o);
        assert_eq!((row.expected.clone(), row.false_reports), (None, 1));
        assert!(!row.passed());
        assert!(Row::of("quiet-restart-tax", &outcome("tax", &[], 0)).passed());
    }

    #[test]
    fn a_quiet_restart_passes_only_when_every_restart_rolled() {
        let with_rollout = |left: u64| {
            let mut o = json!({"reports": [], "false_reports": 0});
            o["restarts"] = json!([{"service": "inventory", "rollout":
                {"replaced": 1, "left": left, "started_ready": 1, "done": left == 0}}]);
            o
        };
        let rolled = Row::of("cluster/quiet-restart", &with_rollout(0));
        assert_eq!(
            (rolled.expected.clone(), rolled.restarts_not_rolled),
            (None, 0)
        );
        assert!(rolled.passed());
        let stuck = Row::of("cluster/quiet-restart", &with_rollout(1));
        assert_eq!(stuck.restarts_not_rolled, 1);
        assert!(!stuck.passed());
        let mut unjudged = with_rollout(0);
        unjudged["restarts"][0]["rollout"] = Value::Null;
        assert!(!Row::of("cluster/quiet-restart", &unjudged).passed());
        let summary = summarise(std::slice::from_ref(&stuck));
        assert!(table(&[stuck], &summary).contains("1 restart(s) did not roll"));
    }

    #[test]
    fn scenarios_in_the_cluster_folder_are_played_on_the_cluster_after_the_local_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("cluster")).expect("mkdir");
        for file in ["latency-tax.yaml", "cluster/surge-tax.yaml", "notes.md"] {
            std::fs::write(dir.path().join(file), "").expect("write");
        }
        let all = scenarios(dir.path(), &[]).expect("the catalogue");
        let names: Vec<(String, bool)> = all.iter().map(|e| (e.name(), e.on_cluster)).collect();
        assert_eq!(
            names,
            [
                ("latency-tax".to_owned(), false),
                ("cluster/surge-tax".to_owned(), true)
            ]
        );
        let named = scenarios(
            dir.path(),
            &["surge-tax".into(), "cluster/surge-tax".into()],
        )
        .expect("by name");
        assert!(named.iter().all(|e| e.on_cluster));
        let missing = scenarios(dir.path(), &["latency-orders".into()]).expect_err("missing");
        assert!(missing.to_string().contains("latency-orders"), "{missing}");
    }

    #[test]
    fn ac1_counts_faulted_runs_only_and_quiet_runs_are_counted_apart() {
        let rows = [
            Row::of("a", &outcome("tax", &[("tax", "2026-12-05T00:00:10Z")], 0)),
            Row::of(
                "b",
                &outcome("inventory", &[("orders", "2026-12-05T00:00:10Z")], 1),
            ),
            Row::of("quiet-x", &outcome("tax", &[], 0)),
        ];
        let s = summarise(&rows);
        assert_eq!((s.faulted, s.ac1, s.false_reports), (2, 0.5, 1));
        assert_eq!((s.quiet_runs, s.quiet_runs_with_reports), (1, 0));
        assert!(table(&rows, &s).contains("AC@1 0.50 over 2 faulted runs"));
    }
}
