//! The live routing table `orders` uses to pick a payment provider, and the
//! sources that keep it current: a ConfigMap watched through the Kubernetes
//! API (changes apply within a second), or a file for local runs and tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use homeostat_api::routing::{RoutingTable, parse_routing_data};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WeightLabels {
    route: String,
    backend: String,
}

/// Weighted choice between backends, by smooth weighted round-robin: over any
/// window of `sum(weights)` picks each backend gets exactly its weight, so a
/// change shows in the traffic at once and without randomness.
#[derive(Debug, Default)]
struct RouteState {
    weights: BTreeMap<String, u32>,
    current: BTreeMap<String, i64>,
}

impl RouteState {
    fn pick(&mut self) -> Option<String> {
        let total: i64 = self.weights.values().map(|w| i64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut best: Option<(&String, i64)> = None;
        for (backend, weight) in &self.weights {
            let current = self.current.entry(backend.clone()).or_default();
            *current += i64::from(*weight);
            if best.is_none_or(|(_, b)| *current > b) {
                best = Some((backend, *current));
            }
        }
        let chosen = best.map(|(b, _)| b.clone())?;
        if let Some(current) = self.current.get_mut(&chosen) {
            *current -= total;
        }
        Some(chosen)
    }
}

/// The routing table in force, shared by request handlers and the watcher.
#[derive(Clone)]
pub struct LiveRouting {
    routes: Arc<Mutex<BTreeMap<String, RouteState>>>,
    weights_metric: Family<WeightLabels, Gauge>,
}

impl LiveRouting {
    pub fn new(initial: &RoutingTable) -> Self {
        let routing = Self {
            routes: Arc::default(),
            weights_metric: Family::default(),
        };
        routing.replace(initial);
        routing
    }

    /// `oms_routing_weight{route,backend}`: what the table says now.
    pub fn weights_metric(&self) -> impl prometheus_client::registry::Metric + use<> {
        self.weights_metric.clone()
    }

    /// Installs a new table; routes it does not mention keep their weights.
    pub fn replace(&self, table: &RoutingTable) {
        let mut routes = crate::sync::lock(&self.routes);
        for (route, weights) in table {
            let state = routes.entry(route.clone()).or_default();
            if &state.weights != weights {
                *state = RouteState {
                    weights: weights.clone(),
                    current: BTreeMap::new(),
                };
                tracing::info!(route, ?weights, "routing table changed");
            }
            for (backend, weight) in weights {
                self.weights_metric
                    .get_or_create(&WeightLabels {
                        route: route.clone(),
                        backend: backend.clone(),
                    })
                    .set(i64::from(*weight));
            }
        }
    }

    /// The backend for the next call on `route`, or `fallback` when the route
    /// is unknown or all its weights are 0.
    pub fn pick(&self, route: &str, fallback: &str) -> String {
        let mut routes = crate::sync::lock(&self.routes);
        routes
            .get_mut(route)
            .and_then(RouteState::pick)
            .unwrap_or_else(|| fallback.to_owned())
    }

    /// The weights of `route`.
    pub fn weights(&self, route: &str) -> BTreeMap<String, u32> {
        let routes = crate::sync::lock(&self.routes);
        routes
            .get(route)
            .map(|s| s.weights.clone())
            .unwrap_or_default()
    }
}

/// Where the table comes from.
#[derive(Debug, Clone)]
pub enum RoutingSource {
    /// Fixed at start.
    Static,
    /// A file of ConfigMap-style lines `payment.payment-primary=90`, re-read
    /// when it changes. Replace it atomically (write a new file, then rename),
    /// or a half-written file may be read.
    File(PathBuf),
    /// A ConfigMap watched through the Kubernetes API.
    ConfigMap { namespace: String, name: String },
}

/// Follows `source` until the process ends, installing each valid table into
/// `routing`. An invalid table is logged and ignored: traffic keeps the last
/// good weights.
pub async fn follow(source: RoutingSource, routing: LiveRouting) -> anyhow::Result<()> {
    match source {
        RoutingSource::Static => {
            // Nothing to follow; stay alive like the other sources.
            std::future::pending::<()>().await;
            Ok(())
        }
        RoutingSource::File(path) => follow_file(path, routing).await,
        RoutingSource::ConfigMap { namespace, name } => {
            follow_configmap(namespace, name, routing).await
        }
    }
}

fn apply(data: &BTreeMap<String, String>, routing: &LiveRouting, origin: &str) {
    let checked = parse_routing_data(data)
        .map_err(|e| e.to_string())
        .and_then(
            |table| match table.iter().find(|(_, w)| w.values().all(|w| *w == 0)) {
                // Sending a route nowhere is never what an operator meant.
                Some((route, _)) => Err(format!("every weight of route {route:?} is 0")),
                None => Ok(table),
            },
        );
    match checked {
        Ok(table) => routing.replace(&table),
        Err(err) => tracing::error!(%origin, error = %err, "ignoring invalid routing table"),
    }
}

/// Parses `key=value` lines; blank lines and `#` comments are skipped.
pub fn parse_routing_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

async fn follow_file(path: PathBuf, routing: LiveRouting) -> anyhow::Result<()> {
    let origin = path.display().to_string();
    let mut last: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        match tokio::fs::read_to_string(&path).await {
            Ok(text) if last.as_ref() != Some(&text) => {
                apply(&parse_routing_file(&text), &routing, &origin);
                last = Some(text);
            }
            Ok(_) => {}
            Err(err) if last.is_some() => {
                tracing::warn!(%origin, error = %err, "routing file unreadable; keeping the last table");
                last = None;
            }
            Err(_) => {}
        }
    }
}

async fn follow_configmap(
    namespace: String,
    name: String,
    routing: LiveRouting,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let origin = format!("configmap {namespace}/{name}");
    let mut events = watcher(api, config).boxed();
    tracing::info!(%origin, "following the routing ConfigMap");
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                apply(&cm.data.unwrap_or_default(), &routing, &origin);
            }
            Ok(watcher::Event::Delete(_)) => {
                tracing::warn!(%origin, "routing ConfigMap deleted; keeping the last table");
            }
            Ok(_) => {}
            Err(err) => {
                // The watcher retries by itself after errors; say so once per error.
                tracing::warn!(%origin, error = %err, "watch error");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use homeostat_api::routing::payment_routing;

    use super::*;

    #[test]
    fn picks_follow_the_weights_exactly_over_a_window() {
        let routing = LiveRouting::new(&payment_routing(70));
        let picks: Vec<String> = (0..100).map(|_| routing.pick("payment", "x")).collect();
        let primary = picks.iter().filter(|p| *p == "payment-primary").count();
        assert_eq!(primary, 70);
        // Smooth: never more than three primary picks in a row at 70/30.
        let longest_run = picks
            .chunk_by(|a, b| a == b)
            .filter(|run| run[0] == "payment-primary")
            .map(<[String]>::len)
            .max();
        assert!(longest_run <= Some(3), "{longest_run:?}");
    }

    #[test]
    fn a_new_table_takes_effect_on_the_next_pick() {
        let routing = LiveRouting::new(&payment_routing(100));
        assert_eq!(routing.pick("payment", "x"), "payment-primary");
        routing.replace(&payment_routing(0));
        for _ in 0..10 {
            assert_eq!(routing.pick("payment", "x"), "payment-secondary");
        }
    }

    #[test]
    fn unknown_route_or_all_zero_weights_fall_back() {
        let routing = LiveRouting::new(&RoutingTable::new());
        assert_eq!(
            routing.pick("payment", "payment-primary"),
            "payment-primary"
        );
        let zero = RoutingTable::from([(
            "payment".to_owned(),
            BTreeMap::from([("a".to_owned(), 0), ("b".to_owned(), 0)]),
        )]);
        routing.replace(&zero);
        assert_eq!(
            routing.pick("payment", "payment-primary"),
            "payment-primary"
        );
    }

    #[test]
    fn routing_file_lines_parse_like_configmap_data() {
        let data = parse_routing_file(
            "# weights\npayment.payment-primary = 40\n\npayment.payment-secondary=60\n",
        );
        let table = parse_routing_data(&data).expect("valid");
        assert_eq!(table, payment_routing(40));
    }
}
