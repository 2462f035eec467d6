//! The Redis connection behind shared rate limits and dedupe, with the "is it down, did we say
//! so" state every call consults. Calls are bounded by a short budget (about 100 ms), because
//! they sit on the path of Slack's ack; while Redis does not answer, callers decide in process.
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use anyhow::Context;
use dashmap::DashMap;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult};

/// How long one call may wait on Redis (connect included) before the in-process fallback decides.
pub const REDIS_BUDGET: Duration = Duration::from_millis(100);
/// While Redis is down, how often one call is allowed to try it again; every other call goes
/// straight to the fallback, so a dead Redis does not add the budget to each request.
pub const REDIS_PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long start-up waits for a first connection before going on without Redis.
const STARTUP_CONNECT_BUDGET: Duration = Duration::from_secs(1);

/// Timeouts of a [`RedisBackend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisSettings {
    /// Upper bound of one call, connecting included.
    pub budget: Duration,
    /// How often a call retries Redis while it is down.
    pub probe_every: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            budget: REDIS_BUDGET,
            probe_every: REDIS_PROBE_EVERY,
        }
    }
}

/// Redis connections (one per calling thread) plus the "is it down, did we say so" state that
/// every call consults first. Cheap to clone.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<BackendInner>,
}

struct BackendInner {
    client: redis::Client,
    /// One multiplexed connection per thread that calls Redis, driven by that thread's runtime:
    /// an HTTP worker's ack then waits on its own socket, not on a hop to another thread and back
    /// (a shared connection on the main thread cost each ack two wake-ups; BENCHMARKS.md). A
    /// connection that fails is dropped and made again on the next call, which also covers a
    /// thread whose runtime was replaced.
    connections: DashMap<ThreadId, MultiplexedConnection>,
    settings: RedisSettings,
    health: Health,
}

impl RedisBackend {
    /// Prepares a backend for `url` with the default timeouts. Fails only on an invalid URL: a
    /// Redis that is down at start-up is logged, and used once it answers.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, RedisSettings::default()).await
    }

    /// [`RedisBackend::connect`] with explicit timeouts.
    pub async fn connect_with(url: &str, settings: RedisSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("Failed to parse REDIS_URL")?;
        let backend = Self {
            inner: Arc::new(BackendInner {
                client,
                connections: DashMap::new(),
                settings,
                health: Health::new(settings.probe_every),
            }),
        };
        match tokio::time::timeout(STARTUP_CONNECT_BUDGET, backend.connection()).await {
            Ok(Ok(_)) => tracing::info!("Connected to Redis: rate limits and dedupe are shared"),
            Ok(Err(e)) => {
                backend.inner.health.record_failure(&e.to_string());
            }
            Err(_) => {
                backend
                    .inner
                    .health
                    .record_failure("no connection within the start-up budget");
            }
        }
        Ok(backend)
    }

    /// Whether the last call reached Redis (false while the in-process fallback is in use).
    pub fn is_available(&self) -> bool {
        !self.inner.health.is_down()
    }

    /// Runs `op` against Redis within the budget. `None` means "decide in process": Redis is
    /// down (and not due for a probe), failed, or did not answer in time.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let health = &self.inner.health;
        if !health.may_call() {
            return None;
        }
        let attempt = async {
            let connection = self.connection().await?;
            match op(connection).await {
                // The connection died (Redis restarted, say): one more try on a new one, so a
                // Redis that is back is used at once instead of one probe later.
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    self.forget_connection();
                    op(self.connection().await?).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.inner.settings.budget, attempt).await {
            Ok(Ok(value)) => {
                health.record_success();
                Some(value)
            }
            Ok(Err(e)) => {
                self.forget_connection();
                health.record_failure(&e.to_string());
                None
            }
            Err(_) => {
                self.forget_connection();
                health.record_failure(&format!("no answer within {:?}", self.inner.settings.budget));
                None
            }
        }
    }

    /// This thread's connection, made on first use.
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        let thread = std::thread::current().id();
        if let Some(connection) = self.inner.connections.get(&thread) {
            return Ok(connection.clone());
        }
        let budget = self.inner.settings.budget;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(budget)
            .set_response_timeout(budget);
        let inner = Arc::clone(&self.inner);
        // Spawned on this thread's runtime, so a connection that completes after this call's
        // budget (a distant Redis, TLS) is still kept for the next call.
        let created = tokio::spawn(async move {
            let connection = inner
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            inner.connections.insert(thread, connection.clone());
            Ok::<_, redis::RedisError>(connection)
        });
        created
            .await
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?
    }

    fn forget_connection(&self) {
        self.inner.connections.remove(&std::thread::current().id());
    }
}

/// Down/up state with log-once transitions and probe pacing, lock-free.
struct Health {
    epoch: Instant,
    probe_every_ms: u64,
    down: AtomicBool,
    down_since_ms: AtomicU64,
    next_probe_ms: AtomicU64,
}

impl Health {
    fn new(probe_every: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            probe_every_ms: duration_ms(probe_every).max(1),
            down: AtomicBool::new(false),
            down_since_ms: AtomicU64::new(0),
            next_probe_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        duration_ms(self.epoch.elapsed())
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether this call should try Redis: always while it is up; while it is down, one call per
    /// probe interval (the one that wins the compare-and-swap).
    fn may_call(&self) -> bool {
        if !self.is_down() {
            return true;
        }
        let now = self.now_ms();
        let due = self.next_probe_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .next_probe_ms
                .compare_exchange(due, now + self.probe_every_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Returns true when this failure is the one that turned the state to down (and logged).
    fn record_failure(&self, error: &str) -> bool {
        let now = self.now_ms();
        self.next_probe_ms.store(now + self.probe_every_ms, Ordering::Relaxed);
        if self.down.swap(true, Ordering::Relaxed) {
            return false;
        }
        self.down_since_ms.store(now, Ordering::Relaxed);
        tracing::warn!(
            error,
            "Redis is unavailable: rate limits and dedupe fall back to this process until it answers"
        );
        true
    }

    /// Returns true when this success is the one that turned the state back to up (and logged).
    fn record_success(&self) -> bool {
        if !self.is_down() || !self.down.swap(false, Ordering::Relaxed) {
            return false;
        }
        let down_for = Duration::from_millis(self.now_ms().saturating_sub(self.down_since_ms.load(Ordering::Relaxed)));
        tracing::info!(
            ?down_for,
            "Redis answers again: rate limits and dedupe are shared again"
        );
        true
    }
}

pub(super) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_logs_going_down_and_coming_back_once_each() {
        let health = Health::new(Duration::from_secs(3600));
        assert!(health.may_call());
        assert!(health.record_failure("refused"));
        assert!(!health.record_failure("refused again"));
        assert!(health.is_down());
        // The next probe is an hour away: calls go straight to the fallback.
        assert!(!health.may_call());
        assert!(health.record_success());
        assert!(!health.record_success());
        assert!(health.may_call());
    }

    #[test]
    fn only_one_call_per_interval_probes_a_down_redis() {
        let health = Health::new(Duration::from_millis(1));
        health.record_failure("refused");
        std::thread::sleep(Duration::from_millis(3));
        assert!(health.may_call());
        assert!(!health.may_call());
    }
}
