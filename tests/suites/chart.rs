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
    ] {
        let error = helm_template(&[value]).expect_err(value);
        assert!(error.contains(named), "{value}: {error}");
    }
}
