//! `cargo xtask cluster up|down`: the one-node cluster of
//! `homeostat_test_support::cluster`, kept running between commands.
//!
//! homeostat-cluster up --state DIR --images DIR   # prints the kubeconfig path last
//! homeostat-cluster down --state DIR

use std::path::PathBuf;
use std::process::ExitCode;

use homeostat_test_support::TestAssets;
use homeostat_test_support::cluster::Cluster;

const USAGE: &str = "usage: homeostat-cluster up --state DIR --images DIR | down --state DIR";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
    };
    let (Some(command), Some(state)) = (args.first(), flag("--state")) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let cluster = Cluster::new(state);
    let result = match command.as_str() {
        "up" => {
            let Some(images) = flag("--images") else {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            };
            match TestAssets::locate() {
                Ok(assets) => cluster.up(&assets, &images).await,
                Err(err) => Err(err),
            }
        }
        "down" => cluster.down().await,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) if command == "up" => {
            eprintln!(
                "cluster: up; logs in {}; try: KUBECONFIG={} kubectl get nodes",
                cluster.state.join("logs").display(),
                cluster.kubeconfig().display()
            );
            println!("{}", cluster.kubeconfig().display());
            ExitCode::SUCCESS
        }
        Ok(()) => {
            eprintln!("cluster: down; nothing of it is left");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cluster {command}: {err}");
            ExitCode::FAILURE
        }
    }
}
