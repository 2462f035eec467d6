//! Per-user rate limits and query concurrency caps.
//!
//! The rate limit is GCRA (the generic cell rate algorithm, a token bucket stored as a single
//! timestamp). With Redis it runs as one atomic Lua script per check, so every replica shares
//! each user's budget; without Redis, or while Redis does not answer, the same algorithm runs in
//! process. Calls to Redis are bounded by a short budget (about 100 ms), because the check sits
//! on the path of Slack's ack.
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use dashmap::DashMap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// How long one call may wait on Redis (connect included) before the in-process fallback decides.
pub const REDIS_BUDGET: Duration = Duration::from_millis(100);
/// While Redis is down, how often one call is allowed to try it again; every other call goes
/// straight to the fallback, so a dead Redis does not add the budget to each request.
pub const REDIS_PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long start-up waits for a first connection before going on without Redis.
const STARTUP_CONNECT_BUDGET: Duration = Duration::from_secs(1);
/// Prune idle buckets of the in-process limiter once the map grows past this.
const PRUNE_ABOVE: usize = 100_000;
/// ... but at most this often, so a map full of active users is not scanned on every call.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

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

/// A shared Redis connection plus the "is it down, did we say so" state that the rate limiter and
/// the deduplicator consult before each call. Cheap to clone.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<BackendInner>,
}

struct BackendInner {
    client: redis::Client,
    /// Created on first success; afterwards the manager reconnects by itself.
    manager: OnceLock<ConnectionManager>,
    /// The runtime `connect` ran on. The manager is created there even when a later call
    /// creates it, because its I/O task lives on that runtime: an actix worker's runtime could
    /// go away (a worker restarts after a panic) and take the connection with it.
    runtime: tokio::runtime::Handle,
    settings: RedisSettings,
    health: Health,
}

impl RedisBackend {
    /// Prepares a backend for `url` with the default timeouts. Fails only on an invalid URL: a
    /// Redis that is down at start-up is logged, and used once it answers. Call it on the
    /// runtime that lives as long as the server (start-up), not inside a request.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, RedisSettings::default()).await
    }

    /// [`RedisBackend::connect`] with explicit timeouts.
    pub async fn connect_with(url: &str, settings: RedisSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("Failed to parse REDIS_URL")?;
        let backend = Self {
            inner: Arc::new(BackendInner {
                client,
                manager: OnceLock::new(),
                runtime: tokio::runtime::Handle::try_current().context("Redis needs a Tokio runtime")?,
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
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let health = &self.inner.health;
        if !health.may_call() {
            return None;
        }
        let attempt = async {
            let connection = self.connection().await?;
            match op(connection.clone()).await {
                // An I/O error makes the manager start a reconnect; one more try rides on it, so
                // a restarted Redis is used at once instead of one probe later.
                Err(e) if e.is_io_error() => op(connection).await,
                other => other,
            }
        };
        match tokio::time::timeout(self.inner.settings.budget, attempt).await {
            Ok(Ok(value)) => {
                health.record_success();
                Some(value)
            }
            Ok(Err(e)) => {
                health.record_failure(&e.to_string());
                None
            }
            Err(_) => {
                health.record_failure(&format!("no answer within {:?}", self.inner.settings.budget));
                None
            }
        }
    }

    async fn connection(&self) -> RedisResult<ConnectionManager> {
        if let Some(manager) = self.inner.manager.get() {
            return Ok(manager.clone());
        }
        let budget = self.inner.settings.budget;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(budget)
            .set_response_timeout(budget)
            // Retrying is our probe's job: a reconnect is a single attempt, so it fails fast.
            .set_number_of_retries(0);
        let inner = Arc::clone(&self.inner);
        // Spawned, so a connection that completes after this call's budget is still kept.
        let created = self.inner.runtime.spawn(async move {
            let manager = ConnectionManager::new_with_config(inner.client.clone(), config).await?;
            Ok::<_, redis::RedisError>(inner.manager.get_or_init(|| manager).clone())
        });
        created
            .await
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?
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

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// How many questions a user may ask per period; `limit` of them may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: NonZeroU32,
    period: Duration,
}

impl Quota {
    /// `limit` questions per minute (`THREADQL_RATE_LIMIT_PER_MINUTE`).
    pub fn per_minute(limit: NonZeroU32) -> Self {
        Self {
            limit,
            period: Duration::from_secs(60),
        }
    }

    /// `limit` questions per `period` (short periods keep tests fast).
    pub fn new(limit: NonZeroU32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// Time for one question's worth of budget to come back, in microseconds (at least 1).
    fn interval_us(&self) -> u64 {
        (duration_us(self.period) / u64::from(self.limit.get())).max(1)
    }

    /// How far ahead of now the bucket may be booked: `limit - 1` intervals, so `limit`
    /// questions pass at once and the next waits one interval.
    fn tolerance_us(&self) -> u64 {
        self.interval_us().saturating_mul(u64::from(self.limit.get() - 1))
    }
}

/// The outcome of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Over the limit: the question is not answered, and the user may ask again after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// One GCRA step. `tat` is the stored theoretical arrival time (absent = a full bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GcraStep {
    Allow { new_tat: u64 },
    Deny { retry_after_us: u64 },
}

fn gcra(tat: Option<u64>, now: u64, interval: u64, tolerance: u64) -> GcraStep {
    let tat = tat.unwrap_or(now).max(now);
    let booked_ahead = tat - now;
    if booked_ahead > tolerance {
        GcraStep::Deny {
            retry_after_us: booked_ahead - tolerance,
        }
    } else {
        GcraStep::Allow {
            new_tat: tat.saturating_add(interval),
        }
    }
}

/// The same GCRA step as [`gcra`], atomic in Redis, on Redis's clock so replicas agree.
/// Times are microseconds; `%.0f` keeps them exact (Lua's default number format would round).
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then return {0, wait} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

/// In-process GCRA buckets, keyed by `team:user`.
struct LocalLimiter {
    epoch: Instant,
    tats: DashMap<String, u64>,
    next_prune_us: AtomicU64,
}

impl LocalLimiter {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            tats: DashMap::new(),
            next_prune_us: AtomicU64::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        duration_us(self.epoch.elapsed())
    }

    fn check(&self, key: &str, quota: &Quota) -> RateDecision {
        self.check_at(key, quota, self.now_us())
    }

    fn check_at(&self, key: &str, quota: &Quota, now: u64) -> RateDecision {
        self.prune(now);
        let mut entry = self.tats.entry(key.to_string()).or_insert(now);
        match gcra(Some(*entry), now, quota.interval_us(), quota.tolerance_us()) {
            GcraStep::Allow { new_tat } => {
                *entry = new_tat;
                RateDecision::Allowed
            }
            GcraStep::Deny { retry_after_us } => RateDecision::Limited {
                retry_after: Duration::from_micros(retry_after_us),
            },
        }
    }

    /// A bucket whose arrival time has passed is full again, the same as an absent one.
    fn prune(&self, now: u64) {
        if self.tats.len() <= PRUNE_ABOVE {
            return;
        }
        let due = self.next_prune_us.load(Ordering::Relaxed);
        if now < due
            || self
                .next_prune_us
                .compare_exchange(
                    due,
                    now + duration_us(PRUNE_EVERY),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        self.tats.retain(|_, tat| *tat > now);
    }
}

/// Per-user question rate limit, in Redis when configured and in process otherwise.
pub struct RateLimiter {
    quota: Quota,
    redis: Option<RedisBackend>,
    prefix: String,
    script: Script,
    local: LocalLimiter,
}

impl RateLimiter {
    /// `prefix` starts every Redis key (`{prefix}rl:{team}:{user}`), so deployments and tests
    /// sharing one Redis stay apart.
    pub fn new(quota: Quota, redis: Option<RedisBackend>, prefix: impl Into<String>) -> Self {
        Self {
            quota,
            redis,
            prefix: prefix.into(),
            script: Script::new(GCRA_SCRIPT),
            local: LocalLimiter::new(),
        }
    }

    /// `per_minute` questions per user per minute.
    pub fn per_minute(per_minute: NonZeroU32, redis: Option<RedisBackend>, prefix: impl Into<String>) -> Self {
        Self::new(Quota::per_minute(per_minute), redis, prefix)
    }

    /// The Redis key of a user's bucket.
    pub fn redis_key(&self, team: &str, user: &str) -> String {
        format!("{}rl:{team}:{user}", self.prefix)
    }

    /// Counts one question of `user` in `team` and says whether it may be answered.
    pub async fn check(&self, team: &str, user: &str) -> RateDecision {
        let local_key = format!("{team}:{user}");
        let Some(redis) = &self.redis else {
            return self.local.check(&local_key, &self.quota);
        };
        let key = self.redis_key(team, user);
        let (interval, tolerance) = (self.quota.interval_us(), self.quota.tolerance_us());
        let answer = redis
            .run(|mut connection| {
                let key = key.as_str();
                async move {
                    self.script
                        .key(key)
                        .arg(interval)
                        .arg(tolerance)
                        .invoke_async::<(i64, i64)>(&mut connection)
                        .await
                }
            })
            .await;
        match answer {
            Some((1, _)) => {
                // Charge the local bucket too, so a fallback starts from this replica's recent
                // traffic rather than from a full bucket.
                let _ = self.local.check(&local_key, &self.quota);
                RateDecision::Allowed
            }
            Some((_, retry_after_us)) => RateDecision::Limited {
                retry_after: Duration::from_micros(u64::try_from(retry_after_us).unwrap_or(0)),
            },
            None => self.local.check(&local_key, &self.quota),
        }
    }
}

/// Why a query could not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotsBusy {
    #[error("you already have {limit} queries running; wait for one to finish")]
    User { limit: usize },
    #[error("the warehouse is already running {limit} queries; try again shortly")]
    Global { limit: usize },
}

/// Concurrency caps for one warehouse: at most `per_user` queries of one user and `global`
/// queries in all run at once. Cheap to clone; clones share the caps.
#[derive(Clone)]
pub struct QuerySlots {
    per_user: usize,
    global_limit: usize,
    global: Arc<Semaphore>,
    running: Arc<DashMap<String, usize>>,
}

/// A running query's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct QueryPermit {
    _global: OwnedSemaphorePermit,
    _user: UserSlot,
}

/// A user's share of the per-user cap, released on drop (also when an `acquire` is abandoned
/// while it waits for a global slot).
#[derive(Debug)]
struct UserSlot {
    running: Arc<DashMap<String, usize>>,
    user: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        // Remove the entry at zero so the map holds only users with queries running.
        self.running.remove_if_mut(&self.user, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

impl QuerySlots {
    pub fn new(per_user: usize, global: usize) -> Self {
        Self {
            per_user,
            global_limit: global,
            global: Arc::new(Semaphore::new(global)),
            running: Arc::new(DashMap::new()),
        }
    }

    /// Takes a slot now or says which cap is full.
    pub fn try_acquire(&self, user: &str) -> Result<QueryPermit, SlotsBusy> {
        let user_slot = self.reserve_user(user)?;
        match Arc::clone(&self.global).try_acquire_owned() {
            Ok(global) => Ok(QueryPermit {
                _global: global,
                _user: user_slot,
            }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(SlotsBusy::Global {
                limit: self.global_limit,
            }),
        }
    }

    /// Takes a slot, waiting in line for a global one; a user at their own cap is refused at once.
    pub async fn acquire(&self, user: &str) -> Result<QueryPermit, SlotsBusy> {
        let user_slot = self.reserve_user(user)?;
        // The semaphore is never closed, so an error cannot happen; map it anyway.
        let global = Arc::clone(&self.global)
            .acquire_owned()
            .await
            .map_err(|_| SlotsBusy::Global {
                limit: self.global_limit,
            })?;
        Ok(QueryPermit {
            _global: global,
            _user: user_slot,
        })
    }

    /// Queries of `user` running (or waiting for a global slot) now.
    pub fn running(&self, user: &str) -> usize {
        self.running.get(user).map_or(0, |count| *count)
    }

    /// Global slots free now.
    pub fn available(&self) -> usize {
        self.global.available_permits()
    }

    fn reserve_user(&self, user: &str) -> Result<UserSlot, SlotsBusy> {
        let mut count = self.running.entry(user.to_string()).or_insert(0);
        if *count >= self.per_user {
            let full = *count == 0;
            drop(count);
            if full {
                // per_user == 0: do not leave an empty entry behind.
                self.running.remove_if(user, |_, count| *count == 0);
            }
            return Err(SlotsBusy::User { limit: self.per_user });
        }
        *count += 1;
        Ok(UserSlot {
            running: Arc::clone(&self.running),
            user: user.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    fn ten_per_minute() -> Quota {
        Quota::per_minute(NonZeroU32::MIN.saturating_add(9))
    }

    #[test]
    fn ten_per_minute_is_one_question_every_six_seconds_with_a_burst_of_ten() {
        let quota = ten_per_minute();
        assert_eq!(quota.interval_us(), 6 * SECOND);
        assert_eq!(quota.tolerance_us(), 54 * SECOND);
    }

    #[test]
    fn an_interval_that_does_not_divide_evenly_rounds_down_to_the_microsecond() {
        let quota = Quota::per_minute(NonZeroU32::MIN.saturating_add(6));
        assert_eq!(quota.interval_us(), 8_571_428);
    }

    #[test]
    fn gcra_allows_a_full_burst_and_denies_the_next_for_one_interval() {
        let quota = ten_per_minute();
        let (interval, tolerance) = (quota.interval_us(), quota.tolerance_us());
        let now = 1_000 * SECOND;
        let mut tat = None;
        for question in 1..=10 {
            match gcra(tat, now, interval, tolerance) {
                GcraStep::Allow { new_tat } => tat = Some(new_tat),
                GcraStep::Deny { .. } => panic!("question {question} of 10 was denied"),
            }
        }
        assert_eq!(tat, Some(now + 60 * SECOND));
        assert_eq!(
            gcra(tat, now, interval, tolerance),
            GcraStep::Deny {
                retry_after_us: 6 * SECOND
            }
        );
    }

    #[test]
    fn gcra_counts_down_the_wait_as_time_passes() {
        let (interval, tolerance) = (6 * SECOND, 54 * SECOND);
        let tat = Some(60 * SECOND);
        assert_eq!(
            gcra(tat, 2 * SECOND, interval, tolerance),
            GcraStep::Deny {
                retry_after_us: 4 * SECOND
            }
        );
        assert_eq!(
            gcra(tat, 6 * SECOND, interval, tolerance),
            GcraStep::Allow { new_tat: 66 * SECOND }
        );
    }

    #[test]
    fn gcra_treats_an_arrival_time_in_the_past_as_a_full_bucket() {
        assert_eq!(
            gcra(Some(5 * SECOND), 100 * SECOND, SECOND, 0),
            GcraStep::Allow { new_tat: 101 * SECOND }
        );
        assert_eq!(
            gcra(None, 100 * SECOND, SECOND, 0),
            GcraStep::Allow { new_tat: 101 * SECOND }
        );
    }

    #[test]
    fn a_limit_of_one_allows_one_question_per_interval() {
        let quota = Quota::new(NonZeroU32::MIN, Duration::from_secs(60));
        assert_eq!(
            gcra(None, 0, quota.interval_us(), quota.tolerance_us()),
            GcraStep::Allow { new_tat: 60 * SECOND }
        );
        assert_eq!(
            gcra(Some(60 * SECOND), SECOND, quota.interval_us(), quota.tolerance_us()),
            GcraStep::Deny {
                retry_after_us: 59 * SECOND
            }
        );
    }

    #[test]
    fn the_local_limiter_keeps_users_apart_and_refills_with_time() {
        let local = LocalLimiter::new();
        let quota = Quota::new(NonZeroU32::MIN.saturating_add(1), Duration::from_secs(2));
        assert_eq!(local.check_at("T:a", &quota, 0), RateDecision::Allowed);
        assert_eq!(local.check_at("T:a", &quota, 0), RateDecision::Allowed);
        assert_eq!(
            local.check_at("T:a", &quota, SECOND / 4),
            RateDecision::Limited {
                retry_after: Duration::from_millis(750)
            }
        );
        assert_eq!(local.check_at("T:b", &quota, SECOND / 4), RateDecision::Allowed);
        assert_eq!(local.check_at("T:a", &quota, SECOND), RateDecision::Allowed);
        assert!(matches!(
            local.check_at("T:a", &quota, SECOND),
            RateDecision::Limited { .. }
        ));
    }

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
