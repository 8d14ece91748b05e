//! `cargo xtask control-plane`: etcd + kube-apiserver in the foreground for
//! local development, a tiny cluster with no nodes. Stops on Ctrl-C.

use std::process::ExitCode;

use homeostat_test_support::ControlPlane;

#[tokio::main]
async fn main() -> ExitCode {
    let plane = match ControlPlane::start().await {
        Ok(plane) => plane,
        Err(err) => {
            eprintln!("control-plane: {err}");
            return ExitCode::FAILURE;
        }
    };
    let kubeconfig = plane.kubeconfig_path().display();
    eprintln!(
        "kube-apiserver {} is ready at {}",
        homeostat_test_support::assets::kubernetes_version(),
        plane.server_url()
    );
    eprintln!("logs: {}", plane.dir().display());
    eprintln!("try:  KUBECONFIG={kubeconfig} kubectl get namespaces");
    eprintln!("press Ctrl-C to stop; everything above is deleted then");
    // The kubeconfig path alone on stdout, for scripts.
    println!("{kubeconfig}");

    let mut plane = plane;
    let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopping");
                return ExitCode::SUCCESS;
            }
            _ = check.tick() => {
                if let Err(err) = plane.check_alive() {
                    eprintln!("control-plane: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
}
