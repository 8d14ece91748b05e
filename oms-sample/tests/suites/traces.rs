//! Traces cross service calls: with an OTLP endpoint configured, the span of
//! a callee's request is the child of the caller's client span, in one trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::Oms;
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use homeostat_test_support::wait_until;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A minimal OTLP/HTTP trace collector on loopback.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                if let Ok(request) = ExportTraceServiceRequest::decode(body) {
                    let mut spans = store.lock().expect("lock");
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

#[tokio::test]
async fn a_callee_span_is_the_child_of_the_callers_client_span() {
    let (endpoint, spans) = collector().await;
    let oms = Oms::start_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let order = oms.order("SKU-MUG", "tok_visa").await;
    assert_eq!(order["state"], "confirmed");

    let (root, client, server) = wait_until(
        "order spans exported",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let spans = spans.lock().expect("lock").clone();
            let find = |name: &str, key: &str, value: &str| {
                spans
                    .iter()
                    .find(|s| s.name == name && attribute(s, key) == Some(value))
                    .cloned()
            };
            match (
                find("http.server", "service", "orders"),
                find("http.client", "peer.service", "tax"),
                find("http.server", "service", "tax"),
            ) {
                (Some(root), Some(client), Some(server)) => Ok((root, client, server)),
                _ => Err(spans.len()),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", oms.log()));

    assert_eq!(
        server.trace_id, client.trace_id,
        "one trace across the call"
    );
    assert_eq!(
        server.parent_span_id, client.span_id,
        "the callee's span is the child of the client span"
    );
    // And the trace starts at the order request itself.
    assert_eq!(
        root.trace_id, client.trace_id,
        "the saga's calls are in the order request's trace"
    );
    assert!(
        root.parent_span_id.is_empty(),
        "the order request starts the trace"
    );
}
