//! This process's memory of handled keys (one per message: team, channel, ts), so retries
//! and double deliveries (a mention arrives as `app_mention` and as `message`) never produce a
//! second answer. With Redis, the [`super::IngressGate`] claims keys there as well, so replicas
//! and restarts are covered; this memory answers while Redis does not, and saves a round trip
//! for a key seen here already.
use std::hash::Hasher as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use siphasher::sip128::{Hasher128 as _, SipHasher13};

/// How long a key is remembered: longer than Slack's retry schedule (about 6 minutes).
pub const REMEMBER_FOR: Duration = Duration::from_secs(60 * 60);
/// Prune expired keys when the map grows past this...
const PRUNE_ABOVE: usize = 100_000;
/// ... but at most this often. A prune scans every key under the shards' write locks, which
/// stalls the acks waiting on them, and the map of an hour of keys is that large because it is
/// busy: scanning it every second cost ingress a tenth of its throughput (BENCHMARKS.md).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Keys handled within [`REMEMBER_FOR`], in process. What is kept is a key's keyed 128-bit
/// digest, not the key: an hour of a busy workspace's messages is hundreds of thousands of keys,
/// and a digest takes a third of a key's memory (BENCHMARKS.md, "Bursts and memory"). Two keys
/// sharing a digest by chance is as likely as guessing a random 128-bit number.
pub(super) struct SeenKeys {
    seen: DashMap<Digest, Instant, foldhash::fast::RandomState>,
    /// Random per process, so nobody can craft two keys with one digest.
    digest_keys: (u64, u64),
    last_prune: Mutex<Option<Instant>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Digest(u64, u64);

impl Default for SeenKeys {
    fn default() -> Self {
        Self {
            seen: DashMap::default(),
            digest_keys: uuid::Uuid::new_v4().as_u64_pair(),
            last_prune: Mutex::default(),
        }
    }
}

impl SeenKeys {
    fn digest(&self, key: &str) -> Digest {
        let mut hasher = SipHasher13::new_with_keys(self.digest_keys.0, self.digest_keys.1);
        hasher.write(key.as_bytes());
        let digest = hasher.finish128();
        Digest(digest.h1, digest.h2)
    }

    /// Returns true the first time a key is seen (within [`REMEMBER_FOR`]), and remembers it.
    pub(super) fn first_time(&self, key: &str) -> bool {
        let now = Instant::now();
        self.prune(now);
        match self.seen.entry(self.digest(key)) {
            dashmap::Entry::Occupied(mut entry) => {
                if now.duration_since(*entry.get()) < REMEMBER_FOR {
                    false
                } else {
                    entry.insert(now);
                    true
                }
            }
            dashmap::Entry::Vacant(entry) => {
                entry.insert(now);
                true
            }
        }
    }

    pub(super) fn seen_recently(&self, key: &str) -> bool {
        self.seen
            .get(&self.digest(key))
            .is_some_and(|at| at.elapsed() < REMEMBER_FOR)
    }

    pub(super) fn remember(&self, key: &str) {
        let now = Instant::now();
        self.prune(now);
        self.seen.entry(self.digest(key)).or_insert(now);
    }

    fn prune(&self, now: Instant) {
        // Whoever holds the lock is pruning (or checking) already; the others carry on.
        let Ok(mut last_prune) = self.last_prune.try_lock() else {
            return;
        };
        if last_prune.is_some_and(|at| now.duration_since(at) < PRUNE_EVERY) {
            return;
        }
        // Counting the keys takes every shard's lock too: at most once per interval.
        *last_prune = Some(now);
        if self.seen.len() <= PRUNE_ABOVE {
            return;
        }
        self.seen.retain(|_, at| now.duration_since(*at) < REMEMBER_FOR);
        if self.seen.len() * 4 < self.seen.capacity() {
            self.seen.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_first_only_once() {
        let seen = SeenKeys::default();
        assert!(seen.first_time("Ev1"));
        assert!(!seen.first_time("Ev1"));
        assert!(seen.first_time("Ev2"));
        assert!(seen.seen_recently("Ev1"));
        assert!(!seen.seen_recently("Ev3"));
    }
}
