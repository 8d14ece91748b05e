//! The detector's report writer on a real API server: a write that fails is
//! owed and lands later, an open report someone deleted comes back, and a
//! report it cannot read does not stop its start.

use homeostat_api::{AnomalyReport, ReportState, Severity, Signal};
use homeostat_detector::engine::{ReportEvent, ReportUpdate};
use homeostat_detector::reports::{ReportWriter, report_name};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use serde_json::json;

use crate::common::control_plane_with_crds;

fn update(evaluated_at: i64) -> ReportUpdate {
    ReportUpdate {
        service: "tax".to_owned(),
        signal: Signal::LatencyP99,
        score: 0.93,
        peak_score: 0.93,
        severity: Severity::Critical,
        observed: 0.31,
        band: [0.01, 0.02, 0.04],
        culprit: None,
        opened_at: 1_800_000_000,
        evaluated_at,
        degraded: false,
    }
}

async fn state(reports: &Api<AnomalyReport>, name: &str) -> Option<ReportState> {
    reports
        .get_opt(name)
        .await
        .expect("read the report")
        .map(|r| r.status.expect("status").state)
}

#[tokio::test]
async fn a_failed_write_is_owed_and_a_deleted_open_report_comes_back() {
    let (_plane, client) = control_plane_with_crds().await;
    let mut writer = ReportWriter::new(client.clone(), "incidents");
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "incidents");
    let name = report_name(&update(0));

    // The namespace does not exist yet: the open fails and is owed.
    let written = writer
        .write_all(vec![ReportEvent::Open(update(1_800_000_000))])
        .await;
    assert!(written[0].result.is_err(), "{written:?}");
    assert_eq!(writer.owed(), 1);

    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "incidents"}})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");
    // The next call writes what was owed, before its own news.
    let written = writer
        .write_all(vec![ReportEvent::Update(update(1_800_000_002))])
        .await;
    assert!(written.iter().all(|w| w.result.is_ok()), "{written:?}");
    assert!(matches!(written[0].event, ReportEvent::Open(_)));
    assert_eq!(writer.owed(), 0);
    assert_eq!(state(&reports, &name).await, Some(ReportState::Open));

    // Someone deletes the report while the anomaly is open: it comes back.
    reports
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the report");
    let written = writer
        .write_all(vec![ReportEvent::Update(update(1_800_000_004))])
        .await;
    assert!(written[0].result.is_ok(), "{written:?}");
    assert_eq!(state(&reports, &name).await, Some(ReportState::Open));

    // And resolves.
    writer
        .write_all(vec![ReportEvent::Resolve {
            update: update(1_800_000_006),
            at: 1_800_000_006,
        }])
        .await;
    assert_eq!(state(&reports, &name).await, Some(ReportState::Resolved));
}

#[tokio::test]
async fn a_report_this_version_cannot_read_does_not_stop_the_start() {
    let (_plane, client) = control_plane_with_crds().await;
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "incidents"}})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the namespace");
    let mut writer = ReportWriter::new(client.clone(), "incidents");
    let written = writer
        .write_all(vec![ReportEvent::Open(update(1_800_000_000))])
        .await;
    assert!(written[0].result.is_ok(), "{written:?}");

    // One of the detector's own, stored while the schema let anything in.
    homeostat_test_support::loosen_crd(&client, "anomalyreports.homeostat.dev")
        .await
        .expect("loosen the CRD");
    let raw = homeostat_api::decode::raw_api::<AnomalyReport>(&client, Some("incidents"));
    let unreadable: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
        "metadata": {
            "name": "unreadable",
            "labels": {"app.kubernetes.io/managed-by": "homeostat-detector"}
        },
        "spec": {"service": "tax", "signal": "a feeling"}
    }))
    .expect("object");
    // The looser schema is served a moment after it is stored.
    homeostat_test_support::wait_until(
        "the loose schema served",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(250),
        || async {
            raw.create(&PostParams::default(), &unreadable)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await
    .expect("create the unreadable report");

    // A restarted detector finds its readable open report, and starts.
    let open = ReportWriter::new(client.clone(), "incidents")
        .open_reports()
        .await
        .expect("the start-up list");
    let names: Vec<&str> = open.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [report_name(&update(0))]);
}
