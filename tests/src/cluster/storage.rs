//! Volumes for the one-node cluster: a default StorageClass `standard` (the
//! name kind's default has too, so one manifest fits both) with no
//! provisioner, and [`VOLUMES`] PersistentVolumes on directories under the
//! state directory that claims bind to. Each directory is writable by any
//! user, as a pod's user is not known in advance and kubelet does not
//! change the owner of a host directory (fsGroup does not apply to it).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::{HostPathVolumeSource, PersistentVolume, PersistentVolumeSpec};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;

use super::apply;
use crate::SupportError;

pub const STORAGE_CLASS: &str = "standard";
/// Enough for two OrderSystems with their own PostgreSQL and NATS.
pub const VOLUMES: usize = 4;
const CAPACITY: &str = "5Gi";

/// Makes the directories under `dir` and applies the class and the volumes.
pub async fn apply_objects(client: &kube::Client, dir: &Path) -> Result<(), SupportError> {
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.into()),
            annotations: Some(BTreeMap::from([(
                "storageclass.kubernetes.io/is-default-class".to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        provisioner: "kubernetes.io/no-provisioner".into(),
        // A claim binds when its pod is scheduled, as on kind.
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        reclaim_policy: Some("Retain".into()),
        ..StorageClass::default()
    };
    apply(Api::all(client.clone()), &class).await?;
    for index in 0..VOLUMES {
        let path = dir.join(format!("pv-{index}"));
        std::fs::create_dir_all(&path)
            .map_err(SupportError::io(format!("create {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .map_err(SupportError::io(format!("chmod {}", path.display())))?;
        let volume = PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("homeostat-local-{index}")),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeSpec {
                storage_class_name: Some(STORAGE_CLASS.into()),
                capacity: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(CAPACITY.into()),
                )])),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                persistent_volume_reclaim_policy: Some("Retain".into()),
                host_path: Some(HostPathVolumeSource {
                    path: path.display().to_string(),
                    type_: Some("Directory".into()),
                }),
                ..PersistentVolumeSpec::default()
            }),
            ..PersistentVolume::default()
        };
        apply(Api::all(client.clone()), &volume).await?;
    }
    Ok(())
}
