//! The detector reading a real Prometheus through a gateway as Thanos,
//! Mimir and VictoriaMetrics deployments put one in front: HTTPS with a
//! certificate from a private CA, and a bearer token that rotates.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use homeostat_api::Signal;
use homeostat_detector::access::SourceAccess;
use homeostat_detector::promql::Queries;
use homeostat_detector::source::{MetricsSource, PrometheusSource, SourceError};
use homeostat_test_support::{Prometheus, PrometheusConfig, ScrapeTarget, wait_until};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::common::{prometheus_gateway, serve};

/// A CA of the test's own and a serving certificate for 127.0.0.1 it
/// signed: (CA PEM, certificate DER, key DER).
fn private_pki() -> (String, Vec<u8>, Vec<u8>) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "homeostat gateway test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let serving = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("serving certificate");
    (ca_pem, serving.der().to_vec(), key.serialize_der())
}

/// Prometheus's API under `/prometheus` over HTTPS, for requests that
/// carry `Bearer <accepted>` only.
async fn start_gateway(prometheus: String, accepted: Arc<Mutex<String>>) -> (String, String) {
    let router = prometheus_gateway(prometheus, move |headers| {
        let wanted = format!("Bearer {}", accepted.lock().expect("lock"));
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(wanted.as_str())
    });

    let (ca_pem, cert, key) = private_pki();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.into()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    )
    .expect("serving certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                // A client that does not trust the CA hangs up here.
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("https://{address}/prometheus"), ca_pem)
}

/// `/metrics` of one service answering in 40 ms, 40 more requests every 250 ms.
async fn start_service() -> String {
    let requests = Arc::new(Mutex::new(0u64));
    let growing = requests.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            *growing.lock().expect("lock") += 40;
        }
    });
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let n = *requests.lock().expect("lock");
            async move {
                let labels =
                    r#"service="payment",http_route="/pay",http_response_status_code="200""#;
                format!(
                    "# TYPE http_server_request_duration_seconds histogram\n\
                     http_server_request_duration_seconds_bucket{{{labels},le=\"0.025\"}} 0\n\
                     http_server_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} {n}\n\
                     http_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {n}\n\
                     http_server_request_duration_seconds_sum{{{labels}}} {}\n\
                     http_server_request_duration_seconds_count{{{labels}}} {n}\n",
                    n as f64 * 0.04
                )
            }
        }),
    );
    serve(router).await
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn source(url: &str, access: SourceAccess) -> Result<PrometheusSource, SourceError> {
    let queries = Queries::oms(&[("job".into(), "oms".into())], 5).expect("queries");
    PrometheusSource::new(
        url,
        &access,
        queries,
        ["payment".to_owned()],
        Duration::from_secs(2),
    )
}

/// payment's p99 through `source`, once a rate window of scrapes is in.
async fn payment_p99(source: &PrometheusSource) -> Result<f64, String> {
    let observed = source
        .observe(unix_now())
        .await
        .map_err(|e| e.to_string())?;
    observed
        .series
        .get(&("payment".to_owned(), Signal::LatencyP99))
        .copied()
        .ok_or_else(|| format!("no p99 yet: {observed:?}"))
}

#[tokio::test]
async fn a_gateway_over_https_with_a_private_ca_and_a_rotating_token_is_read() {
    homeostat_test_support::install_crypto_provider();
    let prometheus = Prometheus::start(PrometheusConfig {
        scrape_interval: Duration::from_secs(1),
        targets: vec![ScrapeTarget::new("oms", start_service().await)],
        ..PrometheusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start prometheus: {e}"));
    let accepted = Arc::new(Mutex::new("first-token".to_owned()));
    let (gateway, ca_pem) = start_gateway(
        prometheus.url().trim_end_matches('/').to_owned(),
        accepted.clone(),
    )
    .await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (ca_file, token_file) = (dir.path().join("ca.crt"), dir.path().join("token"));
    std::fs::write(&ca_file, &ca_pem).expect("write CA");
    std::fs::write(&token_file, "first-token\n").expect("write token");
    let access = SourceAccess {
        bearer_token_file: Some(token_file.clone()),
        ca_file: Some(ca_file),
        ..SourceAccess::default()
    };

    let detector = source(&gateway, access.clone()).expect("source");
    let p99 = wait_until(
        "payment's p99 through the gateway",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || payment_p99(&detector),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!((0.025..=0.050).contains(&p99), "p99 {p99}");

    // The token rotates: the gateway takes only the new one, the file is
    // replaced in place, and the same source reads on with no restart.
    *accepted.lock().expect("lock") = "second-token".to_owned();
    // Refused (the gateway answers 401 in plain text): an error, never an
    // empty observation that would read as "all is quiet".
    let refused = payment_p99(&detector).await.expect_err("the old token");
    assert!(!refused.starts_with("no p99"), "{refused}");
    std::fs::write(&token_file, "second-token\n").expect("rotate token");
    let p99 = payment_p99(&detector)
        .await
        .expect("read with the new token");
    assert!((0.025..=0.050).contains(&p99), "p99 {p99}");

    // Without the CA, the gateway's certificate is not trusted: an error.
    let untrusting = source(
        &gateway,
        SourceAccess {
            ca_file: None,
            ..access.clone()
        },
    )
    .expect("source");
    let error = payment_p99(&untrusting).await.expect_err("untrusted");
    assert!(!error.starts_with("no p99"), "{error}");

    // A token file that is gone is refused at start, naming the file.
    let missing = dir.path().join("no-such-token");
    let Err(error) = source(
        &gateway,
        SourceAccess {
            bearer_token_file: Some(missing),
            ..access
        },
    ) else {
        panic!("a missing token file was accepted");
    };
    assert!(error.to_string().contains("no-such-token"), "{error}");
}
