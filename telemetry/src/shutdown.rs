//! When a homeostat process is asked to stop: Ctrl-C in a terminal, or
//! SIGTERM from an orchestrator (Kubernetes sends it before SIGKILL).

/// Completes on the first Ctrl-C or SIGTERM.
pub async fn requested() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                // No SIGTERM handler could be installed: Ctrl-C only.
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
