//! `homeostat-demo`: the self-healing loop on a laptop. Run through
//! `cargo xtask demo`, which builds what it needs first.

mod html;
mod outcome;
mod play;
mod scenario;
mod series;
mod stack;
mod timeline;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::outcome::Outcome;
use crate::scenario::{Policies, Scenario};
use crate::stack::{Layout, SCRAPE, Stack};
use crate::timeline::Timeline;

/// The detector's default report threshold, drawn on the score chart.
const THRESHOLD: f64 = 0.7;

#[derive(Parser, Debug)]
#[command(
    name = "homeostat-demo",
    version,
    about = "Play a scenario on the local self-healing stack"
)]
struct Cli {
    /// Scenario file; the default is the payment-latency scenario.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Write the outcome as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the HTML report here (default: <out-dir>/report.html).
    #[arg(long)]
    html: Option<PathBuf>,
    /// Logs and the report (default: target/demo/<scenario>).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// The checkout (crds/, deploy/samples/, tests/scenarios/).
    #[arg(long, env = "HOMEOSTAT_ROOT")]
    root: Option<PathBuf>,
    /// Where `oms`, `homeostat-operator` and `homeostat-detector` are (default: <root>/target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn demo(cli: Cli) -> anyhow::Result<()> {
    let root = cli.root.unwrap_or_else(default_root);
    let scenario_path = cli
        .scenario
        .unwrap_or_else(|| root.join("tests/scenarios/payment-latency.yaml"));
    let scenario = Scenario::load(&scenario_path)?;
    let out_dir = cli
        .out_dir
        .unwrap_or_else(|| root.join("target/demo").join(&scenario.name));
    let policies = match &scenario.policies {
        Policies::Default => vec![root.join("deploy/samples/policies.yaml")],
        Policies::Files(files) => files.clone(),
    };
    let layout = Layout {
        bin_dir: cli.bin_dir.unwrap_or_else(|| root.join("target/release")),
        root: root.clone(),
        log_dir: out_dir.join("logs"),
    };
    let mut timeline = Timeline::new();
    timeline.say(&format!(
        "scenario {} ({}): {:.0} s warm-up + {:.0} s; logs in {}",
        scenario.name,
        scenario_path.display(),
        scenario.warmup_seconds,
        scenario.observe_seconds,
        layout.log_dir.display()
    ));
    let mut stack = Stack::start(layout, &policies, &mut timeline).await?;
    let played = play::play(&mut stack, &scenario, &mut timeline).await?;

    // The last action or restore can land between two scrapes.
    let prometheus = stack.prometheus.url().to_owned();
    let step = SCRAPE.as_secs_f64();
    let orders =
        series::orders_against_band(&prometheus, played.warmup_ended_at, played.ended_at, step)
            .await
            .context("read orders' p99 and band from Prometheus")?;
    let outcome = Outcome::compute(
        &scenario.name,
        played.warmup_ended_at,
        played.faults.clone(),
        played.reports.clone(),
        played.actions.clone(),
        &orders,
    );
    let mut charted = vec!["orders".to_owned()];
    for f in &scenario.faults {
        if !charted.contains(&f.service) {
            charted.push(f.service.clone());
        }
    }
    for r in &outcome.reports {
        if !charted.contains(&r.culprit) {
            charted.push(r.culprit.clone());
        }
    }
    let charts = series::fetch(
        &prometheus,
        &charted,
        played.started_at,
        played.ended_at,
        step,
    )
    .await
    .context("read the charts' series from Prometheus")?;
    drop(stack);

    print_summary(&outcome);
    let html_path = cli.html.unwrap_or_else(|| out_dir.join("report.html"));
    let page = html::render(
        &outcome,
        played.started_at,
        played.ended_at,
        &charts,
        timeline.lines(),
        &played.load_changes,
        THRESHOLD,
    );
    write(&html_path, &page)?;
    println!("HTML report: {}", html_path.display());
    if let Some(path) = cli.json {
        write(&path, &serde_json::to_string_pretty(&outcome)?)?;
        println!("JSON outcome: {}", path.display());
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn print_summary(o: &Outcome) {
    let s = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.1} s"));
    println!("\n== {} ==", o.scenario);
    println!("time to detect:    {}", s(o.ttd_seconds));
    println!("time to remediate: {}", s(o.ttr_seconds));
    println!("time to recover:   {}", s(o.recovery_seconds));
    for r in &o.reports {
        println!(
            "report {}: culprit {} (peak score {:.2}), resolved {}",
            r.name,
            r.culprit,
            r.score,
            r.resolved_at.map_or("no".to_owned(), |t| t.to_string())
        );
    }
    for a in &o.actions {
        let how = match (&a.blocked_by, a.dry_run) {
            (Some(g), _) => format!("blocked by {g}"),
            (None, true) => "dry run".to_owned(),
            (None, false) => "done".to_owned(),
        };
        println!(
            "action {} {} for {}: {} → {} ({how}), restored {}",
            a.policy,
            a.kind,
            a.target,
            a.from,
            a.to,
            a.restored_at.map_or("no".to_owned(), |t| t.to_string())
        );
    }
    println!(
        "false reports: {}, false actions: {}",
        o.false_reports, o.false_actions
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    homeostat_test_support::install_crypto_provider();
    let cli = Cli::parse();
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        result = demo(cli) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("homeostat-demo: {error:#}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            // Dropping the demo's future stopped every process it started.
            eprintln!("homeostat-demo: interrupted; everything it started is stopped");
            ExitCode::from(130)
        }
        () = terminated => {
            eprintln!("homeostat-demo: terminated; everything it started is stopped");
            ExitCode::from(143)
        }
    }
}
