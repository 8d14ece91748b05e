//! `homeostat-detector`: the anomaly detector's command line.

use std::io::{BufReader, BufWriter};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use homeostat_api::oms::OMS_SERVICES;
use homeostat_detector::access::SourceAccess;
use homeostat_detector::csv::score_csv;
use homeostat_detector::daemon::{self, DaemonConfig, SourceConfig, SourceKind};
use homeostat_detector::engine::EngineConfig;
use homeostat_detector::model::{DebounceConfig, NoveltyConfig, RunningConfig};
use homeostat_detector::naming::MetricNaming;
use homeostat_telemetry::LogFormat;

#[derive(Parser)]
#[command(
    name = "homeostat-detector",
    version,
    about = "The homeostat anomaly detector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a `timestamp,value` CSV offline as `run` scores a series
    /// (baseline, novelty, online learning from its first row); writes
    /// `timestamp,value,anomaly_score` to stdout, the score being each
    /// point's news.
    ScoreCsv {
        /// The CSV file.
        file: PathBuf,
        /// Novelty bins across the central 99% of the first fit's history.
        #[arg(long, default_value_t = NoveltyConfig::default().bins)]
        bins: u32,
        /// Points for which a visited bin stays visited.
        #[arg(long, default_value_t = NoveltyConfig::default().memory)]
        memory: u64,
        /// Points after a novelty during which a weaker one is not news.
        #[arg(long, default_value_t = NoveltyConfig::default().refractory)]
        refractory: usize,
    },
    /// Run the detector: fit baselines from Prometheus, evaluate every tick,
    /// write AnomalyReports (kubeconfig from KUBECONFIG or in-cluster).
    Run(Box<RunArgs>),
    /// Synthetic benchmark: fit N series of H points, time scoring ticks.
    Bench {
        #[arg(long, default_value_t = 10_000)]
        series: usize,
        #[arg(long, default_value_t = 10_080)]
        history: usize,
        #[arg(long, default_value_t = 50)]
        ticks: usize,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Prometheus base URL.
    #[arg(
        long,
        env = "HOMEOSTAT_PROMETHEUS_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    prometheus_url: String,
    /// The kind of metrics source: `prometheus` (Prometheus's HTTP query
    /// API, as Prometheus, Thanos Query, VictoriaMetrics and Mimir under
    /// `/prometheus` serve it; give the URL with its path prefix).
    #[arg(long, value_enum, default_value_t = Source::Prometheus)]
    source: Source,
    /// Header sent with every query, `Name=value` (repeatable; in the
    /// environment, comma-separated), e.g. `X-Scope-OrgID=tenant` for Mimir.
    #[arg(
        long = "metrics-header",
        env = "HOMEOSTAT_METRICS_HEADERS",
        value_delimiter = ',',
        value_parser = parse_label
    )]
    metrics_headers: Vec<(String, String)>,
    /// File holding a bearer token for the metrics source, read again for
    /// every query (a rotated token is picked up).
    #[arg(long, env = "HOMEOSTAT_BEARER_TOKEN_FILE")]
    bearer_token_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust besides the system's, for an
    /// HTTPS metrics source with a private CA.
    #[arg(long, env = "HOMEOSTAT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// YAML file naming the metrics and labels to read, for metrics named by
    /// another convention than the OMS's (see deploy/metrics-naming/).
    #[arg(long, env = "HOMEOSTAT_METRICS_NAMING")]
    metrics_naming: Option<PathBuf>,
    /// Namespace of the AnomalyReports.
    #[arg(long, env = "HOMEOSTAT_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Services to watch (comma-separated).
    #[arg(
        long,
        env = "HOMEOSTAT_SERVICES",
        value_delimiter = ',',
        default_values_t = OMS_SERVICES.map(String::from)
    )]
    services: Vec<String>,
    /// Label matcher added to every query, `name=value` (repeatable; in
    /// the environment, comma-separated).
    #[arg(
        long = "label",
        env = "HOMEOSTAT_LABELS",
        value_delimiter = ',',
        value_parser = parse_label
    )]
    labels: Vec<(String, String)>,
    /// Evaluation interval (more than 0s): the scrape interval of the
    /// Prometheus read.
    #[arg(
        long,
        env = "HOMEOSTAT_TICK",
        default_value = "5s",
        value_parser = parse_tick
    )]
    tick: homeostat_api::Duration,
    /// History the baselines are fitted from.
    #[arg(long, default_value = "3h")]
    history: homeostat_api::Duration,
    /// How often baselines are fitted again.
    #[arg(long, default_value = "1h")]
    refit: homeostat_api::Duration,
    /// Window of the rate() in every query; at least two scrape intervals.
    #[arg(long, default_value = "20s")]
    rate_window: homeostat_api::Duration,
    /// Score from which a series counts as anomalous.
    #[arg(long, default_value_t = DebounceConfig::default().threshold)]
    threshold: f64,
    /// How long the score must hold before a report opens, when one of
    /// the service's series brought news (see `--stale-hold`).
    #[arg(long, default_value = "4s")]
    hold: homeostat_api::Duration,
    /// How long a deviation that brought no news (the series has been there
    /// lately) must hold before a report opens.
    #[arg(long, default_value = "30s")]
    stale_hold: homeostat_api::Duration,
    /// How long the score must stay low before a report resolves.
    #[arg(long, default_value = "30s")]
    quiet: homeostat_api::Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9464")]
    listen: SocketAddr,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "HOMEOSTAT_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Source {
    Prometheus,
}

/// A tick of 0s would evaluate in a busy loop and query Prometheus
/// without pause: refused.
fn parse_tick(text: &str) -> Result<homeostat_api::Duration, String> {
    let tick: homeostat_api::Duration = text.parse().map_err(|e| format!("{e}"))?;
    if tick.0.is_zero() {
        return Err(format!(
            "{text:?} is no interval: the detector evaluates once a tick (e.g. 5s)"
        ));
    }
    Ok(tick)
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected name=value, got {text:?}"))
}

impl RunArgs {
    fn into_config(self) -> anyhow::Result<DaemonConfig> {
        if !(0.0..=1.0).contains(&self.threshold) {
            anyhow::bail!(
                "--threshold must be between 0 and 1, got {}",
                self.threshold
            );
        }
        let engine = EngineConfig {
            debounce: DebounceConfig {
                threshold: self.threshold,
                hold_seconds: self.hold.0.as_secs() as i64,
                quiet_seconds: self.quiet.0.as_secs() as i64,
                stale_hold_seconds: self.stale_hold.0.as_secs() as i64,
            },
            ..EngineConfig::default()
        };
        let naming = match &self.metrics_naming {
            None => MetricNaming::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?;
                MetricNaming::from_yaml(&text)
                    .with_context(|| format!("metrics naming {}", path.display()))?
            }
        };
        Ok(DaemonConfig {
            source: SourceConfig {
                kind: match self.source {
                    Source::Prometheus => SourceKind::Prometheus,
                },
                url: self.prometheus_url,
                access: SourceAccess {
                    headers: self.metrics_headers,
                    bearer_token_file: self.bearer_token_file,
                    ca_file: self.ca_file,
                },
                naming,
            },
            namespace: self.namespace,
            services: self.services,
            labels: self.labels,
            tick: self.tick.0,
            history: self.history.0,
            refit: self.refit.0,
            rate_window: self.rate_window.0,
            query_timeout: self.tick.0.max(std::time::Duration::from_secs(2)),
            engine,
            listen: self.listen,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ScoreCsv {
            file,
            bins,
            memory,
            refractory,
        } => std::fs::File::open(&file)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))
            .and_then(|f| {
                let out = BufWriter::new(std::io::stdout().lock());
                let config = RunningConfig {
                    novelty: NoveltyConfig {
                        bins,
                        memory,
                        refractory,
                        ..NoveltyConfig::default()
                    },
                    ..RunningConfig::default()
                };
                score_csv(BufReader::new(f), out, config)
                    .map(drop)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
            }),
        Command::Run(args) => run(*args),
        Command::Bench {
            series,
            history,
            ticks,
            json,
        } => bench(series, history, ticks, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("homeostat-detector: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _telemetry = homeostat_telemetry::init("homeostat-detector", args.log_format)?;
    let config = args.into_config()?;
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("connect to the Kubernetes API (KUBECONFIG or in-cluster)")?;
        daemon::run(config, client, homeostat_telemetry::shutdown::requested()).await
    })
}

fn bench(series: usize, history: usize, ticks: usize, json: bool) -> anyhow::Result<()> {
    if series == 0 || history == 0 || ticks == 0 {
        anyhow::bail!("--series, --history and --ticks must be positive");
    }
    let result = homeostat_detector::bench::run(series, history, ticks);
    println!(
        "fitted {} series of {} points in {:.2} s on {} threads ({} seasonal)",
        result.series, result.history, result.fit_seconds, result.threads, result.seasonal_series
    );
    println!(
        "scoring: median {:.3} ms per tick, max {:.3} ms over {} ticks",
        result.score_ms_per_tick, result.score_ms_per_tick_max, result.ticks
    );
    println!("peak RSS {:.1} MiB", result.rss_mb);
    if json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_of_nothing_is_refused_with_the_reason() {
        let refused = parse_tick("0s").expect_err("0s");
        assert!(refused.contains("no interval"), "{refused}");
        assert!(parse_tick("soon").is_err());
        assert_eq!(
            parse_tick("2s").expect("2s").0,
            std::time::Duration::from_secs(2)
        );
    }
}
