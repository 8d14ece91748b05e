//! The one-node cluster itself (`cargo xtask cluster up`): a second
//! cluster beside it is refused by name; a Deployment under Pod Security
//! `restricted` gets a pod from the scheduler, containerd and runc run it on
//! the CNI bridge, it serves on its pod IP and through its Service
//! (kube-proxy), its name resolves through the cluster DNS, its logs come
//! through the API server. The probe's namespace is deleted at the end, so
//! the sample OMS played next has the node to itself.

use std::path::Path;
use std::time::Duration;

use homeostat_test_support::cluster::{self, Cluster};
use homeostat_test_support::{TestAssets, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

/// A pod spec that passes Pod Security `restricted`.
fn restricted_tax() -> serde_json::Value {
    json!({
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "tax",
            "image": "ghcr.io/homeostat-dev/oms-sample:0.1.0",
            "imagePullPolicy": "IfNotPresent",
            "args": ["tax", "--listen", "0.0.0.0:8080", "--admin-token", "t"],
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]}
            },
            "resources": {
                "requests": {"cpu": "50m", "memory": "32Mi"},
                "limits": {"cpu": "500m", "memory": "128Mi"}
            },
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}
        }]
    })
}

pub async fn exercise(cluster: &Cluster, images: &Path) {
    // A second cluster would share the node's addresses: refused, by name.
    let other = tempfile::tempdir().expect("tempdir");
    let refused = Cluster::new(other.path().join("cluster"))
        .up(&TestAssets::locate().expect("test assets"), images)
        .await
        .expect_err("a second cluster beside a running one");
    assert!(
        refused
            .to_string()
            .contains("another one-node cluster is running"),
        "{refused}"
    );
    assert!(
        !other.path().join("cluster").exists(),
        "nothing written for it"
    );
    let client = cluster.client().await.expect("client");
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "probe", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create probe");

    // Pod Security refuses a pod that runs as root with every capability.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "probe");
    let careless: Pod = serde_json::from_value(json!({
        "metadata": {"name": "careless"},
        "spec": {"containers": [{"name": "c", "image": "ghcr.io/homeostat-dev/oms-sample:0.1.0"}]}
    }))
    .expect("pod");
    let refused = pods
        .create(&PostParams::default(), &careless)
        .await
        .expect_err("a pod that is not restricted");
    assert!(
        refused.to_string().contains("violates PodSecurity"),
        "{refused}"
    );

    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "tax"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "tax"}},
            "template": {"metadata": {"labels": {"app": "tax"}}, "spec": restricted_tax()}
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), "probe")
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the Deployment");

    let pod = wait_until(
        "the tax pod Ready",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=tax"))
                .await
                .map_err(|e| e.to_string())?;
            let pod = list.items.into_iter().next().ok_or("no pod yet")?;
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                Ok(pod)
            } else {
                Err(format!(
                    "{:?}",
                    pod.status.and_then(|s| s.container_statuses)
                ))
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- kubelet ---\n{}",
            std::fs::read_to_string(cluster.log("kubelet")).unwrap_or_default()
        )
    });

    // It serves on the bridge, from the host.
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod IP");
    assert!(ip.starts_with("10.244.0."), "{ip}");
    let health = reqwest::get(format!("http://{ip}:8080/healthz"))
        .await
        .expect("GET /healthz")
        .text()
        .await
        .expect("body");
    assert_eq!(health.trim(), "ok");
    // Through its Service's cluster IP too: kube-proxy's rules.
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "tax"},
        "spec": {"selector": {"app": "tax"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("service");
    let service = Api::<Service>::namespaced(client.clone(), "probe")
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP");
    assert!(cluster_ip.starts_with("10.96."), "{cluster_ip}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    wait_until(
        "the tax Service answers",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let answer = http
                .get(format!("http://{cluster_ip}/healthz"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            answer.text().await.map_err(|e| e.to_string())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- kube-proxy ---\n{}",
            std::fs::read_to_string(cluster.log("kube-proxy")).unwrap_or_default()
        )
    });

    // Its name, through the cluster DNS Service a pod's resolver points at;
    // names outside the cluster are not forwarded anywhere.
    let resolved = wait_until(
        "tax.probe resolves",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let found = cluster::dns::resolve("tax.probe.svc.cluster.local").await?;
            if found.is_empty() {
                Err("no A record yet".to_owned())
            } else {
                Ok(found)
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- coredns ---\n{}",
            std::fs::read_to_string(cluster.log("coredns")).unwrap_or_default()
        )
    });
    assert_eq!(
        resolved,
        vec![cluster_ip.parse::<std::net::Ipv4Addr>().expect("an IPv4")]
    );
    let outside = cluster::dns::resolve("example.com").await;
    assert!(
        outside.as_ref().is_ok_and(Vec::is_empty) || outside.is_err(),
        "{outside:?}"
    );

    // Its logs, through the API server and the kubelet.
    let name = pod.metadata.name.clone().expect("name");
    let logs = pods
        .logs(&name, &LogParams::default())
        .await
        .expect("the pod's logs");
    assert!(logs.contains("service(s) ready"), "{logs}");

    // The probe is done: the sample OMS gets the node to itself.
    Api::<Namespace>::all(client.clone())
        .delete("probe", &DeleteParams::default())
        .await
        .expect("delete the probe namespace");
}
