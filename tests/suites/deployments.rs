//! Workloads on the real API server: the operations remediation relies on.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{FIELD_MANAGER, control_plane};

#[tokio::test]
async fn deployment_scales_through_the_scale_subresource() {
    let (_plane, client) = control_plane().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "tax", "labels": { "app.kubernetes.io/name": "tax" } },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app.kubernetes.io/name": "tax" } },
            "template": {
                "metadata": { "labels": { "app.kubernetes.io/name": "tax" } },
                "spec": { "containers": [{ "name": "tax", "image": "oms:test" }] }
            }
        }
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let before = deployments.get_scale("tax").await.expect("read scale");
    assert_eq!(before.spec.and_then(|s| s.replicas), Some(1));

    let patch = json!({ "spec": { "replicas": 3 } });
    let after = deployments
        .patch_scale("tax", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch scale");
    assert_eq!(after.spec.and_then(|s| s.replicas), Some(3));

    // The Deployment itself now asks for three replicas.
    let stored = deployments.get("tax").await.expect("get deployment");
    assert_eq!(stored.spec.and_then(|s| s.replicas), Some(3));

    // Server-side apply of the scale subresource under a named field manager works too.
    let apply =
        json!({ "apiVersion": "autoscaling/v1", "kind": "Scale", "spec": { "replicas": 2 } });
    let applied = deployments
        .patch_scale(
            "tax",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply),
        )
        .await
        .expect("apply scale");
    assert_eq!(applied.spec.and_then(|s| s.replicas), Some(2));
}
