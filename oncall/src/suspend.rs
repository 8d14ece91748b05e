//! `homeostat suspend|resume POLICY`: a person takes a policy's hands off
//! everything (restores still run) or gives them back. Written as the
//! policy's own `spec.guards.suspend`, the switch `kubectl get rp` already
//! shows, with field manager `homeostat-suspend` (forced: a person's switch
//! wins over the manifest's until the manifest is applied again), and an
//! annotation saying who and when; resuming drops the annotation. An Event
//! on the policy names them. An identity without `patch` on
//! `remediationpolicies` is refused by the API server.

use std::collections::BTreeMap;

use anyhow::Context;
use homeostat_api::RemediationPolicy;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;

use crate::actor::{Actor, said};

pub const FIELD_MANAGER: &str = "homeostat-suspend";

/// Who suspended a policy and when: `alice at 2026-12-05T10:00:00Z`.
pub const SUSPENDED_BY: &str = "homeostat.dev/suspended-by";

/// What `homeostat-suspend` owns of a policy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Switch {
    api_version: String,
    kind: String,
    metadata: SwitchMeta,
    spec: SwitchSpec,
}

#[derive(Debug, Serialize)]
struct SwitchMeta {
    /// Empty when resuming: server-side apply then drops the annotation.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct SwitchSpec {
    guards: SwitchGuards,
}

#[derive(Debug, Serialize)]
struct SwitchGuards {
    suspend: bool,
}

/// The write that suspends (or resumes) a policy as `by` at `now`.
fn switch(suspend: bool, by: &str, now: jiff::Timestamp) -> Switch {
    let mut annotations = BTreeMap::new();
    if suspend {
        annotations.insert(SUSPENDED_BY.to_owned(), format!("{by} at {now}"));
    }
    Switch {
        api_version: RemediationPolicy::api_version(&()).into_owned(),
        kind: RemediationPolicy::kind(&()).into_owned(),
        metadata: SwitchMeta { annotations },
        spec: SwitchSpec {
            guards: SwitchGuards { suspend },
        },
    }
}

/// Suspends (`suspend`) or resumes policy `namespace/name` as `actor`.
pub async fn set(
    actor: &Actor,
    namespace: &str,
    name: &str,
    suspend: bool,
    note: &str,
) -> anyhow::Result<()> {
    let by = &actor.by;
    let word = if suspend { "suspend" } else { "resume" };
    let policies = Api::<RemediationPolicy>::namespaced(actor.client.clone(), namespace);
    let policy = policies
        .get_opt(name)
        .await
        .context("read the RemediationPolicy")?
        .ok_or_else(|| crate::actor::Missing::policy(namespace, name))?;
    policies
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(switch(suspend, by, jiff::Timestamp::now())),
        )
        .await
        .with_context(|| format!("{word} {namespace}/{name} as {by}"))?;
    let (reason, action) = if suspend {
        ("Suspended", "Suspend")
    } else {
        ("Resumed", "Resume")
    };
    actor
        .announce(&policy, reason, action, format!("by {by}{}", said(note)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspending_says_who_and_when_and_resuming_lets_the_annotation_go() {
        let now: jiff::Timestamp = "2026-12-05T10:00:00Z".parse().expect("time");
        let on = serde_json::to_value(switch(true, "alice", now)).expect("json");
        assert_eq!(
            on,
            serde_json::json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
                "metadata": {"annotations": {SUSPENDED_BY: "alice at 2026-12-05T10:00:00Z"}},
                "spec": {"guards": {"suspend": true}}
            })
        );
        let off = serde_json::to_value(switch(false, "alice", now)).expect("json");
        assert_eq!(
            off,
            serde_json::json!({
                "apiVersion": "homeostat.dev/v1alpha1", "kind": "RemediationPolicy",
                "metadata": {},
                "spec": {"guards": {"suspend": false}}
            })
        );
    }
}
