//! A small read-through cache for what every webhook and API call looks up (numbers, Twilio
//! credentials, API keys). Entries live a short time, so a change made by another replica is
//! seen within `ttl`; a change made here clears the cache at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub struct Cache<K, V> {
    ttl: Duration,
    max: usize,
    map: RwLock<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Cache {
            ttl,
            max,
            map: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(k)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, k: K, v: V) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.max {
                map.clear();
            }
        }
        map.insert(k, (Instant::now(), v));
    }

    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let c = Cache::new(Duration::from_millis(0), 10);
        c.put(1, "a");
        assert_eq!(c.get(&1), None, "a zero ttl keeps nothing");
        let c = Cache::new(Duration::from_secs(60), 2);
        c.put(1, "a");
        c.put(2, "b");
        assert_eq!(c.get(&1), Some("a"));
        c.put(3, "c");
        assert_eq!(c.get(&3), Some("c"), "a full cache still takes new entries");
        c.clear();
        assert_eq!(c.get(&3), None);
    }
}
