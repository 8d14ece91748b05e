//! What every act of a person on call shares: who they are (as the API
//! server authenticated them, never what they type), the report they act
//! on, and the Event that tells the others.

use anyhow::Context;
use homeostat_api::AnomalyReport;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};

/// The timeline entries' `source` for every act of a person on call.
pub const SOURCE: &str = "on-call";

/// The user name the API server knows the caller by.
pub async fn who_am_i(client: &Client) -> anyhow::Result<String> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .context("ask the API server who this is (SelfSubjectReview)")?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .context("the API server did not say who this is")
}

/// `namespace/name`, or an error naming what is missing.
pub async fn report(client: &Client, namespace: &str, name: &str) -> anyhow::Result<AnomalyReport> {
    Api::<AnomalyReport>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .context("read the AnomalyReport")?
        .with_context(|| format!("no AnomalyReport {name} in namespace {namespace}"))
}

/// `: note`, or nothing without one.
pub fn said(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}

/// Publishes a Normal Event `reason` about `regarding` (what is already
/// written stays written if this fails; the error says so).
pub async fn announce<K: Resource<DynamicType = ()>>(
    client: &Client,
    regarding: &K,
    reason: &str,
    action: &str,
    note: String,
) -> anyhow::Result<()> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "homeostat-cli".into(),
            instance: None,
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: reason.into(),
                note: Some(note.chars().take(1024).collect()),
                action: action.into(),
                secondary: None,
            },
            &regarding.object_ref(&()),
        )
        .await
        .with_context(|| format!("publish the {reason} Event (the change is written)"))
}
