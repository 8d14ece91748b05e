//! `homeostat silence SERVICE… --for 30m`: no policy acts for these
//! services until then; the detector still reports them. A `Silence` in
//! the namespace, recording who asked (as the API server authenticated
//! them) and why, and an Event naming them. Deleting it ends it sooner.
//! An identity without `create` on `silences` is refused by the API server.

use anyhow::Context;
use homeostat_api::{Silence, SilenceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::actor::{Actor, said};

/// The longest silence: a week (168h). Longer is a policy change, not a silence.
pub const LONGEST: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Why a silence cannot be made.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("a silence lasts more than 0s and at most 168h (a week), not {0}")]
    Length(homeostat_api::Duration),
    #[error("{0:?} is not a service name (a DNS label: lower-case letters, digits and '-')")]
    NotAService(String),
    #[error("name at least one service")]
    NoService,
}

/// The Silence `by` asks for at `now`.
pub fn silence(
    services: &[String],
    length: homeostat_api::Duration,
    by: &str,
    note: &str,
    now: jiff::Timestamp,
) -> Result<Silence, Refused> {
    let first = services.first().ok_or(Refused::NoService)?;
    if let Some(bad) = services
        .iter()
        .find(|s| !homeostat_api::oms::is_service_name(s))
    {
        return Err(Refused::NotAService(bad.clone()));
    }
    if length.0.is_zero() || length.0 > LONGEST {
        return Err(Refused::Length(length));
    }
    let until = jiff::SignedDuration::try_from(length.0)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .ok_or(Refused::Length(length))?;
    Ok(Silence {
        metadata: ObjectMeta {
            generate_name: Some(format!("{first}-")),
            ..ObjectMeta::default()
        },
        spec: SilenceSpec {
            services: services.to_vec(),
            until: Time(until),
            created_by: by.to_owned(),
            note: note.chars().take(1024).collect(),
        },
    })
}

/// Silences `services` in `namespace` for `length` as `actor`; returns
/// the Silence as stored.
pub async fn create(
    actor: &Actor,
    namespace: &str,
    services: &[String],
    length: homeostat_api::Duration,
    note: &str,
) -> anyhow::Result<Silence> {
    let by = &actor.by;
    let wanted = silence(services, length, by, note, jiff::Timestamp::now())?;
    let stored = Api::<Silence>::namespaced(actor.client.clone(), namespace)
        .create(&PostParams::default(), &wanted)
        .await
        .with_context(|| format!("silence {} in {namespace} as {by}", services.join(", ")))?;
    let note = format!(
        "{} silenced until {} by {by}{}",
        services.join(", "),
        stored.spec.until.0,
        said(note)
    );
    actor.announce(&stored, "Silenced", "Silence", note).await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-12-04T10:00:00Z".parse().expect("time")
    }

    fn length(text: &str) -> homeostat_api::Duration {
        text.parse().expect("duration")
    }

    #[test]
    fn a_silence_ends_after_its_length_and_says_who_and_why() {
        let made = silence(
            &["tax".into(), "inventory".into()],
            length("30m"),
            "alice",
            "tax deploy",
            now(),
        )
        .expect("allowed");
        assert_eq!(made.spec.until.0.to_string(), "2026-12-04T10:30:00Z");
        assert_eq!(made.spec.services, ["tax", "inventory"]);
        assert_eq!(
            (made.spec.created_by.as_str(), made.spec.note.as_str()),
            ("alice", "tax deploy")
        );
        assert_eq!(made.metadata.generate_name.as_deref(), Some("tax-"));
    }

    #[test]
    fn what_is_not_a_silence_is_refused_with_the_reason() {
        let refuse = |services: &[&str], text: &str| {
            let services: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
            silence(&services, length(text), "alice", "", now()).err()
        };
        assert_eq!(refuse(&[], "30m"), Some(Refused::NoService));
        assert_eq!(
            refuse(&["Tax"], "30m"),
            Some(Refused::NotAService("Tax".into()))
        );
        assert!(matches!(refuse(&["tax"], "0s"), Some(Refused::Length(_))));
        assert!(matches!(refuse(&["tax"], "169h"), Some(Refused::Length(_))));
        assert_eq!(refuse(&["tax"], "168h"), None);
    }
}
