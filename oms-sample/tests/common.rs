//! `oms up` as a real process on free loopback ports, for the integration tests.

#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use homeostat_api::oms::OMS_SERVICES;
use homeostat_test_support::process::terminate;
use homeostat_test_support::wait_until;
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct Oms {
    child: Child,
    pub base_port: u16,
    pub http: reqwest::Client,
    log: tempfile::NamedTempFile,
}

/// Eight consecutive free loopback ports.
fn free_base_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16 % 200) * 100;
    for _ in 0..200 {
        let base = 20_000 + (seed + NEXT.fetch_add(10, Ordering::SeqCst)) % 40_000;
        let free = (0..OMS_SERVICES.len() as u16)
            .all(|i| TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no 8 consecutive free loopback ports found");
}

impl Oms {
    /// Starts `oms up` with `extra` arguments and waits until every service is ready.
    pub async fn start(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[]).await
    }

    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        homeostat_oms::client::install_crypto_provider();
        let base_port = free_base_port();
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
            .stdout(Stdio::from(log.reopen().expect("log")))
            .stderr(Stdio::from(log.reopen().expect("log")))
            .spawn()
            .expect("spawn oms up");
        let oms = Self {
            child,
            base_port,
            http: reqwest::Client::new(),
            log,
        };
        for (i, service) in OMS_SERVICES.iter().enumerate() {
            let url = format!("http://127.0.0.1:{}/readyz", base_port + i as u16);
            let http = oms.http.clone();
            wait_until(
                &format!("{service} ready"),
                Duration::from_secs(30),
                Duration::from_millis(50),
                || {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        match http.get(&url).send().await {
                            Ok(r) if r.status().is_success() => Ok(()),
                            Ok(r) => Err(r.status().to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                },
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
        self.http
            .get(format!("{}/metrics", self.url(service)))
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
    /// Injects `fault` (a FaultRequest as JSON) into `service`.
    pub async fn inject(&self, service: &str, fault: &Value) {
        let response = self
            .http
            .post(format!("{}/admin/faults", self.url(service)))
            .bearer_auth(ADMIN_TOKEN)
            .json(fault)
            .send()
            .await
            .expect("post a fault");
        assert_eq!(response.status().as_u16(), 201, "fault on {service}");
    }
}
