//! Anomaly reports as the detector and the operator write them, for tests
//! that need reports to exist: created with their spec, then each writer's
//! part of the status applied under that writer's field manager
//! (`homeostat-detector`, `homeostat-operator`), as the real ones do.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The API version reports are written at.
const API_VERSION: &str = "homeostat.dev/v1alpha1";

fn api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("homeostat.dev", "v1alpha1", "AnomalyReport"),
        "anomalyreports",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Creates report `namespace/name` about `service`'s `signal`, no status yet.
pub async fn create(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    service: &str,
    signal: &str,
) -> Result<(), kube::Error> {
    let report: DynamicObject = serde_json::from_value(json!({
        "apiVersion": API_VERSION, "kind": "AnomalyReport",
        "metadata": {"name": name},
        "spec": {"service": service, "signal": signal}
    }))
    .map_err(kube::Error::SerdeError)?;
    api(client, namespace)
        .create(&PostParams::default(), &report)
        .await
        .map(drop)
}

/// Applies `status` (the fields `manager` owns) to report `namespace/name`.
pub async fn write_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    manager: &str,
    status: Value,
) -> Result<(), kube::Error> {
    api(client, namespace)
        .patch_status(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(json!({
                "apiVersion": API_VERSION, "kind": "AnomalyReport", "status": status
            })),
        )
        .await
        .map(drop)
}
