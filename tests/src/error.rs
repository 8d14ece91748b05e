use std::path::PathBuf;
use std::time::Duration;

/// Why a fixture could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("{what} not found at {}: run `{hint}` to provide it", path.display())]
    AssetMissing {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} exited before becoming ready ({status}); last log lines:\n{log_tail}")]
    Exited {
        what: &'static str,
        status: String,
        log_tail: String,
    },

    #[error("{what} was not ready after {timeout:?}; last log lines:\n{log_tail}")]
    NotReady {
        what: &'static str,
        timeout: Duration,
        log_tail: String,
    },

    #[error("cannot generate certificates: {0}")]
    Certificates(#[from] rcgen::Error),

    #[error("kubeconfig: {0}")]
    Kubeconfig(String),

    #[error("{0}")]
    Failed(String),

    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl SupportError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| SupportError::Io { context, source }
    }
}
