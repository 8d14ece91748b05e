//! `homeostat-demo`: the self-healing loop on a laptop. Run through
//! `cargo xtask demo`, which builds what it needs first.

mod cluster;
mod html;
mod load;
mod local;
mod on_call;
mod outcome;
mod play;
mod pods;
mod scenario;
mod series;
mod soak;
mod stack;
mod timeline;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use homeostat_api::ActionKind;

use crate::outcome::{ActionOutcome, DashboardCheck, Outcome};
use crate::pods::{PodRecord, scale_outcome};
use crate::scenario::{Policies, Scenario};
use crate::stack::{Layout, Runtime, SCRAPE, Stack};
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
    /// Run on the one-node cluster (`cargo xtask cluster up`) as pods,
    /// bringing it up when it is not running.
    #[arg(long)]
    cluster: bool,
    /// The cluster's state directory (default: <root>/target/cluster).
    #[arg(long, requires = "cluster")]
    cluster_state: Option<PathBuf>,
    /// The image archives of `cargo xtask images`, for bringing the
    /// cluster up (default: <root>/target/images).
    #[arg(long, env = "HOMEOSTAT_IMAGES_DIR")]
    images: Option<PathBuf>,
    /// Judge the run as a soak (`cargo xtask soak`): fail when a process's
    /// memory or task count grows, a report stays open or an action is
    /// never undone. On the local stack only.
    #[arg(long, conflicts_with = "cluster")]
    soak: bool,
    /// Before stopping, ask Prometheus every query of the Grafana
    /// dashboards in this directory (`dashboards/`) over the run, and
    /// record in the outcome the ones that would draw an empty panel.
    #[arg(long, value_name = "DIR")]
    check_dashboards: Option<PathBuf>,
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
    if let Some(reason) = scenario.needs_cluster().filter(|_| !cli.cluster) {
        anyhow::bail!(reason);
    }
    let runtime = if cli.cluster {
        Runtime::Cluster {
            state: cli
                .cluster_state
                .unwrap_or_else(|| root.join("target/cluster")),
            images: cli.images.unwrap_or_else(|| root.join("target/images")),
        }
    } else {
        Runtime::Local
    };
    let demo_dir = match runtime {
        Runtime::Local => root.join("target/demo"),
        Runtime::Cluster { .. } => root.join("target/demo/cluster"),
    };
    let out_dir = cli.out_dir.unwrap_or_else(|| demo_dir.join(&scenario.name));
    let policies = match &scenario.policies {
        Policies::Default => None,
        Policies::Files(files) => Some(files.as_slice()),
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
    let mut stack = Stack::start(&runtime, layout, policies, &mut timeline).await?;
    let mut played = play::play(&mut stack, &scenario, &mut timeline).await?;

    // The last action or restore can land between two scrapes.
    let prometheus = stack.prometheus_url().to_owned();
    let step = SCRAPE.as_secs_f64();
    let (from, to) = (played.warmup_ended_at, played.ended_at);
    let orders = series::against_band(&prometheus, "orders", from, to, step)
        .await
        .context("read orders' p99 and band from Prometheus")?;
    let faulted = scenario
        .faults
        .first()
        .map_or("orders", |f| f.service.as_str());
    let faulted_p99 = series::against_band(&prometheus, faulted, from, to, step)
        .await
        .with_context(|| format!("read {faulted}'s p99 and band from Prometheus"))?;
    if let Some(pods) = stack.pods() {
        judge_scaling(&mut played.actions, &pods, &prometheus, to, step).await?;
        for restart in &mut played.restarts {
            restart.rollout = Some(pods::rollout_outcome(&pods, &restart.service, restart.at));
        }
    }
    let mut outcome = Outcome::compute(
        &scenario.name,
        played.warmup_ended_at,
        played.faults.clone(),
        played.reports.clone(),
        played.actions.clone(),
        &orders,
    )
    .with_service_recovery(&faulted_p99)
    .with_restarts(played.restarts.clone());
    if cli.soak {
        // Every 10 s is plenty for a trend, and keeps the query small.
        let processes = soak::fetch(&prometheus, from, to, 10.0)
            .await
            .context("read the processes' memory and tasks from Prometheus")?;
        outcome.soak = Some(soak::judge(
            &processes,
            &outcome,
            from.as_second() as f64,
            to.as_second() as f64,
        ));
    }
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
    if let Some(dir) = &cli.check_dashboards {
        outcome.dashboards = Some(check_dashboards(dir, &prometheus, &played).await?);
    }
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
    if let Some(verdict) = &outcome.soak {
        soak::print(verdict);
        anyhow::ensure!(verdict.passed(), "the soak failed");
    }
    Ok(())
}

/// Every query of the dashboards in `dir`, asked over the whole run (warm-up
/// included: the OMS's panels are drawn from its start).
async fn check_dashboards(
    dir: &Path,
    prometheus: &str,
    played: &play::Played,
) -> anyhow::Result<DashboardCheck> {
    use homeostat_test_support::dashboards;
    let queries = dashboards::queries(dir).map_err(anyhow::Error::msg)?;
    // What Grafana's $__rate_interval comes to for 2 s scrapes and a 5 s step.
    let empty = dashboards::empty(
        prometheus,
        &queries,
        played.started_at.as_second(),
        played.ended_at.as_second(),
        5,
        "20s",
    )
    .await;
    Ok(DashboardCheck {
        queries: queries.len(),
        empty: empty
            .into_iter()
            .map(|(query, why)| format!("{query} ({why})"))
            .collect(),
    })
}

/// Adds to each scale action the pods it started, when each became Ready
/// and when it served its first request.
async fn judge_scaling(
    actions: &mut [ActionOutcome],
    pods: &[PodRecord],
    prometheus: &str,
    ended_at: jiff::Timestamp,
    step: f64,
) -> anyhow::Result<()> {
    let scaled: Vec<(String, jiff::Timestamp)> = actions
        .iter()
        .filter(|a| a.kind == ActionKind::Scale && a.acted())
        .map(|a| (a.target.clone(), a.at))
        .collect();
    for action in actions
        .iter_mut()
        .filter(|a| a.kind == ActionKind::Scale && a.acted())
    {
        // Its pods are those started before the restore or the next step.
        let next_step = scaled
            .iter()
            .filter(|(target, at)| *target == action.target && *at > action.at)
            .map(|(_, at)| *at)
            .min();
        let until = [action.restored_at, next_step]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(ended_at);
        let mut scale = scale_outcome(pods, &action.target, action.at, until);
        for pod in &mut scale.new_pods {
            let first =
                series::first_request(prometheus, &pod.name, pod.created_at, ended_at, step)
                    .await
                    .with_context(|| {
                        format!("read {}'s first request from Prometheus", pod.name)
                    })?;
            if let Some(first) = first {
                pod.served_first_at(first, action.at);
            }
        }
        action.scale = Some(scale);
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
    println!("time to recover:   {} (orders)", s(o.recovery_seconds));
    if let Some(f) = o.faults.first().filter(|f| f.service != "orders") {
        println!(
            "                   {} ({})",
            s(o.service_recovery_seconds),
            f.service
        );
    }
    for r in &o.restarts {
        let rolled = r.rollout.as_ref().map_or("".to_owned(), |x| {
            format!(
                ": {} pod(s) replaced, {} left, {} new Ready: {}",
                x.replaced,
                x.left,
                x.started_ready,
                if x.done {
                    format!("rolled in {}", s(x.done_seconds))
                } else {
                    "NOT rolled".to_owned()
                }
            )
        });
        println!("restart {} at {}{rolled}", r.service, r.at);
    }
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
        if let Some(scale) = &a.scale {
            println!(
                "  pods Ready: {} before, {} after",
                scale.ready_before,
                scale
                    .ready_after
                    .map_or("— (a new pod never became Ready)".to_owned(), |n| n
                        .to_string())
            );
            for pod in &scale.new_pods {
                println!(
                    "  new pod {}: Ready after {}, first request served after {}",
                    pod.name,
                    s(pod.ready_seconds),
                    s(pod.first_request_seconds)
                );
            }
        }
    }
    println!(
        "false reports: {}, false actions: {}",
        o.false_reports, o.false_actions
    );
    if let Some(check) = &o.dashboards {
        println!(
            "dashboards: {} queries, {} would draw an empty panel",
            check.queries,
            check.empty.len()
        );
        for empty in &check.empty {
            println!("  empty: {empty}");
        }
    }
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
