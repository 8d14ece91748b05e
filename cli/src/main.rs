//! `homeostat`: anomaly reports and remediation policies from the current
//! kubeconfig, kubectl-style. Also a kubectl plugin: installed on the PATH
//! as `kubectl-homeostat`, it answers `kubectl homeostat …`.

mod detail;
mod table;
mod watch;

use homeostat_oncall::{Actor, ack, history, silence, suspend, verdict};

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use homeostat_api::{AnomalyReport, RemediationPolicy, VerdictKind};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
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
    /// Acknowledge a report as yourself (the identity the API server
    /// authenticates): recorded on the report and as an Event.
    Ack(Ack),
    /// Approve a step that waits for approval (its policy's action sets
    /// `requireApproval`): the operator then carries it out.
    Approve(Judge),
    /// Reject a step that waits for approval: it is recorded as not done.
    Reject(Judge),
    /// Keep every policy's hands off services for a while (a Silence): the
    /// detector still reports them. `kubectl delete silence NAME` ends it.
    Silence(Hush),
    /// Take a policy's hands off everything (restores still run): sets its
    /// `spec.guards.suspend`, recording who did it.
    Suspend(Switch),
    /// Give a suspended policy its hands back.
    Resume(Switch),
}

#[derive(clap::Args, Debug)]
struct Switch {
    /// The policy's name.
    name: String,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Why, for the others on call.
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(clap::Args, Debug)]
struct Hush {
    /// The services, e.g. tax payment-primary.
    #[arg(required = true)]
    services: Vec<String>,
    /// For how long, e.g. 30m, 2h (at most 168h).
    #[arg(long = "for", value_name = "DURATION")]
    length: homeostat_api::Duration,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Why, for the others on call.
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(clap::Args, Debug)]
struct Judge {
    /// The report's name.
    name: String,
    /// The step's id, as `homeostat report NAME` lists it under Actions.
    step: String,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Why, for the others on call.
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(clap::Args, Debug)]
struct Ack {
    /// The report's name.
    name: String,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    namespace: Option<String>,
    /// What you are doing about it, for the others on call.
    #[arg(long, default_value = "")]
    note: String,
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
    /// After the list, a line for each change until interrupted (with
    /// `-o json`, one object per line; `-o yaml`, one document per change).
    #[arg(short, long)]
    watch: bool,
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
    /// Prometheus's base URL, for the signal's history; without it, the
    /// in-cluster homeostat-system/prometheus through the API server's
    /// service proxy (your kubeconfig's credentials).
    #[arg(long, env = "HOMEOSTAT_PROMETHEUS_URL")]
    prometheus: Option<String>,
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

/// How one kind is listed: its columns, its rows, which column is an age.
struct Columns<K> {
    header: &'static [&'static str],
    rows: fn(&[K], jiff::Timestamp) -> Vec<Vec<String>>,
    /// Columns that change with the clock alone, not worth a line.
    volatile: &'static [usize],
}

/// The list, then each change, until the watch ends or Ctrl-C.
async fn watch<K>(api: Api<K>, output: Output, columns: Columns<K>) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + Serialize + serde::de::DeserializeOwned,
    K: Send + Sync + 'static,
{
    use futures::TryStreamExt;
    use kube::ResourceExt;
    use kube::runtime::watcher;

    let mut seen = watch::Seen::default();
    let mut initial: Vec<K> = Vec::new();
    let mut listed = false;
    let events = watcher(api, watcher::Config::default());
    futures::pin_mut!(events);
    let key = |k: &K| format!("{}/{}", k.namespace().unwrap_or_default(), k.name_any());
    // One object as its own line (or document); a table line without header.
    let show = |object: &K, row: Vec<String>, deleted: bool| -> anyhow::Result<()> {
        match output {
            Output::Table => {
                let text = table::render(columns.header, &[row]);
                let line = text.lines().nth(1).unwrap_or_default();
                if deleted {
                    println!("{line}   (deleted)");
                } else {
                    println!("{line}");
                }
            }
            Output::Json => println!("{}", serde_json::to_string(object)?),
            Output::Yaml => print!("---\n{}", serde_norway::to_string(object)?),
        }
        Ok(())
    };
    while let Some(event) = events.try_next().await.context("watch")? {
        let now = jiff::Timestamp::now();
        match event {
            watcher::Event::Init => initial.clear(),
            watcher::Event::InitApply(object) if !listed => initial.push(object),
            watcher::Event::InitDone if !listed => {
                listed = true;
                let rows = (columns.rows)(&initial, now);
                for object in &initial {
                    let row = (columns.rows)(std::slice::from_ref(object), now).remove(0);
                    seen.changed(&key(object), &row, columns.volatile);
                }
                match output {
                    Output::Table => print!("{}", table::render(columns.header, &rows)),
                    _ => {
                        for object in &initial {
                            show(object, Vec::new(), false)?;
                        }
                    }
                }
            }
            watcher::Event::InitDone => {}
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let row = (columns.rows)(std::slice::from_ref(&object), now).remove(0);
                if seen.changed(&key(&object), &row, columns.volatile) {
                    show(&object, row, false)?;
                }
            }
            watcher::Event::Delete(object) => {
                if seen.forget(&key(&object)) {
                    let row = (columns.rows)(std::slice::from_ref(&object), now).remove(0);
                    show(&object, row, true)?;
                }
            }
        }
        // Lines reach a pipe as they happen, not when a buffer fills.
        std::io::Write::flush(&mut std::io::stdout())?;
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("no cluster to talk to: set KUBECONFIG or a current context")?;
    let now = jiff::Timestamp::now();
    match cli.command {
        Command::Reports(listing) if listing.watch => {
            let columns = Columns {
                header: &table::REPORT_COLUMNS,
                rows: table::report_rows,
                volatile: &[table::REPORT_AGE_COLUMN],
            };
            watch(
                api::<AnomalyReport>(&client, &listing).await?,
                listing.output,
                columns,
            )
            .await
        }
        Command::Policies(listing) if listing.watch => {
            let columns = Columns {
                header: &table::POLICY_COLUMNS,
                rows: |policies, _| table::policy_rows(policies),
                volatile: &[],
            };
            watch(
                api::<RemediationPolicy>(&client, &listing).await?,
                listing.output,
                columns,
            )
            .await
        }
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
                Output::Table => {
                    let history = signal_history(&client, &detail, &report, now).await;
                    print!("{}", detail::render(&report, now, &history));
                }
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Output::Yaml => print!("{}", serde_norway::to_string(&report)?),
            }
            Ok(())
        }
        Command::Ack(ack) => {
            let namespace = ack
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned());
            let actor = person(&client).await?;
            ack::acknowledge(&actor, &namespace, &ack.name, &ack.note).await?;
            println!(
                "anomalyreport {namespace}/{} acknowledged by {}",
                ack.name, actor.by
            );
            Ok(())
        }
        Command::Silence(hush) => {
            let namespace = hush
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned());
            let actor = person(&client).await?;
            let made = silence::create(&actor, &namespace, &hush.services, hush.length, &hush.note)
                .await?;
            println!(
                "silence {namespace}/{}: no policy acts for {} until {} (by {})",
                made.name_any(),
                made.spec.services.join(", "),
                made.spec.until.0,
                made.spec.created_by
            );
            Ok(())
        }
        Command::Suspend(switch) => switched(&client, switch, true).await,
        Command::Resume(switch) => switched(&client, switch, false).await,
        Command::Approve(judge) => judged(&client, judge, VerdictKind::Approved).await,
        Command::Reject(judge) => judged(&client, judge, VerdictKind::Rejected).await,
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

/// The report's signal from five minutes before it opened until it
/// resolved (or now), or why it cannot be read.
async fn signal_history(
    client: &Client,
    detail: &Detail,
    report: &AnomalyReport,
    now: jiff::Timestamp,
) -> Result<Vec<history::Point>, String> {
    let status = report.status.as_ref().ok_or("not evaluated yet")?;
    let source = detail
        .prometheus
        .clone()
        .map_or_else(history::Source::in_cluster, history::Source::Url);
    let from = status.opened_at.0.as_second() - 300;
    let to = status.resolved_at.as_ref().map_or(now, |t| t.0).as_second();
    history::fetch(
        client,
        &source,
        &report.spec.service,
        report.spec.signal,
        from,
        to,
    )
    .await
    .map_err(|e| e.to_string())
}

async fn switched(client: &Client, switch: Switch, on: bool) -> anyhow::Result<()> {
    let namespace = switch
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let actor = person(client).await?;
    suspend::set(&actor, &namespace, &switch.name, on, &switch.note).await?;
    println!(
        "remediationpolicy {namespace}/{} {} by {}",
        switch.name,
        if on { "suspended" } else { "resumed" },
        actor.by
    );
    Ok(())
}

async fn judged(client: &Client, judge: Judge, verdict: VerdictKind) -> anyhow::Result<()> {
    let namespace = judge
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let actor = person(client).await?;
    verdict::give(
        &actor,
        &namespace,
        &judge.name,
        &judge.step,
        verdict,
        &judge.note,
    )
    .await?;
    println!(
        "step {} of anomalyreport {namespace}/{} {} by {}",
        judge.step,
        judge.name,
        verdict::word(verdict),
        actor.by
    );
    Ok(())
}

/// The person at the keyboard, as the API server knows their kubeconfig.
async fn person(client: &Client) -> anyhow::Result<Actor> {
    Actor::from_kubeconfig(client.clone(), "homeostat-cli").await
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
