//! The reference OMS's routing table as stored in its ConfigMap: one data key
//! per route and backend, `<route>.<backend>`, holding an integer weight.
//! A key per backend lets a remediation change one weight with one small patch.
//!
//! ```yaml
//! data:
//!   payment.payment-primary: "100"
//!   payment.payment-secondary: "0"
//! ```

use std::collections::BTreeMap;

/// The route `orders` uses for payment calls.
pub const PAYMENT_ROUTE: &str = "payment";
/// The payment backends, in their default preference order.
pub const PAYMENT_BACKENDS: [&str; 2] = ["payment-primary", "payment-secondary"];

/// The ConfigMap data key holding `backend`'s weight on `route`.
pub fn routing_key(route: &str, backend: &str) -> String {
    format!("{route}.{backend}")
}

/// Weights per backend for every route, e.g. `payment → {payment-primary: 90, payment-secondary: 10}`.
pub type RoutingTable = BTreeMap<String, BTreeMap<String, u32>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("routing key {0:?} is not of the form <route>.<backend>")]
    BadKey(String),
    #[error("weight {value:?} of {key:?} is not an integer from 0 to 100")]
    BadWeight { key: String, value: String },
}

/// Parses ConfigMap data into a routing table. Any bad entry fails the whole
/// parse, so a typo never silently shifts traffic.
pub fn parse_routing_data(data: &BTreeMap<String, String>) -> Result<RoutingTable, RoutingError> {
    let mut table = RoutingTable::new();
    for (key, value) in data {
        let (route, backend) = key
            .split_once('.')
            .filter(|(r, b)| !r.is_empty() && !b.is_empty())
            .ok_or_else(|| RoutingError::BadKey(key.clone()))?;
        let weight = value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|w| *w <= 100)
            .ok_or_else(|| RoutingError::BadWeight {
                key: key.clone(),
                value: value.clone(),
            })?;
        table
            .entry(route.to_owned())
            .or_default()
            .insert(backend.to_owned(), weight);
    }
    Ok(table)
}

/// Renders a routing table as ConfigMap data.
pub fn render_routing_data(table: &RoutingTable) -> BTreeMap<String, String> {
    table
        .iter()
        .flat_map(|(route, backends)| {
            backends
                .iter()
                .map(move |(backend, weight)| (routing_key(route, backend), weight.to_string()))
        })
        .collect()
}

/// The payment route with `primary_weight` percent to payment-primary and the rest to payment-secondary.
pub fn payment_routing(primary_weight: u32) -> RoutingTable {
    let primary = primary_weight.min(100);
    let mut backends = BTreeMap::new();
    backends.insert(PAYMENT_BACKENDS[0].to_owned(), primary);
    backends.insert(PAYMENT_BACKENDS[1].to_owned(), 100 - primary);
    RoutingTable::from([(PAYMENT_ROUTE.to_owned(), backends)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_configmap_data() {
        let table = payment_routing(70);
        let data = render_routing_data(&table);
        assert_eq!(
            data.get("payment.payment-primary").map(String::as_str),
            Some("70")
        );
        assert_eq!(
            data.get("payment.payment-secondary").map(String::as_str),
            Some("30")
        );
        assert_eq!(parse_routing_data(&data), Ok(table));
    }

    #[test]
    fn backend_names_may_contain_dots_after_the_route() {
        let data = BTreeMap::from([("payment.pay.v2".to_owned(), "5".to_owned())]);
        let table = parse_routing_data(&data).expect("parse");
        assert_eq!(table["payment"]["pay.v2"], 5);
    }

    #[test]
    fn bad_entries_are_rejected_with_the_key() {
        for (key, value) in [
            ("payment", "10"),
            (".x", "1"),
            ("payment.a", "101"),
            ("payment.a", "-1"),
            ("payment.a", "ten"),
        ] {
            let data = BTreeMap::from([(key.to_owned(), value.to_owned())]);
            let err = parse_routing_data(&data).expect_err(key);
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
