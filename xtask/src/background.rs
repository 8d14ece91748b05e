//! The lowest CPU share for a lane's thread and everything it starts: nice
//! 19 and, where the kernel offers it, a cpu cgroup of the smallest weight.
//!
//! Why both: nice orders only the tasks of one scheduling group. With
//! autogroup (`/proc/sys/kernel/sched_autogroup_enabled`, on by default)
//! every session is a group of its own, of equal weight whatever its tasks'
//! nice, and the kubelet puts pods in cgroups of their own: a nice-19
//! build competed with the one-node cluster's pods as a peer and took 40–48
//! % of the CPU beside the cluster demo, whose OMS stalled (two false
//! reports, the cold CI run of 2026-12-07). A cgroup of weight 2
//! (`cpu.shares`, cgroup v1) gets only what the others leave idle.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

/// The cgroup the background lanes' threads join, under the cpu controller.
const CGROUP: &str = "homeostat-background";
/// cgroup v1's smallest `cpu.shares`.
const SHARES: &str = "2";

/// Where the calling thread's background priority came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowered {
    pub niceness: u8,
    /// The cgroup joined, or why none was.
    pub cgroup: Result<PathBuf, String>,
}

/// Gives the calling thread nice `niceness` and the background cgroup;
/// what it starts afterwards inherits both. On Linux the nice value and a
/// cgroup v1 membership are the thread's own, so the process's other
/// threads (the other lanes) keep theirs.
pub fn lower_this_thread(niceness: u8) -> anyhow::Result<Lowered> {
    let thread = thread_id()?;
    let status = Command::new("renice")
        .args(["-n", &niceness.to_string(), "-p", &thread])
        .stdout(Stdio::null())
        .status()
        .context("run renice")?;
    anyhow::ensure!(status.success(), "renice: {status}");
    let cgroup = join_cgroup(&thread).map_err(|e| format!("{e:#}"));
    Ok(Lowered { niceness, cgroup })
}

/// The calling thread's id (`/proc/thread-self` is `PID/task/TID`).
fn thread_id() -> anyhow::Result<String> {
    let link = std::fs::read_link("/proc/thread-self").context("read /proc/thread-self")?;
    Ok(link
        .file_name()
        .context("no thread id")?
        .to_string_lossy()
        .into_owned())
}

/// The cgroup v1 cpu controller's mount, if there is one.
fn cpu_controller() -> Option<PathBuf> {
    ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("cpu.shares").is_file())
}

fn join_cgroup(thread: &str) -> anyhow::Result<PathBuf> {
    let controller = cpu_controller().context(
        "no cgroup v1 cpu controller (cgroup v2 moves whole processes only): nice alone",
    )?;
    let group = controller.join(CGROUP);
    if !group.is_dir() {
        std::fs::create_dir(&group)
            .with_context(|| format!("create {} (as root only)", group.display()))?;
    }
    write(&group.join("cpu.shares"), SHARES)?;
    write(&group.join("tasks"), thread)?;
    Ok(group)
}

fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value).with_context(|| format!("write {value} to {}", path.display()))
}

/// The cgroup under the cpu controller in a `/proc/PID/cgroup` text: for
/// tests.
#[cfg(test)]
fn cpu_cgroup_in(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "cpu")
            .then(|| path.to_owned())
    })
}

#[cfg(test)]
fn cpu_cgroup_of_self() -> Option<String> {
    cpu_cgroup_in(&std::fs::read_to_string("/proc/self/cgroup").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value (field 19 of stat) and cpu cgroup of a child the
    /// calling thread starts.
    fn child_priority() -> (i32, String) {
        let out = Command::new("sh")
            .args(["-c", "cat /proc/self/stat; echo; cat /proc/self/cgroup"])
            .output()
            .expect("run sh");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stat = text.lines().next().expect("stat");
        let after_name = &stat[stat.rfind(')').expect("stat has a name") + 2..];
        let nice = after_name
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("nice in stat");
        let cgroup =
            cpu_cgroup_in(text.split_once('\n').map_or("", |(_, rest)| rest)).unwrap_or_default();
        (nice, cgroup)
    }

    #[test]
    fn what_a_lowered_thread_starts_is_nice_and_in_the_background_cgroup_and_other_threads_are_not()
    {
        let before = (child_priority(), cpu_cgroup_of_self());
        let (lowered, child) = std::thread::spawn(|| {
            let lowered = lower_this_thread(19).expect("lower");
            (lowered, child_priority())
        })
        .join()
        .expect("the lowered thread");
        assert_eq!(child.0, 19);
        match (&lowered.cgroup, cpu_controller()) {
            (Ok(group), Some(controller)) => {
                assert_eq!(group, &controller.join(CGROUP));
                assert_eq!(child.1, format!("/{CGROUP}"));
                let shares = std::fs::read_to_string(group.join("cpu.shares")).expect("shares");
                assert_eq!(shares.trim(), SHARES);
            }
            // Only where the kernel has no v1 cpu controller, or we are
            // not root, and then it says which.
            (Err(why), controller) => {
                assert!(
                    controller.is_none() || why.contains("root") || why.contains("Permission"),
                    "{why}"
                );
            }
            (Ok(group), None) => panic!("joined {} without a controller", group.display()),
        }
        // This thread, and what it starts, kept their priority and group.
        assert_eq!((child_priority(), cpu_cgroup_of_self()), before);
    }
}
