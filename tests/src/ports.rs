use std::net::{Ipv4Addr, TcpListener};

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
