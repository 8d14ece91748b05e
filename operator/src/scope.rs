//! Which namespaces the controllers watch (`--watch-namespaces`): every
//! one, or a list. With a list, each namespace gets a controller of its own
//! whose lists and watches are namespaced, so the operator reads nothing
//! outside them and its RBAC can be bound in those namespaces alone.

use std::collections::BTreeSet;

use k8s_openapi::NamespaceResourceScope;
use kube::{Api, Client, Resource};

/// Where the controllers watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace: one cluster-wide controller of each kind.
    Cluster,
    /// These namespaces, each with controllers of its own.
    Namespaces(BTreeSet<String>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error(
        "--watch-namespaces: {0:?} is not a namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"
    )]
    NotANamespace(String),
}

impl WatchScope {
    /// From `--watch-namespaces` (comma-separated, blanks ignored): the
    /// whole cluster when none is given.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<WatchScope, ScopeError> {
        let mut set = BTreeSet::new();
        for name in names.iter().map(|n| n.as_ref().trim()) {
            if name.is_empty() {
                continue;
            }
            if !is_namespace_name(name) {
                return Err(ScopeError::NotANamespace(name.to_owned()));
            }
            set.insert(name.to_owned());
        }
        Ok(if set.is_empty() {
            WatchScope::Cluster
        } else {
            WatchScope::Namespaces(set)
        })
    }

    /// The namespace of each controller to run: `None` for one that
    /// watches every namespace.
    pub fn partitions(&self) -> Vec<Option<String>> {
        match self {
            WatchScope::Cluster => vec![None],
            WatchScope::Namespaces(names) => names.iter().cloned().map(Some).collect(),
        }
    }
}

/// The API of a namespaced kind in `namespace`, or in every one.
pub fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// An RFC 1123 label, as Kubernetes requires of a namespace's name.
fn is_namespace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_names_is_the_whole_cluster_and_names_are_a_controller_each() {
        assert_eq!(WatchScope::from_names::<&str>(&[]), Ok(WatchScope::Cluster));
        assert_eq!(WatchScope::from_names(&["", " "]), Ok(WatchScope::Cluster));
        assert_eq!(WatchScope::Cluster.partitions(), [None]);
        let scope = WatchScope::from_names(&["shop", " payments", "shop"]).expect("valid");
        assert_eq!(
            scope.partitions(),
            [Some("payments".to_owned()), Some("shop".to_owned())]
        );
    }

    #[test]
    fn a_name_kubernetes_would_refuse_is_refused_with_its_reason() {
        for bad in ["Shop", "-shop", "shop-", "sh op", "shop_1", &"a".repeat(64)] {
            let error = WatchScope::from_names(&[bad]).expect_err(bad);
            assert_eq!(error, ScopeError::NotANamespace(bad.to_owned()));
            assert!(error.to_string().contains("--watch-namespaces"), "{error}");
        }
        assert!(WatchScope::from_names(&["a", "shop-2", &"a".repeat(63)]).is_ok());
    }
}
