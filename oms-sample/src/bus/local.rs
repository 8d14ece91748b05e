//! A throwaway NATS server with JetStream on a free loopback port, for `oms
//! up`, the demo and the tests, as `db::local` is for PostgreSQL. Its
//! JetStream store is a file store in a temporary directory, so a server
//! killed and started again ([`LocalNats::kill`], [`LocalNats::restart`])
//! finds its streams and consumers where they were.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::throwaway::{self, dies_with_this_process, free_port};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LocalNatsError {
    #[error(
        "nats-server was not found on PATH, in $HOMEOSTAT_NATS_SERVER or in /usr/sbin: \
         install it (Debian: apt-get install nats-server) or pass --nats-url"
    )]
    NotInstalled,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nats-server exited while starting ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error(
        "nats-server's JetStream did not answer within {READY_TIMEOUT:?}: {last}; its log:\n{log}"
    )]
    NotReady { last: String, log: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalNatsError {
    let what = what.into();
    move |source| LocalNatsError::Io { what, source }
}

/// A running throwaway server; dropping it stops the server and deletes its store.
pub struct LocalNats {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    // Dropped last: the server must be stopped before its files go.
    dir: TempDir,
}

impl LocalNats {
    /// Starts a server; returns once JetStream answers.
    pub async fn start() -> Result<Self, LocalNatsError> {
        let binary = server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("homeostat-nats-")
            .tempdir()
            .map_err(io("create the NATS directory"))?;
        let port = free_port().map_err(io("find a free loopback port"))?;
        let mut server = Self {
            child: None,
            binary,
            port,
            dir,
        };
        server.restart().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// SIGKILL: the server dies as in a crash, flushing nothing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store (after
    /// [`kill`](Self::kill)); returns once JetStream answers.
    pub async fn restart(&mut self) -> Result<(), LocalNatsError> {
        self.kill();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("open the NATS log"))?;
        let log_err = log.try_clone().map_err(io("open the NATS log"))?;
        let child = dies_with_this_process(&self.binary, "TERM")
            .args(["--addr", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--jetstream")
            .arg("--store_dir")
            .arg(self.dir.path().join("jetstream"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(io(format!("start {}", self.binary.display())))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), LocalNatsError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(LocalNatsError::Exited {
                    status: status.to_string(),
                    log: self.log(),
                });
            }
            let last = match jetstream_answers(&self.url()).await {
                Ok(()) => return Ok(()),
                Err(err) => err,
            };
            if Instant::now() >= deadline {
                return Err(LocalNatsError::NotReady {
                    last,
                    log: self.log(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A clean shutdown (SIGTERM), then SIGKILL if it lingers.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            throwaway::stop(&mut child, "TERM", STOP_TIMEOUT);
        }
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks JetStream for the account's figures: a JSON answer without an
/// `error` means JetStream is up (the raw API, so that the check does not
/// depend on the client knowing every field of this server version's answer).
async fn jetstream_answers(url: &str) -> Result<(), String> {
    let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    let reply = client
        .request("$JS.API.INFO", Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let answer: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|e| e.to_string())?;
    match answer.get("error") {
        None => Ok(()),
        Some(error) => Err(error.to_string()),
    }
}

/// `nats-server`: Debian installs it in /usr/sbin, often not on a user's PATH.
fn server_binary() -> Result<PathBuf, LocalNatsError> {
    let from_env = std::env::var_os("HOMEOSTAT_NATS_SERVER").map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_env
        .into_iter()
        .chain(on_path)
        .chain([Path::new("/usr/sbin/nats-server").to_path_buf()])
        .find(|binary| binary.is_file())
        .ok_or(LocalNatsError::NotInstalled)
}
