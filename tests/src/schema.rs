//! A CRD's schema loosened to take anything, as an older version of it
//! might have: what lets a test store objects today's types cannot decode.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceValidation,
};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::SupportError;

/// Replaces every version's schema of the CRD `name` with one that takes
/// any object.
pub async fn loosen_crd(client: &kube::Client, name: &str) -> Result<(), SupportError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = api.get(name).await?;
    crd.metadata.managed_fields = None;
    let anything: CustomResourceValidation = serde_json::from_value(json!({"openAPIV3Schema": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    }}))
    .map_err(|e| SupportError::Failed(format!("the loose schema: {e}")))?;
    for version in &mut crd.spec.versions {
        version.schema = Some(anything.clone());
    }
    api.replace(name, &PostParams::default(), &crd).await?;
    Ok(())
}
