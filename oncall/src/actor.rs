//! Who acts and through which door: the person's user name as the API
//! server authenticated them (never what they type), the client each write
//! goes through, and the name the Events carry. The CLI's client is the
//! person's own (their RBAC decides); the console's is the operator's, after
//! a SubjectAccessReview of the person for the very same write.

use anyhow::Context;
use homeostat_api::AnomalyReport;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};

/// The timeline entries' `source` for every act of a person on call.
pub const SOURCE: &str = "on-call";

/// What a person acted on is not there.
#[derive(Debug, thiserror::Error)]
#[error("no {kind} {name} in namespace {namespace}")]
pub struct Missing {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl Missing {
    pub fn report(namespace: &str, name: &str) -> Self {
        Self {
            kind: "AnomalyReport",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn policy(namespace: &str, name: &str) -> Self {
        Self {
            kind: "RemediationPolicy",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A person acting.
#[derive(Clone)]
pub struct Actor {
    /// The client the writes go through.
    pub client: Client,
    /// The user name the API server authenticated.
    pub by: String,
    /// The controller name on the Events: `homeostat-cli`, `homeostat-console`.
    pub via: &'static str,
}

impl Actor {
    /// The kubeconfig's own identity (a SelfSubjectReview), for the CLI.
    pub async fn from_kubeconfig(client: Client, via: &'static str) -> anyhow::Result<Self> {
        let review = Api::<SelfSubjectReview>::all(client.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .context("ask the API server who this is (SelfSubjectReview)")?;
        let by = review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())
            .context("the API server did not say who this is")?;
        Ok(Self { client, by, via })
    }

    /// `namespace/name`, or an error naming what is missing.
    pub async fn report(&self, namespace: &str, name: &str) -> anyhow::Result<AnomalyReport> {
        Api::<AnomalyReport>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .context("read the AnomalyReport")?
            .ok_or_else(|| Missing::report(namespace, name).into())
    }

    /// Applies `body` to report `namespace/name`'s status as field manager
    /// `manager` (server-side apply, forced: these fields are the
    /// manager's alone).
    pub async fn apply_report_status(
        &self,
        namespace: &str,
        name: &str,
        manager: &str,
        body: &(impl serde::Serialize + std::fmt::Debug),
    ) -> Result<(), kube::Error> {
        Api::<AnomalyReport>::namespaced(self.client.clone(), namespace)
            .patch_status(
                name,
                &kube::api::PatchParams::apply(manager).force(),
                &kube::api::Patch::Apply(body),
            )
            .await
            .map(|_| ())
    }

    /// Publishes a Normal Event `reason` about `regarding` (what is already
    /// written stays written if this fails; the error says so).
    pub async fn announce<K: Resource<DynamicType = ()>>(
        &self,
        regarding: &K,
        reason: &str,
        action: &str,
        note: String,
    ) -> anyhow::Result<()> {
        Recorder::new(
            self.client.clone(),
            Reporter {
                controller: self.via.into(),
                instance: None,
            },
        )
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
}

/// `: note`, or nothing without one.
pub fn said(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}
