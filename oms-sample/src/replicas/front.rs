//! A service's front door under `oms up --replicas N`: a TCP relay that
//! hands each new connection to the next replica in turn, skipping one that
//! does not accept, as a Kubernetes Service does. Connections are relayed
//! byte for byte, so HTTP keep-alive stays on the replica it reached.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long one replica gets to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Relays connections from `listener` to `replicas` until `stop` fires.
pub async fn relay(
    listener: TcpListener,
    replicas: Vec<SocketAddr>,
    mut stop: watch::Receiver<bool>,
) {
    let replicas = Arc::new(replicas);
    let turn = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut inbound, _)) = accepted else {
            // Out of file descriptors and the like: let it pass, keep serving.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = inbound.set_nodelay(true);
        let first = turn.fetch_add(1, Ordering::Relaxed);
        let replicas = replicas.clone();
        tokio::spawn(async move {
            // With none accepting, the caller sees its connection closed.
            if let Some(mut outbound) = connect_any(&replicas, first).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// The first replica from `first` on that accepts a connection.
async fn connect_any(replicas: &[SocketAddr], first: usize) -> Option<TcpStream> {
    for i in 0..replicas.len() {
        let address = replicas[(first + i) % replicas.len()];
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
        {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}
