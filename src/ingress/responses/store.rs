//! Stored responses, for `previous_response_id` and `GET /v1/responses/{id}`: in memory,
//! bounded in count and in bytes, each kept for at most a time to live (a process's
//! conversations, not a database: a restart forgets them).
//!
//! A stored response keeps its answer (the `response` object, for `GET`) and its turn of the
//! conversation (the hub messages it added: its input items and the assistant's answer),
//! linked to the turn it continued, so a chain's history is shared, not copied per response.
//! Oldest first out: an entry past its time to live, or the oldest while over a bound.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::lock;

/// The store's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    /// The stored turns' JSON size, summed (an estimate of the memory they take).
    pub max_bytes: usize,
    pub ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000,
            max_bytes: 256 << 20,
            ttl: Duration::from_secs(6 * 3600),
        }
    }
}

/// One turn of a conversation: the hub messages it added, after its parent's.
#[derive(Debug)]
pub struct Turn {
    pub messages: Vec<Value>,
    pub parent: Option<Arc<Turn>>,
}

impl Turn {
    /// The conversation up to and including this turn, oldest message first.
    pub fn history(&self) -> Vec<Value> {
        let mut turns = vec![self];
        let mut at = self;
        while let Some(p) = &at.parent {
            turns.push(p);
            at = p;
        }
        turns
            .iter()
            .rev()
            .flat_map(|t| t.messages.iter().cloned())
            .collect()
    }
}

/// A stored response.
#[derive(Debug)]
pub struct Stored {
    /// The `response` object as it was answered.
    pub response: Value,
    pub turn: Arc<Turn>,
    /// The conversation key the client gave the chain (`prompt_cache_key`), carried to its
    /// later turns.
    pub conversation: Option<String>,
}

#[derive(Debug)]
struct Entry {
    stored: Arc<Stored>,
    at: Instant,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Ids in insertion order (a deleted id stays until it reaches the front).
    order: VecDeque<(String, Instant)>,
    bytes: usize,
}

/// The stored responses of this process.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    inner: Mutex<Inner>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(Limits::default())
    }
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        Store {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keep `stored` under `id`.
    pub fn insert(&self, id: String, stored: Stored) {
        self.insert_at(id, stored, Instant::now());
    }

    /// [`Store::insert`] at `now` (tests inject the clock).
    pub fn insert_at(&self, id: String, stored: Stored, now: Instant) {
        let bytes = id.len()
            + stored.response.to_string().len()
            + stored
                .turn
                .messages
                .iter()
                .map(|m| m.to_string().len())
                .sum::<usize>();
        let mut inner = lock(&self.inner);
        if let Some(old) = inner.map.remove(&id) {
            inner.bytes -= old.bytes;
        }
        inner.order.push_back((id.clone(), now));
        inner.bytes += bytes;
        inner.map.insert(
            id,
            Entry {
                stored: Arc::new(stored),
                at: now,
                bytes,
            },
        );
        self.evict(&mut inner, now);
    }

    /// The response stored under `id`, unless it expired.
    pub fn get(&self, id: &str) -> Option<Arc<Stored>> {
        self.get_at(id, Instant::now())
    }

    /// [`Store::get`] at `now`.
    pub fn get_at(&self, id: &str, now: Instant) -> Option<Arc<Stored>> {
        let mut inner = lock(&self.inner);
        self.evict(&mut inner, now);
        inner.map.get(id).map(|e| Arc::clone(&e.stored))
    }

    /// Forget `id`; whether it was stored.
    pub fn remove(&self, id: &str) -> bool {
        let mut inner = lock(&self.inner);
        match inner.map.remove(id) {
            Some(e) => {
                inner.bytes -= e.bytes;
                true
            }
            None => false,
        }
    }

    /// How many responses are stored.
    pub fn len(&self) -> usize {
        lock(&self.inner).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop what expired, then the oldest while over a bound.
    fn evict(&self, inner: &mut Inner, now: Instant) {
        while let Some((id, at)) = inner.order.front().cloned() {
            let live = inner.map.get(&id).filter(|e| e.at == at);
            let Some(entry) = live else {
                // Removed or replaced since: its place in the queue is stale.
                inner.order.pop_front();
                continue;
            };
            let expired = now.saturating_duration_since(entry.at) >= self.limits.ttl;
            let over =
                inner.map.len() > self.limits.max_entries || inner.bytes > self.limits.max_bytes;
            if !expired && !over {
                break;
            }
            inner.order.pop_front();
            if let Some(e) = inner.map.remove(&id) {
                inner.bytes -= e.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(text: &str, parent: Option<Arc<Turn>>) -> Stored {
        Stored {
            response: json!({"id": text}),
            turn: Arc::new(Turn {
                messages: vec![json!({"role": "user", "content": text})],
                parent,
            }),
            conversation: None,
        }
    }

    #[test]
    fn an_entry_expires_after_its_time_to_live() {
        let ttl = Duration::from_secs(60);
        let store = Store::new(Limits {
            ttl,
            ..Limits::default()
        });
        let t0 = Instant::now();
        store.insert_at("resp_a".into(), stored("a", None), t0);
        store.insert_at("resp_b".into(), stored("b", None), t0 + ttl / 2);
        assert!(store
            .get_at("resp_a", t0 + ttl - Duration::from_secs(1))
            .is_some());
        assert!(store.get_at("resp_a", t0 + ttl).is_none());
        assert!(store.get_at("resp_b", t0 + ttl).is_some());
        assert!(store.get_at("resp_b", t0 + ttl / 2 + ttl).is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn the_oldest_go_first_when_over_the_count_or_the_bytes() {
        let store = Store::new(Limits {
            max_entries: 2,
            ..Limits::default()
        });
        let now = Instant::now();
        for id in ["a", "b", "c"] {
            store.insert_at(id.into(), stored(id, None), now);
        }
        assert!(store.get_at("a", now).is_none());
        assert!(store.get_at("b", now).is_some() && store.get_at("c", now).is_some());

        let one = 1
            + json!({"id": "x"}).to_string().len()
            + json!({"role": "user", "content": "x"}).to_string().len();
        let store = Store::new(Limits {
            max_bytes: 2 * one,
            ..Limits::default()
        });
        for id in ["x", "y", "z"] {
            store.insert_at(id.into(), stored(id, None), now);
        }
        assert_eq!(store.len(), 2);
        assert!(store.get_at("x", now).is_none());
        // A removed entry frees its place.
        assert!(store.remove("y"));
        assert!(!store.remove("y"));
        store.insert_at("w".into(), stored("w", None), now);
        assert!(store.get_at("z", now).is_some() && store.get_at("w", now).is_some());
    }

    #[test]
    fn a_chain_shares_its_history_and_outlives_its_evicted_start() {
        let store = Store::new(Limits {
            max_entries: 1,
            ..Limits::default()
        });
        let now = Instant::now();
        store.insert_at("first".into(), stored("one", None), now);
        let first = store.get_at("first", now).unwrap();
        store.insert_at(
            "second".into(),
            stored("two", Some(Arc::clone(&first.turn))),
            now,
        );
        assert!(store.get_at("first", now).is_none());
        let history = store.get_at("second", now).unwrap().turn.history();
        let texts: Vec<&str> = history
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["one", "two"]);
    }
}
