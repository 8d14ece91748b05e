//! Traffic routers: where a reroute's weights live.
//!
//! Each router reads and writes backend weights in percent through the same
//! small trait; the controller only ever calls [`router_for`]. Adding a router
//! is a new file and one arm here.

mod configmap;
pub mod gateway;
mod httproute;

use std::collections::BTreeMap;

use homeostat_api::RouterKind;

pub use configmap::OmsConfigMapRouter;
pub use httproute::HttpRouteRouter;

/// Backend → weight in percent.
pub type Weights = BTreeMap<String, i32>;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Invalid(String),
    /// The weights are no longer what the caller expected: someone else
    /// changed them. Nothing was written.
    #[error("weights changed by someone else: {0}")]
    Changed(String),
}

/// Reads and sets the weights of one router.
pub trait TrafficRouter {
    /// The weights now, or `None` when the router does not exist.
    fn weights(&self) -> impl Future<Output = Result<Option<Weights>, RouterError>> + Send;
    /// Sets the listed backends to `weights` (others unchanged), only if
    /// they are at `expected` now: otherwise [`RouterError::Changed`] and
    /// nothing is written (checked in the write itself, not before it).
    fn set_weights(
        &self,
        expected: &Weights,
        weights: &Weights,
    ) -> impl Future<Output = Result<(), RouterError>> + Send;
}

/// Any router the operator knows.
pub enum AnyRouter {
    OmsConfigMap(OmsConfigMapRouter),
    HttpRoute(HttpRouteRouter),
}

/// The router of `kind` named `name` in `namespace`.
pub fn router_for(
    client: kube::Client,
    namespace: &str,
    kind: RouterKind,
    name: &str,
) -> AnyRouter {
    match kind {
        RouterKind::OmsConfigMap => {
            AnyRouter::OmsConfigMap(OmsConfigMapRouter::new(client, namespace, name))
        }
        RouterKind::HttpRoute => {
            AnyRouter::HttpRoute(HttpRouteRouter::new(client, namespace, name))
        }
    }
}

impl TrafficRouter for AnyRouter {
    async fn weights(&self) -> Result<Option<Weights>, RouterError> {
        match self {
            AnyRouter::OmsConfigMap(r) => r.weights().await,
            AnyRouter::HttpRoute(r) => r.weights().await,
        }
    }

    async fn set_weights(&self, expected: &Weights, weights: &Weights) -> Result<(), RouterError> {
        match self {
            AnyRouter::OmsConfigMap(r) => r.set_weights(expected, weights).await,
            AnyRouter::HttpRoute(r) => r.set_weights(expected, weights).await,
        }
    }
}
