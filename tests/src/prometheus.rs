//! A real Prometheus server (Debian's `prometheus` binary) with a generated
//! configuration, on a free loopback port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::SupportError;
use crate::assets::{prometheus_binary, promtool_binary};
use crate::ports::free_port;
use crate::process::ManagedProcess;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// One scrape job with a single static target.
#[derive(Clone, Debug)]
pub struct ScrapeTarget {
    /// The `job` label.
    pub job: String,
    /// `host:port` serving `/metrics`.
    pub address: String,
    /// Extra labels attached to every series of the target.
    pub labels: BTreeMap<String, String>,
}

impl ScrapeTarget {
    pub fn new(job: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            job: job.into(),
            address: address.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// How to run the server.
#[derive(Clone, Debug)]
pub struct PrometheusConfig {
    pub scrape_interval: Duration,
    pub targets: Vec<ScrapeTarget>,
    /// `--storage.tsdb.retention.time`; keep it longer than any backfilled span.
    pub retention: String,
    /// A TSDB directory to use, e.g. one filled by [`backfill_openmetrics`].
    /// When unset the server starts empty in its own temporary directory.
    pub data_dir: Option<PathBuf>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            scrape_interval: Duration::from_secs(1),
            targets: Vec::new(),
            retention: "3650d".to_owned(),
            data_dir: None,
        }
    }
}

/// A running Prometheus; dropping it stops the server and deletes its directory.
pub struct Prometheus {
    process: ManagedProcess,
    url: String,
    /// The binary and its arguments, to start it again as it was.
    binary: PathBuf,
    args: Vec<String>,
    dir: TempDir,
}

impl Prometheus {
    /// Starts the server and waits until `/-/ready` answers 200.
    pub async fn start(config: PrometheusConfig) -> Result<Self, SupportError> {
        let binary = prometheus_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("homeostat-prometheus-")
            .tempdir()
            .map_err(SupportError::io("create the Prometheus directory"))?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, render_config(&config))
            .map_err(SupportError::io(format!("write {}", config_path.display())))?;
        let data_dir = config
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));

        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let args = vec![
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", data_dir.display()),
            format!("--storage.tsdb.retention.time={}", config.retention),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_owned(),
        ];
        let process = spawn_ready(&binary, &args, &url, &dir.path().join("prometheus.log")).await?;
        Ok(Self {
            process,
            url,
            binary,
            args,
            dir,
        })
    }

    /// Starts the stopped server again, on its port and its data.
    pub async fn restart(&mut self) -> Result<(), SupportError> {
        self.process.stop();
        let log = self.dir.path().join("prometheus.restarted.log");
        self.process = spawn_ready(&self.binary, &self.args, &self.url, &log).await?;
        Ok(())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the server now (for tests of what happens when Prometheus is gone).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Runs an instant query now through the HTTP API and returns `data.result`.
    pub async fn query(&self, promql: &str) -> Result<serde_json::Value, SupportError> {
        self.query_with(&[("query", promql)]).await
    }

    /// Runs an instant query at `unix_seconds` and returns `data.result`.
    pub async fn query_at(
        &self,
        promql: &str,
        unix_seconds: i64,
    ) -> Result<serde_json::Value, SupportError> {
        self.query_with(&[("query", promql), ("time", &unix_seconds.to_string())])
            .await
    }

    async fn query_with(&self, params: &[(&str, &str)]) -> Result<serde_json::Value, SupportError> {
        let promql = params.first().map(|p| p.1).unwrap_or_default();
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(params)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| SupportError::io(format!("query {promql:?}"))(std::io::Error::other(e)))?;
        let body: serde_json::Value = response.json().await.map_err(|e| {
            SupportError::io(format!("decode answer to {promql:?}"))(std::io::Error::other(e))
        })?;
        Ok(body["data"]["result"].clone())
    }
}

/// Starts Prometheus and waits until `/-/ready` answers 200.
async fn spawn_ready(
    binary: &Path,
    args: &[String],
    url: &str,
    log: &Path,
) -> Result<ManagedProcess, SupportError> {
    let mut command = Command::new(binary);
    command.args(args);
    let mut process = ManagedProcess::spawn("prometheus", command, log)?;
    let http = reqwest::Client::new();
    let ready = format!("{url}/-/ready");
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        process.check_alive()?;
        if let Ok(response) = http.get(&ready).send().await
            && response.status().is_success()
        {
            return Ok(process);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(SupportError::NotReady {
                what: "prometheus",
                timeout: READY_TIMEOUT,
                log_tail: process.log_tail(40),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What the detector exported for tax's `latency_p99` from `from` to `to`
/// (Unix seconds) every 10 s, as OpenMetrics: 0.4 s while `t` is in
/// `out_of_band`, else 0.02 s, against a band of 0.01–0.05 s. For
/// [`backfill_openmetrics`]: an incident a chart or a sparkline can draw.
pub fn detector_incident(from: i64, to: i64, out_of_band: std::ops::Range<i64>) -> String {
    let mut exposition = String::new();
    for metric in ["observed", "band_lower", "band_upper"] {
        exposition += &format!("# TYPE homeostat_detector_{metric} gauge\n");
        for t in (from..=to).step_by(10) {
            let value = match metric {
                "band_lower" => 0.01,
                "band_upper" => 0.05,
                _ if out_of_band.contains(&t) => 0.4,
                _ => 0.02,
            };
            exposition += &format!(
                "homeostat_detector_{metric}{{service=\"tax\",signal=\"latency_p99\"}} {value} {t}\n"
            );
        }
    }
    exposition + "# EOF\n"
}

/// A Prometheus of its own holding `openmetrics` as its history (see
/// [`backfill_openmetrics`]), scraping nothing; keep the directory while the
/// server runs.
pub async fn with_history(openmetrics: &str) -> Result<(Prometheus, TempDir), SupportError> {
    let data = tempfile::tempdir().map_err(SupportError::io("create a data directory"))?;
    backfill_openmetrics(data.path(), openmetrics)?;
    let prometheus = Prometheus::start(PrometheusConfig {
        data_dir: Some(data.path().to_owned()),
        ..PrometheusConfig::default()
    })
    .await?;
    Ok((prometheus, data))
}

/// Writes `openmetrics` (OpenMetrics text ending in `# EOF`) as TSDB blocks
/// into `data_dir` with `promtool tsdb create-blocks-from openmetrics`, so a
/// server started on that directory has the history.
pub fn backfill_openmetrics(data_dir: &Path, openmetrics: &str) -> Result<(), SupportError> {
    let promtool = promtool_binary()?;
    std::fs::create_dir_all(data_dir)
        .map_err(SupportError::io(format!("create {}", data_dir.display())))?;
    let input = data_dir.join("backfill.om");
    std::fs::write(&input, openmetrics)
        .map_err(SupportError::io(format!("write {}", input.display())))?;
    let output = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(data_dir)
        .output()
        .map_err(|source| SupportError::Spawn {
            what: "promtool",
            source,
        })?;
    let _ = std::fs::remove_file(&input);
    if output.status.success() {
        Ok(())
    } else {
        Err(SupportError::Exited {
            what: "promtool tsdb create-blocks-from openmetrics",
            status: output.status.to_string(),
            log_tail: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

fn render_config(config: &PrometheusConfig) -> String {
    let interval = format!("{}ms", config.scrape_interval.as_millis());
    let mut yaml = format!(
        "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n"
    );
    for target in &config.targets {
        yaml.push_str(&format!(
            "  - job_name: {job}\n    scrape_interval: {interval}\n    static_configs:\n      - targets: [{address}]\n",
            job = serde_json::Value::from(target.job.as_str()),
            address = serde_json::Value::from(target.address.as_str()),
        ));
        if !target.labels.is_empty() {
            yaml.push_str("        labels:\n");
            for (name, value) in &target.labels {
                yaml.push_str(&format!(
                    "          {name}: {value}\n",
                    value = serde_json::Value::from(value.as_str())
                ));
            }
        }
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_each_target_with_quoted_values() {
        let mut target = ScrapeTarget::new("oms", "127.0.0.1:9000");
        target
            .labels
            .insert("service".into(), "orders: \"x\"".into());
        let yaml = render_config(&PrometheusConfig {
            scrape_interval: Duration::from_millis(500),
            targets: vec![target],
            ..PrometheusConfig::default()
        });
        let parsed: serde_json::Value = serde_norway::from_str(&yaml).expect("valid YAML");
        assert_eq!(parsed["global"]["scrape_interval"], "500ms");
        let job = &parsed["scrape_configs"][0];
        assert_eq!(job["job_name"], "oms");
        assert_eq!(job["static_configs"][0]["targets"][0], "127.0.0.1:9000");
        assert_eq!(
            job["static_configs"][0]["labels"]["service"],
            "orders: \"x\""
        );
    }
}
