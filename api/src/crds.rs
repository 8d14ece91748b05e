//! The CRD manifests, generated from the Rust types. `crds/` holds their
//! committed YAML; a test fails when the two drift apart.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{AnomalyReport, OrderSystem, RemediationPolicy, Silence};

/// Every CRD of the API, in a stable order.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        OrderSystem::crd(),
        RemediationPolicy::crd(),
        AnomalyReport::crd(),
        Silence::crd(),
    ]
}

/// The file a CRD lives in under `crds/`, e.g. `ordersystems.homeostat.dev.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// The YAML document committed for a CRD, with a header saying where it comes from.
pub fn render_crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    let body = serde_norway::to_string(crd)?;
    Ok(format!(
        "# Generated from the Rust types in api/ by `cargo xtask crds`. Do not edit.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::Value;

    use super::*;

    #[test]
    fn committed_crd_yaml_matches_the_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        for crd in all_crds() {
            let path = dir.join(crd_file_name(&crd));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            let generated = render_crd_yaml(&crd).expect("render");
            assert!(
                committed == generated,
                "{} is out of date with the Rust types: run `cargo xtask crds` and commit the result",
                path.display()
            );
        }
    }

    /// `kubectl explain` shows schema descriptions; every field must have one.
    #[test]
    fn every_field_has_a_description() {
        for crd in all_crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let json = serde_json::to_value(&crd).expect("serialise");
            let schema = &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut missing = Vec::new();
            for top in ["spec", "status"] {
                if !schema["properties"][top].is_null() {
                    collect_undescribed(&schema["properties"][top], top, &mut missing);
                }
            }
            assert!(
                missing.is_empty(),
                "{name}: fields without a description: {missing:?}"
            );
        }
    }

    fn collect_undescribed(schema: &Value, path: &str, missing: &mut Vec<String>) {
        if schema.get("description").is_none() {
            missing.push(path.to_owned());
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (field, sub) in properties {
                collect_undescribed(sub, &format!("{path}.{field}"), missing);
            }
        }
        if let Some(items) = schema.get("items") {
            collect_items(items, path, missing);
        }
        if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            collect_items(values, &format!("{path}[*]"), missing);
        }
    }

    // Items and map values are described by their field; only their own fields need descriptions.
    fn collect_items(schema: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (field, sub) in properties {
                collect_undescribed(sub, &format!("{path}[].{field}"), missing);
            }
        }
    }

    /// Kinds that are only what a person asks for: nothing to observe.
    const SPEC_ONLY: [&str; 1] = ["silences.homeostat.dev"];

    #[test]
    fn every_crd_has_status_short_name_and_printer_columns() {
        for crd in all_crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let version = &crd.spec.versions[0];
            let has_status = version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some();
            assert_eq!(
                has_status,
                !SPEC_ONLY.contains(&name.as_str()),
                "{name}: a status subresource where there is something to observe, none otherwise"
            );
            assert!(
                crd.spec
                    .names
                    .short_names
                    .as_ref()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: no short name"
            );
            assert!(
                version
                    .additional_printer_columns
                    .as_ref()
                    .is_some_and(|c| c.len() >= 2),
                "{name}: no printer columns"
            );
            assert_eq!(crd.spec.scope, "Namespaced", "{name}");
        }
    }
}
