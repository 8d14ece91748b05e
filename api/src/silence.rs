//! `Silence`: a person on call asking homeostat to keep its hands off some
//! services for a while (a deploy in progress, a migration, an incident
//! being handled by hand). The detector still reports them; no policy acts
//! for their reports until the silence ends (restores still run: putting
//! back what homeostat changed is never held up).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Services no policy acts for until `until`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "homeostat.dev",
    version = "v1alpha1",
    kind = "Silence",
    namespaced,
    doc = "Services of this namespace that no RemediationPolicy acts for until a time: the detector still reports them.",
    shortname = "silence",
    category = "homeostat",
    printcolumn = r#"{"name":"Services","type":"string","jsonPath":".spec.services"}"#,
    printcolumn = r#"{"name":"Until","type":"string","format":"date-time","jsonPath":".spec.until"}"#,
    printcolumn = r#"{"name":"By","type":"string","jsonPath":".spec.createdBy"}"#,
    printcolumn = r#"{"name":"Note","type":"string","jsonPath":".spec.note","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SilenceSpec {
    /// The services (DNS labels) no policy acts for while the silence holds.
    #[schemars(
        length(min = 1, max = 64),
        inner(
            length(min = 1, max = 63),
            regex(pattern = crate::oms::SERVICE_NAME_PATTERN)
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub services: Vec<String>,

    /// When the silence ends (RFC 3339). Delete the Silence to end it sooner.
    pub until: Time,

    /// Who asked for it: `homeostat silence` records the user the API
    /// server authenticated (the audit log has the last word).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub created_by: String,

    /// Why, for the others on call.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub note: String,
}

impl Silence {
    /// Whether it holds `service` back at `now` (Unix seconds).
    pub fn holds(&self, service: &str, now: i64) -> bool {
        now < self.spec.until.0.as_second() && self.spec.services.iter().any(|s| s == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_services_until_its_end_and_nothing_else() {
        let silence = Silence::new(
            "tax-deploy",
            SilenceSpec {
                services: vec!["tax".into(), "inventory".into()],
                until: Time(k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time")),
                created_by: "alice".into(),
                note: String::new(),
            },
        );
        assert!(silence.holds("tax", 999));
        assert!(silence.holds("inventory", 0));
        assert!(!silence.holds("tax", 1_000), "ended");
        assert!(!silence.holds("orders", 999), "not one of its services");
    }
}
