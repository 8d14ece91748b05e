//! What every pod the operator renders wears so that it runs in a namespace
//! enforcing Pod Security `restricted`: a non-root user, the runtime's
//! default seccomp profile, no privilege escalation, no capabilities, a
//! read-only root filesystem, and requests and limits. Pure, no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The user of homeostat's images (distroless's `nonroot`).
pub const NONROOT: i64 = 65532;
/// The `postgres` user of Debian's package and of the upstream image.
pub const POSTGRES: i64 = 999;

/// The pod's part: who it runs as. `fs_group` owns its volumes, so a
/// server's data directory is writable by that user.
pub fn pod(user: i64, fs_group: bool) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(user),
        run_as_group: Some(user),
        fs_group: fs_group.then_some(user),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

/// Each container's part.
pub fn container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// Requests and limits, for a container its OrderSystem gives none.
pub fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    let quantities = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect::<BTreeMap<_, _>>()
    };
    ResourceRequirements {
        requests: Some(quantities(&[("cpu", cpu), ("memory", memory)])),
        limits: Some(quantities(&[("memory", memory_limit)])),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_runs_as_the_user_given_with_the_default_seccomp_profile() {
        let pod = pod(POSTGRES, true);
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!((pod.run_as_user, pod.fs_group), (Some(999), Some(999)));
        assert_eq!(
            pod.seccomp_profile.map(|p| p.type_),
            Some("RuntimeDefault".into())
        );
        assert_eq!(super::pod(NONROOT, false).fs_group, None);
    }

    #[test]
    fn a_container_drops_every_capability_and_writes_nothing_to_its_image() {
        let c = container();
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.read_only_root_filesystem, Some(true));
        assert_eq!(
            c.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".into()])
        );
        assert_eq!(c.privileged, None);
    }
}
