//! The web console against a real kube-apiserver, served by the operator
//! process: every request is a person the API server vouches for
//! (TokenReview), every page what RBAC lets them read (SubjectAccessReview);
//! the report's chart comes from a real Prometheus.

use crate::common::*;
use homeostat_api::AnomalyReport;
use homeostat_test_support::{free_port, rbac, reports};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const NAME: &str = "tax-latency-p99-1";

/// A resolved incident three hours ago: a scale step done and restored, its
/// evidence with markup in it.
async fn incident(client: &kube::Client) -> (i64, i64) {
    reports::create(client, "shop", NAME, "tax", "latency_p99")
        .await
        .expect("create the report");
    let opened = jiff::Timestamp::now().as_second() / 60 * 60 - 3 * 3600;
    let at = |t: i64| jiff::Timestamp::from_second(t).expect("t").to_string();
    reports::write_status(
        client,
        "shop",
        NAME,
        "homeostat-detector",
        json!({
            "state": "Resolved", "score": 0.1, "peakScore": 0.97, "severity": "Critical",
            "observed": 0.02, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
            "culprit": {"service": "tax", "confidence": 0.9,
                        "evidence": ["tax latency_p99 up 20x <script>alert(1)</script>"]},
            "openedAt": at(opened), "resolvedAt": at(opened + 600),
            "timeline": [{"id": "opened", "time": at(opened), "source": "detector", "message": "tax anomalous"}]
        }),
    )
    .await
    .expect("detector status");
    reports::write_status(
        client,
        "shop",
        NAME,
        "homeostat-operator",
        json!({"actions": [{
            "id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
            "target": "deployment/tax 2→3", "object": "deployment/tax",
            "before": {"replicas": 2}, "after": {"replicas": 3},
            "plannedAt": at(opened + 60), "doneAt": at(opened + 60),
            "restoredAt": at(opened + 720)
        }]}),
    )
    .await
    .expect("operator status");
    (opened, opened + 600)
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
    let alice = person_in_shop(&plane, &client, "alice", Some("homeostat-oncall")).await;
    let stranger = person_in_shop(&plane, &client, "stranger", None).await;
    let (opened, resolved) = incident(&client).await;
    let (prometheus, _data) = prometheus_with_incident(opened, resolved + 300).await;
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

/// Report `name` on tax, still open, whose step `scale-tax-0-1` awaits
/// approval (written as the detector and the operator write them).
async fn awaiting(client: &kube::Client, name: &str) {
    reports::create(client, "shop", name, "tax", "latency_p99")
        .await
        .expect("create the report");
    let now = jiff::Timestamp::now();
    let expires = now + jiff::SignedDuration::from_mins(15);
    reports::write_status(
        client,
        "shop",
        name,
        "homeostat-detector",
        json!({
            "state": "Open", "score": 0.9, "peakScore": 0.9, "severity": "Critical",
            "observed": 0.4, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
            "openedAt": now.to_string(),
            "timeline": [{"id": "opened", "time": now.to_string(), "source": "detector", "message": "tax anomalous"}]
        }),
    )
    .await
    .expect("detector status");
    reports::write_status(
        client,
        "shop",
        name,
        "homeostat-operator",
        json!({"actions": [{
            "id": "scale-tax-0-1", "policy": "scale-tax", "kind": "scale",
            "target": "deployment/tax 2→3", "object": "deployment/tax",
            "plannedAt": now.to_string(),
            "approval": {"state": "Awaiting", "expiresAt": expires.to_string()}
        }]}),
    )
    .await
    .expect("operator status");
}

/// Signs in through the form with `token`; the session cookie and the
/// CSRF token its pages carry.
async fn signed_in(http: &reqwest::Client, console: &str, token: &str) -> (String, String) {
    let form = http
        .get(format!("{console}/login"))
        .send()
        .await
        .expect("login form");
    let login_cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a CSRF cookie")
        .to_owned();
    let login_csrf = login_cookie.split_once('=').expect("cookie").1.to_owned();
    let answer = http
        .post(format!("{console}/login"))
        .header("cookie", &login_cookie)
        .form(&[("token", token), ("csrf", login_csrf.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(answer.status(), 303);
    let session = answer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = http
        .get(format!("{console}/reports?namespace=shop"))
        .header("cookie", &session)
        .send()
        .await
        .expect("a page")
        .text()
        .await
        .expect("body");
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_owned();
    (session, csrf)
}

/// The Events about `name` in shop, as `reason: note (reporter)`.
async fn events_about(client: &kube::Client, name: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    Api::<Event>::namespaced(client.clone(), "shop")
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            format!(
                "{}: {} ({})",
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
                e.reporting_controller.unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_act_from_the_console_as_themselves_only_as_rbac_lets_them() {
    let (plane, client) = plane().await;
    namespace(&client, "shop").await;
    let rbac_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/rbac.yaml");
    rbac::apply(&plane, &[rbac_file]).unwrap_or_else(|e| panic!("{e}"));
    let alice = person_in_shop(&plane, &client, "alice", Some("homeostat-oncall")).await;
    let viewer = person_in_shop(&plane, &client, "viewer", Some("homeostat-viewer")).await;
    // The sample bindings: the operator may write in shop.
    let access =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/samples/access.yaml");
    rbac::apply(&plane, &[access]).unwrap_or_else(|e| panic!("{e}"));
    const OPEN: &str = "tax-latency-p99-2";
    awaiting(&client, OPEN).await;
    // A policy for a service nothing reports on: the operator leaves it be.
    policy(
        &client,
        "shop",
        "scale-notifications",
        json!({
            "services": {"names": ["notifications"]},
            "trigger": {"signals": ["latency_p99"]},
            "actions": [{"scale": {"target": {"kind": "Deployment", "name": "notifications"},
                                   "step": 1, "minReplicas": 1, "maxReplicas": 2}}]
        }),
    )
    .await;
    let port = free_port().expect("port");
    let console = format!("http://127.0.0.1:{port}");
    // As its own ServiceAccount: the shipped RBAC is all the console has.
    let kubeconfig = plane
        .service_account_kubeconfig(OPERATOR_NAMESPACE, "homeostat-operator")
        .await
        .expect("the operator's kubeconfig");
    let _operator = Operator::start_full(
        &plane,
        &kubeconfig,
        "acts",
        &["--console-listen", &format!("127.0.0.1:{port}")],
        &[],
    );
    let http = http();
    eventually("the console listening", 30, || async {
        http.get(format!("{console}/console.css"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let reports: Api<AnomalyReport> = Api::namespaced(client.clone(), "shop");
    let post =
        |path: String, cookie: Option<&str>, bearer: Option<&str>, form: Vec<(&str, &str)>| {
            let mut request = http.post(format!("{console}{path}")).form(&form);
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            request.send()
        };
    let ack_path = format!("/reports/shop/{OPEN}/acknowledge");

    // Nobody: 401, nothing written.
    let answer = post(ack_path.clone(), None, None, vec![("note", "x")])
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);

    // Alice signed in: her detail page has every form; without the
    // session's CSRF token the act is refused; with it, done as her.
    let (session, csrf) = signed_in(&http, &console, &alice).await;
    let page = http
        .get(format!("{console}/reports/shop/{OPEN}"))
        .header("cookie", &session)
        .send()
        .await
        .expect("detail");
    assert_eq!(
        page.headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok()),
        Some(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
    );
    let page = page.text().await.expect("body");
    for form in [
        r#"id="acknowledge""#,
        r#"data-step="scale-tax-0-1""#,
        r#"id="silence""#,
    ] {
        assert!(page.contains(form), "{form}: {page}");
    }
    let forged = post(
        ack_path.clone(),
        Some(&session),
        None,
        vec![("csrf", "forged"), ("note", "x")],
    )
    .await
    .expect("answer");
    assert_eq!(forged.status(), 403);
    assert!(
        reports
            .get(OPEN)
            .await
            .expect("report")
            .status
            .expect("status")
            .acknowledged
            .is_none(),
        "a forged form wrote nothing"
    );
    let acked = post(
        ack_path.clone(),
        Some(&session),
        None,
        vec![("csrf", &csrf), ("note", "on it")],
    )
    .await
    .expect("answer");
    assert_eq!(
        acked.status(),
        303,
        "{}",
        acked.text().await.unwrap_or_default()
    );
    let status = reports
        .get(OPEN)
        .await
        .expect("report")
        .status
        .expect("status");
    let ack = status.acknowledged.expect("acknowledged");
    assert_eq!(
        (ack.by.as_str(), ack.note.as_str()),
        ("system:serviceaccount:shop:alice", "on it")
    );

    let verdict_path = format!("/reports/shop/{OPEN}/verdict");
    let silence_path = format!("/reports/shop/{OPEN}/silence");
    let switch_path = |word: &str| format!("/policies/shop/scale-notifications/{word}");
    // Alice with a bearer token: no cookie, so no CSRF token needed.
    let act = |path: String, form: Vec<(&'static str, &'static str)>| {
        let sent = post(path.clone(), None, Some(&alice), form);
        async move {
            let answer = sent.await.expect("answer");
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            assert_eq!(status, 303, "{path}: {body}");
        }
    };

    // A read-only person, with a bearer token: refused, nothing written.
    for (path, form) in [
        (
            verdict_path.clone(),
            vec![("step", "scale-tax-0-1"), ("verdict", "approve")],
        ),
        (silence_path.clone(), vec![("for", "30m")]),
        (switch_path("suspend"), vec![]),
    ] {
        let answer = post(path.clone(), None, Some(&viewer), form)
            .await
            .expect("answer");
        assert_eq!(answer.status(), 403, "{path}");
    }
    let status = reports
        .get(OPEN)
        .await
        .expect("report")
        .status
        .expect("status");
    assert!(status.approvals.is_empty(), "{:?}", status.approvals);

    // What cannot be done is refused with the reason, nothing written.
    for (path, form, wanted, says) in [
        (
            verdict_path.clone(),
            vec![("step", "no-such-step"), ("verdict", "approve")],
            409,
            "no step no-such-step",
        ),
        (
            verdict_path.clone(),
            vec![("step", "scale-tax-0-1"), ("verdict", "maybe")],
            422,
            "unknown variant `maybe`",
        ),
        (
            silence_path.clone(),
            vec![("for", "400h")],
            400,
            "at most 168h",
        ),
        (
            "/reports/shop/no-such-report/acknowledge".to_owned(),
            vec![],
            404,
            "no AnomalyReport no-such-report",
        ),
    ] {
        let answer = post(path.clone(), None, Some(&alice), form)
            .await
            .expect("answer");
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        assert_eq!(status, wanted, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }

    // Approved, once: a second verdict is refused.
    act(
        verdict_path.clone(),
        vec![
            ("step", "scale-tax-0-1"),
            ("verdict", "approve"),
            ("note", "go"),
        ],
    )
    .await;
    let status = reports
        .get(OPEN)
        .await
        .expect("report")
        .status
        .expect("status");
    let verdict = status.approvals.first().expect("a verdict");
    assert_eq!(
        (verdict.step.as_str(), verdict.verdict, verdict.by.as_str()),
        (
            "scale-tax-0-1",
            homeostat_api::VerdictKind::Approved,
            "system:serviceaccount:shop:alice"
        )
    );
    let twice = post(
        verdict_path.clone(),
        None,
        Some(&alice),
        vec![("step", "scale-tax-0-1"), ("verdict", "reject")],
    )
    .await
    .expect("answer");
    assert_eq!(twice.status(), 409, "a verdict once given stays");

    act(
        silence_path.clone(),
        vec![("for", "30m"), ("note", "tax deploy")],
    )
    .await;
    let silences = Api::<homeostat_api::Silence>::namespaced(client.clone(), "shop")
        .list(&Default::default())
        .await
        .expect("silences")
        .items;
    assert_eq!(silences.len(), 1, "{silences:?}");
    assert_eq!(
        (
            silences[0].spec.services.as_slice(),
            silences[0].spec.created_by.as_str()
        ),
        (
            ["tax".to_owned()].as_slice(),
            "system:serviceaccount:shop:alice"
        )
    );

    let policies: Api<homeostat_api::RemediationPolicy> = Api::namespaced(client.clone(), "shop");
    act(switch_path("suspend"), vec![("note", "noisy")]).await;
    let policy = policies.get("scale-notifications").await.expect("policy");
    assert!(policy.spec.guards.suspend);
    let by = policy
        .metadata
        .annotations
        .unwrap_or_default()
        .get("homeostat.dev/suspended-by")
        .cloned()
        .unwrap_or_default();
    assert!(
        by.starts_with("system:serviceaccount:shop:alice at "),
        "{by}"
    );
    act(switch_path("resume"), vec![]).await;
    let policy = policies.get("scale-notifications").await.expect("policy");
    assert!(!policy.spec.guards.suspend);
    assert!(
        !policy
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("homeostat.dev/suspended-by")
    );

    // Every act an Event naming who, reported by the console.
    let about_report = events_about(&client, OPEN).await;
    for wanted in [
        "Acknowledged: by system:serviceaccount:shop:alice: on it (homeostat-console)",
        "Approved: scale-tax-0-1 approved by system:serviceaccount:shop:alice: go (homeostat-console)",
    ] {
        assert!(
            about_report.contains(&wanted.to_owned()),
            "{wanted}: {about_report:?}"
        );
    }
    let about_policy = events_about(&client, "scale-notifications").await;
    for wanted in [
        "Suspended: by system:serviceaccount:shop:alice: noisy (homeostat-console)",
        "Resumed: by system:serviceaccount:shop:alice (homeostat-console)",
    ] {
        assert!(
            about_policy.contains(&wanted.to_owned()),
            "{wanted}: {about_policy:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_list_follows_the_api_server_live() {
    let (plane, client) = plane().await;
    namespace(&client, "shop").await;
    let rbac_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/rbac.yaml");
    rbac::apply(&plane, &[rbac_file]).unwrap_or_else(|e| panic!("{e}"));
    let viewer = person_in_shop(&plane, &client, "viewer", Some("homeostat-viewer")).await;
    let stranger = person_in_shop(&plane, &client, "stranger", None).await;
    let port = free_port().expect("port");
    let console = format!("http://127.0.0.1:{port}");
    let _operator = Operator::start(
        &plane,
        "live",
        &["--console-listen", &format!("127.0.0.1:{port}")],
    );
    let http = http();
    eventually("the console listening", 30, || async {
        http.get(format!("{console}/console.css"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let live = format!("{console}/reports/live?namespace=shop&state=Open");
    let refused = http
        .get(&live)
        .bearer_auth(&stranger)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        refused.status(),
        403,
        "watching needs watch on anomalyreports"
    );
    let answer = http
        .get(&live)
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = answer;
    awaiting(&client, "tax-latency-p99-3").await;
    let mut seen = String::new();
    let row = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(chunk) = body.chunk().await.expect("a chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(data) = seen
                .split("\n\n")
                .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
                .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
                .find(|data| data["key"] == "shop/tax-latency-p99-3" && data["row"].is_string())
            {
                return data["row"].as_str().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("the new report's row within 30s")
    .expect("a row");
    assert!(
        row.starts_with(r#"<tr data-report="shop/tax-latency-p99-3">"#),
        "{row}"
    );
    // Resolved: no longer Open, so the page is told to take the row away.
    let resolved = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        reports::write_status(
            &client,
            "shop",
            "tax-latency-p99-3",
            "homeostat-detector",
            json!({
                "state": "Resolved", "score": 0.1, "peakScore": 0.9, "severity": "Critical",
                "observed": 0.02, "baseline": {"lower": 0.01, "centre": 0.02, "upper": 0.05},
                "openedAt": jiff::Timestamp::now().to_string(),
                "resolvedAt": jiff::Timestamp::now().to_string()
            }),
        )
        .await
        .expect("resolve");
        let mut seen = String::new();
        while let Some(chunk) = body.chunk().await.expect("a chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(r#"{"key":"shop/tax-latency-p99-3","row":null}"#) {
                return true;
            }
        }
        false
    })
    .await
    .expect("the row taken away within 30s");
    assert!(resolved);
}
