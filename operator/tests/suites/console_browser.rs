//! The web console in a real browser (Debian's headless chromium, driven
//! over WebDriver) against a real kube-apiserver, the operator process
//! serving it and a real Prometheus: a person signs in with a token, sees
//! the reports, sees a new one appear without reloading, reads one in
//! detail with its chart and markers, acknowledges and approves; a
//! read-only person is refused (403) and nothing is written; a request
//! with no identity gets 401. Screenshots of the list and the detail page
//! are written to `target/screenshots/` (the README shows them).

use std::path::PathBuf;

use crate::common::*;
use homeostat_api::{AnomalyReport, VerdictKind};
use homeostat_test_support::browser::Browser;
use homeostat_test_support::{free_port, rbac, reports};
use kube::Api;
use serde_json::json;

const RESOLVED: &str = "tax-latency-p99-1";
const AWAITING: &str = "payment-primary-error-ratio-1";

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

fn at(t: i64) -> String {
    jiff::Timestamp::from_second(t).expect("t").to_string()
}

/// Report `name` as the detector writes it, opened at `opened` (resolved
/// ten minutes later when `resolved`), and the operator's `actions`.
async fn report(
    client: &kube::Client,
    name: &str,
    service: &str,
    signal: &str,
    opened: i64,
    resolved: bool,
    actions: serde_json::Value,
) {
    reports::create(client, "shop", name, service, signal)
        .await
        .expect("create the report");
    let mut status = json!({
        "state": if resolved { "Resolved" } else { "Open" },
        "score": if resolved { 0.1 } else { 0.93 }, "peakScore": 0.97, "severity": "Critical",
        "observed": 0.41, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
        "culprit": {"service": service, "confidence": 0.9,
                    "evidence": [format!("{service} {signal} 20x its baseline; no upstream anomalous")]},
        "openedAt": at(opened),
        "timeline": [{"id": "opened", "time": at(opened), "source": "detector",
                      "message": format!("{service} {signal} anomalous")}]
    });
    if resolved {
        status["resolvedAt"] = json!(at(opened + 600));
    }
    reports::write_status(client, "shop", name, "homeostat-detector", status)
        .await
        .expect("detector status");
    reports::write_status(
        client,
        "shop",
        name,
        "homeostat-operator",
        json!({"actions": actions}),
    )
    .await
    .expect("operator status");
}

/// Signs `browser` in at `console` with `token`, through the login form.
async fn sign_in(browser: &Browser, console: &str, token: &str) {
    browser
        .goto(&format!("{console}/login"))
        .await
        .expect("login page");
    let field = browser
        .wait_for("textarea[name=token]")
        .await
        .expect("token field");
    browser
        .type_into(&field, token)
        .await
        .expect("type the token");
    let namespace = browser
        .find("input[name=namespace]")
        .await
        .expect("namespace field");
    browser
        .type_into(&namespace, "shop")
        .await
        .expect("type the namespace");
    let button = browser.find("form button").await.expect("sign in button");
    browser.click(&button).await.expect("sign in");
    browser
        .wait_for("table#reports")
        .await
        .expect("the reports after signing in");
}

/// The answer's status to a form post made from the page, with the
/// session's own CSRF token (from the sign-out form every page has).
async fn post_from_page(browser: &Browser, path: &str, fields: serde_json::Value) -> u16 {
    let status = browser
        .execute(
            r#"const [path, fields] = arguments;
const body = new URLSearchParams(fields);
body.set("csrf", document.querySelector("form.sign-out input[name=csrf]").value);
return fetch(path, {method: "POST", body, redirect: "manual"}).then((r) => r.status);"#,
            json!([path, fields]),
        )
        .await
        .expect("a form post from the page");
    u16::try_from(status.as_u64().expect("a status")).expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_in_a_browser_sees_reports_live_reads_one_and_acts_as_rbac_allows() {
    let (plane, client) = plane().await;
    namespace(&client, "shop").await;
    // The shipped roles, and the sample bindings (the operator may write in shop).
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    rbac::apply(
        &plane,
        &[
            deploy.join("base/rbac.yaml"),
            deploy.join("samples/access.yaml"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let alice = person_in_shop(&plane, &client, "alice", Some("homeostat-oncall")).await;
    let viewer = person_in_shop(&plane, &client, "viewer", Some("homeostat-viewer")).await;

    let now = jiff::Timestamp::now().as_second() / 60 * 60;
    let opened = now - 2 * 3600;
    report(
        &client,
        RESOLVED,
        "tax",
        "latency_p99",
        opened,
        true,
        json!([{
            "id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
            "target": "deployment/tax 2→3", "object": "deployment/tax",
            "before": {"replicas": 2}, "after": {"replicas": 3},
            "plannedAt": at(opened + 60), "doneAt": at(opened + 60),
            "restoredAt": at(opened + 720)
        }]),
    )
    .await;
    report(
        &client,
        AWAITING,
        "payment-primary",
        "error_ratio",
        now - 120,
        false,
        json!([{
            "id": "reroute-payments-0-1", "policy": "reroute-payments", "kind": "reroute",
            "target": "httproute/payments payment-primary→payment-secondary",
            "object": "httproute/payments", "plannedAt": at(now - 90),
            "approval": {"state": "Awaiting", "expiresAt": at(now + 900)}
        }]),
    )
    .await;
    let (prometheus, _data) = prometheus_with_incident(opened, opened + 900).await;
    let port = free_port().expect("port");
    let console = format!("http://127.0.0.1:{port}");
    let kubeconfig = plane
        .service_account_kubeconfig(OPERATOR_NAMESPACE, "homeostat-operator")
        .await
        .expect("the operator's kubeconfig");
    let _operator = Operator::start_full(
        &plane,
        &kubeconfig,
        "browser",
        &[
            "--console-listen",
            &format!("127.0.0.1:{port}"),
            "--console-prometheus",
            prometheus.url(),
            "--console-grafana",
            "http://grafana.invalid:3000",
        ],
        &[],
    );
    homeostat_test_support::wait_for_ok(
        "the console",
        &format!("{console}/console.css"),
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Nobody: 401, in the browser too.
    let nobody = Browser::start(plane.dir())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    nobody
        .goto(&format!("{console}/reports"))
        .await
        .expect("goto");
    let status = nobody
        .execute("return fetch('/reports').then((r) => r.status);", json!([]))
        .await
        .expect("fetch");
    assert_eq!(status, json!(401));
    let page = nobody.source().await.expect("source");
    assert!(page.contains("Sign in"), "{page}");
    drop(nobody);

    // Alice, on call: the list, open report first.
    let browser = Browser::start(plane.dir())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sign_in(&browser, &console, &alice).await;
    browser
        .goto(&format!("{console}/reports?namespace=shop"))
        .await
        .expect("list");
    let rows = browser
        .execute(
            "return Array.from(document.querySelectorAll('#reports tr[data-report]')).map((r) => r.dataset.report);",
            json!([]),
        )
        .await
        .expect("rows");
    assert_eq!(
        rows,
        json!([format!("shop/{AWAITING}"), format!("shop/{RESOLVED}")])
    );
    browser.wait_for("#live").await.expect("the live indicator");

    // A new report appears without a reload.
    let marker = browser
        .execute("window.notReloaded = true; return true;", json!([]))
        .await
        .expect("mark the page");
    assert_eq!(marker, json!(true));
    report(
        &client,
        "inventory-latency-p99-1",
        "inventory",
        "latency_p99",
        now - 30,
        false,
        json!([]),
    )
    .await;
    browser
        .wait_for("tr[data-report='shop/inventory-latency-p99-1']")
        .await
        .expect("the new report's row, live");
    assert_eq!(
        browser
            .execute("return window.notReloaded === true;", json!([]))
            .await
            .expect("still the same page"),
        json!(true)
    );
    browser.resize(1280, 420).await.expect("resize");
    browser
        .screenshot(&screenshots().join("console-reports.png"))
        .await
        .expect("screenshot");

    // The resolved incident in detail: the chart with every marker.
    browser
        .goto(&format!("{console}/reports/shop/{RESOLVED}"))
        .await
        .expect("detail");
    browser.wait_for("svg").await.expect("the chart");
    for marker in ["opened", "action", "restore", "resolved"] {
        browser
            .find(&format!("svg g.marker.{marker}"))
            .await
            .unwrap_or_else(|e| panic!("marker {marker}: {e}"));
    }
    browser.find("svg .band").await.expect("the baseline band");
    browser.resize(1280, 1500).await.expect("resize");
    browser
        .screenshot(&screenshots().join("console-report.png"))
        .await
        .expect("screenshot");

    // Acknowledge and approve, as Alice.
    browser
        .goto(&format!("{console}/reports/shop/{AWAITING}"))
        .await
        .expect("detail");
    let note = browser
        .wait_for("form#acknowledge input[name=note]")
        .await
        .expect("ack form");
    browser.type_into(&note, "on it").await.expect("note");
    let ack = browser
        .find("form#acknowledge button")
        .await
        .expect("ack button");
    browser.click(&ack).await.expect("acknowledge");
    browser
        .wait_for(".acknowledged")
        .await
        .expect("shown acknowledged");
    let approve = browser
        .find("form.verdict[data-step='reroute-payments-0-1'] button[value=approve]")
        .await
        .expect("approve button");
    browser.click(&approve).await.expect("approve");
    browser
        .wait_for("td.approval-Approved")
        .await
        .expect("shown approved");
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    let stored = reports.get(AWAITING).await.expect("report");
    let status = stored.status.expect("status");
    let ack = status.acknowledged.expect("acknowledged");
    assert_eq!(
        (ack.by.as_str(), ack.note.as_str()),
        ("system:serviceaccount:shop:alice", "on it")
    );
    let verdict = status
        .approvals
        .iter()
        .find(|v| v.step == "reroute-payments-0-1")
        .expect("a verdict");
    assert_eq!(verdict.verdict, VerdictKind::Approved);
    assert_eq!(verdict.by, "system:serviceaccount:shop:alice");
    browser
        .screenshot(&screenshots().join("console-acted.png"))
        .await
        .expect("screenshot");
    drop(browser);

    // A read-only person: no forms, and a form posted anyway is refused
    // (403) with nothing written.
    let browser = Browser::start(plane.dir())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sign_in(&browser, &console, &viewer).await;
    browser
        .goto(&format!("{console}/reports/shop/{RESOLVED}"))
        .await
        .expect("detail");
    browser
        .wait_for("p.read-only")
        .await
        .expect("told read-only");
    let page = browser.source().await.expect("source");
    assert!(!page.contains("id=\"acknowledge\""), "{page}");
    let refused = post_from_page(
        &browser,
        &format!("/reports/shop/{RESOLVED}/acknowledge"),
        json!({"note": "not mine to ack"}),
    )
    .await;
    assert_eq!(refused, 403);
    let refused = post_from_page(
        &browser,
        &format!("/reports/shop/{RESOLVED}/silence"),
        json!({"for": "30m"}),
    )
    .await;
    assert_eq!(refused, 403);
    let stored = reports.get(RESOLVED).await.expect("report");
    assert!(
        stored.status.expect("status").acknowledged.is_none(),
        "a refused acknowledgement wrote nothing"
    );
    let silences = Api::<homeostat_api::Silence>::namespaced(client.clone(), "shop")
        .list(&Default::default())
        .await
        .expect("silences");
    assert!(silences.items.is_empty(), "a refused silence wrote nothing");
}
