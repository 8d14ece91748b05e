//! `homeostat reports` and `homeostat policies` against a real
//! kube-apiserver, through the kubeconfig, as an on-call engineer runs them.

use std::process::Command;
use std::time::Duration;

use homeostat_api::{AnomalyReport, RemediationPolicy};
use homeostat_test_support::{ControlPlane, wait_until};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

fn homeostat(plane: &ControlPlane, args: &[&str]) -> String {
    homeostat_as(plane.kubeconfig_path(), args)
}

/// `homeostat ARGS` with the credentials in `kubeconfig`; its stdout.
fn homeostat_as(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("run homeostat");
    assert!(
        out.status.success(),
        "homeostat {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A control plane with the CRDs and namespace `shop`.
async fn shop() -> (ControlPlane, kube::Client) {
    homeostat_test_support::install_crypto_provider();
    let plane = ControlPlane::start().await.expect("control plane");
    let client = plane.client().await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in homeostat_api::all_crds() {
        crds.patch(
            crd.metadata.name.as_deref().expect("name"),
            &PatchParams::apply("tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD");
    }
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "shop"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    (plane, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_and_policies_list_as_a_table_json_and_yaml() {
    let (plane, client) = shop().await;

    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    new_report(&reports, "tax-latency-p99-1", "tax").await;
    reports
        .patch_status(
            "tax-latency-p99-1",
            &PatchParams::apply("homeostat-detector").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {
                    "state": "Open", "score": 0.93, "peakScore": 0.97, "severity": "Critical",
                    "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                    "culprit": {"service": "tax", "evidence": ["tax latency_p99 up 20x"], "confidence": 0.9},
                    "openedAt": "2026-11-30T00:00:00Z"
                }
            })),
        )
        .await
        .expect("report status");
    let policy: RemediationPolicy = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
        "metadata": {"name": "scale-tax"},
        "spec": {
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"scale": {"maxReplicas": 4}}],
            "guards": {"dryRun": true}
        }
    }))
    .expect("policy");
    Api::<RemediationPolicy>::namespaced(client.clone(), "shop")
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");

    // A table: the report's row says what a person needs first.
    let table = homeostat(&plane, &["reports", "-n", "shop"]);
    let row = table
        .lines()
        .find(|l| l.contains("tax-latency-p99-1"))
        .unwrap_or_else(|| panic!("{table}"));
    for cell in ["tax", "latency_p99", "Open", "Critical", "0.93"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(table.starts_with("NAMESPACE"), "{table}");

    // JSON and YAML, as kubectl shapes a list.
    let json: serde_json::Value =
        serde_json::from_str(&homeostat(&plane, &["reports", "-A", "-o", "json"])).expect("JSON");
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["metadata"]["name"], "tax-latency-p99-1");
    assert_eq!(json["items"][0]["status"]["culprit"]["service"], "tax");
    let yaml = homeostat(&plane, &["policies", "-n", "shop", "-o", "yaml"]);
    let parsed: serde_json::Value = serde_norway::from_str(&yaml).expect("YAML");
    assert_eq!(parsed["items"][0]["metadata"]["name"], "scale-tax");

    let policies = homeostat(&plane, &["policies", "-A"]);
    let row = policies
        .lines()
        .find(|l| l.contains("scale-tax"))
        .unwrap_or_else(|| panic!("{policies}"));
    assert!(row.contains("dry-run"), "{row}");

    // An empty namespace lists nothing but the header.
    let empty = homeostat(&plane, &["reports", "-n", "default"]);
    assert_eq!(empty.lines().count(), 1, "{empty}");

    // One report in detail: the culprit's evidence and the band gauge.
    let detail = homeostat(&plane, &["report", "tax-latency-p99-1", "-n", "shop"]);
    assert!(detail.contains("shop/tax-latency-p99-1"), "{detail}");
    assert!(detail.contains("- tax latency_p99 up 20x"), "{detail}");
    assert!(detail.contains('●'), "{detail}");
    let json: serde_json::Value = serde_json::from_str(&homeostat(
        &plane,
        &["report", "tax-latency-p99-1", "-n", "shop", "-o", "json"],
    ))
    .expect("JSON");
    assert_eq!(json["kind"], "AnomalyReport");
    // A name that is not there: a clear error, not a panic.
    let missing = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .env("KUBECONFIG", plane.kubeconfig_path())
        .args(["report", "nothing-here", "-n", "shop"])
        .output()
        .expect("run homeostat");
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(
        error.contains("no AnomalyReport nothing-here in namespace shop"),
        "{error}"
    );
}

/// `homeostat ARGS --watch` running, its stdout read line by line.
struct Watching {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watching {
    fn start(plane: &ControlPlane, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_homeostat"))
            .env("KUBECONFIG", plane.kubeconfig_path())
            .args(args)
            .arg("--watch")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run homeostat --watch");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line printed, within 30 s.
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from homeostat --watch within 30 s")
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn report_status(reports: &Api<AnomalyReport>, name: &str, state: &str, score: f64) {
    let mut status = json!({
        "state": state, "score": score, "peakScore": 0.97, "severity": "Critical",
        "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
        "openedAt": "2026-11-30T00:00:00Z", "lastEvaluatedAt": jiff::Timestamp::now().to_string()
    });
    if state == "Resolved" {
        status["resolvedAt"] = json!("2026-11-30T00:05:00Z");
    }
    reports
        .patch_status(
            name,
            &PatchParams::apply("homeostat-detector").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": status
            })),
        )
        .await
        .expect("report status");
}

async fn new_report(reports: &Api<AnomalyReport>, name: &str, service: &str) {
    let report: AnomalyReport = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
        "metadata": {"name": name},
        "spec": {"service": service, "signal": "latency_p99"}
    }))
    .expect("report");
    wait_until(
        "the CRDs served",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            reports
                .create(&PostParams::default(), &report)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await
    .expect("create the report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_watch_prints_a_line_for_each_change_a_reader_acts_on() {
    let (plane, client) = shop().await;
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    new_report(&reports, "tax-latency-p99-1", "tax").await;
    report_status(&reports, "tax-latency-p99-1", "Open", 0.93).await;

    // The table as it is.
    let table = Watching::start(&plane, &["reports", "-n", "shop"]);
    assert!(table.next().starts_with("NAMESPACE"));
    let first = table.next();
    assert!(
        first.contains("tax-latency-p99-1") && first.contains("Open"),
        "{first}"
    );

    // A rewrite that changes nothing shown (a later evaluation) prints
    // nothing; the next line is the state change.
    report_status(&reports, "tax-latency-p99-1", "Open", 0.93).await;
    report_status(&reports, "tax-latency-p99-1", "Resolved", 0.93).await;
    let resolved = table.next();
    assert!(
        resolved.contains("tax-latency-p99-1") && resolved.contains("Resolved"),
        "{resolved}"
    );
    // A new report, then its deletion.
    new_report(&reports, "orders-latency-p99-1", "orders").await;
    let added = table.next();
    assert!(added.contains("orders-latency-p99-1"), "{added}");
    reports
        .delete("orders-latency-p99-1", &Default::default())
        .await
        .expect("delete");
    let deleted = table.next();
    assert!(
        deleted.contains("orders-latency-p99-1") && deleted.ends_with("(deleted)"),
        "{deleted}"
    );

    // -o json: one object per line, the existing ones first.
    let objects = Watching::start(&plane, &["reports", "-n", "shop", "-o", "json"]);
    let existing: serde_json::Value = serde_json::from_str(&objects.next()).expect("JSON line");
    assert_eq!(existing["metadata"]["name"], "tax-latency-p99-1");
    new_report(&reports, "inventory-latency-p99-1", "inventory").await;
    let added: serde_json::Value = serde_json::from_str(&objects.next()).expect("JSON line");
    assert_eq!(added["metadata"]["name"], "inventory-latency-p99-1");
    assert_eq!(added["spec"]["service"], "inventory");
}

/// A ServiceAccount `shop/name` bound in shop to the ClusterRole `role`, and
/// a kubeconfig for it.
async fn person(
    plane: &ControlPlane,
    client: &kube::Client,
    name: &str,
    role: &str,
) -> std::path::PathBuf {
    homeostat_test_support::rbac::person(client, "shop", name, Some(role))
        .await
        .expect("a person");
    plane
        .service_account_kubeconfig("shop", name)
        .await
        .expect("kubeconfig")
}

/// Kubeconfigs for `alice`, bound to the shipped role for people on call
/// (rbac.yaml also makes homeostat's ServiceAccounts, in homeostat-system),
/// and `viewer`, who may only read reports.
async fn on_call_and_reader(
    plane: &ControlPlane,
    client: &kube::Client,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let system: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "homeostat-system"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &system)
        .await
        .expect("namespace");
    homeostat_test_support::rbac::apply(
        plane,
        &[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/rbac.yaml")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let reader: k8s_openapi::api::rbac::v1::ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "report-reader"},
        "rules": [{"apiGroups": ["homeostat.dev"], "resources": ["anomalyreports"], "verbs": ["get", "list", "watch"]}]
    }))
    .expect("role");
    Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &reader)
        .await
        .expect("reader role");
    let alice = person(plane, client, "alice", "homeostat-oncall").await;
    let viewer = person(plane, client, "viewer", "report-reader").await;
    (alice, viewer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_records_who_as_the_api_server_knows_them_and_a_reader_cannot() {
    let (plane, client) = shop().await;
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    new_report(&reports, "tax-latency-p99-1", "tax").await;
    report_status(&reports, "tax-latency-p99-1", "Open", 0.93).await;
    let (alice, viewer) = on_call_and_reader(&plane, &client).await;

    let said = homeostat_as(
        &alice,
        &[
            "ack",
            "tax-latency-p99-1",
            "-n",
            "shop",
            "--note",
            "looking at tax's pool",
        ],
    );
    let alice_user = "system:serviceaccount:shop:alice";
    assert!(said.contains(alice_user), "{said}");
    let status = reports
        .get("tax-latency-p99-1")
        .await
        .expect("report")
        .status
        .expect("status");
    let ack = status.acknowledged.as_ref().expect("acknowledged");
    assert_eq!(
        (ack.by.as_str(), ack.note.as_str()),
        (alice_user, "looking at tax's pool")
    );
    let entry = status
        .timeline
        .iter()
        .find(|t| t.id.starts_with("acknowledged-"))
        .expect("a timeline entry");
    assert_eq!(
        entry.message,
        format!("acknowledged by {alice_user}: looking at tax's pool")
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "shop");
    let event = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("Acknowledged"))
        .expect("an Acknowledged Event");
    assert!(
        event
            .note
            .as_deref()
            .unwrap_or_default()
            .contains(alice_user)
    );
    // The detector's next write leaves it be.
    report_status(&reports, "tax-latency-p99-1", "Open", 0.95).await;
    let detail = homeostat_as(&alice, &["report", "tax-latency-p99-1", "-n", "shop"]);
    assert!(
        detail.contains(&format!("Acked      by {alice_user}")),
        "{detail}"
    );

    // A reader can look but not acknowledge: refused, nothing written.
    let refused = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .env("KUBECONFIG", &viewer)
        .args(["ack", "tax-latency-p99-1", "-n", "shop", "--note", "mine"])
        .output()
        .expect("run homeostat");
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("forbidden"), "{error}");
    let after = reports.get("tax-latency-p99-1").await.expect("report");
    let after = after.status.expect("status");
    assert_eq!(
        after.acknowledged.as_ref().map(|a| a.by.as_str()),
        Some(alice_user)
    );
    assert_eq!(
        after
            .timeline
            .iter()
            .filter(|t| t.source == "on-call")
            .count(),
        1
    );
}

/// Step `scale-tax-0-1` on the report, awaiting approval, as the operator
/// records it.
async fn awaiting_step(reports: &Api<AnomalyReport>, name: &str) {
    reports
        .patch_status(
            name,
            &PatchParams::apply("homeostat-operator").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {"actions": [{
                    "id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
                    "target": "deployment/tax 2→3", "object": "deployment/tax",
                    "before": {"replicas": 2}, "after": {"replicas": 3},
                    "plannedAt": jiff::Timestamp::now().to_string(),
                    "approval": {"state": "Awaiting", "expiresAt": "2099-01-01T00:00:00Z"}
                }]}
            })),
        )
        .await
        .expect("the operator's record");
}

/// `homeostat ARGS` as `kubeconfig`, expected to fail; its stderr.
fn homeostat_refused(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("run homeostat");
    assert!(
        !out.status.success(),
        "homeostat {} succeeded",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_records_the_verdict_once_and_a_reader_cannot() {
    let (plane, client) = shop().await;
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    let name = "tax-latency-p99-1";
    new_report(&reports, name, "tax").await;
    report_status(&reports, name, "Open", 0.93).await;
    awaiting_step(&reports, name).await;
    let (alice, viewer) = on_call_and_reader(&plane, &client).await;
    let alice_user = "system:serviceaccount:shop:alice";

    // A reader cannot: refused by the API server, nothing written.
    let error = homeostat_refused(&viewer, &["approve", name, "scale-tax-0-1", "-n", "shop"]);
    assert!(error.contains("forbidden"), "{error}");
    let status = reports
        .get(name)
        .await
        .expect("report")
        .status
        .expect("status");
    assert!(status.approvals.is_empty());

    // A step that does not exist is named as such, with the ones that do.
    let error = homeostat_refused(&alice, &["approve", name, "scale-tax-0-9", "-n", "shop"]);
    assert!(error.contains("no step scale-tax-0-9"), "{error}");
    assert!(error.contains("scale-tax-0-1"), "{error}");

    let said = homeostat_as(
        &alice,
        &[
            "approve",
            name,
            "scale-tax-0-1",
            "-n",
            "shop",
            "--note",
            "pool saturated",
        ],
    );
    assert!(
        said.contains(&format!("approved by {alice_user}")),
        "{said}"
    );
    let status = reports
        .get(name)
        .await
        .expect("report")
        .status
        .expect("status");
    assert_eq!(status.approvals.len(), 1);
    let verdict = &status.approvals[0];
    assert_eq!(
        (
            verdict.step.as_str(),
            verdict.verdict,
            verdict.by.as_str(),
            verdict.note.as_str()
        ),
        (
            "scale-tax-0-1",
            homeostat_api::VerdictKind::Approved,
            alice_user,
            "pool saturated"
        )
    );
    assert!(
        status
            .timeline
            .iter()
            .any(|t| t.id == "scale-tax-0-1-approved" && t.message.contains(alice_user)),
        "{:#?}",
        status.timeline
    );

    // Once given, a verdict stands: the CLI says so, and the API server
    // refuses a write that would change it.
    let error = homeostat_refused(&alice, &["reject", name, "scale-tax-0-1", "-n", "shop"]);
    assert!(error.contains("already Approved"), "{error}");
    let overwrite = reports
        .patch_status(
            name,
            &PatchParams::apply("homeostat-approval").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {"approvals": [{
                    "step": "scale-tax-0-1", "verdict": "Rejected", "by": "mallory",
                    "at": jiff::Timestamp::now().to_string()
                }]}
            })),
        )
        .await;
    let error = overwrite
        .expect_err("a verdict cannot be changed")
        .to_string();
    assert!(
        error.contains("a verdict once given stays as given"),
        "{error}"
    );

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "shop");
    let approved = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("Approved"))
        .expect("an Approved Event");
    assert!(approved.note.unwrap_or_default().contains(alice_user));
    // The detector's and the operator's next writes leave it be.
    report_status(&reports, name, "Open", 0.95).await;
    awaiting_step(&reports, name).await;
    let status = reports
        .get(name)
        .await
        .expect("report")
        .status
        .expect("status");
    assert_eq!(status.approvals.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_records_who_and_until_when_and_a_reader_cannot() {
    let (plane, client) = shop().await;
    let (alice, viewer) = on_call_and_reader(&plane, &client).await;
    let silences: Api<homeostat_api::Silence> = Api::namespaced(client.clone(), "shop");

    let error = homeostat_refused(&viewer, &["silence", "tax", "--for", "30m", "-n", "shop"]);
    assert!(error.contains("forbidden"), "{error}");
    let error = homeostat_refused(&alice, &["silence", "tax", "--for", "200h", "-n", "shop"]);
    assert!(error.contains("at most 168h"), "{error}");
    assert!(
        silences
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let before = jiff::Timestamp::now();
    let said = homeostat_as(
        &alice,
        &[
            "silence",
            "tax",
            "inventory",
            "--for",
            "30m",
            "-n",
            "shop",
            "--note",
            "tax deploy",
        ],
    );
    let alice_user = "system:serviceaccount:shop:alice";
    assert!(said.contains(&format!("by {alice_user}")), "{said}");
    let made = silences
        .list(&Default::default())
        .await
        .expect("list")
        .items;
    assert_eq!(made.len(), 1);
    let spec = &made[0].spec;
    assert_eq!(spec.services, ["tax", "inventory"]);
    assert_eq!(
        (spec.created_by.as_str(), spec.note.as_str()),
        (alice_user, "tax deploy")
    );
    let length = spec.until.0.duration_since(before).as_secs_f64();
    assert!(
        (1790.0..=1810.0).contains(&length),
        "until {length} s from now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_draws_the_signal_against_its_band_from_prometheus() {
    use homeostat_test_support::prometheus::{detector_incident, with_history};
    let (plane, client) = shop().await;
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    let name = "tax-latency-p99-1";
    new_report(&reports, name, "tax").await;
    // An incident three hours ago: ten minutes, tax's p99 out of its band
    // for the middle four.
    let opened = jiff::Timestamp::now().as_second() / 60 * 60 - 3 * 3600;
    let resolved = opened + 600;
    reports
        .patch_status(
            name,
            &PatchParams::apply("homeostat-detector").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {
                    "state": "Resolved", "score": 0.1, "peakScore": 0.97, "severity": "Critical",
                    "observed": 0.02, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                    "openedAt": jiff::Timestamp::from_second(opened).expect("t").to_string(),
                    "resolvedAt": jiff::Timestamp::from_second(resolved).expect("t").to_string()
                }
            })),
        )
        .await
        .expect("report status");
    // What the detector exported then, as Prometheus would have scraped it.
    let exposition = detector_incident(opened - 300, resolved, opened + 180..opened + 420);
    let (prometheus, _data) = with_history(&exposition)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let detail = homeostat(
        &plane,
        &[
            "report",
            name,
            "-n",
            "shop",
            "--prometheus",
            prometheus.url(),
        ],
    );
    let history = detail
        .lines()
        .skip_while(|l| !l.starts_with("History"))
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(history.len(), 2, "{detail}");
    assert!(history[0].contains('█'), "the peak drawn: {detail}");
    let marks: String = history[1]
        .chars()
        .skip(11)
        .take_while(|c| *c != ' ')
        .collect();
    assert!(marks.starts_with('·') && marks.ends_with('·'), "{detail}");
    let above = marks.chars().filter(|c| *c == '▲').count();
    // Four of fifteen minutes above the band, at about sixty points.
    assert!((12..=20).contains(&above), "{above} points above: {detail}");

    // Without a Prometheus it says why, and still shows the report.
    let detail = homeostat(
        &plane,
        &[
            "report",
            name,
            "-n",
            "shop",
            "--prometheus",
            "http://127.0.0.1:9",
        ],
    );
    assert!(
        detail.contains("History    unavailable: Prometheus at http://127.0.0.1:9"),
        "{detail}"
    );
    assert!(detail.contains("Signal     latency_p99 of tax"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_resume_switch_a_policy_saying_who_and_a_reader_cannot() {
    let (plane, client) = shop().await;
    let (alice, viewer) = on_call_and_reader(&plane, &client).await;
    let policies: Api<RemediationPolicy> = Api::namespaced(client.clone(), "shop");
    let policy: RemediationPolicy = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
        "metadata": {"name": "scale-tax"},
        "spec": {
            "services": {"names": ["tax"]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"scale": {"target": {"kind": "Deployment", "name": "tax"},
                                   "step": 1, "minReplicas": 1, "maxReplicas": 3}}]
        }
    }))
    .expect("policy");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create the policy");
    let suspended_by = |p: &RemediationPolicy| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("homeostat.dev/suspended-by"))
            .cloned()
    };

    let error = homeostat_refused(&viewer, &["suspend", "scale-tax", "-n", "shop"]);
    assert!(error.contains("forbidden"), "{error}");
    let error = homeostat_refused(&alice, &["suspend", "no-such-policy", "-n", "shop"]);
    assert!(
        error.contains("no RemediationPolicy no-such-policy in namespace shop"),
        "{error}"
    );
    let stored = policies.get("scale-tax").await.expect("policy");
    assert!(!stored.spec.guards.suspend && suspended_by(&stored).is_none());

    let said = homeostat_as(
        &alice,
        &["suspend", "scale-tax", "-n", "shop", "--note", "noisy"],
    );
    let alice_user = "system:serviceaccount:shop:alice";
    assert!(
        said.contains(&format!("suspended by {alice_user}")),
        "{said}"
    );
    let stored = policies.get("scale-tax").await.expect("policy");
    assert!(stored.spec.guards.suspend);
    let by = suspended_by(&stored).expect("who suspended it");
    assert!(by.starts_with(&format!("{alice_user} at ")), "{by}");
    // The rest of the policy is as its author wrote it.
    assert_eq!(stored.spec.services.names, ["tax"]);

    homeostat_as(&alice, &["resume", "scale-tax", "-n", "shop"]);
    let stored = policies.get("scale-tax").await.expect("policy");
    assert!(!stored.spec.guards.suspend);
    assert_eq!(suspended_by(&stored), None);
}
