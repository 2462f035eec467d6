//! Remembers what was already handled, so Slack's retries and double deliveries (a mention
//! arrives as `app_mention` and as `message`) never produce a second answer.
//!
//! In process by default. With Redis, a key is claimed with `SET NX EX`, so a retry that reaches
//! another replica, or this one after a restart, is still recognised; while Redis does not
//! answer, the in-process memory decides (see [`crate::limits::RedisBackend`]).
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::limits::RedisBackend;

/// How long a key is remembered: longer than Slack's retry schedule (about 6 minutes).
pub const REMEMBER_FOR: Duration = Duration::from_secs(60 * 60);
/// Prune expired keys when the map grows past this...
const PRUNE_ABOVE: usize = 100_000;
/// ... but at most this often: a full scan on every call would stall ingress once the map holds
/// more than `PRUNE_ABOVE` live keys.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Memory of handled keys: in process, optionally shared through Redis.
#[derive(Default)]
pub struct Deduplicator {
    seen: DashMap<String, Instant>,
    shared: Option<Shared>,
    last_prune: Mutex<Option<Instant>>,
}

struct Shared {
    redis: RedisBackend,
    prefix: String,
}

impl Deduplicator {
    /// A deduplicator that shares its memory through Redis under `{prefix}dd:{key}`; the prefix
    /// keeps deployments and tests that share one Redis apart.
    pub fn with_redis(redis: RedisBackend, prefix: impl Into<String>) -> Self {
        Self {
            shared: Some(Shared {
                redis,
                prefix: prefix.into(),
            }),
            ..Self::default()
        }
    }

    /// The Redis key under which `key` is remembered (when Redis is configured).
    pub fn redis_key(&self, key: &str) -> Option<String> {
        self.shared.as_ref().map(|shared| format!("{}dd:{key}", shared.prefix))
    }

    /// Returns true the first time a key is claimed (within [`REMEMBER_FOR`]) by any replica
    /// sharing the Redis, or by this process when there is no Redis or it does not answer.
    pub async fn claim(&self, key: &str) -> bool {
        let Some(shared) = &self.shared else {
            return self.first_time(key);
        };
        // A key this process has seen needs no round trip.
        if self.seen_recently(key) {
            return false;
        }
        let redis_key = format!("{}dd:{key}", shared.prefix);
        let claimed = shared
            .redis
            .run(|mut connection| {
                let redis_key = redis_key.as_str();
                async move {
                    redis::cmd("SET")
                        .arg(redis_key)
                        .arg(1)
                        .arg("NX")
                        .arg("EX")
                        .arg(REMEMBER_FOR.as_secs())
                        .query_async::<Option<String>>(&mut connection)
                        .await
                        .map(|reply| reply.is_some())
                }
            })
            .await;
        match claimed {
            Some(first) => {
                // Remembered locally either way, for the fast path above and for a fallback.
                self.remember(key);
                first
            }
            None => self.first_time(key),
        }
    }

    /// Returns true the first time this process sees a key (within [`REMEMBER_FOR`]). Never asks
    /// Redis: replicas and restarts are covered by [`Deduplicator::claim`] only.
    pub fn first_time(&self, key: &str) -> bool {
        let now = Instant::now();
        self.prune(now);
        match self.seen.entry(key.to_string()) {
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

    fn seen_recently(&self, key: &str) -> bool {
        self.seen.get(key).is_some_and(|at| at.elapsed() < REMEMBER_FOR)
    }

    fn remember(&self, key: &str) {
        let now = Instant::now();
        self.prune(now);
        self.seen.entry(key.to_string()).or_insert(now);
    }

    fn prune(&self, now: Instant) {
        if self.seen.len() <= PRUNE_ABOVE {
            return;
        }
        // Whoever holds the lock is pruning already; the others carry on.
        let Ok(mut last_prune) = self.last_prune.try_lock() else {
            return;
        };
        if last_prune.is_some_and(|at| now.duration_since(at) < PRUNE_EVERY) {
            return;
        }
        *last_prune = Some(now);
        self.seen.retain(|_, at| now.duration_since(*at) < REMEMBER_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_first_only_once() {
        let dedupe = Deduplicator::default();
        assert!(dedupe.first_time("Ev1"));
        assert!(!dedupe.first_time("Ev1"));
        assert!(dedupe.first_time("Ev2"));
    }

    #[tokio::test]
    async fn claim_without_redis_is_the_in_process_memory() {
        let dedupe = Deduplicator::default();
        assert!(dedupe.claim("Ev1").await);
        assert!(!dedupe.claim("Ev1").await);
        assert!(!dedupe.first_time("Ev1"));
        assert_eq!(dedupe.redis_key("Ev1"), None);
    }
}
