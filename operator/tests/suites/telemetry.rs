//! The operator's own telemetry: OTLP traces when an endpoint is configured,
//! each reconcile a span naming its object; the reconcile-duration histogram;
//! JSON log lines when asked.

use std::sync::{Arc, Mutex};

use crate::common::*;
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_are_exported_as_otlp_traces_when_configured() {
    // A stand-in OTLP/HTTP collector that keeps what it is sent.
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(body);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (plane, client) = plane().await;
    namespace(&client, "shop").await;
    deployment(&client, "shop", "tax", 1).await;
    policy(
        &client,
        "shop",
        "scale-tax",
        serde_json::json!({
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"scale": {"maxReplicas": 2}}]
        }),
    )
    .await;
    let operator = Operator::start_with_env(
        &plane,
        "a",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("HOMEOSTAT_LOG_FORMAT", "json"),
        ],
    );
    let has = |body: &Bytes, text: &[u8]| body.windows(text.len()).any(|w| w == text);
    eventually(
        "an OTLP export naming the operator and a reconcile of scale-tax",
        60,
        || async {
            let got = received.lock().expect("lock");
            // Names and attribute values travel as plain protobuf strings.
            let named = got.iter().any(|b| has(b, b"homeostat-operator"));
            let reconcile = got
                .iter()
                .any(|b| has(b, b"reconcile") && has(b, b"scale-tax"));
            if named && reconcile {
                Ok(())
            } else {
                Err(format!("{} exports", got.len()))
            }
        },
    )
    .await;
    let timed = operator
        .metric(r#"homeostat_operator_reconcile_duration_seconds_count{controller="remediationpolicy"}"#)
        .await;
    assert!(timed.as_ref().is_ok_and(|n| *n >= 1.0), "{timed:?}");

    // Every log line is a JSON object a log pipeline can parse.
    let log = std::fs::read_to_string(plane.dir().join("operator-a.log")).expect("the log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the operator logged nothing");
    for line in lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"].is_object(),
            "{line}"
        );
    }
}
