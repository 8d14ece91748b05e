//! Custom resources read as raw objects and decoded one by one. The API
//! server keeps what it stored under an older schema (or what a client
//! wrote around validation), and a typed list or watch fails whole on the
//! first object it cannot decode: one bad object would stop the handling
//! of every other. Read raw, a bad object is set aside with the reason, for
//! the reader to log or mark.

use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// An object that is not a valid `K`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    pub name: String,
    /// What did not decode, e.g. `spec.guards.cooldown: …`.
    pub error: String,
}

/// The objects of one list: those that decoded, and those that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<K> {
    pub objects: Vec<K>,
    pub undecodable: Vec<Undecodable>,
}

/// The `ApiResource` of `K`, for raw access.
pub fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Raw access to `K` in `namespace`, or in every namespace.
pub fn raw_api<K: Resource<DynamicType = ()>>(
    client: &Client,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let ar = resource::<K>();
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// `object` as a `K`, or why not (the path of the field that failed).
pub fn decode<K: DeserializeOwned>(object: &DynamicObject) -> Result<K, Undecodable> {
    let name = object.name_any();
    let value = serde_json::to_value(object).map_err(|e| Undecodable {
        name: name.clone(),
        error: e.to_string(),
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| Undecodable {
        name,
        error: e.to_string(),
    })
}

/// Each of `objects` decoded, in order, the bad ones set aside.
pub fn decode_all<K: DeserializeOwned>(objects: &[DynamicObject]) -> Decoded<K> {
    let mut decoded = Decoded {
        objects: Vec::with_capacity(objects.len()),
        undecodable: Vec::new(),
    };
    for object in objects {
        match decode::<K>(object) {
            Ok(k) => decoded.objects.push(k),
            Err(bad) => decoded.undecodable.push(bad),
        }
    }
    decoded
}

/// The `K`s that `params` selects through `api` (raw access to `K`),
/// decoded one by one. Fails only when the API server does not answer.
pub async fn list<K: DeserializeOwned>(
    api: &Api<DynamicObject>,
    params: &ListParams,
) -> Result<Decoded<K>, kube::Error> {
    let raw = api.list(params).await?;
    Ok(decode_all(&raw.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Silence;
    use serde_json::json;

    fn raw(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).expect("a raw object")
    }

    fn silence(name: &str, services: serde_json::Value) -> DynamicObject {
        raw(json!({
            "apiVersion": "homeostat.dev/v1alpha1",
            "kind": "Silence",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"services": services, "until": "2027-01-01T00:00:00Z", "note": "upgrade"}
        }))
    }

    #[test]
    fn a_bad_object_is_set_aside_with_the_field_that_failed_and_the_rest_decode() {
        let objects = [
            silence("before", json!(["tax"])),
            silence("bad", json!("tax")),
            silence("after", json!(["orders"])),
        ];
        let decoded = decode_all::<Silence>(&objects);
        let names: Vec<String> = decoded.objects.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["before", "after"]);
        assert_eq!(decoded.undecodable.len(), 1);
        assert_eq!(decoded.undecodable[0].name, "bad");
        assert!(
            decoded.undecodable[0].error.contains("spec.services"),
            "{}",
            decoded.undecodable[0].error
        );
    }
}
