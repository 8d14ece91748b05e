//! A map that forgets its oldest entries past a capacity, so that in-memory
//! service state stays bounded under sustained load.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Entries each service keeps (orders, reservations, authorisations …).
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct BoundedMap<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> Default for BoundedMap<K, V> {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Inserts or replaces; returns the entries evicted to make room.
    pub fn insert(&mut self, key: K, value: V) -> Vec<(K, V)> {
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        let mut evicted = Vec::new();
        while self.entries.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(value) = self.entries.remove(&oldest) {
                evicted.push((oldest, value));
            }
        }
        evicted
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_entries_past_capacity() {
        let mut map = BoundedMap::with_capacity(2);
        assert!(map.insert("a", 1).is_empty());
        assert!(map.insert("b", 2).is_empty());
        assert_eq!(map.insert("c", 3), vec![("a", 1)]);
        assert_eq!(map.get(&"a"), None);
        assert_eq!(map.get(&"c"), Some(&3));
        // Replacing keeps the entry's age.
        assert!(map.insert("b", 20).is_empty());
        assert_eq!(map.insert("d", 4), vec![("b", 20)]);
        assert_eq!(map.len(), 2);
    }
}
