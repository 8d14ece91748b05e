//! The reference OMS's routing ConfigMap (`payment.payment-primary: "90"`),
//! which `orders` follows live.

use std::collections::BTreeMap;

use homeostat_api::routing::{parse_routing_data, routing_key};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{RouterError, TrafficRouter, Weights};

pub struct OmsConfigMapRouter {
    api: Api<ConfigMap>,
    name: String,
}

impl OmsConfigMapRouter {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }

    /// route → backends, as the ConfigMap has them.
    async fn table(&self) -> Result<Option<BTreeMap<String, BTreeMap<String, u32>>>, RouterError> {
        let Some(map) = self.api.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let data = map.data.unwrap_or_default();
        parse_routing_data(&data)
            .map(Some)
            .map_err(|e| RouterError::Invalid(format!("configmap {}: {e}", self.name)))
    }
}

impl TrafficRouter for OmsConfigMapRouter {
    async fn weights(&self) -> Result<Option<Weights>, RouterError> {
        Ok(self.table().await?.map(|table| {
            table
                .into_values()
                .flat_map(|backends| backends.into_iter().map(|(b, w)| (b, w as i32)))
                .collect()
        }))
    }

    async fn set_weights(&self, weights: &Weights) -> Result<(), RouterError> {
        let table = self.table().await?.ok_or_else(|| {
            RouterError::Invalid(format!("configmap {} does not exist", self.name))
        })?;
        let mut data = serde_json::Map::new();
        for (backend, weight) in weights {
            let route = table
                .iter()
                .find(|(_, backends)| backends.contains_key(backend))
                .map(|(route, _)| route)
                .ok_or_else(|| {
                    RouterError::Invalid(format!(
                        "backend {backend} is not in configmap {}",
                        self.name
                    ))
                })?;
            data.insert(
                routing_key(route, backend),
                json!(weight.clamp(&0, &100).to_string()),
            );
        }
        // A merge patch of the changed keys only: nothing else in the map moves.
        self.api
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"data": data})),
            )
            .await?;
        Ok(())
    }
}
