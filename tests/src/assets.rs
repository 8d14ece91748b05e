//! Where the test binaries are: the Kubernetes commands, etcd and kubectl
//! from `cargo xtask test-assets`, prometheus and promtool from Debian's
//! package.

use std::path::{Path, PathBuf};

use crate::SupportError;

const GO_MOD: &str = include_str!("../control-plane/go.mod");
const BUILD_HINT: &str = "cargo xtask test-assets";
const PROMETHEUS_HINT: &str = "apt-get install prometheus";

/// The Kubernetes release the control plane is built from, read from the
/// `k8s.io/kubernetes` requirement in `tests/control-plane/go.mod`.
pub fn kubernetes_version() -> &'static str {
    GO_MOD
        .lines()
        .find_map(|line| line.trim().strip_prefix("k8s.io/kubernetes "))
        .map(str::trim)
        .unwrap_or("unknown")
}

/// The directory holding kube-apiserver, kube-controller-manager, etcd and kubectl.
#[derive(Clone, Debug)]
pub struct TestAssets {
    dir: PathBuf,
}

impl TestAssets {
    /// `$HOMEOSTAT_TEST_ASSETS` when set, else the cache `cargo xtask test-assets` fills.
    pub fn locate() -> Result<Self, SupportError> {
        let dir = match std::env::var_os("HOMEOSTAT_TEST_ASSETS") {
            Some(dir) => PathBuf::from(dir),
            None => default_dir(),
        };
        let assets = Self { dir };
        for name in [
            "kube-apiserver",
            "kube-controller-manager",
            "etcd",
            "kubectl",
        ] {
            assets.binary(name)?;
        }
        Ok(assets)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kube_apiserver(&self) -> Result<PathBuf, SupportError> {
        self.binary("kube-apiserver")
    }

    pub fn kube_controller_manager(&self) -> Result<PathBuf, SupportError> {
        self.binary("kube-controller-manager")
    }

    pub fn etcd(&self) -> Result<PathBuf, SupportError> {
        self.binary("etcd")
    }

    pub fn kubectl(&self) -> Result<PathBuf, SupportError> {
        self.binary("kubectl")
    }

    pub fn binary(&self, name: &'static str) -> Result<PathBuf, SupportError> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(SupportError::AssetMissing {
                what: name,
                path,
                hint: BUILD_HINT,
            })
        }
    }
}

fn default_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("test-assets")
        .join(format!("kubernetes-{}", kubernetes_version()))
}

/// `prometheus` from `$HOMEOSTAT_PROMETHEUS` or the PATH.
pub fn prometheus_binary() -> Result<PathBuf, SupportError> {
    find_program("prometheus", "HOMEOSTAT_PROMETHEUS")
}

/// `promtool` from `$HOMEOSTAT_PROMTOOL` or the PATH.
pub fn promtool_binary() -> Result<PathBuf, SupportError> {
    find_program("promtool", "HOMEOSTAT_PROMTOOL")
}

fn find_program(name: &'static str, env: &str) -> Result<PathBuf, SupportError> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(SupportError::AssetMissing {
                what: name,
                path,
                hint: PROMETHEUS_HINT,
            })
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or(SupportError::AssetMissing {
            what: name,
            path: PathBuf::from(name),
            hint: PROMETHEUS_HINT,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_version_comes_from_go_mod() {
        let version = kubernetes_version();
        assert!(version.starts_with("v1."), "{version}");
    }

    #[test]
    fn missing_binary_names_the_command_that_builds_it() {
        let assets = TestAssets {
            dir: PathBuf::from("/nonexistent-homeostat-assets"),
        };
        let err = assets
            .kube_apiserver()
            .expect_err("must be missing")
            .to_string();
        assert!(err.contains("cargo xtask test-assets"), "{err}");
        assert!(err.contains("kube-apiserver"), "{err}");
    }
}
