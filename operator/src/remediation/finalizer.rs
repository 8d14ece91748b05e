//! The finalizer a policy carries while it holds changes in force: deleting
//! the policy then waits until the operator has put them back (or left to
//! whoever changed them since). It is added before the policy's first
//! change and removed once nothing is held, so a policy that holds nothing
//! deletes at once, operator or not.

use homeostat_api::RemediationPolicy;
use kube::api::Patch;
use kube::{Api, ResourceExt};
use serde_json::json;

/// The finalizer's name.
pub const RESTORE: &str = "homeostat.dev/restore";

pub fn present(policy: &RemediationPolicy) -> bool {
    policy.finalizers().iter().any(|f| f == RESTORE)
}

/// Adds the finalizer, keeping anyone else's; the policy as it is then.
pub async fn add(
    api: &Api<RemediationPolicy>,
    policy: &RemediationPolicy,
) -> Result<RemediationPolicy, kube::Error> {
    let ops = if policy.finalizers().is_empty() {
        json!([{"op": "add", "path": "/metadata/finalizers", "value": [RESTORE]}])
    } else {
        json!([{"op": "add", "path": "/metadata/finalizers/-", "value": RESTORE}])
    };
    patch(api, &policy.name_any(), ops).await
}

/// Removes the finalizer, keeping anyone else's: the list is read and
/// tested in the same patch, so a concurrent change fails it.
pub async fn remove(api: &Api<RemediationPolicy>, name: &str) -> Result<(), kube::Error> {
    let Some(current) = api.get_opt(name).await? else {
        return Ok(());
    };
    let Some(index) = current.finalizers().iter().position(|f| f == RESTORE) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let ops = json!([
        {"op": "test", "path": path, "value": RESTORE},
        {"op": "remove", "path": path},
    ]);
    patch(api, name, ops).await?;
    Ok(())
}

async fn patch(
    api: &Api<RemediationPolicy>,
    name: &str,
    ops: serde_json::Value,
) -> Result<RemediationPolicy, kube::Error> {
    let ops: json_patch::Patch = serde_json::from_value(ops).map_err(kube::Error::SerdeError)?;
    api.patch(name, &crate::writes::patch(), &Patch::<()>::Json(ops))
        .await
}
