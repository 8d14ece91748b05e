//! The detector's metrics source against a real Prometheus, read the way a
//! cluster on another convention needs: Istio-named histograms (one metric,
//! both sides told apart by `reporter`, milliseconds, `response_code="0"`
//! for calls that got no answer) through a mapping file, behind a
//! Mimir-like gateway that serves the API under `/prometheus` only to
//! requests carrying the tenant header.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use homeostat_api::Signal;
use homeostat_detector::access::SourceAccess;
use homeostat_detector::engine::Observation;
use homeostat_detector::naming::MetricNaming;
use homeostat_detector::promql::Queries;
use homeostat_detector::source::{MetricsSource, PrometheusSource};
use homeostat_test_support::{Prometheus, PrometheusConfig, ScrapeTarget, wait_until};

use crate::common::{prometheus_gateway, serve};

/// The mapping shipped for Istio's standard metrics.
const ISTIO_NAMING: &str = include_str!("../../deploy/metrics-naming/istio.yaml");

const TENANT: &str = "shop";

/// Bucket edges in milliseconds.
const EDGES: [f64; 5] = [10.0, 25.0, 50.0, 100.0, 250.0];

/// Requests so far: payment answers every request in 40 ms; orders calls
/// it, and a quarter of its calls get no answer (`response_code="0"`).
#[derive(Default)]
struct Mesh {
    requests: u64,
}

impl Mesh {
    fn histogram(out: &mut String, labels: &str, count: u64, millis: f64) {
        for edge in EDGES {
            let n = if millis <= edge { count } else { 0 };
            out.push_str(&format!(
                "istio_request_duration_milliseconds_bucket{{{labels},le=\"{edge}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "istio_request_duration_milliseconds_bucket{{{labels},le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "istio_request_duration_milliseconds_sum{{{labels}}} {}\n",
            count as f64 * millis
        ));
        out.push_str(&format!(
            "istio_request_duration_milliseconds_count{{{labels}}} {count}\n"
        ));
    }

    fn render(&self) -> String {
        let n = self.requests;
        let unanswered = n / 4;
        let mut out = String::from("# TYPE istio_request_duration_milliseconds histogram\n");
        let server =
            r#"reporter="destination",destination_service_name="payment",source_workload="orders""#;
        Self::histogram(
            &mut out,
            &format!(r#"{server},response_code="200""#),
            n,
            40.0,
        );
        let client =
            r#"reporter="source",destination_service_name="payment",source_workload="orders""#;
        Self::histogram(
            &mut out,
            &format!(r#"{client},response_code="200""#),
            n - unanswered,
            45.0,
        );
        Self::histogram(
            &mut out,
            &format!(r#"{client},response_code="0""#),
            unanswered,
            5.0,
        );
        out
    }
}

/// `/metrics` of the mesh, 40 more requests every 250 ms.
async fn start_mesh() -> String {
    let mesh = Arc::new(Mutex::new(Mesh::default()));
    let growing = mesh.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            growing.lock().expect("lock").requests += 40;
        }
    });
    serve(Router::new().route(
        "/metrics",
        get(move || {
            let mesh = mesh.clone();
            async move { mesh.lock().expect("lock").render() }
        }),
    ))
    .await
}

/// Prometheus's API under `/prometheus`, for the tenant's requests only.
async fn start_gateway(prometheus: String) -> String {
    let router = prometheus_gateway(prometheus, |headers| {
        headers.get("X-Scope-OrgID").and_then(|v| v.to_str().ok()) == Some(TENANT)
    });
    format!("http://{}/prometheus", serve(router).await)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn source(url: &str, headers: &[(String, String)]) -> PrometheusSource {
    let access = SourceAccess {
        headers: headers.to_vec(),
        ..SourceAccess::default()
    };
    let naming = MetricNaming::from_yaml(ISTIO_NAMING).expect("mapping");
    let queries = Queries::new(&[("job".into(), "mesh".into())], 5, naming).expect("queries");
    PrometheusSource::new(
        url,
        &access,
        queries,
        ["payment".to_owned(), "orders".to_owned()],
        Duration::from_secs(2),
    )
    .expect("source")
}

#[tokio::test]
async fn istio_named_metrics_behind_a_tenant_gateway_read_as_the_detectors_signals() {
    homeostat_test_support::install_crypto_provider();
    let mesh = start_mesh().await;
    let mut target = ScrapeTarget::new("mesh", mesh);
    target.labels.insert("app".into(), "payment".into());
    let prometheus = Prometheus::start(PrometheusConfig {
        scrape_interval: Duration::from_secs(1),
        targets: vec![target],
        ..PrometheusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start prometheus: {e}"));
    let gateway = start_gateway(prometheus.url().trim_end_matches('/').to_owned()).await;

    let tenant = source(&gateway, &[("X-Scope-OrgID".into(), TENANT.into())]);
    let observed: Observation = wait_until(
        "payment's signals read through the mapping",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let now = unix_now();
            let o = tenant.observe(now).await.map_err(|e| e.to_string())?;
            // Steady once a whole rate window of scrapes is in: 160 answers
            // a second (more would mean both reporters were counted).
            let steady = o
                .series
                .get(&("payment".into(), Signal::RequestRate))
                .is_some_and(|rate| *rate >= 120.0);
            let complete = steady
                && o.series
                    .contains_key(&("payment".into(), Signal::LatencyP99))
                && o.reach.contains_key("payment")
                && o.edges.contains_key(&("orders".into(), "payment".into()));
            if complete {
                Ok(o)
            } else {
                Err(format!("{o:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Milliseconds read as seconds: 40 ms answers lie in the 25–50 ms bucket.
    let p99 = observed.series[&("payment".to_owned(), Signal::LatencyP99)];
    assert!((0.025..=0.050).contains(&p99), "p99 {p99}");
    // Server side only (reporter="destination"): 160 answers a second.
    let rate = observed.series[&("payment".to_owned(), Signal::RequestRate)];
    assert!((120.0..=200.0).contains(&rate), "rate {rate}");
    assert_eq!(
        observed.series[&("payment".to_owned(), Signal::ErrorRatio)],
        0.0
    );
    // The callers' side: a quarter of orders' calls got no answer.
    let reach = observed.reach["payment"];
    let share = reach.unanswered / reach.calls;
    assert!((0.2..=0.3).contains(&share), "{reach:?}");
    let edge = observed.edges[&("orders".to_owned(), "payment".to_owned())];
    assert!((0.025..=0.050).contains(&edge), "edge p99 {edge}");
    // `up` named by the target's `app` label.
    assert_eq!(observed.targets_up.get("payment"), Some(&1.0));

    // Without the tenant header the gateway refuses: an error, never an
    // empty observation that would read as "all is quiet".
    let stranger = source(&gateway, &[]);
    let refused = stranger
        .observe(unix_now())
        .await
        .expect_err("refused without the org id");
    assert!(
        matches!(
            refused,
            homeostat_detector::source::SourceError::Query { .. }
        ),
        "{refused}"
    );
}

/// The OMS's event-pipeline gauges as two replicas of notifications (each
/// reads the one durable consumer's lag, a moment apart) and orders export
/// them.
const EVENT_GAUGES: &str = "# TYPE oms_event_consumer_lag gauge
oms_event_consumer_lag{service=\"notifications\",replica=\"0\"} 120
oms_event_consumer_lag{service=\"notifications\",replica=\"1\"} 130
# TYPE oms_outbox_oldest_unpublished_age_seconds gauge
oms_outbox_oldest_unpublished_age_seconds{service=\"orders\",replica=\"0\"} 0.4
";

#[tokio::test]
async fn the_event_pipelines_gauges_read_as_signals_of_the_service_that_exports_them() {
    homeostat_test_support::install_crypto_provider();
    let oms = serve(Router::new().route("/metrics", get(|| async { EVENT_GAUGES }))).await;
    let prometheus = Prometheus::start(PrometheusConfig {
        scrape_interval: Duration::from_secs(1),
        targets: vec![ScrapeTarget::new("oms", oms)],
        ..PrometheusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start prometheus: {e}"));
    let queries = Queries::oms(&[("job".into(), "oms".into())], 5).expect("queries");
    let source = PrometheusSource::new(
        prometheus.url(),
        &SourceAccess::default(),
        queries,
        ["notifications".to_owned(), "orders".to_owned()],
        Duration::from_secs(2),
    )
    .expect("source");
    let observed: Observation = wait_until(
        "the gauges scraped",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let o = source
                .observe(unix_now())
                .await
                .map_err(|e| e.to_string())?;
            if o.series
                .contains_key(&("notifications".into(), Signal::ConsumerLag))
            {
                Ok(o)
            } else {
                Err(format!("{o:?}"))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // The worst replica's reading: every replica reads the same consumer.
    assert_eq!(
        observed.series[&("notifications".to_owned(), Signal::ConsumerLag)],
        130.0
    );
    assert_eq!(
        observed.series[&("orders".to_owned(), Signal::OutboxAge)],
        0.4
    );
    // Only the services that export them have them.
    assert!(
        !observed
            .series
            .contains_key(&("orders".to_owned(), Signal::ConsumerLag))
    );
    let history = source
        .history(unix_now() - 10, unix_now(), 1.0)
        .await
        .expect("history");
    assert!(
        history
            .series
            .get(&("notifications".to_owned(), Signal::ConsumerLag))
            .is_some_and(|points| points.iter().all(|&(_, lag)| lag == 130.0)),
        "{history:?}"
    );
}
