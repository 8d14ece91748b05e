//! `oms`: the reference OMS. A subcommand per service (one image serves all),
//! `oms up` for every service in one process, `oms loadgen` and `oms audit`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use homeostat_api::oms::OMS_SERVICES;
use homeostat_api::routing::payment_routing;
use homeostat_oms::bus::BusConfig;
use homeostat_oms::bus::local::LocalNats;
use homeostat_oms::client::Peers;
use homeostat_oms::db::DatabaseConfig;
use homeostat_oms::db::local::{Durability, LocalPostgres};
use homeostat_oms::loadgen::{self, LoadOptions};
use homeostat_oms::replicas::{self, ChildSpec, layout};
use homeostat_oms::routing::RoutingSource;
use homeostat_oms::{telemetry, up};

#[derive(Parser)]
#[command(
    name = "oms",
    version,
    about = "The homeostat reference order management system"
)]
struct Cli {
    /// Logs as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process on consecutive loopback ports.
    Up {
        /// Port of `orders`; the others follow in the order orders, inventory,
        /// tax, payment-primary, payment-secondary, fulfillment, notifications, returns.
        #[arg(long, default_value_t = 8080)]
        base_port: u16,
        /// Without --database-url: run the throwaway PostgreSQL with its
        /// durability defaults (fsync, synchronous_commit on) instead of
        /// synchronous_commit=off. Slower, as a real deployment is; for
        /// measuring.
        #[arg(long, conflicts_with = "database_url")]
        durable: bool,
        /// Run every service as this many child processes instead, each
        /// restarted when it dies. Callers reach each service at the same
        /// ports as with one (a front door that spreads connections over its
        /// replicas); the replicas listen on the blocks of eight ports after
        /// those and call each other directly.
        #[arg(long, default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=i64::from(layout::MAX_REPLICAS)))]
        replicas: u16,
        #[command(flatten)]
        common: Common,
    },
    /// Run the orders service: public API and saga orchestration.
    Orders(ServiceArgs),
    /// Run the inventory service: stock and reservations.
    Inventory(ServiceArgs),
    /// Run the tax service: basket pricing.
    Tax(ServiceArgs),
    /// Run the primary payment provider.
    PaymentPrimary(ServiceArgs),
    /// Run the secondary payment provider.
    PaymentSecondary(ServiceArgs),
    /// Run the fulfillment routing engine.
    Fulfillment(ServiceArgs),
    /// Run the notifications consumer.
    Notifications(ServiceArgs),
    /// Run the returns service.
    Returns(ServiceArgs),
    /// Check that the books balance across every service's schema: orders
    /// settled, money and stock conserved, nothing held for no order, every
    /// event delivered once. Exits non-zero when they do not.
    Audit {
        /// The OMS database (postgres://USER:PASSWORD@HOST:PORT/DATABASE), where
        /// every service keeps its schema; falls back to $OMS_DATABASE_URL.
        #[arg(long, env = "OMS_DATABASE_URL", hide_env_values = true)]
        target: String,
        /// Orders and events younger than this may still be in flight and do
        /// not count against the books, in seconds.
        #[arg(long, default_value_t = 60)]
        grace_seconds: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send an open-loop order mix at a fixed arrival rate and report latency and outcomes.
    Loadgen {
        /// The orders service (or tax, for quotes only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        /// Requests per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Run length in seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Percent of requests that create orders.
        #[arg(long, default_value_t = 70)]
        new_orders: u32,
        /// Percent of requests that look orders up (the rest return orders).
        #[arg(long, default_value_t = 25)]
        lookups: u32,
        /// Percent of requests that price a basket at a tax --target
        /// (`--new-orders 0 --lookups 0 --quotes 100`: a surge on tax).
        #[arg(long, default_value_t = 0)]
        quotes: u32,
        /// Seed of the request mix.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

/// One service, as run in a container.
#[derive(Args, Clone)]
struct ServiceArgs {
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Where the other services are; `{service}` is replaced by each name.
    #[arg(long, default_value = "http://{service}:8080")]
    peers: String,
    /// The replicas of one service, overriding --peers for it; calls spread
    /// across them (`inventory=http://10.0.0.5:8080,http://10.0.0.6:8080`).
    /// Repeat for each service.
    #[arg(long = "peer", value_name = "SERVICE=URL[,URL...]",
          value_parser = homeostat_oms::client::parse_peer)]
    peer_replicas: Vec<(String, Vec<String>)>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Clone)]
struct Common {
    /// Token for /admin endpoints (fault injection); falls back to $OMS_ADMIN_TOKEN.
    #[arg(long, env = "OMS_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Follow the payment routing table in this ConfigMap (NAMESPACE/NAME), through
    /// the Kubernetes API (in-cluster or $KUBECONFIG).
    #[arg(long, conflicts_with = "routing_file")]
    routing_configmap: Option<String>,
    /// Follow the payment routing table in this file (`payment.payment-primary=90` lines).
    #[arg(long)]
    routing_file: Option<PathBuf>,
    /// Percent of payment calls to payment-primary until a routing source says otherwise.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100))]
    primary_weight: u32,
    /// Timeout of each call between services, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    call_timeout_ms: u64,
    /// API requests each service serves at once; more are answered 503 with
    /// Retry-After at once (health and metrics endpoints are not counted).
    #[arg(long, default_value_t = homeostat_oms::admission::DEFAULT_MAX_IN_FLIGHT,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_in_flight: u64,
    /// The longest an admitted request may take, reading its body included,
    /// in milliseconds; then it is answered 503 (an order's saga goes on).
    #[arg(long, default_value_t = homeostat_oms::admission::DEFAULT_REQUEST_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// Requests each service replica works on at once, for load drills (a
    /// pool-bound service: more wait their turn); with --service-time-ms.
    /// Without it, no limit.
    #[arg(long, requires = "service_time_ms",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    workers: Option<u64>,
    /// The least time each request holds its worker, in milliseconds; with --workers.
    #[arg(long, requires = "workers",
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    service_time_ms: Option<u64>,
    /// How long a stock reservation or a card authorisation may stay
    /// unclaimed before it is given back (released, voided), in
    /// milliseconds. Keep it well above the saga's 30 s lease.
    #[arg(long, default_value_t = homeostat_oms::services::expiry::DEFAULT_HOLD_TTL_MS,
          value_parser = clap::value_parser!(u64).range(1_000..))]
    hold_ttl_ms: u64,
    /// On SIGTERM or Ctrl-C: how long to finish the requests in flight
    /// (new ones are refused) before exiting, in milliseconds. Below the
    /// orchestrator's grace period (Kubernetes: 30 s).
    #[arg(long, default_value_t = 25_000)]
    shutdown_grace_ms: u64,
    /// Delay between confirmation and shipping, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    ship_delay_ms: u64,
    /// PostgreSQL that the stateful services keep their state in
    /// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`); each service uses its
    /// own schema. `oms up` without it starts a throwaway PostgreSQL of its own.
    #[arg(long, env = "OMS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Connections each service's pool may open.
    #[arg(long, env = "OMS_DB_POOL_SIZE", default_value_t = homeostat_oms::db::DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool_size: u32,
    /// NATS server (JetStream on) for order events: `orders` publishes them
    /// through its outbox, `notifications` consumes them
    /// (`nats://HOST:PORT`). `oms up` without it starts a throwaway
    /// nats-server of its own.
    #[arg(long, env = "OMS_NATS_URL", hide_env_values = true)]
    nats_url: Option<String>,
}

impl Common {
    fn admin_token(&self) -> String {
        self.admin_token.clone().unwrap_or_else(|| {
            let token = uuid::Uuid::new_v4().simple().to_string();
            eprintln!(
                "oms: no --admin-token or OMS_ADMIN_TOKEN; the admin token for this run is {token}"
            );
            token
        })
    }

    fn routing_source(&self) -> anyhow::Result<RoutingSource> {
        Ok(match (&self.routing_configmap, &self.routing_file) {
            (Some(reference), _) => {
                let (namespace, name) = reference
                    .split_once('/')
                    .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--routing-configmap takes NAMESPACE/NAME, got {reference:?}"
                        )
                    })?;
                RoutingSource::ConfigMap {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                }
            }
            (None, Some(path)) => RoutingSource::File(path.clone()),
            (None, None) => RoutingSource::Static,
        })
    }

    fn database(&self, url: Option<&str>) -> Option<DatabaseConfig> {
        url.or(self.database_url.as_deref())
            .map(|url| DatabaseConfig {
                url: url.to_owned(),
                pool_size: self.db_pool_size,
            })
    }

    fn bus(&self, url: Option<String>) -> Option<BusConfig> {
        url.or_else(|| self.nats_url.clone()).map(BusConfig::new)
    }

    /// The flags of a child of `oms up --replicas`, and the environment
    /// that carries what must not show in `ps`.
    fn child_spec(
        &self,
        admin_token: String,
        database: Option<&DatabaseConfig>,
        bus: Option<&BusConfig>,
        log_json: bool,
    ) -> anyhow::Result<ChildSpec> {
        let mut args = vec![
            format!("--primary-weight={}", self.primary_weight),
            format!("--call-timeout-ms={}", self.call_timeout_ms),
            format!("--max-in-flight={}", self.max_in_flight),
            format!("--request-timeout-ms={}", self.request_timeout_ms),
            format!("--hold-ttl-ms={}", self.hold_ttl_ms),
            format!("--shutdown-grace-ms={}", self.shutdown_grace_ms),
            format!("--ship-delay-ms={}", self.ship_delay_ms),
            format!("--db-pool-size={}", self.db_pool_size),
        ];
        if let (Some(workers), Some(time)) = (self.workers, self.service_time_ms) {
            args.push(format!("--workers={workers}"));
            args.push(format!("--service-time-ms={time}"));
        }
        if let Some(configmap) = &self.routing_configmap {
            args.push(format!("--routing-configmap={configmap}"));
        }
        if let Some(file) = &self.routing_file {
            // Children resolve it from the same directory.
            let file = std::path::absolute(file)
                .with_context(|| format!("--routing-file {}", file.display()))?;
            args.push(format!("--routing-file={}", file.display()));
        }
        if log_json {
            args.push("--log-json".to_owned());
        }
        let mut env = vec![("OMS_ADMIN_TOKEN".to_owned(), admin_token)];
        env.extend(database.map(|d| ("OMS_DATABASE_URL".to_owned(), d.url.clone())));
        env.extend(bus.map(|b| ("OMS_NATS_URL".to_owned(), b.url.clone())));
        Ok(ChildSpec {
            program: std::env::current_exe().context("cannot find the oms binary")?,
            args,
            env,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        })
    }

    fn options(
        &self,
        services: Vec<(String, SocketAddr)>,
        peers: Peers,
        database: Option<DatabaseConfig>,
        bus: Option<BusConfig>,
    ) -> anyhow::Result<up::RunOptions> {
        Ok(up::RunOptions {
            services,
            peers,
            admin_token: self.admin_token(),
            routing_source: self.routing_source()?,
            initial_routing: payment_routing(self.primary_weight),
            call_timeout: Duration::from_millis(self.call_timeout_ms),
            limits: homeostat_oms::admission::Limits {
                max_in_flight: usize::try_from(self.max_in_flight)?,
                request_timeout: Duration::from_millis(self.request_timeout_ms),
                capacity: match (self.workers, self.service_time_ms) {
                    (Some(workers), Some(time)) => Some(homeostat_oms::capacity::Capacity {
                        workers: usize::try_from(workers)?,
                        service_time: Duration::from_millis(time),
                    }),
                    _ => None,
                },
            },
            hold_ttl: Duration::from_millis(self.hold_ttl_ms),
            ship_delay: Duration::from_millis(self.ship_delay_ms),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            database,
            bus,
        })
    }
}

impl Command {
    /// The OpenTelemetry service name, for commands that serve.
    fn service_name(&self) -> Option<&'static str> {
        Some(match self {
            Command::Up { .. } => "oms-sample",
            Command::Orders(_) => "orders",
            Command::Inventory(_) => "inventory",
            Command::Tax(_) => "tax",
            Command::PaymentPrimary(_) => "payment-primary",
            Command::PaymentSecondary(_) => "payment-secondary",
            Command::Fulfillment(_) => "fulfillment",
            Command::Notifications(_) => "notifications",
            Command::Returns(_) => "returns",
            Command::Loadgen { .. } | Command::Audit { .. } => return None,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube and reqwest share rustls; ring is the one provider in this build.
    homeostat_oms::client::install_crypto_provider();
    // The OTLP exporter sends from its own thread with a blocking client, so
    // it is set up outside the async runtime.
    let telemetry = match cli
        .command
        .service_name()
        .map(|name| telemetry::init(name, cli.log_json))
    {
        Some(Err(err)) => {
            eprintln!("oms: {err:#}");
            return ExitCode::FAILURE;
        }
        Some(Ok(guard)) => Some(guard),
        None => None,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("oms: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    drop(runtime);
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("oms: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let log_json = cli.log_json;
    match cli.command {
        Command::Up {
            base_port,
            durable,
            replicas,
            common,
        } => {
            // Checked before anything starts.
            let layout = (replicas > 1)
                .then(|| layout::Layout::new(base_port, replicas))
                .transpose()?;
            let last = u32::from(base_port) + OMS_SERVICES.len() as u32 - 1;
            anyhow::ensure!(
                last <= u32::from(u16::MAX),
                "--base-port {base_port} leaves no room for 8 services"
            );
            let services = OMS_SERVICES
                .iter()
                .zip(base_port..)
                .map(|(s, port)| {
                    (
                        (*s).to_owned(),
                        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    )
                })
                .collect();
            // The quick path stays one command: without a database URL, a
            // throwaway PostgreSQL lives as long as this process.
            let local = match common.database_url {
                Some(_) => None,
                None => Some(
                    LocalPostgres::start_with(if durable {
                        Durability::Full
                    } else {
                        Durability::Throwaway
                    })
                    .await?,
                ),
            };
            if let Some(local) = &local {
                println!("{:<18} {}", "postgres", local.url());
            }
            let database = common.database(local.as_ref().map(LocalPostgres::url));
            // And a throwaway NATS server, without a NATS URL.
            let local_nats = match common.nats_url {
                Some(_) => None,
                None => Some(LocalNats::start().await?),
            };
            if let Some(local_nats) = &local_nats {
                println!("{:<18} {}", "nats", local_nats.url());
            }
            let bus = common.bus(local_nats.as_ref().map(LocalNats::url));
            let result = if let Some(layout) = layout {
                let spec = common.child_spec(
                    common.admin_token(),
                    database.as_ref(),
                    bus.as_ref(),
                    log_json,
                )?;
                replicas::run(layout, spec, shutdown_signal()).await
            } else {
                up::run(
                    common.options(services, Peers::local(base_port), database, bus)?,
                    shutdown_signal(),
                )
                .await
            };
            drop(local_nats);
            drop(local);
            result
        }
        Command::Orders(args) => serve("orders", args).await,
        Command::Inventory(args) => serve("inventory", args).await,
        Command::Tax(args) => serve("tax", args).await,
        Command::PaymentPrimary(args) => serve("payment-primary", args).await,
        Command::PaymentSecondary(args) => serve("payment-secondary", args).await,
        Command::Fulfillment(args) => serve("fulfillment", args).await,
        Command::Notifications(args) => serve("notifications", args).await,
        Command::Returns(args) => serve("returns", args).await,
        Command::Audit {
            target,
            grace_seconds,
            json,
        } => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&target)
                .await
                .context("cannot connect to the OMS database")?;
            let audit = homeostat_oms::audit::run(&pool, Duration::from_secs(grace_seconds))
                .await
                .context("cannot read the books (is this the OMS database?)")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&audit)?);
            } else {
                println!("{}", audit.render());
            }
            anyhow::ensure!(audit.passed, "the books do not balance");
            Ok(())
        }
        Command::Loadgen {
            target,
            rate,
            duration,
            new_orders,
            lookups,
            quotes,
            seed,
            json,
        } => {
            anyhow::ensure!(
                duration.is_finite() && duration > 0.0,
                "--duration must be above 0"
            );
            let options = LoadOptions {
                target,
                rate,
                duration: Duration::from_secs_f64(duration),
                new_order_percent: new_orders,
                lookup_percent: lookups,
                quote_percent: quotes,
                seed,
                ..LoadOptions::default()
            };
            let report = loadgen::run(&options).await?;
            println!("{}", report.summary());
            if json {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(())
        }
    }
}

async fn serve(service: &str, args: ServiceArgs) -> anyhow::Result<()> {
    let mut peers = Peers::from_template(&args.peers);
    for (peer, urls) in &args.peer_replicas {
        peers.set_replicas(peer, urls.iter().map(String::as_str));
    }
    let options = args.common.options(
        vec![(service.to_owned(), args.listen)],
        peers,
        args.common.database(None),
        args.common.bus(None),
    )?;
    up::run(options, shutdown_signal()).await
}

/// Fires on Ctrl-C or SIGTERM.
fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        homeostat_telemetry::shutdown::requested().await;
        let _ = tx.send(true);
    });
    rx
}
