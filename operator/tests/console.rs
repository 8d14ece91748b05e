//! The web console against a real kube-apiserver, served by the operator
//! process: every request is a person the API server vouches for
//! (TokenReview), every page what RBAC lets them read (SubjectAccessReview);
//! the report's chart comes from a real Prometheus.

mod common;

use common::*;
use homeostat_api::AnomalyReport;
use homeostat_test_support::prometheus::{Prometheus, PrometheusConfig, backfill_openmetrics};
use homeostat_test_support::{ControlPlane, free_port, rbac};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const NAME: &str = "tax-latency-p99-1";

/// A ServiceAccount `shop/name`, bound in shop to `role` when given; its token.
async fn person(
    plane: &ControlPlane,
    client: &kube::Client,
    name: &str,
    role: Option<&str>,
) -> String {
    rbac::person(client, "shop", name, role)
        .await
        .expect("a person");
    plane
        .service_account_token("shop", name)
        .await
        .expect("token")
}

/// A resolved incident three hours ago: a scale step done and restored, its
/// evidence with markup in it.
async fn incident(client: &kube::Client) -> (i64, i64) {
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    let report: AnomalyReport = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
        "metadata": {"name": NAME}, "spec": {"service": "tax", "signal": "latency_p99"}
    }))
    .expect("report");
    reports
        .create(&PostParams::default(), &report)
        .await
        .expect("create the report");
    let opened = jiff::Timestamp::now().as_second() / 60 * 60 - 3 * 3600;
    let at = |t: i64| jiff::Timestamp::from_second(t).expect("t").to_string();
    reports
        .patch_status(
            NAME,
            &PatchParams::apply("homeostat-detector").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {
                    "state": "Resolved", "score": 0.1, "peakScore": 0.97, "severity": "Critical",
                    "observed": 0.02, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                    "culprit": {"service": "tax", "confidence": 0.9,
                                "evidence": ["tax latency_p99 up 20x <script>alert(1)</script>"]},
                    "openedAt": at(opened), "resolvedAt": at(opened + 600),
                    "timeline": [{"id": "opened", "time": at(opened), "source": "detector", "message": "tax anomalous"}]
                }
            })),
        )
        .await
        .expect("detector status");
    reports
        .patch_status(
            NAME,
            &PatchParams::apply("homeostat-operator").force(),
            &Patch::Apply(json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
                "status": {"actions": [{
                    "id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
                    "target": "deployment/tax 2→3", "object": "deployment/tax",
                    "before": {"replicas": 2}, "after": {"replicas": 3},
                    "plannedAt": at(opened + 60), "doneAt": at(opened + 60),
                    "restoredAt": at(opened + 720)
                }]}
            })),
        )
        .await
        .expect("operator status");
    (opened, opened + 600)
}

/// What the detector exported over the incident, in a Prometheus of its own.
async fn prometheus_with(opened: i64, resolved: i64) -> (Prometheus, tempfile::TempDir) {
    let exposition = homeostat_test_support::prometheus::detector_incident(
        opened - 300,
        resolved + 300,
        opened..opened + 400,
    );
    let data = tempfile::tempdir().expect("tempdir");
    backfill_openmetrics(data.path(), &exposition).unwrap_or_else(|e| panic!("{e}"));
    let prometheus = Prometheus::start(PrometheusConfig {
        data_dir: Some(data.path().to_owned()),
        ..PrometheusConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    (prometheus, data)
}

/// No redirects followed: the test reads each answer as it comes.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_rbac_lets_a_person_read_and_nothing_to_anyone_else() {
    let (plane, client) = plane().await;
    namespace(&client, "shop").await;
    let system: Namespace =
        serde_json::from_value(json!({"metadata": {"name": OPERATOR_NAMESPACE}})).expect("ns");
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &system)
        .await;
    let rbac_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/rbac.yaml");
    rbac::apply(&plane, &[rbac_file]).unwrap_or_else(|e| panic!("{e}"));
    let alice = person(&plane, &client, "alice", Some("homeostat-oncall")).await;
    let stranger = person(&plane, &client, "stranger", None).await;
    let (opened, resolved) = incident(&client).await;
    let (prometheus, _data) = prometheus_with(opened, resolved).await;
    let port = free_port().expect("port");
    let console = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let _operator = Operator::start(
        &plane,
        "a",
        &[
            "--console-listen",
            &listen,
            "--console-prometheus",
            prometheus.url(),
            "--console-grafana",
            "http://grafana.invalid:3000",
        ],
    );
    let http = http();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{console}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    eventually("the console listening", 30, || async {
        get("/console.css", None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;

    // Nobody: 401, with where to sign in.
    let answer = get("/reports", None).await.expect("answer");
    assert_eq!(answer.status(), 401);
    assert!(answer.headers().contains_key("www-authenticate"));
    assert!(
        answer
            .text()
            .await
            .expect("body")
            .contains(r#"href="/login""#)
    );
    // A token the API server does not know: 401.
    let answer = get("/reports", Some("not-a-token")).await.expect("answer");
    assert_eq!(answer.status(), 401);
    // Someone RBAC does not let read reports in shop: 403, and nothing of them.
    let answer = get("/reports?namespace=shop", Some(&stranger))
        .await
        .expect("answer");
    assert_eq!(answer.status(), 403);
    let body = answer.text().await.expect("body");
    assert!(!body.contains(NAME), "{body}");
    let answer = get(&format!("/reports/shop/{NAME}"), Some(&stranger))
        .await
        .expect("answer");
    assert_eq!(answer.status(), 403);

    // Someone on call: the list, then the report with its chart.
    let answer = get("/reports?namespace=shop", Some(&alice))
        .await
        .expect("answer");
    assert_eq!(answer.status(), 200);
    let list = answer.text().await.expect("body");
    assert!(
        list.contains(&format!(r#"href="/reports/shop/{NAME}""#)),
        "{list}"
    );
    assert!(
        list.contains("system:serviceaccount:shop:alice"),
        "who is signed in: {list}"
    );
    let filtered = get("/reports?namespace=shop&state=Open", Some(&alice))
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert!(
        !filtered.contains(&format!(r#"href="/reports/shop/{NAME}""#)),
        "{filtered}"
    );

    let detail = get(&format!("/reports/shop/{NAME}"), Some(&alice))
        .await
        .expect("answer");
    assert_eq!(detail.status(), 200);
    let detail = detail.text().await.expect("body");
    assert!(detail.contains("<svg"), "{detail}");
    for marker in [
        "marker opened",
        "marker action",
        "marker restore",
        "marker resolved",
    ] {
        assert!(detail.contains(marker), "{marker}: {detail}");
    }
    assert!(detail.contains(r#"class="band""#), "{detail}");
    assert!(
        detail.contains("homeostat_detector_observed"),
        "the PromQL shown: {detail}"
    );
    assert!(
        detail.contains("http://grafana.invalid:3000/d/homeostat/homeostat?var-service=tax"),
        "{detail}"
    );
    assert!(
        !detail.contains("<script>alert(1)"),
        "evidence is escaped: {detail}"
    );
    assert!(detail.contains("&lt;script&gt;alert(1)"), "{detail}");
    let missing = get("/reports/shop/nothing-here", Some(&alice))
        .await
        .expect("answer");
    assert_eq!(missing.status(), 404);
    // A policy stored under an older, looser schema is left out of the
    // page, never the page itself.
    loosen(&client, "remediationpolicies.homeostat.dev").await;
    let unreadable: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
        "metadata": {"name": "from-an-older-version", "namespace": "shop"},
        "spec": {"services": "tax"}
    }))
    .expect("object");
    let resource = kube::api::ApiResource::erase::<homeostat_api::RemediationPolicy>(&());
    let raw = Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), "shop", &resource);
    // The looser schema takes a moment to be in force.
    eventually("an unreadable policy stored", 30, || async {
        raw.create(&PostParams::default(), &unreadable)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let policies = get("/policies?namespace=shop", Some(&alice))
        .await
        .expect("answer");
    assert_eq!(policies.status(), 200);
    let policies = policies.text().await.expect("body");
    assert!(!policies.contains("from-an-older-version"), "{policies}");

    // Signing in with a form: the token exchanged for a session, never shown.
    let form = get("/login", None).await.expect("login form");
    let csrf_cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a CSRF cookie")
        .to_owned();
    let csrf = csrf_cookie.split_once('=').expect("cookie").1.to_owned();
    let refused = http
        .post(format!("{console}/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("token", alice.as_str()), ("csrf", "forged")])
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 403, "a form the console did not give");
    let signed_in = http
        .post(format!("{console}/login"))
        .header("cookie", &csrf_cookie)
        .form(&[("token", alice.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("answer");
    assert_eq!(signed_in.status(), 303);
    let session = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains(&alice), "the cookie is not the token");
    let page = http
        .get(format!("{console}/reports?namespace=shop"))
        .header("cookie", session.split(';').next().expect("cookie"))
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("body");
    assert!(page.contains(NAME) && !page.contains(&alice), "{page}");

    // No token in the operator's log either.
    let log = std::fs::read_to_string(plane.dir().join("operator-a.log")).expect("log");
    assert!(
        !log.contains(&alice) && !log.contains(&stranger),
        "a token was logged"
    );
}
