//! Orders in memory, with the idempotency keys that created them. Bounded:
//! the oldest orders are forgotten past [`MAX_ORDERS`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::services::Line;
use crate::services::tax::Quote;

/// Orders kept for lookups and returns.
pub const MAX_ORDERS: usize = crate::bounded::DEFAULT_CAPACITY;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// The saga is running.
    Pending,
    Confirmed,
    Rejected,
    Shipped,
    Returned,
}

impl OrderState {
    pub fn is_terminal_for_saga(self) -> bool {
        !matches!(self, OrderState::Pending)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub state: OrderState,
    /// Why the order was rejected, e.g. `payment_declined: …`.
    pub reason: Option<String>,
    pub lines: Vec<Line>,
    pub region: String,
    pub quote: Option<Quote>,
    /// The payment provider used: payment-primary or payment-secondary.
    pub payment_provider: Option<String>,
    pub authorization_id: Option<String>,
    pub reservation_id: Option<String>,
    pub shipment_id: Option<String>,
    /// Saga steps done and compensations run, in order.
    pub saga_log: Vec<String>,
    pub created_at: String,
}

/// What an idempotency key maps to: the order and a fingerprint of the request.
#[derive(Debug, Clone)]
struct KeyRecord {
    order_id: String,
    fingerprint: u64,
}

#[derive(Debug, PartialEq)]
pub enum Admission {
    /// A new order was stored and its saga must run.
    New(Order),
    /// The key was used before with the same request: here is that order.
    Replay(Order),
    /// The key was used before with a different request.
    KeyReused,
}

#[derive(Debug, Default)]
pub struct OrderStore {
    orders: HashMap<String, Order>,
    keys: HashMap<String, KeyRecord>,
    age: VecDeque<(String, Option<String>)>,
}

impl OrderStore {
    /// Stores `order` unless `key` was seen before.
    pub fn admit(&mut self, order: Order, key: Option<&str>, fingerprint: u64) -> Admission {
        if let Some(key) = key
            && let Some(record) = self.keys.get(key)
        {
            if record.fingerprint != fingerprint {
                return Admission::KeyReused;
            }
            if let Some(existing) = self.orders.get(&record.order_id) {
                return Admission::Replay(existing.clone());
            }
        }
        if let Some(key) = key {
            self.keys.insert(
                key.to_owned(),
                KeyRecord {
                    order_id: order.id.clone(),
                    fingerprint,
                },
            );
        }
        self.age
            .push_back((order.id.clone(), key.map(str::to_owned)));
        self.orders.insert(order.id.clone(), order.clone());
        while self.age.len() > MAX_ORDERS {
            if let Some((id, key)) = self.age.pop_front() {
                self.orders.remove(&id);
                if let Some(key) = key {
                    self.keys.remove(&key);
                }
            }
        }
        Admission::New(order)
    }

    pub fn get(&self, id: &str) -> Option<&Order> {
        self.orders.get(id)
    }

    /// Applies `change` to a stored order and returns the result.
    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut Order)) -> Option<Order> {
        let order = self.orders.get_mut(id)?;
        change(order);
        Some(order.clone())
    }

    pub fn count_by_state(&self) -> BTreeMap<OrderState, usize> {
        let mut counts = BTreeMap::new();
        for order in self.orders.values() {
            *counts.entry(order.state).or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str) -> Order {
        Order {
            id: id.to_owned(),
            customer_id: "c".into(),
            state: OrderState::Pending,
            reason: None,
            lines: vec![],
            region: "EAST".into(),
            quote: None,
            payment_provider: None,
            authorization_id: None,
            reservation_id: None,
            shipment_id: None,
            saga_log: vec![],
            created_at: String::new(),
        }
    }

    #[test]
    fn same_key_and_request_replays_the_order() {
        let mut store = OrderStore::default();
        assert!(matches!(
            store.admit(order("o1"), Some("k"), 1),
            Admission::New(_)
        ));
        assert_eq!(
            store.admit(order("o2"), Some("k"), 1),
            Admission::Replay(order("o1"))
        );
        assert!(store.get("o2").is_none());
    }

    #[test]
    fn same_key_with_another_request_is_refused() {
        let mut store = OrderStore::default();
        store.admit(order("o1"), Some("k"), 1);
        assert_eq!(store.admit(order("o2"), Some("k"), 2), Admission::KeyReused);
    }

    #[test]
    fn without_a_key_every_request_is_a_new_order() {
        let mut store = OrderStore::default();
        assert!(matches!(
            store.admit(order("o1"), None, 1),
            Admission::New(_)
        ));
        assert!(matches!(
            store.admit(order("o2"), None, 1),
            Admission::New(_)
        ));
        assert_eq!(store.count_by_state().get(&OrderState::Pending), Some(&2));
    }
}
