//! The cluster's processes: started detached (a session of their own,
//! reparented to init) so they outlive `cluster up`, each with a pid file
//! and a log under the state directory, and stopped by `cluster down`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::SupportError;

/// One long-running part of the cluster.
pub struct Daemon<'a> {
    pub name: &'static str,
    pub state: &'a Path,
}

impl Daemon<'_> {
    fn pid_file(&self) -> PathBuf {
        self.state.join("run").join(format!("{}.pid", self.name))
    }

    pub fn log_file(&self) -> PathBuf {
        self.state.join("logs").join(format!("{}.log", self.name))
    }

    /// Its process id, when it is running.
    pub fn running(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        alive(pid).then_some(pid)
    }

    /// Starts `program args` detached unless it already runs; returns its pid.
    pub fn start(&self, program: &Path, args: &[String]) -> Result<u32, SupportError> {
        if let Some(pid) = self.running() {
            return Ok(pid);
        }
        for dir in ["run", "logs"] {
            std::fs::create_dir_all(self.state.join(dir))
                .map_err(SupportError::io(format!("create {dir}")))?;
        }
        // sh starts it in the background under setsid and prints its pid;
        // sh exits at once, so init reaps it, not us.
        let out = Command::new("sh")
            .arg("-c")
            .arg("setsid \"$@\" </dev/null >>\"$HOMEOSTAT_LOG\" 2>&1 & echo $!")
            .arg("sh")
            .arg(program)
            .args(args)
            .env("HOMEOSTAT_LOG", self.log_file())
            .output()
            .map_err(|source| SupportError::Spawn {
                what: self.name,
                source,
            })?;
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| SupportError::Exited {
                what: self.name,
                status: out.status.to_string(),
                log_tail: String::from_utf8_lossy(&out.stderr).into_owned(),
            })?;
        std::fs::write(self.pid_file(), pid.to_string()).map_err(SupportError::io(format!(
            "write the pid file of {}",
            self.name
        )))?;
        Ok(pid)
    }

    /// An error with its log when it has exited.
    pub fn check_alive(&self) -> Result<(), SupportError> {
        match self.running() {
            Some(_) => Ok(()),
            None => Err(SupportError::Exited {
                what: self.name,
                status: "not running".into(),
                log_tail: self.log_tail(40),
            }),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after `grace`; waits until it is gone.
    pub fn stop(&self, grace: Duration) {
        let Some(pid) = self.running() else {
            let _ = std::fs::remove_file(self.pid_file());
            return;
        };
        signal(pid, "TERM");
        let deadline = Instant::now() + grace;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            signal(pid, "KILL");
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_file(self.pid_file());
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the parenthesised command name.
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|s| s != "Z")
        })
        .unwrap_or(false)
}
