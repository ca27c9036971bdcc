//! A governor state store that holds at most a fixed number of keys, so a
//! flood from ever new client addresses cannot grow the rate limiter's
//! memory without bound.
//!
//! Each key's state is its GCRA "theoretical arrival time" (TAT): the
//! smaller it is, the more of its budget the key has back. When the store
//! is full and a new key arrives, the half with the smallest TAT goes
//! (fully recovered keys, indistinguishable from new ones, first). A
//! forgotten key starts again with a full budget, the least costly loss:
//! those keys had the most budget left. Eviction costs one pass over the
//! map per `capacity / 2` new keys. Housekeeping also drops recovered keys
//! every minute ([`ShrinkableKeyedStateStore::retain_recent`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;

/// Rate-limiting states for at most `capacity` keys.
#[derive(Debug)]
pub struct BoundedStateStore<K> {
    states: Mutex<HashMap<K, Nanos>>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> BoundedStateStore<K> {
    /// An empty store for at most `capacity` keys (at least 2).
    pub fn new(capacity: usize) -> BoundedStateStore<K> {
        BoundedStateStore {
            states: Mutex::new(HashMap::new()),
            capacity: capacity.max(2),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Nanos>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room: forgets the half of the keys with the most budget left.
    fn evict(&self, states: &mut HashMap<K, Nanos>) {
        let mut tats: Vec<Nanos> = states.values().copied().collect();
        let middle = tats.len() / 2;
        let (_, median, _) = tats.select_nth_unstable(middle);
        let median = *median;
        states.retain(|_, tat| *tat > median);
        if states.len() >= self.capacity {
            // Every TAT equal: no order to keep, start over.
            states.clear();
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStateStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut states = self.lock();
        let previous = states.get(key).copied();
        let (outcome, tat) = f(previous)?;
        if previous.is_none() && states.len() >= self.capacity {
            self.evict(&mut states);
        }
        states.insert(key.clone(), tat);
        Ok(outcome)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStateStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.lock().retain(|_, tat| *tat > drop_below);
    }

    fn shrink_to_fit(&self) {
        self.lock().shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
