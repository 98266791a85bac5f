//! A count-bounded least-recently-used map, deterministic (ordered maps and a
//! use counter, no clock): the same operations always evict the same entries.

use std::collections::BTreeMap;

pub struct Lru<K: Ord + Clone, V> {
    entries: BTreeMap<K, (u64, V)>,
    by_use: BTreeMap<u64, K>,
    tick: u64,
    capacity: usize,
}

impl<K: Ord + Clone, V> Lru<K, V> {
    pub fn new(capacity: usize) -> Lru<K, V> {
        assert!(capacity > 0, "an LRU needs room for one entry");
        Lru {
            entries: BTreeMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.by_use.len());
        self.entries.len()
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn touch(&mut self, key: &K) {
        if let Some((used, _)) = self.entries.get_mut(key) {
            self.by_use.remove(used);
            self.tick += 1;
            *used = self.tick;
            self.by_use.insert(self.tick, key.clone());
        }
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.touch(key);
        self.entries.get_mut(key).map(|(_, value)| value)
    }

    /// Insert (or replace) `key`; returns what was evicted to make room.
    pub fn insert(&mut self, key: K, value: V) -> Vec<(K, V)> {
        self.remove(&key);
        let mut evicted = Vec::new();
        while self.entries.len() >= self.capacity {
            let (_, oldest) = self
                .by_use
                .pop_first()
                .expect("entries and use order agree");
            let (_, value) = self
                .entries
                .remove(&oldest)
                .expect("entries and use order agree");
            evicted.push((oldest, value));
        }
        self.tick += 1;
        self.by_use.insert(self.tick, key.clone());
        self.entries.insert(key, (self.tick, value));
        debug_assert!(self.len() <= self.capacity);
        evicted
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (used, value) = self.entries.remove(key)?;
        self.by_use.remove(&used);
        Some(value)
    }

    /// Remove every entry whose key matches.
    pub fn remove_where(&mut self, mut matches: impl FnMut(&K) -> bool) -> usize {
        let doomed: Vec<K> = self
            .entries
            .keys()
            .filter(|key| matches(key))
            .cloned()
            .collect();
        for key in &doomed {
            self.remove(key);
        }
        doomed.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_use.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        assert!(lru.insert("a", 1).is_empty());
        assert!(lru.insert("b", 2).is_empty());
        assert_eq!(lru.get_mut(&"a"), Some(&mut 1));
        assert_eq!(lru.insert("c", 3), vec![("b", 2)]);
        assert!(lru.contains(&"a") && lru.contains(&"c") && !lru.contains(&"b"));
        assert_eq!(lru.remove_where(|k| *k == "a"), 1);
        assert_eq!(lru.len(), 1);
    }

    proptest! {
        #[test]
        fn never_exceeds_capacity(capacity in 1usize..5, keys in proptest::collection::vec(0u8..8, 0..50)) {
            let mut lru = Lru::new(capacity);
            for (index, key) in keys.iter().enumerate() {
                if index % 3 == 0 {
                    lru.get_mut(key);
                } else {
                    lru.insert(*key, index);
                }
                prop_assert!(lru.len() <= capacity);
            }
        }
    }
}
