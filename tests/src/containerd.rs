//! A containerd of the test's own: its state, sockets and snapshots in a
//! temporary directory, Kubernetes' CRI plugin off, `ctr` to drive it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::SupportError;
use crate::process::ManagedProcess;

pub struct LocalContainerd {
    process: ManagedProcess,
    socket: PathBuf,
    // Dropped last: the server must be stopped before its files go.
    dir: tempfile::TempDir,
}

/// The namespace the tests' images and containers live in.
pub const NAMESPACE: &str = "homeostat-test";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl LocalContainerd {
    /// Starts containerd (from Debian's `containerd`; it must run as root)
    /// and waits until it answers.
    pub fn start() -> Result<Self, SupportError> {
        let dir = tempfile::Builder::new()
            .prefix("homeostat-containerd-")
            .tempdir()
            .map_err(SupportError::io("create containerd's directory"))?;
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {:?}\n",
                dir.path().join("root"),
                dir.path().join("state"),
                socket,
            ),
        )
        .map_err(SupportError::io("write containerd's config"))?;
        let mut command = Command::new("containerd");
        command.arg("--config").arg(&config);
        let mut process =
            ManagedProcess::spawn("containerd", command, &dir.path().join("containerd.log"))?
                .with_grace(Duration::from_secs(10));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            process.check_alive()?;
            let answered = Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success());
            if answered {
                break;
            }
            if Instant::now() >= deadline {
                return Err(SupportError::NotReady {
                    what: "containerd",
                    timeout: READY_TIMEOUT,
                    log_tail: process.log_tail(40),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            process,
            socket,
            dir,
        })
    }

    /// `ctr` on this containerd, in [`NAMESPACE`].
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", NAMESPACE]);
        command
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(40)
    }

    /// Kills and deletes every container (their shims outlive containerd).
    fn remove_containers(&self) {
        remove_all_containers(|| self.ctr());
    }
}

/// Kills and deletes every container `ctr()` lists, through containerd.
pub fn remove_all_containers(ctr: impl Fn() -> Command) {
    let Ok(out) = ctr().args(["containers", "list", "--quiet"]).output() else {
        return;
    };
    for id in String::from_utf8_lossy(&out.stdout).lines() {
        let _ = ctr()
            .args(["tasks", "kill", "--signal", "SIGKILL", id])
            .output();
        let _ = ctr().args(["tasks", "delete", "--force", id]).output();
        let _ = ctr().args(["containers", "delete", id]).output();
    }
}

impl Drop for LocalContainerd {
    fn drop(&mut self) {
        self.remove_containers();
        self.process.stop();
        let _ = &self.dir;
    }
}
