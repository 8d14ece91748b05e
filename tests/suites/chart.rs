//! The Helm chart `charts/homeostat`, with helm built from its Go module:
//! it lints, its defaults render the very homeostat objects the kustomize
//! install `deploy/base` renders, and its values do what they say.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use homeostat_test_support::TestAssets;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(name: &'static str) -> PathBuf {
    TestAssets::locate()
        .and_then(|a| a.binary(name))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `program args` in the checkout: (succeeded, stdout, stderr).
fn run(program: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

/// `helm template` of the chart into homeostat-system, with `values`
/// (`--set` pairs): its documents, or helm's complaint.
fn helm_template(values: &[&str]) -> Result<Vec<Value>, String> {
    let mut args = vec![
        "template",
        "homeostat",
        "charts/homeostat",
        "--namespace",
        "homeostat-system",
        "--include-crds",
    ];
    for value in values {
        args.extend(["--set", value]);
    }
    match run(&tool("helm"), &args) {
        (true, stdout, _) => Ok(documents(&stdout)),
        (false, stdout, stderr) => Err(format!("{stdout}{stderr}")),
    }
}

fn key(doc: &Value) -> String {
    format!(
        "{} {}/{}",
        doc["kind"].as_str().unwrap_or_default(),
        doc["metadata"]["namespace"].as_str().unwrap_or_default(),
        doc["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The objects by kind, namespace and name, with what only says which tool
/// rendered them taken out: kustomize's hash suffix of the generated
/// ConfigMap (and its references), and the chart's pod annotation that
/// does the suffix's job (a changed setting replaces the pod).
fn comparable(docs: Vec<Value>) -> BTreeMap<String, Value> {
    docs.into_iter()
        .map(|mut doc| {
            if doc["kind"] == "ConfigMap"
                && let Some(name) = doc["metadata"]["name"].as_str()
                && let Some(stem) = name.strip_prefix("homeostat-detector-")
                && stem.len() == 10
            {
                doc["metadata"]["name"] = "homeostat-detector".into();
            }
            if doc["kind"] == "Deployment" {
                let pod = &mut doc["spec"]["template"];
                if let Some(annotations) = pod["metadata"]["annotations"].as_object_mut() {
                    annotations.remove("homeostat.dev/settings");
                    if annotations.is_empty() {
                        pod["metadata"]
                            .as_object_mut()
                            .expect("pod metadata")
                            .remove("annotations");
                    }
                }
                for container in pod["spec"]["containers"]
                    .as_array_mut()
                    .expect("containers")
                {
                    for from in container["envFrom"].as_array_mut().into_iter().flatten() {
                        from["configMapRef"]["name"] = "homeostat-detector".into();
                    }
                    for env in container["env"].as_array_mut().into_iter().flatten() {
                        let reference = &mut env["valueFrom"]["configMapKeyRef"];
                        if reference.is_object() {
                            reference["name"] = "homeostat-detector".into();
                        }
                    }
                }
            }
            (key(&doc), doc)
        })
        .collect()
}

#[test]
fn the_chart_lints_clean() {
    let (ok, stdout, stderr) = run(&tool("helm"), &["lint", "--strict", "charts/homeostat"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
}

#[test]
fn the_charts_defaults_render_the_objects_of_the_kustomize_install() {
    let (ok, stdout, stderr) = run(&tool("kubectl"), &["kustomize", "deploy/base"]);
    assert!(ok, "kubectl kustomize deploy/base: {stderr}");
    let mut kustomized = comparable(documents(&stdout));
    // Helm installs into a namespace it is given (--create-namespace); the
    // kustomize install brings its own, labelled for Pod Security.
    let namespace = kustomized
        .remove("Namespace /homeostat-system")
        .expect("the base's namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let charted = comparable(helm_template(&[]).unwrap_or_else(|e| panic!("{e}")));
    let only = |a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>| {
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        only(&kustomized, &charted).is_empty() && only(&charted, &kustomized).is_empty(),
        "only in kustomize: {:?}; only in the chart: {:?}",
        only(&kustomized, &charted),
        only(&charted, &kustomized)
    );
    for (key, object) in &kustomized {
        if let Some(difference) = first_difference(&charted[key], object, "") {
            panic!("{key}: {difference} (the chart, then kustomize)");
        }
    }
}

/// Where two renderings of one object first differ; numbers compare by
/// value (kustomize writes `1.0` as `1`).
fn first_difference(chart: &Value, kustomize: &Value, path: &str) -> Option<String> {
    match (chart, kustomize) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        (a, b) => Some(format!("at {path}: {a} vs {b}")),
    }
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn the_charts_values_set_images_pull_secrets_and_the_prometheus_access() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let docs = helm_template(&[
        "image.registry=registry.example:5000/ops",
        "image.tag=0.2.0",
        &format!("image.detectorDigest={digest}"),
        "image.pullPolicy=Always",
        "logFormat=json",
        "imagePullSecrets={regcred}",
        "operator.replicas=3",
        "operator.watchNamespaces={payments,checkout}",
        "detector.prometheus.url=https://thanos-query.monitoring:10902",
        "detector.prometheus.headers.X-Scope-OrgID=payments",
        "detector.prometheus.bearerTokenSecret.name=thanos-reader",
        "detector.prometheus.bearerTokenSecret.key=token",
        "detector.prometheus.caSecret.name=thanos-ca",
        "detector.prometheus.caSecret.key=ca.crt",
        "detector.reportNamespace=payments",
        "detector.labels.namespace=payments",
        "detector.services={checkout,ledger}",
        "detector.tick=30s",
    ])
    .unwrap_or_else(|e| panic!("{e}"));

    let operator = find(&docs, "Deployment", "homeostat-operator");
    assert_eq!(operator["spec"]["replicas"], 3);
    assert_eq!(
        env_value(operator, "HOMEOSTAT_WATCH_NAMESPACES").map(|e| &e["value"]),
        Some(&Value::from("payments,checkout"))
    );
    assert_eq!(
        container(operator)["image"],
        "registry.example:5000/ops/homeostat-operator:0.2.0"
    );
    assert_eq!(container(operator)["imagePullPolicy"], "Always");
    assert_eq!(
        operator["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "regcred"
    );
    let detector = find(&docs, "Deployment", "homeostat-detector");
    for deployment in [operator, detector] {
        let env = container(deployment)["env"].as_array().expect("env");
        assert!(
            env.iter()
                .any(|e| e["name"] == "HOMEOSTAT_LOG_FORMAT" && e["value"] == "json"),
            "{env:?}"
        );
    }
    assert_eq!(
        container(detector)["image"],
        format!("registry.example:5000/ops/homeostat-detector@{digest}")
    );

    let settings = &find(&docs, "ConfigMap", "homeostat-detector")["data"];
    assert_eq!(
        settings["HOMEOSTAT_PROMETHEUS_URL"],
        "https://thanos-query.monitoring:10902"
    );
    assert_eq!(
        settings["HOMEOSTAT_METRICS_HEADERS"],
        "X-Scope-OrgID=payments"
    );
    assert_eq!(settings["HOMEOSTAT_NAMESPACE"], "payments");
    assert_eq!(settings["HOMEOSTAT_LABELS"], "namespace=payments");
    assert_eq!(settings["HOMEOSTAT_SERVICES"], "checkout,ledger");
    assert_eq!(settings["HOMEOSTAT_TICK"], "30s");
    // The token and the CA are files from their Secrets, where the settings
    // say they are.
    let pod = &detector["spec"]["template"]["spec"];
    let mounted = |volume: &str| {
        let mount = container(detector)["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap_or_else(|| panic!("{volume} not mounted"));
        let source = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == volume)
            .unwrap_or_else(|| panic!("no volume {volume}"));
        (
            mount["mountPath"].as_str().expect("mountPath").to_owned(),
            source["secret"]["secretName"]
                .as_str()
                .expect("secretName")
                .to_owned(),
        )
    };
    let (token_dir, token_secret) = mounted("prometheus-token");
    assert_eq!(token_secret, "thanos-reader");
    assert_eq!(
        settings["HOMEOSTAT_BEARER_TOKEN_FILE"],
        format!("{token_dir}/token")
    );
    let (ca_dir, ca_secret) = mounted("prometheus-ca");
    assert_eq!(ca_secret, "thanos-ca");
    assert_eq!(settings["HOMEOSTAT_CA_FILE"], format!("{ca_dir}/ca.crt"));

    // A changed setting replaces the detector's pod.
    let default = helm_template(&[]).unwrap_or_else(|e| panic!("{e}"));
    let annotation = |docs: &[Value]| {
        find(docs, "Deployment", "homeostat-detector")["spec"]["template"]["metadata"]
            ["annotations"]["homeostat.dev/settings"]
            .clone()
    };
    assert_ne!(annotation(&docs), annotation(&default));
}

#[test]
fn the_chart_refuses_values_it_cannot_use_and_says_which() {
    for (value, named) in [
        ("detector.prometheus.url=", "url"),
        ("operator.replicas=0", "replicas"),
        ("detector.tick=0s", "tick"),
        ("image.detectorDigest=latest", "detectorDigest"),
        (
            "detector.prometheus.bearerTokenSecret.key=token",
            "bearerTokenSecret",
        ),
        ("console.ingress.enabled=true", "console.ingress.host"),
        ("operator.watchNamespaces={Payments}", "watchNamespaces"),
        ("console.service.type=Ingress", "type"),
    ] {
        let error = helm_template(&[value]).expect_err(value);
        assert!(error.contains(named), "{value}: {error}");
    }
}

/// A manifest of deploy/, as one object.
fn deploy_file(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_chart_monitors_homeostat_with_the_podmonitor_and_rules_of_deploy_monitoring() {
    let quiet = helm_template(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !quiet
            .iter()
            .any(|d| d["kind"] == "PodMonitor" || d["kind"] == "PrometheusRule"),
        "off by default: they need the Prometheus Operator's CRDs"
    );
    let docs = helm_template(&[
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.labels.release=kube-prometheus-stack",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    for (kind, file) in [
        ("PodMonitor", "deploy/monitoring/podmonitor.yaml"),
        ("PrometheusRule", "deploy/monitoring/prometheusrule.yaml"),
    ] {
        let charted = find(&docs, kind, "homeostat");
        let kustomized = deploy_file(file);
        assert_eq!(charted["spec"], kustomized["spec"], "{kind}");
        assert_eq!(charted["metadata"]["namespace"], "homeostat-system");
        assert_eq!(
            charted["metadata"]["labels"]["release"],
            "kube-prometheus-stack"
        );
        assert_eq!(
            charted["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "homeostat"
        );
    }
    let monitor = find(&docs, "PodMonitor", "homeostat");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["honorLabels"], true);
    // The port both Deployments name.
    for name in ["homeostat-operator", "homeostat-detector"] {
        let deployment = find(&docs, "Deployment", name);
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (label, value) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .expect("matchLabels")
        {
            assert_eq!(&labels[label], value, "{name} {label}");
        }
        assert!(
            container(deployment)["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["name"] == endpoint["port"]),
            "{name}"
        );
    }
}

fn env_value<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    container(deployment)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

#[test]
fn the_console_is_served_behind_a_service_and_optionally_an_ingress_over_tls() {
    let docs = helm_template(&[]).unwrap_or_else(|e| panic!("{e}"));
    let operator = find(&docs, "Deployment", "homeostat-operator");
    assert_eq!(
        env_value(operator, "HOMEOSTAT_CONSOLE_LISTEN").map(|e| &e["value"]),
        Some(&Value::from("0.0.0.0:8088"))
    );
    // Its charts read the detector's Prometheus unless told otherwise.
    assert_eq!(
        env_value(operator, "HOMEOSTAT_CONSOLE_PROMETHEUS")
            .map(|e| &e["valueFrom"]["configMapKeyRef"]["key"]),
        Some(&Value::from("HOMEOSTAT_PROMETHEUS_URL"))
    );
    let service = find(&docs, "Service", "homeostat-console");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "console");
    assert_eq!(service["spec"]["sessionAffinity"], "ClientIP");
    assert!(
        container(operator)["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|p| p["name"] == "console" && p["containerPort"] == 8088)
    );
    assert!(!docs.iter().any(|d| d["kind"] == "Ingress"));

    let docs = helm_template(&[
        "console.prometheusUrl=https://thanos.example",
        "console.grafanaUrl=https://grafana.example",
        "console.ingress.enabled=true",
        "console.ingress.className=nginx",
        "console.ingress.host=oncall.example",
        "console.ingress.tlsSecret=oncall-tls",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let operator = find(&docs, "Deployment", "homeostat-operator");
    assert_eq!(
        env_value(operator, "HOMEOSTAT_CONSOLE_PROMETHEUS").map(|e| &e["value"]),
        Some(&Value::from("https://thanos.example"))
    );
    assert_eq!(
        env_value(operator, "HOMEOSTAT_CONSOLE_GRAFANA").map(|e| &e["value"]),
        Some(&Value::from("https://grafana.example"))
    );
    let ingress = find(&docs, "Ingress", "homeostat-console");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "oncall-tls");
    assert_eq!(ingress["spec"]["tls"][0]["hosts"][0], "oncall.example");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "oncall.example");
    assert_eq!(
        rule["http"]["paths"][0]["backend"]["service"]["name"],
        "homeostat-console"
    );

    let off = helm_template(&["console.enabled=false"]).unwrap_or_else(|e| panic!("{e}"));
    let operator = find(&off, "Deployment", "homeostat-operator");
    assert!(env_value(operator, "HOMEOSTAT_CONSOLE_LISTEN").is_none());
    assert!(
        !off.iter()
            .any(|d| d["metadata"]["name"] == "homeostat-console")
    );
}
