//! `homeostat`: anomaly reports and remediation policies from the current
//! kubeconfig, kubectl-style. Also a kubectl plugin: installed on the PATH
//! as `kubectl-homeostat`, it answers `kubectl homeostat …`.

mod detail;
mod table;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use homeostat_api::{AnomalyReport, RemediationPolicy};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "homeostat",
    version,
    about = "Anomaly reports and remediation policies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Anomaly reports, open ones first.
    Reports(Listing),
    /// One report in detail: its value against the band, the culprit's
    /// evidence, the timeline and what each action did.
    Report(Detail),
    /// Remediation policies: ready or not, what each holds now.
    Policies(Listing),
}

#[derive(clap::Args, Debug)]
struct Listing {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(clap::Args, Debug)]
struct Detail {
    /// The report's name.
    name: String,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Output format (`table`: the detail in text).
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

/// A list, as `kubectl get -o json` shapes one.
#[derive(Serialize)]
struct List<'a, T> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    items: &'a [T],
}

async fn api<K>(client: &Client, listing: &Listing) -> anyhow::Result<Api<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    if listing.all_namespaces {
        return Ok(Api::all(client.clone()));
    }
    let namespace = match &listing.namespace {
        Some(ns) => ns.clone(),
        None => client.default_namespace().to_owned(),
    };
    Ok(Api::namespaced(client.clone(), &namespace))
}

fn print<T: Serialize>(
    output: Output,
    items: &[T],
    rows: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let list = List {
        api_version: "v1",
        kind: "List",
        items,
    };
    match output {
        Output::Table => print!("{}", rows()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&list)?),
        Output::Yaml => print!("{}", serde_norway::to_string(&list)?),
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("no cluster to talk to: set KUBECONFIG or a current context")?;
    let now = jiff::Timestamp::now();
    match cli.command {
        Command::Reports(listing) => {
            let reports = api::<AnomalyReport>(&client, &listing)
                .await?
                .list(&ListParams::default())
                .await
                .context("list AnomalyReports")?
                .items;
            print(listing.output, &reports, || {
                table::render(&table::REPORT_COLUMNS, &table::report_rows(&reports, now))
            })
        }
        Command::Report(detail) => {
            let namespace = detail
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned());
            let report = Api::<AnomalyReport>::namespaced(client.clone(), &namespace)
                .get_opt(&detail.name)
                .await
                .context("read the AnomalyReport")?
                .with_context(|| {
                    format!("no AnomalyReport {} in namespace {namespace}", detail.name)
                })?;
            match detail.output {
                Output::Table => print!("{}", detail::render(&report, now)),
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Yaml => print!("{}", serde_norway::to_string(&report)?),
            }
            Ok(())
        }
        Command::Policies(listing) => {
            let policies = api::<RemediationPolicy>(&client, &listing)
                .await?
                .list(&ListParams::default())
                .await
                .context("list RemediationPolicies")?
                .items;
            print(listing.output, &policies, || {
                table::render(&table::POLICY_COLUMNS, &table::policy_rows(&policies))
            })
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("homeostat: {error:#}");
            ExitCode::FAILURE
        }
    }
}
