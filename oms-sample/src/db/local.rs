//! A throwaway PostgreSQL cluster on a free loopback port, for `oms up`, the
//! demo and the tests: `initdb` into a temporary directory, `postgres`
//! listening on 127.0.0.1 only, everything deleted when it is dropped.
//! Durability settings stay PostgreSQL's defaults (fsync, synchronous commit).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

use crate::throwaway::{self, dies_with_this_process, free_port};

/// The role and database the cluster is created with.
const USER: &str = "oms";
// A macro so that SQL using it stays a string literal.
macro_rules! database {
    () => {
        "oms"
    };
}
const DATABASE: &str = database!();
const DIR_PREFIX: &str = "homeostat-postgres-";
/// Holds the pid of the process that made the cluster.
const OWNER_FILE: &str = "owner.pid";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LocalPostgresError {
    #[error(
        "PostgreSQL's server binaries (initdb, postgres) were not found on PATH, in \
         $HOMEOSTAT_PG_BIN or in /usr/lib/postgresql/*/bin: install them \
         (Debian: apt-get install postgresql) or pass --database-url"
    )]
    NotInstalled,
    #[error(
        "running as root, PostgreSQL needs an unprivileged user to run as, and neither \
         `postgres` nor `nobody` exists"
    )]
    NoUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("initdb failed ({status}):\n{output}")]
    Initdb { status: String, output: String },
    #[error("PostgreSQL exited while starting ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error(
        "PostgreSQL did not accept connections within {READY_TIMEOUT:?}: {last}; its log:\n{log}"
    )]
    NotReady { last: String, log: String },
    #[error("cannot create database {DATABASE}: {0}")]
    CreateDatabase(#[source] sqlx::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalPostgresError {
    let what = what.into();
    move |source| LocalPostgresError::Io { what, source }
}

/// What a commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// PostgreSQL's defaults: a commit returns once its WAL is on disk.
    Full,
    /// For a cluster deleted when its owner exits (`oms up`): commits return
    /// before their WAL is flushed (`synchronous_commit = off`; fsync stays
    /// on, so nothing is ever corrupted). A server crash can lose the last
    /// fraction of a second of commits — of a database that dies with its
    /// owner anyway — and commits stop queueing behind the disk.
    Throwaway,
}

/// A running throwaway cluster; dropping it stops the server and deletes its files.
pub struct LocalPostgres {
    child: Child,
    url: String,
    log_path: PathBuf,
    /// What starting the server again takes.
    server: ServerCommand,
    // Dropped last: the server must be stopped before its files go.
    dir: TempDir,
}

impl LocalPostgres {
    /// Creates a cluster with PostgreSQL's durability defaults and starts it;
    /// returns once the `oms` database accepts connections.
    pub async fn start() -> Result<Self, LocalPostgresError> {
        Self::start_with(Durability::Full).await
    }

    pub async fn start_with(durability: Durability) -> Result<Self, LocalPostgresError> {
        let bin = server_binaries()?;
        let run_as = unprivileged_user()?;
        remove_abandoned_clusters();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(io("create the PostgreSQL directory"))?;
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())
            .map_err(io("write the PostgreSQL directory's owner"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(io(format!("chown {}", dir.path().display())))?;
        }
        let data = dir.path().join("data");
        let log_path = dir.path().join("postgres.log");

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(&data)
            .args(["--auth=trust", "--username", USER, "--encoding=UTF8"])
            .args(["--no-locale", "--no-instructions"]);
        as_user(&mut initdb, run_as);
        let output = initdb.output().map_err(io("run initdb"))?;
        if !output.status.success() {
            return Err(LocalPostgresError::Initdb {
                status: output.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }

        let server = ServerCommand {
            binary: bin.join("postgres"),
            data,
            port: free_port().map_err(io("find a free loopback port"))?,
            durability,
            run_as,
        };
        let log = File::create(&log_path).map_err(io("create the PostgreSQL log"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))
                .map_err(io("chown the PostgreSQL log"))?;
        }
        let child = server.spawn(log)?;
        let mut cluster = Self {
            child,
            url: format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", server.port),
            log_path,
            server,
            dir,
        };
        let mut admin = cluster.wait_ready().await?;
        sqlx::query(concat!("CREATE DATABASE ", database!()))
            .execute(&mut admin)
            .await
            .map_err(LocalPostgresError::CreateDatabase)?;
        let _ = admin.close().await;
        Ok(cluster)
    }

    /// Crashes the server: an immediate shutdown (SIGQUIT), which writes no
    /// checkpoint and drops every connection, so the next start replays the
    /// WAL as after a power cut. Commits already acknowledged survive that
    /// with [`Durability::Full`].
    pub fn crash(&mut self) {
        throwaway::stop(&mut self.child, "QUIT", STOP_TIMEOUT);
    }

    /// Starts the server again on the same port and data (after
    /// [`crash`](Self::crash)); returns once it accepts connections.
    pub async fn restart(&mut self) -> Result<(), LocalPostgresError> {
        self.crash();
        let log = File::options()
            .append(true)
            .open(&self.log_path)
            .map_err(io("open the PostgreSQL log"))?;
        self.child = self.server.spawn(log)?;
        let admin = self.wait_ready().await?;
        let _ = admin.close().await;
        Ok(())
    }

    /// `postgres://oms@127.0.0.1:PORT/oms`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster's directory (data and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the server accepts connections; returns one to its
    /// `postgres` database.
    async fn wait_ready(&mut self) -> Result<PgConnection, LocalPostgresError> {
        let admin = format!("postgres://{USER}@127.0.0.1:{}/postgres", self.server.port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LocalPostgresError::Exited {
                    status: status.to_string(),
                    log: self.log(),
                });
            }
            match PgConnection::connect(&admin).await {
                Ok(conn) => return Ok(conn),
                Err(err) if Instant::now() >= deadline => {
                    return Err(LocalPostgresError::NotReady {
                        last: err.to_string(),
                        log: self.log(),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Stops the server: a fast shutdown (SIGINT), then SIGKILL if it lingers.
    fn stop(&mut self) {
        throwaway::stop(&mut self.child, "INT", STOP_TIMEOUT);
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `postgres` on a cluster's data directory, as this module runs it.
struct ServerCommand {
    binary: PathBuf,
    data: PathBuf,
    port: u16,
    durability: Durability,
    run_as: Option<(u32, u32)>,
}

impl ServerCommand {
    fn spawn(&self, log: File) -> Result<Child, LocalPostgresError> {
        let log_err = log.try_clone().map_err(io("open the PostgreSQL log"))?;
        let mut postgres = dies_with_this_process(&self.binary, "INT");
        postgres
            .arg("-D")
            .arg(&self.data)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            // TCP only: no socket file outside the cluster's own directory.
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=300"])
            .args(match self.durability {
                Durability::Full => &[][..],
                Durability::Throwaway => &["-c", "synchronous_commit=off"][..],
            })
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        as_user(&mut postgres, self.run_as);
        postgres.spawn().map_err(io("start postgres"))
    }
}

/// The directory holding `initdb` and `postgres`.
fn server_binaries() -> Result<PathBuf, LocalPostgresError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let from_env = std::env::var_os("HOMEOSTAT_PG_BIN").map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    // Debian keeps the server out of PATH, one directory per major version.
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|dir| {
        dir.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    debian.reverse();
    from_env
        .into_iter()
        .chain(on_path)
        .chain(debian)
        .find(|dir| has_both(dir))
        .ok_or(LocalPostgresError::NotInstalled)
}

/// PostgreSQL refuses to run as root: pick `postgres` (or `nobody`) then.
fn unprivileged_user() -> Result<Option<(u32, u32)>, LocalPostgresError> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .map_err(io("read the current user"))?;
    if uid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("read /etc/passwd"))?;
    ["postgres", "nobody"]
        .iter()
        .find_map(|name| passwd_entry(&passwd, name))
        .map(Some)
        .ok_or(LocalPostgresError::NoUser)
}

/// `(uid, gid)` of `name` in an `/etc/passwd` text.
fn passwd_entry(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

/// Deletes the directories of clusters whose owner died without cleaning up
/// (SIGKILL) once their server has stopped too.
fn remove_abandoned_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let alive = |pid: &str| {
        let pid = pid.trim();
        !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && Path::new("/proc").join(pid).exists()
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(DIR_PREFIX));
        let Ok(owner) = std::fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        // postmaster.pid's first line is the server's pid; it is removed at shutdown.
        let server_running = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(alive))
            .unwrap_or(false);
        if is_ours && !alive(&owner) && !server_running {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn as_user(command: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
        // HOME of root is not readable by the postgres user.
        command.env("HOME", "/");
    }
}

#[cfg(test)]
mod tests {
    use super::passwd_entry;

    #[test]
    fn finds_a_user_in_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104::/var/lib/postgresql:/bin/bash\n";
        assert_eq!(passwd_entry(passwd, "postgres"), Some((101, 104)));
        assert_eq!(passwd_entry(passwd, "nobody"), None);
        assert_eq!(
            passwd_entry("postgres:x:abc:1::/:/bin/sh", "postgres"),
            None
        );
    }
}
