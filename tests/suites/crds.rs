//! The generated CRDs on a real API server.

use homeostat_api::{AnomalyReport, OrderSystem, RemediationPolicy};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Resource};

use std::time::Duration;

use homeostat_test_support::{ControlPlane, wait_until};

use crate::common::{control_plane, control_plane_with_crds, install_crds, is_established};

#[tokio::test]
async fn crds_install_and_become_established() {
    let (_plane, client) = control_plane().await;
    install_crds(&client).await;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for plural in [
        OrderSystem::plural(&()),
        RemediationPolicy::plural(&()),
        AnomalyReport::plural(&()),
    ] {
        let name = format!("{plural}.homeostat.dev");
        let crd = crds.get(&name).await.expect("CRD stored");
        assert!(is_established(&crd), "{name} not established");
        let accepted = crd
            .status
            .and_then(|s| s.accepted_names)
            .expect("accepted names");
        assert_eq!(accepted.plural, plural);
    }

    // The resources are served: listing them works for every kind.
    Api::<OrderSystem>::default_namespaced(client.clone())
        .list(&Default::default())
        .await
        .expect("list OrderSystems");
    Api::<RemediationPolicy>::default_namespaced(client.clone())
        .list(&Default::default())
        .await
        .expect("list RemediationPolicies");
    Api::<AnomalyReport>::default_namespaced(client)
        .list(&Default::default())
        .await
        .expect("list AnomalyReports");
}

#[tokio::test]
async fn kubectl_explain_shows_field_descriptions_and_short_names_resolve() {
    let (plane, _client) = control_plane_with_crds().await;

    let text = explain_eventually(&plane, "rp.spec.guards.cooldown").await;
    assert!(
        text.contains("Least time between two actions of this policy"),
        "{text}"
    );
    let text = explain_eventually(&plane, "ar.status.culprit").await;
    assert!(
        text.contains("The service the detector holds responsible"),
        "{text}"
    );
    let text = explain_eventually(&plane, "oms.spec.loadGenerator.ordersPerSecond").await;
    assert!(text.contains("held regardless of latency"), "{text}");

    for short in ["oms", "rp", "ar"] {
        let get = plane
            .kubectl()
            .expect("kubectl")
            .args(["get", short])
            .output()
            .expect("run kubectl get");
        assert!(
            get.status.success(),
            "kubectl get {short}: {}",
            String::from_utf8_lossy(&get.stderr)
        );
    }
}

/// `kubectl explain PATH`, waiting until the API server has published the
/// CRD's schema to OpenAPI (it does so asynchronously after Established).
async fn explain_eventually(plane: &ControlPlane, path: &str) -> String {
    wait_until(
        &format!("kubectl explain {path}"),
        Duration::from_secs(30),
        Duration::from_millis(250),
        || async {
            let output = plane
                .kubectl()
                .map_err(|e| e.to_string())?
                .args(["explain", path])
                .output()
                .map_err(|e| e.to_string())?;
            if output.status.success() {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}
