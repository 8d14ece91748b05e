//! Custom resources read as raw objects and decoded one by one
//! ([`homeostat_api::decode`]): a bad object is skipped by those that only
//! read it, and marked `Invalid` with the reason by its own controller.

use homeostat_api::StatusWrite;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DynamicObject, ListParams, Patch};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::remediation::record::set_condition;

pub use homeostat_api::decode::{Undecodable, decode, raw_api, resource};

/// Every `K` in `namespace` that decodes; the ones that do not are logged
/// and left out.
pub async fn list<K>(client: &Client, namespace: &str) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    list_in(client, Some(namespace)).await
}

/// [`list`] in `namespace`, or in every namespace.
pub async fn list_in<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let listed =
        homeostat_api::decode::list::<K>(&raw_api::<K>(client, namespace), &ListParams::default())
            .await?;
    for bad in &listed.undecodable {
        tracing::warn!(kind = %K::kind(&()), namespace = namespace.unwrap_or("*"), name = %bad.name, error = %bad.error, "skipped: cannot decode");
    }
    Ok(listed.objects)
}

/// The objects already marked, by uid and generation: a bad policy is
/// reconciled again on every change to a report in its namespace (every
/// detector tick), and the mark's own status write is a change too; one
/// mark per spec (generation) is enough, and stops that loop.
#[derive(Debug, Default)]
pub struct Marked(std::sync::Mutex<std::collections::HashSet<(String, i64)>>);

impl Marked {
    /// True the first time for this object's uid and generation.
    fn first(&self, object: &DynamicObject) -> bool {
        let key = (
            object.metadata.uid.clone().unwrap_or_default(),
            object.metadata.generation.unwrap_or_default(),
        );
        self.0.lock().map_or(true, |mut seen| seen.insert(key))
    }
}

/// The part of a status an unreadable object gets: its conditions.
#[derive(Debug, serde::Serialize)]
struct Conditions {
    conditions: Vec<Condition>,
}

/// Marks an object its controller cannot decode, once per version: a Warning Event
/// `Undecodable` saying what failed, and, where the API server takes it,
/// `Invalid` true and `Ready` false in its status (an object that also
/// fails the current schema's rules cannot have its status written: the
/// Event is then the mark). Its spec is never touched.
pub async fn mark_undecodable(
    marked: &Marked,
    recorder: &Recorder,
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    bad: &Undecodable,
    now: i64,
) {
    if !marked.first(object) {
        return;
    }
    let message = format!("cannot be read: {}", bad.error);
    let event = Event {
        type_: EventType::Warning,
        reason: "Undecodable".to_owned(),
        note: Some(message.chars().take(1000).collect()),
        action: "Decode".to_owned(),
        secondary: None,
    };
    let types = object.types.clone().unwrap_or_default();
    let reference = ObjectReference {
        api_version: Some(types.api_version),
        kind: Some(types.kind),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        resource_version: object.metadata.resource_version.clone(),
        ..ObjectReference::default()
    };
    if let Err(error) = recorder.publish(&event, &reference).await {
        tracing::warn!(%error, name = %bad.name, "cannot publish the Undecodable Event");
    }
    let generation = object.metadata.generation;
    let mut conditions: Vec<Condition> = Vec::new();
    set_condition(
        &mut conditions,
        "Invalid",
        true,
        "Undecodable",
        &message,
        now,
        generation,
    );
    set_condition(
        &mut conditions,
        "Ready",
        false,
        "Undecodable",
        &message,
        now,
        generation,
    );
    let patch = StatusWrite::new(
        reference.api_version.clone().unwrap_or_default(),
        reference.kind.clone().unwrap_or_default(),
        Conditions { conditions },
    );
    if let Err(error) = api
        .patch_status(
            &object.name_any(),
            &crate::writes::patch(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::debug!(%error, name = %bad.name, "its status cannot be written either");
    }
}
