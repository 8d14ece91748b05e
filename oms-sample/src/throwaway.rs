//! What the throwaway servers (`db::local`, `bus::local`) share: a free
//! loopback port, and a child that goes down with the process that started it.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}

/// `program` under `setpriv --pdeathsig SIGNAL` where util-linux has it, so
/// that a SIGKILLed owner (which runs no destructor) still takes the server
/// down with `signal` (e.g. `INT`, `TERM`).
pub fn dies_with_this_process(program: &Path, signal: &str) -> Command {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file());
    match setpriv {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", signal, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Asks `child` to stop with `signal` (e.g. `INT`, `TERM`), then SIGKILLs it
/// if it has not exited within `grace`.
pub fn stop(child: &mut Child, signal: &str, grace: Duration) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
