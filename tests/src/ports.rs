use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::SupportError;

/// A loopback port that was free a moment ago. The small window before the
/// server binds it is covered by the fixtures' readiness checks, which fail
/// with the server's log if another process took it.
pub fn free_port() -> Result<u16, SupportError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(SupportError::io("bind a free loopback port"))?;
    let port = listener
        .local_addr()
        .map_err(SupportError::io("read the bound port"))?
        .port();
    Ok(port)
}

/// `count` consecutive free loopback ports, for `oms up --base-port`: below
/// Linux's ephemeral range (32768–60999), where any outgoing connection or
/// port-0 listener (`oms up`'s throwaway PostgreSQL and NATS take theirs so)
/// may take one between this check and the OMS's bind; and above the
/// one-node cluster's fixed etcd ports (23790, 23800), which a cluster
/// brought up while an OMS test runs must find free.
pub fn free_port_block(count: u16) -> Result<u16, SupportError> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 80) as u16 * 100;
    for _ in 0..200 {
        let base = 24_000 + (seed + NEXT.fetch_add(count, Ordering::SeqCst)) % 8_000;
        let free = (0..count).all(|i| TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).is_ok());
        if free {
            return Ok(base);
        }
    }
    Err(SupportError::Failed(format!(
        "no {count} consecutive free loopback ports below the ephemeral range"
    )))
}
