//! Helpers for the operator's integration tests: a real control plane, the
//! CRDs, workloads, reports written as the detector writes them, and the
//! operator binary as a child process.

#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homeostat_api::{AnomalyReport, RemediationPolicy};
use homeostat_operator::router::gateway::{
    HTTPBackendRef, HTTPRoute, HTTPRouteRule, HTTPRouteSpec, httproute_crd,
};
use homeostat_test_support::{ControlPlane, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::json;

pub const OPERATOR_NAMESPACE: &str = "homeostat-system";

/// A ServiceAccount `shop/name`, bound in shop to ClusterRole `role` when
/// given: a person, by the token returned.
pub async fn person_in_shop(
    plane: &ControlPlane,
    client: &Client,
    name: &str,
    role: Option<&str>,
) -> String {
    homeostat_test_support::rbac::person(client, "shop", name, role)
        .await
        .expect("a person");
    plane
        .service_account_token("shop", name)
        .await
        .expect("token")
}

/// A Prometheus of its own holding what the detector exported for tax's
/// p99 from five minutes before `opened` until `until`: out of its band for
/// the first 400 s (see `detector_incident`). Keep the directory while the
/// server runs.
pub async fn prometheus_with_incident(
    opened: i64,
    until: i64,
) -> (homeostat_test_support::Prometheus, tempfile::TempDir) {
    use homeostat_test_support::prometheus::{detector_incident, with_history};
    with_history(&detector_incident(
        opened - 300,
        until,
        opened..opened + 400,
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

pub async fn plane() -> (ControlPlane, Client) {
    homeostat_test_support::install_crypto_provider();
    let plane = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("control plane: {e}"));
    let client = plane
        .client()
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    let mut crds = homeostat_api::all_crds();
    crds.push(httproute_crd());
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in &crds {
        let name = crd.metadata.name.clone().expect("name");
        api.patch(
            &name,
            &PatchParams::apply("tests").force(),
            &Patch::Apply(crd),
        )
        .await
        .unwrap_or_else(|e| panic!("CRD {name}: {e}"));
    }
    for crd in &crds {
        let name = crd.metadata.name.clone().expect("name");
        wait_until(
            &format!("{name} established"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let c = api.get(&name).await.map_err(|e| e.to_string())?;
                let ok = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
                if ok {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    namespace(&client, OPERATOR_NAMESPACE).await;
    (plane, client)
}

/// The Prometheus Operator's ServiceMonitor CRD, schema left open: only its
/// presence matters to the operator.
pub async fn servicemonitor_crd(client: &Client) {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .expect("crd");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .expect("ServiceMonitor CRD");
}

/// The ServiceMonitors of `ns` (the CRD has no Rust type here).
pub fn servicemonitors(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
            "servicemonitors",
        ),
    )
}

/// HTTPRoute `payments` in `ns`: all traffic on payment-primary.
pub async fn payments_route(client: &Client, ns: &str) -> Api<HTTPRoute> {
    let routes: Api<HTTPRoute> = Api::namespaced(client.clone(), ns);
    let backend = |name: &str, weight: i32| HTTPBackendRef {
        name: name.into(),
        port: Some(8080),
        weight: Some(weight),
    };
    let route = HTTPRoute::new(
        "payments",
        HTTPRouteSpec {
            parent_refs: vec![],
            hostnames: vec!["payments.shop".into()],
            rules: vec![HTTPRouteRule {
                backend_refs: vec![
                    backend("payment-primary", 100),
                    backend("payment-secondary", 0),
                ],
            }],
        },
    );
    routes
        .create(&PostParams::default(), &route)
        .await
        .expect("route");
    routes
}

/// The backend weights of HTTPRoute `payments`, in order.
pub async fn route_weights(routes: &Api<HTTPRoute>) -> Result<Vec<Option<i32>>, String> {
    let route = routes.get("payments").await.map_err(|e| e.to_string())?;
    Ok(route.spec.rules[0]
        .backend_refs
        .iter()
        .map(|b| b.weight)
        .collect())
}

pub async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("namespace {name}: {e}"),
    }
}

pub async fn deployment(client: &Client, ns: &str, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {"containers": [{"name": name, "image": "oms:test"}]}
            }
        }
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &d)
        .await
        .unwrap_or_else(|e| panic!("deployment {name}: {e}"));
}

pub async fn replicas(client: &Client, ns: &str, name: &str) -> i32 {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get_scale(name)
        .await
        .expect("scale")
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(0)
}

pub async fn routing_configmap(client: &Client, ns: &str, primary: u32) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "oms-routing"},
        "data": {"payment.payment-primary": primary.to_string(), "payment.payment-secondary": (100 - primary).to_string()}
    }))
    .expect("configmap");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("configmap");
}

pub async fn configmap_weights(client: &Client, ns: &str) -> (String, String) {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("oms-routing")
        .await
        .expect("configmap");
    payment_weights(&cm)
}

fn payment_weights(cm: &ConfigMap) -> (String, String) {
    let data = cm.data.clone().unwrap_or_default();
    let weight = |key: &str| data.get(key).cloned().unwrap_or_default();
    (
        weight("payment.payment-primary"),
        weight("payment.payment-secondary"),
    )
}

/// Every version of the routing ConfigMap's payment weights from now on, in
/// order: a watch from the current resourceVersion misses no write, where
/// polling can miss a step that lasts less than a poll on a busy machine.
pub struct WeightHistory {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    watch: tokio::task::JoinHandle<()>,
}

impl WeightHistory {
    pub async fn start(client: &Client, ns: &str) -> Self {
        use futures::StreamExt;
        use kube::api::{WatchEvent, WatchParams};
        let api = Api::<ConfigMap>::namespaced(client.clone(), ns);
        let now = api.get("oms-routing").await.expect("configmap");
        let version = now.metadata.resource_version.clone().expect("version");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![payment_weights(&now)]));
        let params = WatchParams::default()
            .fields("metadata.name=oms-routing")
            .timeout(290);
        let mut events = api
            .watch(&params, &version)
            .await
            .expect("watch the routing configmap")
            .boxed();
        let sink = seen.clone();
        let watch = tokio::spawn(async move {
            while let Some(Ok(WatchEvent::Modified(cm))) = events.next().await {
                let weights = payment_weights(&cm);
                let mut seen = sink.lock().expect("lock");
                if seen.last() != Some(&weights) {
                    seen.push(weights);
                }
            }
        });
        Self { seen, watch }
    }

    pub fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for WeightHistory {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

pub async fn policy(client: &Client, ns: &str, name: &str, spec: serde_json::Value) {
    let api: Api<RemediationPolicy> = Api::namespaced(client.clone(), ns);
    let p: RemediationPolicy = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("policy");
    api.create(&PostParams::default(), &p)
        .await
        .unwrap_or_else(|e| panic!("policy {name}: {e}"));
}

pub async fn get_policy(client: &Client, ns: &str, name: &str) -> RemediationPolicy {
    Api::<RemediationPolicy>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("policy")
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .expect("time")
        .to_string()
}

pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Opens a report as the detector does (create, then status as `homeostat-detector`).
pub async fn open_report(client: &Client, ns: &str, service: &str) -> String {
    let name = format!("{service}-latency-p99-1");
    let api: Api<AnomalyReport> = Api::namespaced(client.clone(), ns);
    let report: AnomalyReport = serde_json::from_value(json!({
        "apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport",
        "metadata": {"name": name}, "spec": {"service": service, "signal": "latency_p99"}
    }))
    .expect("report");
    api.create(&PostParams::default(), &report)
        .await
        .expect("create report");
    detector_status(client, ns, &name, "Open", None).await;
    name
}

/// Writes the detector's part of a report's status.
pub async fn detector_status(
    client: &Client,
    ns: &str,
    name: &str,
    state: &str,
    resolved_at: Option<i64>,
) {
    let api: Api<AnomalyReport> = Api::namespaced(client.clone(), ns);
    let opened = unix_now() - 60;
    let mut status = json!({
        "state": state, "score": 0.97, "peakScore": 0.97, "severity": "Critical",
        "observed": 0.05, "baseline": {"lower": 0.001, "centre": 0.002, "upper": 0.004},
        "openedAt": rfc3339(opened),
        "timeline": [{"id": "opened", "time": rfc3339(opened), "source": "detector", "message": "opened"}],
    });
    if let Some(at) = resolved_at {
        status["resolvedAt"] = json!(rfc3339(at));
    }
    let patch =
        json!({"apiVersion": "homeostat.dev/v1alpha1", "kind": "AnomalyReport", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply("homeostat-detector").force(),
        &Patch::Apply(&patch),
    )
    .await
    .expect("report status");
}

/// Marks a report Resolved now, keeping Remediating out of the way as the detector does.
pub async fn resolve(client: &Client, ns: &str, name: &str) {
    detector_status(client, ns, name, "Resolved", Some(unix_now())).await;
}

pub async fn get_report(client: &Client, ns: &str, name: &str) -> AnomalyReport {
    Api::<AnomalyReport>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("report")
}

/// Reasons of the Events (events.k8s.io) about `name` in `ns`.
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// Sets a Deployment's replicas through its scale subresource, as
/// `kubectl scale` does.
pub async fn deployment_scale(client: &Client, ns: &str, name: &str, n: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": n}})),
        )
        .await
        .expect("scale");
}

/// Waits until the Deployment `name` asks for `n` replicas.
pub async fn wait_replicas(client: &Client, ns: &str, name: &str, n: i32) {
    eventually(&format!("{name} at {n} replicas"), 90, || async {
        match replicas(client, ns, name).await {
            got if got == n => Ok(()),
            got => Err(format!("{got} replicas")),
        }
    })
    .await
}

/// The policy `scale-tax` holds no change in force (waits for it).
pub async fn holds_nothing(client: &kube::Client, ns: &str) {
    eventually("the policy holds nothing", 60, || async {
        let status = get_policy(client, ns, "scale-tax")
            .await
            .status
            .ok_or("no status")?;
        if status.active.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", status.active))
        }
    })
    .await;
}

/// Waits for `check` to hold.
pub async fn eventually<T, F, Fut>(what: &str, seconds: u64, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    wait_until(
        what,
        Duration::from_secs(seconds),
        Duration::from_millis(200),
        check,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The operator binary as a child process.
pub struct Operator {
    child: Child,
    pub metrics_url: String,
    pub identity: String,
}

impl Operator {
    pub fn start(plane: &ControlPlane, identity: &str, extra: &[&str]) -> Self {
        Self::start_full(plane, plane.kubeconfig_path(), identity, extra, &[])
    }

    pub fn start_with_env(plane: &ControlPlane, identity: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full(plane, plane.kubeconfig_path(), identity, &[], env)
    }

    /// Runs with the credentials in `kubeconfig` (say, a ServiceAccount's)
    /// instead of cluster-admin.
    pub fn start_as(plane: &ControlPlane, kubeconfig: &std::path::Path, identity: &str) -> Self {
        Self::start_full(plane, kubeconfig, identity, &[], &[])
    }

    pub fn start_full(
        plane: &ControlPlane,
        kubeconfig: &std::path::Path,
        identity: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        // Kept beside the control plane's logs, or in HOMEOSTAT_OPERATOR_LOG_DIR to read after a failure.
        let dir = std::env::var_os("HOMEOSTAT_OPERATOR_LOG_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| plane.dir().to_owned());
        let log = std::fs::File::create(dir.join(format!("operator-{identity}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_homeostat-operator"))
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .args([
                "--namespace",
                OPERATOR_NAMESPACE,
                "--identity",
                identity,
                "--resync-seconds",
                "1",
                "--lease-seconds",
                "3",
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start homeostat-operator");
        Self {
            child,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
            identity: identity.to_owned(),
        }
    }

    /// An unlabelled metric, or an error while the process is not serving.
    pub async fn metric(&self, name: &str) -> Result<f64, String> {
        homeostat_test_support::metric_value(&self.metrics_url, name).await
    }

    /// Waits until this process has run `n` more reconciles.
    pub async fn wait_reconciles(&self, n: f64) {
        let from = self
            .metric(r#"homeostat_operator_reconciles_total{controller="remediationpolicy"}"#)
            .await
            .unwrap_or(0.0);
        eventually(
            &format!("{n} more reconciles by {}", self.identity),
            60,
            || async {
                let now = self
                    .metric(
                        r#"homeostat_operator_reconciles_total{controller="remediationpolicy"}"#,
                    )
                    .await?;
                if now >= from + n {
                    Ok(())
                } else {
                    Err(format!("{now}"))
                }
            },
        )
        .await
    }

    /// SIGTERM, as Kubernetes stops a pod; waits up to `within` for the
    /// process to exit, and returns how it exited (None: still running).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits up to `seconds` for the process to exit by itself.
    pub async fn exited(&mut self, seconds: u64) -> std::process::ExitStatus {
        let identity = self.identity.clone();
        let child = &mut self.child;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "operator {identity} still running after {seconds}s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to tidy up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The CRD named `name` with a schema that takes anything, as an older
/// version of it might have.
pub async fn loosen(client: &kube::Client, name: &str) {
    homeostat_test_support::loosen_crd(client, name)
        .await
        .expect("loosen the CRD");
}
