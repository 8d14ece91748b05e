//! `oms up` as a real process on free loopback ports, for the integration tests.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use homeostat_api::oms::OMS_SERVICES;
use homeostat_test_support::process::terminate;
use homeostat_test_support::{wait_for_ok, wait_until};
use serde_json::{Value, json};
use sqlx::PgPool;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct Oms {
    child: Child,
    pub base_port: u16,
    pub http: reqwest::Client,
    log: tempfile::NamedTempFile,
}

fn append_to(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the log")
}

impl Oms {
    /// Starts `oms up` with `extra` arguments and waits until every service is ready.
    pub async fn start(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[]).await
    }

    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        homeostat_oms::client::install_crypto_provider();
        // With --replicas N: the front doors, then N blocks of replicas.
        let replicas: u16 = extra
            .iter()
            .position(|a| *a == "--replicas")
            .and_then(|i| extra.get(i + 1)?.parse().ok())
            .unwrap_or(1);
        let blocks = if replicas > 1 { replicas + 1 } else { 1 };
        let base_port = homeostat_test_support::free_port_block(OMS_SERVICES.len() as u16 * blocks)
            .expect("free ports for oms up");
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_oms"))
            .args([
                "up",
                "--base-port",
                &base_port.to_string(),
                "--admin-token",
                ADMIN_TOKEN,
            ])
            .args(extra)
            .envs(env.iter().copied())
            // Appending, so that the services' logs and the supervisor's
            // lines do not overwrite each other.
            .stdout(Stdio::from(append_to(log.path())))
            .stderr(Stdio::from(append_to(log.path())))
            .spawn()
            .expect("spawn oms up");
        let oms = Self {
            child,
            base_port,
            http: reqwest::Client::new(),
            log,
        };
        for (i, service) in OMS_SERVICES.iter().enumerate() {
            wait_for_ok(
                &format!("{service} ready"),
                &format!("http://127.0.0.1:{}/readyz", base_port + i as u16),
                Duration::from_secs(30),
                Duration::from_millis(50),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}\n--- oms log ---\n{}", oms.log()));
        }
        oms
    }

    /// The `oms up` process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The base URL of `service`.
    pub fn url(&self, service: &str) -> String {
        let index = OMS_SERVICES
            .iter()
            .position(|s| *s == service)
            .expect("OMS service");
        format!("http://127.0.0.1:{}", self.base_port + index as u16)
    }

    pub async fn post(&self, service: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url(service)))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, service: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url(service)))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The inventory reservation an order made.
    pub async fn reservation_of(&self, order: &Value) -> Value {
        let id = order["reservation_id"]
            .as_str()
            .expect("the order has a reservation");
        let (status, reservation) = self
            .get("inventory", &format!("/v1/reservations/{id}"))
            .await;
        assert_eq!(status, 200, "{reservation}");
        reservation
    }

    /// The payment authorisation an order made, at the provider that holds it.
    pub async fn authorization_of(&self, order: &Value) -> Value {
        let provider = order["payment_provider"]
            .as_str()
            .expect("the order chose a provider");
        let id = order["authorization_id"]
            .as_str()
            .expect("the order was authorised");
        let (status, auth) = self
            .get(provider, &format!("/v1/authorizations/{id}"))
            .await;
        assert_eq!(status, 200, "{auth}");
        auth
    }

    pub async fn metrics(&self, service: &str) -> String {
        self.metrics_at(&self.url(service)).await
    }

    /// The metrics of replica `index` of `service` under `--replicas`.
    pub async fn replica_metrics(&self, service: &str, index: u16) -> String {
        self.metrics_at(&self.replica_url(service, index)).await
    }

    async fn metrics_at(&self, base: &str) -> String {
        self.http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn order(&self, sku: &str, card: &str) -> Value {
        let (status, order) = self
            .post("orders", "/v1/orders", &order_request(sku, 1, card))
            .await;
        assert_eq!(status, 201, "{order}");
        order
    }
}

impl Drop for Oms {
    /// SIGTERM first, so that `oms up` stops the PostgreSQL it started and
    /// deletes its files.
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}
pub fn order_request(sku: &str, quantity: u32, card: &str) -> Value {
    json!({
        "customer_id": "cust-1",
        "lines": [{ "sku": sku, "quantity": quantity }],
        "region": "CENTRAL",
        "card_token": card,
    })
}

/// Sum of a histogram's `_count` over series whose labels contain all of `labels`.
pub fn histogram_count(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    sum_series(metrics, &format!("{name}_count{{"), labels)
}

/// Observations slower than about `seconds`: `_count` minus the largest
/// bucket whose bound is at most `seconds`.
pub fn observations_above(metrics: &str, name: &str, seconds: f64, labels: &[&str]) -> f64 {
    let bucket_prefix = format!("{name}_bucket{{");
    let bound = metrics
        .lines()
        .filter(|l| l.starts_with(&bucket_prefix))
        .filter_map(|l| {
            let start = l.find("le=\"")? + 4;
            let end = start + l[start..].find('"')?;
            let le = &l[start..end];
            le.parse::<f64>()
                .ok()
                .filter(|v| *v <= seconds)
                .map(|v| (v, le.to_owned()))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, le)| le)
        .expect("a bucket below the threshold");
    let le_label = format!("le=\"{bound}\"");
    let mut with_le = labels.to_vec();
    with_le.push(&le_label);
    histogram_count(metrics, name, labels) - sum_series(metrics, &bucket_prefix, &with_le)
}

fn sum_series(metrics: &str, prefix: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `oms audit` on `database_url` with `grace_seconds`: whether it passed,
/// and its JSON.
pub fn audit(database_url: &str, grace_seconds: u64) -> (bool, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["audit", "--json", "--target", database_url])
        .args(["--grace-seconds", &grace_seconds.to_string()])
        .output()
        .expect("run oms audit");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        json!({
            "stdout": String::from_utf8_lossy(&output.stdout),
            "stderr": String::from_utf8_lossy(&output.stderr),
        })
    });
    (output.status.success(), report)
}

/// The names of the checks an `oms audit --json` report failed.
pub fn failed_checks(report: &Value) -> Vec<&str> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] == false)
        .filter_map(|c| c["name"].as_str())
        .collect()
}

impl Oms {
    /// SIGTERM, as an orchestrator stops a pod; returns at once.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGKILL: every service dies at once, mid-work, as in a node crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL and a nats-server of the test's own, outliving the `oms up`
/// processes started on them.
pub struct Backing {
    pub postgres: homeostat_oms::db::local::LocalPostgres,
    pub nats: homeostat_oms::bus::local::LocalNats,
}

impl Backing {
    pub async fn start() -> Self {
        Self {
            postgres: homeostat_oms::db::local::LocalPostgres::start()
                .await
                .expect("PostgreSQL"),
            nats: homeostat_oms::bus::local::LocalNats::start()
                .await
                .expect("NATS"),
        }
    }

    /// `oms up` on this database and broker; shipping far off, so that the
    /// events of a placed order are exactly created and confirmed/rejected.
    pub async fn oms(&self) -> Oms {
        self.oms_with(&["--ship-delay-ms", "3600000"]).await
    }

    /// `oms up` on this database and broker with `extra` arguments.
    pub async fn oms_with(&self, extra: &[&str]) -> Oms {
        let nats = self.nats.url();
        let mut args = vec!["--database-url", self.postgres.url(), "--nats-url", &nats];
        args.extend_from_slice(extra);
        Oms::start(&args).await
    }

    pub async fn db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.postgres.url())
            .await
            .expect("connect to the test database")
    }

    pub async fn stream_messages(&self) -> u64 {
        let client = async_nats::connect(self.nats.url()).await.expect("NATS");
        let mut stream = async_nats::jetstream::new(client)
            .get_stream(homeostat_oms::bus::STREAM)
            .await
            .expect("the order event stream");
        stream.info().await.expect("stream info").state.messages
    }
}

impl Oms {
    /// The URL of replica `index` of `service` under `--replicas`.
    pub fn replica_url(&self, service: &str, index: u16) -> String {
        let position = OMS_SERVICES
            .iter()
            .position(|s| *s == service)
            .expect("OMS service") as u16;
        let port = self.base_port + OMS_SERVICES.len() as u16 * (index + 1) + position;
        format!("http://127.0.0.1:{port}")
    }

    /// The process of replica `index` of `service` under `--replicas`, as
    /// the supervisor last announced it (`orders#1  http://… (pid N)`).
    pub fn replica_pid(&self, service: &str, index: u16) -> Option<u32> {
        let label = format!("{service}#{index} ");
        self.log()
            .lines()
            .filter(|line| line.starts_with(&label))
            .filter_map(|line| line.rsplit_once("(pid ")?.1.strip_suffix(')')?.parse().ok())
            .next_back()
    }

    /// SIGKILLs replica `index` of `service`, then waits until the supervisor
    /// has started it again and it is ready.
    pub async fn crash_replica(&self, service: &str, index: u16) {
        let pid = self
            .replica_pid(service, index)
            .unwrap_or_else(|| panic!("no pid of {service}#{index} in the log:\n{}", self.log()));
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -KILL {pid}");
        let ready = format!("{}/readyz", self.replica_url(service, index));
        wait_until(
            &format!("{service}#{index} restarted"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                match self.replica_pid(service, index) {
                    Some(now) if now != pid => match self.http.get(&ready).send().await {
                        Ok(r) if r.status().is_success() => Ok(()),
                        other => Err(format!("pid {now} not ready: {other:?}")),
                    },
                    _ => Err(format!("still pid {pid}")),
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- oms log ---\n{}", self.log()));
    }

    /// Injects `fault` (a FaultRequest as JSON) into `service`.
    pub async fn inject(&self, service: &str, fault: &Value) {
        self.inject_at(&self.url(service), fault).await;
    }

    /// Injects `fault` into replica `index` of `service` alone.
    pub async fn inject_replica(&self, service: &str, index: u16, fault: &Value) {
        self.inject_at(&self.replica_url(service, index), fault)
            .await;
    }

    /// Ends every fault in force on `service`.
    pub async fn clear_faults(&self, service: &str) {
        let response = self
            .http
            .delete(format!("{}/admin/faults", self.url(service)))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("delete the faults");
        assert!(response.status().is_success(), "clear faults on {service}");
    }

    async fn inject_at(&self, base: &str, fault: &Value) {
        let response = self
            .http
            .post(format!("{base}/admin/faults"))
            .bearer_auth(ADMIN_TOKEN)
            .json(fault)
            .send()
            .await
            .expect("post a fault");
        assert_eq!(response.status().as_u16(), 201, "fault at {base}");
    }
}

/// Longer than the saga lease (30 s), which an abandoned order waits out.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Waits until `oms audit` passes with no grace (events may still be on
/// their way for a moment), or panics with its last report.
pub async fn books_balance(backing: &Backing) {
    let url = backing.postgres.url().to_owned();
    wait_until(
        "oms audit passes",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let url = url.clone();
            async move {
                match audit(&url, 0) {
                    (true, _) => Ok(()),
                    (false, report) => Err(report.to_string()),
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

pub async fn orders_in(db: &PgPool, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders.orders WHERE state = $1")
        .bind(state)
        .fetch_one(db)
        .await
        .expect("count orders")
}

/// Waits until no order is in `state`.
pub async fn none_left(db: &PgPool, state: &str) {
    wait_until(
        &format!("no order {state}"),
        SETTLE_TIMEOUT,
        Duration::from_millis(200),
        || async move {
            match orders_in(db, state).await {
                0 => Ok(()),
                n => Err(format!("{n} orders {state}")),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Orders placed through `orders`' front door at a steady pace, each on its
/// own, until stopped: load that goes on whatever a crash does to some of it.
pub struct Load {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Tally>,
}

/// How the orders of a [`Load`] were answered.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answers by status.
    pub answered: std::collections::BTreeMap<u16, u64>,
    /// Requests whose connection broke or timed out without an answer.
    pub unanswered: u64,
}

impl Tally {
    /// Statuses that say the request was wrong or the service broke, not
    /// that it was busy or unavailable for a moment.
    pub fn failures(&self) -> Vec<(u16, u64)> {
        self.answered
            .iter()
            .filter(|(status, _)| !matches!(status, 200 | 201 | 202 | 503))
            .map(|(s, n)| (*s, *n))
            .collect()
    }
}

/// Well-stocked SKUs: orders for them run out of nothing.
pub const PLENTIFUL: &[&str] = &["SKU-MUG", "SKU-TSHIRT", "SKU-HOODIE", "SKU-BOTTLE"];

impl Load {
    /// `per_second` orders of one unit each, of `skus` in turn.
    pub fn start(oms: &Oms, per_second: u32, skus: &'static [&'static str]) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        // A connection per order, so that the front door spreads them over
        // the replicas (a kept-alive one stays on the replica it reached).
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("HTTP client");
        let url = format!("{}/v1/orders", oms.url("orders"));
        let task = tokio::spawn(async move {
            let mut pace =
                tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second)));
            let mut requests = tokio::task::JoinSet::new();
            let mut sent = 0usize;
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => break,
                    _ = pace.tick() => {}
                }
                let body = order_request(skus[sent % skus.len()], 1, "tok_visa");
                sent += 1;
                let request = http.post(&url).timeout(Duration::from_secs(60)).json(&body);
                requests.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
            }
            let mut tally = Tally::default();
            while let Some(answer) = requests.join_next().await {
                match answer.expect("request task") {
                    Ok(status) => *tally.answered.entry(status).or_default() += 1,
                    Err(_) => tally.unanswered += 1,
                }
            }
            tally
        });
        Self { stop, task }
    }

    /// Stops sending and waits for every answer.
    pub async fn stop(self) -> Tally {
        let _ = self.stop.send(true);
        self.task.await.expect("load task")
    }
}

/// Waits until `count` more orders than now are in the database.
pub async fn more_orders(db: &PgPool, count: i64) {
    let total = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders.orders")
            .fetch_one(db)
            .await
            .map_err(|e| e.to_string())
    };
    let start = total().await.expect("count orders");
    wait_until(
        &format!("{count} more orders"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            match total().await? {
                now if now >= start + count => Ok(()),
                now => Err(format!("{} more", now - start)),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}
