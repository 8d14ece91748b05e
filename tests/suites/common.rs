//! Helpers shared by the suites.

use std::time::Duration;

use homeostat_test_support::{ControlPlane, wait_until};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};

pub const FIELD_MANAGER: &str = "homeostat-tests";

/// A fresh control plane and an admin client for it.
pub async fn control_plane() -> (ControlPlane, kube::Client) {
    let plane = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("start etcd + kube-apiserver: {e}"));
    let client = plane
        .client()
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    (plane, client)
}

/// A fresh control plane with the homeostat CRDs installed and established.
pub async fn control_plane_with_crds() -> (ControlPlane, kube::Client) {
    let (plane, client) = control_plane().await;
    install_crds(&client).await;
    (plane, client)
}

/// Applies every homeostat CRD and waits until each is Established.
pub async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in homeostat_api::all_crds() {
        let name = crd.metadata.name.clone().expect("CRD name");
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    }
    for crd in homeostat_api::all_crds() {
        let name = crd.metadata.name.clone().expect("CRD name");
        wait_until(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let crd = crds.get(&name).await.map_err(|e| e.to_string())?;
                if is_established(&crd) {
                    Ok(())
                } else {
                    Err(format!("{:?}", crd.status))
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// The message of an API error, or a panic naming what was expected.
pub fn api_error_message(
    result: Result<impl std::fmt::Debug, kube::Error>,
    expected: &str,
) -> String {
    match result {
        Ok(value) => panic!("{expected}: the API server accepted it: {value:?}"),
        Err(kube::Error::Api(status)) => {
            // 422: a schema or CEL rule; 400: strict field validation.
            assert!(
                matches!(status.code, 400 | 422),
                "{expected}: unexpected status {status:?}"
            );
            status.message
        }
        Err(other) => panic!("{expected}: unexpected error {other}"),
    }
}

/// A gateway to Prometheus (`http://host:port`): its API under
/// `/prometheus`, for the requests `admits` lets through (401 for the
/// others), as Mimir's and Thanos's gateways serve it.
pub fn prometheus_gateway(
    prometheus: String,
    admits: impl Fn(&axum::http::HeaderMap) -> bool + Clone + Send + Sync + 'static,
) -> axum::Router {
    use axum::extract::{Path, RawQuery};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;

    let forward = move |Path(path): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap| {
        let (prometheus, admits) = (prometheus.clone(), admits.clone());
        async move {
            if !admits(&headers) {
                return (StatusCode::UNAUTHORIZED, "refused by the gateway").into_response();
            }
            let url = format!("{prometheus}/{path}?{}", query.unwrap_or_default());
            match reqwest::get(&url).await {
                Ok(answer) => {
                    let status = StatusCode::from_u16(answer.status().as_u16())
                        .unwrap_or(StatusCode::BAD_GATEWAY);
                    let body = answer.text().await.unwrap_or_default();
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
    };
    axum::Router::new().route("/prometheus/{*path}", axum::routing::get(forward))
}

/// Serves `router` on a free loopback port; returns `127.0.0.1:PORT`.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}
