//! What a remediation step does, as the API records it (`scale`,
//! `reroute`): one enum, so nothing compares strings.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// More replicas of a workload (scale subresource).
    Scale,
    /// Traffic weight moved between backends of a router.
    Reroute,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Scale => "scale",
            ActionKind::Reroute => "reroute",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_the_lowercase_word() {
        for kind in [ActionKind::Scale, ActionKind::Reroute] {
            let wire = serde_json::to_value(kind).expect("serialize");
            assert_eq!(wire, kind.as_str());
            assert_eq!(
                serde_json::from_value::<ActionKind>(wire).expect("parse"),
                kind
            );
        }
        assert!(serde_json::from_value::<ActionKind>("restart".into()).is_err());
    }
}
