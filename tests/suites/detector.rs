//! The detector end to end on real servers: hours of synthetic OMS histograms
//! backfilled into a real Prometheus with promtool, live scraping after that,
//! a real kube-apiserver for the AnomalyReports, and the detector's daemon,
//! running as its ServiceAccount under the shipped RBAC.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use homeostat_api::{AnomalyReport, ReportState, Signal};
use homeostat_detector::daemon::{DaemonConfig, SourceConfig, run};
use homeostat_detector::engine::EngineConfig;
use homeostat_detector::model::DebounceConfig;
use homeostat_test_support::prometheus::backfill_openmetrics;
use homeostat_test_support::rbac;
use homeostat_test_support::{
    ControlPlane, Prometheus, PrometheusConfig, ScrapeTarget, wait_until,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ListParams, PostParams};
use tokio::sync::oneshot;

use crate::common::control_plane_with_crds;

/// Where the reports go: the namespace the shipped RBAC lets the detector write in.
const NAMESPACE: &str = "shop";
const DETECTOR_ACCOUNT: (&str, &str) = ("homeostat-system", "homeostat-detector");

const SERVICES: [&str; 3] = ["orders", "payment-primary", "tax"];
const HISTORY_SECONDS: i64 = 2 * 3600;
const BACKFILL_STEP: i64 = 5;
const REQUESTS_PER_SECOND: f64 = 20.0;
const SLOWDOWN: f64 = 6.0;

/// Latency bucket edges of the OMS: 0.5 ms to 10 s, 25% apart.
fn buckets() -> Vec<f64> {
    std::iter::successors(Some(0.0005_f64), |e| (*e < 10.0).then_some(e * 1.25)).collect()
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26, error below 1.5e-7).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Deterministic noise in [-1, 1) for a time step and a series.
fn noise(step: i64, salt: u64) -> f64 {
    let mut z = (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// One histogram series of the synthetic OMS.
struct Series {
    metric: &'static str,
    labels: String,
    /// Median latency at normal load, and whether the payment fault slows it.
    median: f64,
    slowed_by_fault: bool,
    salt: u64,
    cumulative: Vec<f64>,
    count: f64,
    sum: f64,
}

/// orders calls tax and payment-primary; a payment fault slows payment's
/// server latency, orders' calls to it, and so orders itself.
struct SyntheticOms {
    series: Vec<Series>,
    edges: Vec<f64>,
    extra_labels: String,
}

impl SyntheticOms {
    fn new(instance: &str) -> Self {
        let server = |service: &str, route: &str, median: f64, slowed: bool, salt: u64| Series {
            metric: "http_server_request_duration_seconds",
            labels: format!(
                r#"service="{service}",http_route="{route}",http_request_method="POST",http_response_status_code="200""#
            ),
            median,
            slowed_by_fault: slowed,
            salt,
            cumulative: Vec::new(),
            count: 0.0,
            sum: 0.0,
        };
        let client = |callee: &str, route: &str, median: f64, slowed: bool, salt: u64| Series {
            metric: "http_client_request_duration_seconds",
            labels: format!(
                r#"service="orders",peer_service="{callee}",http_route="{route}",http_request_method="POST",http_response_status_code="200",error_type="""#
            ),
            median,
            slowed_by_fault: slowed,
            salt,
            cumulative: Vec::new(),
            count: 0.0,
            sum: 0.0,
        };
        let edges = buckets();
        let mut series = vec![
            server("orders", "/v1/orders", 0.050, true, 1),
            server("payment-primary", "/v1/authorisations", 0.030, true, 2),
            server("tax", "/v1/quotes", 0.010, false, 3),
            client("payment-primary", "/v1/authorisations", 0.032, true, 4),
            client("tax", "/v1/quotes", 0.012, false, 5),
        ];
        for s in &mut series {
            s.cumulative = vec![0.0; edges.len()];
        }
        Self {
            series,
            edges,
            extra_labels: format!(r#"job="oms",instance="{instance}""#),
        }
    }

    /// Adds `seconds` of traffic at unix time `t`.
    fn advance(&mut self, t: f64, seconds: f64, faulty: bool) {
        let step = (t as i64) / BACKFILL_STEP;
        let requests = REQUESTS_PER_SECOND * seconds;
        for s in &mut self.series {
            let slow = if faulty && s.slowed_by_fault {
                SLOWDOWN
            } else {
                1.0
            };
            let median = s.median * slow * (1.0 + 0.05 * noise(step, s.salt));
            for (count, le) in s.cumulative.iter_mut().zip(&self.edges) {
                *count += requests * phi((le.ln() - median.ln()) / 0.3);
            }
            s.count += requests;
            s.sum += requests * median * (0.3f64 * 0.3 / 2.0).exp();
        }
    }

    /// Samples in text format. Backfilled samples (`at` set) carry their
    /// timestamp and the `job` and `instance` labels that Prometheus adds to
    /// scraped ones, so history and live scrapes form one series.
    fn render(&self, at: Option<i64>, out: &mut String, family: &str) {
        let stamp = at.map(|t| format!(" {t}")).unwrap_or_default();
        for s in self.series.iter().filter(|s| s.metric == family) {
            let labels = match at {
                Some(_) => format!("{},{}", s.labels, self.extra_labels),
                None => s.labels.clone(),
            };
            for (count, le) in s.cumulative.iter().zip(&self.edges) {
                out.push_str(&format!(
                    "{family}_bucket{{{labels},le=\"{le}\"}} {}{stamp}\n",
                    count.floor()
                ));
            }
            let count = s.count.floor();
            out.push_str(&format!(
                "{family}_bucket{{{labels},le=\"+Inf\"}} {count}{stamp}\n"
            ));
            out.push_str(&format!("{family}_count{{{labels}}} {count}{stamp}\n"));
            out.push_str(&format!("{family}_sum{{{labels}}} {}{stamp}\n", s.sum));
        }
    }
}

const FAMILIES: [&str; 2] = [
    "http_server_request_duration_seconds",
    "http_client_request_duration_seconds",
];

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Backfilled history up to now, then a live `/metrics` that goes on from
/// where the history ended; `fault` slows payment-primary while set.
struct World {
    prometheus: Prometheus,
    fault: Arc<AtomicBool>,
    _data: tempfile::TempDir,
}

async fn start_world() -> World {
    homeostat_test_support::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let mut oms = SyntheticOms::new(&address);

    // History: HISTORY_SECONDS of normal traffic, one sample every BACKFILL_STEP.
    let end = unix_now() as i64 - 2;
    let start = end - HISTORY_SECONDS;
    let mut snapshots = Vec::new();
    let mut t = start;
    while t <= end {
        oms.advance(t as f64, BACKFILL_STEP as f64, false);
        let mut text = String::new();
        for family in FAMILIES {
            oms.render(Some(t), &mut text, family);
        }
        snapshots.push(text);
        t += BACKFILL_STEP;
    }
    let mut openmetrics = String::new();
    for family in FAMILIES {
        openmetrics.push_str(&format!("# TYPE {family} histogram\n"));
        for snapshot in &snapshots {
            for line in snapshot.lines().filter(|l| l.starts_with(family)) {
                openmetrics.push_str(line);
                openmetrics.push('\n');
            }
        }
    }
    openmetrics.push_str("# EOF\n");
    let data = tempfile::tempdir().expect("tempdir");
    backfill_openmetrics(data.path(), &openmetrics).unwrap_or_else(|e| panic!("backfill: {e}"));

    // Live: traffic accrues in real time from the end of the history.
    let fault = Arc::new(AtomicBool::new(false));
    let oms = Arc::new(Mutex::new((oms, t as f64)));
    let scraped = oms.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let scraped = scraped.clone();
            async move {
                let guard = scraped.lock().expect("lock");
                let mut text = String::new();
                for family in FAMILIES {
                    text.push_str(&format!("# TYPE {family} histogram\n"));
                    guard.0.render(None, &mut text, family);
                }
                text
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ticking = fault.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = unix_now();
            let mut guard = oms.lock().expect("lock");
            let (model, last) = &mut *guard;
            if now > *last {
                model.advance(now, now - *last, ticking.load(Ordering::SeqCst));
                *last = now;
            }
        }
    });

    let prometheus = Prometheus::start(PrometheusConfig {
        scrape_interval: Duration::from_secs(1),
        targets: vec![ScrapeTarget::new("oms", address)],
        data_dir: Some(data.path().to_owned()),
        ..PrometheusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start prometheus: {e}"));
    // Until live scrapes fill a rate window, rate() spans the gap between the
    // history and the first scrape and reads low: wait it out, as a detector
    // started long after its Prometheus would never see it.
    let filled =
        r#"count_over_time(http_server_request_duration_seconds_count{service="orders"}[25s])"#;
    wait_until(
        "25 s of live scrapes",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let result = prometheus.query(filled).await.map_err(|e| e.to_string())?;
            let n: f64 = result[0]["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if n >= 22.0 {
                Ok(())
            } else {
                Err(result.to_string())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    World {
        prometheus,
        fault,
        _data: data,
    }
}

/// A detector daemon in this process; dropping the sender stops it.
struct Detector {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics_url: String,
}

impl Detector {
    /// Runs as the detector's ServiceAccount (see [`control_plane`]).
    async fn start(plane: &ControlPlane, prometheus_url: &str) -> Self {
        let (namespace, name) = DETECTOR_ACCOUNT;
        let client = plane
            .service_account_client(namespace, name)
            .await
            .unwrap_or_else(|e| panic!("client as {namespace}/{name}: {e}"));
        let port = free_port();
        let config = DaemonConfig {
            source: SourceConfig::prometheus(prometheus_url),
            namespace: NAMESPACE.into(),
            services: SERVICES.map(String::from).to_vec(),
            labels: vec![("job".into(), "oms".into())],
            tick: Duration::from_secs(1),
            history: Duration::from_secs(HISTORY_SECONDS as u64),
            refit: Duration::from_secs(3600),
            rate_window: Duration::from_secs(20),
            query_timeout: Duration::from_secs(2),
            engine: EngineConfig {
                debounce: DebounceConfig {
                    threshold: 0.7,
                    hold_seconds: 3,
                    quiet_seconds: 10,
                    stale_hold_seconds: 30,
                },
                ..EngineConfig::default()
            },
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(config, client, async move {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task,
            metrics_url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn stop(mut self) {
        drop(self.stop.take());
        let result = self.task.await.expect("detector task");
        result.unwrap_or_else(|e| panic!("detector: {e:#}"));
    }

    /// The value of an unlabelled metric of the detector.
    async fn metric(&self, name: &str) -> Result<f64, String> {
        homeostat_test_support::metric_value(&format!("{}/metrics", self.metrics_url), name).await
    }

    async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.metrics_url);
        homeostat_test_support::wait_for_ok(
            "detector ready (baselines fitted)",
            &url,
            Duration::from_secs(120),
            Duration::from_millis(250),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits until at least `n` more evaluation ticks have run.
    async fn wait_ticks(&self, n: f64) {
        let from = self
            .metric("homeostat_detector_ticks_total")
            .await
            .unwrap_or(0.0);
        wait_until(
            &format!("{n} more detector ticks"),
            Duration::from_secs(120),
            Duration::from_millis(250),
            || async {
                let now = self.metric("homeostat_detector_ticks_total").await?;
                if now >= from + n {
                    Ok(())
                } else {
                    Err(format!("{now} ticks"))
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A control plane with the CRDs and the shipped RBAC: the detector's
/// ServiceAccount may write reports in [`NAMESPACE`] and nowhere else.
async fn control_plane() -> (ControlPlane, kube::Client) {
    let (plane, client) = control_plane_with_crds().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in [DETECTOR_ACCOUNT.0, NAMESPACE] {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    }
    rbac::apply(&plane, &rbac::shipped_manifests()).unwrap_or_else(|e| panic!("{e}"));
    (plane, client)
}

async fn reports(client: &kube::Client) -> Vec<AnomalyReport> {
    Api::<AnomalyReport>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .expect("list reports")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_latency_shift_opens_one_report_naming_payment_and_resolves() {
    let world = start_world().await;
    let (plane, client) = control_plane().await;
    let detector = Detector::start(&plane, world.prometheus.url()).await;
    detector.wait_ready().await;

    // Normal traffic after the fit: nothing to report.
    detector.wait_ticks(10.0).await;
    assert!(
        reports(&client).await.is_empty(),
        "{:#?}",
        reports(&client).await
    );

    world.fault.store(true, Ordering::SeqCst);
    let fault_started = std::time::Instant::now();
    let opened = wait_until(
        "an AnomalyReport",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            let found = reports(&client).await;
            if found.is_empty() {
                Err("none yet")
            } else {
                Ok(found)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "report opened {:.1} s after the fault started",
        fault_started.elapsed().as_secs_f64()
    );
    // Let the fault run on: still exactly one report, not one per symptom.
    let written_before = detector
        .metric("homeostat_detector_report_status_written_total")
        .await
        .expect("written");
    detector.wait_ticks(10.0).await;
    let written = detector
        .metric("homeostat_detector_report_status_written_total")
        .await
        .expect("written")
        - written_before;
    let unchanged = detector
        .metric("homeostat_detector_report_status_unchanged_total")
        .await
        .expect("unchanged");
    eprintln!("over 10 ticks of a steady fault: {written} status writes, {unchanged} left out");
    // Not rewritten every tick: only when something a reader acts on moves.
    assert!(
        unchanged >= 1.0 && written < 10.0,
        "{written} written, {unchanged} left out"
    );
    let found = reports(&client).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let report = &found[0];
    assert_eq!(report.metadata.name, opened[0].metadata.name);
    assert_eq!(report.spec.service, "payment-primary");
    assert!(
        matches!(
            report.spec.signal,
            Signal::LatencyP50 | Signal::LatencyP95 | Signal::LatencyP99
        ),
        "{:?}",
        report.spec.signal
    );
    let status = report.status.as_ref().expect("status");
    assert_eq!(status.state, ReportState::Open);
    assert!(status.observed > status.baseline.upper, "{status:#?}");
    let culprit = status.culprit.as_ref().expect("culprit");
    assert_eq!(culprit.service, "payment-primary");
    assert!(
        culprit
            .evidence
            .iter()
            .any(|e| e.starts_with("orders") && e.contains("its calls to payment-primary")),
        "{:#?}",
        culprit.evidence
    );
    assert!(status.timeline.iter().any(|t| t.id == "opened"));

    // Restart: the open report is continued, not duplicated.
    detector.stop().await;
    let restarted_at = unix_now() as i64;
    let detector = Detector::start(&plane, world.prometheus.url()).await;
    detector.wait_ready().await;
    detector.wait_ticks(5.0).await;
    let found = reports(&client).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let evaluated = found[0]
        .status
        .as_ref()
        .and_then(|s| s.last_evaluated_at.clone())
        .expect("evaluated");
    assert!(
        evaluated.0.as_second() >= restarted_at,
        "not updated since the restart"
    );

    // Recovery resolves it.
    world.fault.store(false, Ordering::SeqCst);
    let resolved = wait_until(
        "the report Resolved",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let found = reports(&client).await;
            match found.first().and_then(|r| r.status.clone()) {
                Some(s) if s.state == ReportState::Resolved => Ok(s),
                other => Err(format!("{:?}", other.map(|s| s.state))),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(resolved.resolved_at.is_some());
    assert!(resolved.timeline.iter().any(|t| t.id == "resolved"));
    assert_eq!(reports(&client).await.len(), 1);
    detector.stop().await;

    // Opened, continued across a restart, resolved: everything the detector
    // writes, all of it allowed, and every rule shipped for it used.
    let (namespace, name) = DETECTOR_ACCOUNT;
    rbac::check_least_privilege(&plane, namespace, name).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prometheus_stopped_no_report_opens_and_the_detector_says_degraded() {
    let mut world = start_world().await;
    let (plane, client) = control_plane().await;
    let detector = Detector::start(&plane, world.prometheus.url()).await;
    detector.wait_ready().await;
    detector.wait_ticks(3.0).await;
    assert_eq!(
        detector.metric("homeostat_detector_degraded").await,
        Ok(0.0)
    );

    world.prometheus.stop();
    world.fault.store(true, Ordering::SeqCst);
    wait_until(
        "detector degraded",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            match detector.metric("homeostat_detector_degraded").await {
                Ok(1.0) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Far longer than the hold time: absence of data must not open anything.
    detector.wait_ticks(10.0).await;
    assert!(
        reports(&client).await.is_empty(),
        "{:#?}",
        reports(&client).await
    );
    let errors = detector
        .metric("homeostat_detector_query_errors_total")
        .await
        .expect("errors");
    assert!(errors >= 10.0, "{errors}");
    detector.stop().await;
}

/// The report the detector has open, once there is exactly one.
async fn the_one_report(client: &kube::Client) -> AnomalyReport {
    let found = reports(client).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    found.into_iter().next().expect("one report")
}

fn degraded(report: &AnomalyReport) -> Option<String> {
    report
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gone_mid_incident_holds_the_report_until_it_is_back() {
    let mut world = start_world().await;
    let (plane, client) = control_plane().await;
    let detector = Detector::start(&plane, world.prometheus.url()).await;
    detector.wait_ready().await;
    detector.wait_ticks(3.0).await;
    world.fault.store(true, Ordering::SeqCst);
    wait_until(
        "an AnomalyReport",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            if reports(&client).await.is_empty() {
                Err("none yet")
            } else {
                Ok(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let opened = the_one_report(&client).await;

    // Prometheus goes, and the fault ends while nobody can see it: the
    // report must neither resolve nor change on missing data.
    world.prometheus.stop();
    world.fault.store(false, Ordering::SeqCst);
    wait_until(
        "the report marked Degraded",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            match degraded(&the_one_report(&client).await).as_deref() {
                Some("True") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        detector.metric("homeostat_detector_degraded").await,
        Ok(1.0)
    );
    // Far longer than the detector's quiet time before it resolves.
    detector.wait_ticks(15.0).await;
    let held = the_one_report(&client).await;
    assert_eq!(held.metadata.name, opened.metadata.name);
    let status = held.status.as_ref().expect("status");
    assert_eq!(status.state, ReportState::Open, "{status:#?}");
    assert!(status.resolved_at.is_none(), "{status:#?}");

    // Prometheus is back: the detector reads again, sees the fault is over,
    // and resolves the same report; nothing else opens.
    world
        .prometheus
        .restart()
        .await
        .unwrap_or_else(|e| panic!("restart prometheus: {e}"));
    wait_until(
        "the report resolved once the data is back",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || async {
            let report = the_one_report(&client).await;
            let status = report.status.as_ref().ok_or("no status")?;
            match (status.state, degraded(&report).as_deref()) {
                (ReportState::Resolved, Some("False")) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        detector.metric("homeostat_detector_degraded").await,
        Ok(0.0)
    );
    assert_eq!(
        the_one_report(&client).await.metadata.name,
        opened.metadata.name
    );
    detector.stop().await;
}
