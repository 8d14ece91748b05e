//! A child process whose output goes to a log file and that dies with its owner.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::SupportError;

pub struct ManagedProcess {
    what: &'static str,
    child: Child,
    log_path: PathBuf,
    /// SIGTERM and this long to exit before SIGKILL; `None`: SIGKILL at once.
    grace: Option<Duration>,
}

impl ManagedProcess {
    pub fn spawn(
        what: &'static str,
        mut command: Command,
        log_path: &Path,
    ) -> Result<Self, SupportError> {
        let log = File::create(log_path)
            .map_err(SupportError::io(format!("create {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(SupportError::io(format!("open {}", log_path.display())))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|source| SupportError::Spawn { what, source })?;
        Ok(Self {
            what,
            child,
            log_path: log_path.to_owned(),
            grace: None,
        })
    }

    /// Stop with SIGTERM and up to `grace` to exit, for a process that must
    /// clean up after itself (e.g. `oms up` stopping its PostgreSQL).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error describing the exit, when the process has already exited.
    pub fn check_alive(&mut self) -> Result<(), SupportError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(SupportError::Exited {
                what: self.what,
                status: status.to_string(),
                log_tail: self.log_tail(40),
            }),
            Err(err) => Err(SupportError::io(format!("wait for {}", self.what))(err)),
        }
    }

    /// The last `lines` lines of the process's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Stops the process (see [`Self::with_grace`]) and reaps it.
    pub fn stop(&mut self) {
        terminate(&mut self.child, self.grace.unwrap_or_default());
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops a child the way an orchestrator does: SIGTERM, then SIGKILL when it
/// has not exited after `grace` (at once for a zero grace).
pub fn terminate(child: &mut Child, grace: Duration) {
    if !grace.is_zero() && matches!(child.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}
