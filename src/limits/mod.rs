//! Admission of Slack's inbound messages (dedupe, then a per-user rate limit) and query
//! concurrency caps.
//!
//! The rate limit is GCRA (the generic cell rate algorithm, a token bucket stored as a single
//! timestamp). With Redis, the dedupe claims and the rate-limit step run as one atomic Lua
//! script, so every replica shares each user's budget and each event is handled once across
//! replicas and restarts, and an ack waits on a single round trip. Without Redis, or while it
//! does not answer, the same steps run in process.
mod redis;
mod seen;
mod slots;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::Script;
use dashmap::DashMap;

use crate::metrics::Metrics;

pub use self::redis::{RedisBackend, RedisSettings, REDIS_BUDGET, REDIS_PROBE_EVERY};
use self::seen::SeenKeys;
pub use self::seen::REMEMBER_FOR;
pub use self::slots::{QueryPermit, QuerySlots, SlotsBusy};

/// Prune idle buckets of the in-process limiter once the map grows past this.
const PRUNE_ABOVE: usize = 100_000;
/// ... but at most this often: a prune scans every bucket under the shards' write locks.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

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
enum RateDecision {
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
        // The clock first: counting the buckets takes every shard's lock.
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
        if self.tats.len() > PRUNE_ABOVE {
            self.tats.retain(|_, tat| *tat > now);
        }
    }
}

/// The outcome of [`IngressGate::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// New, and its asker (if any) within the limit: hand it to its thread.
    Accepted,
    /// A key was claimed already: a retry or a double delivery, handled before.
    Duplicate,
    /// Over the limit: the question is not answered, and the user may ask again after `retry_after`.
    Limited { retry_after: Duration },
}

/// Claims the dedupe key (`SET NX EX`) when there is one, then, unless it was held already and
/// when a bucket key is given, takes one GCRA step on Redis's clock (so replicas agree).
/// KEYS: the claim (optional), then the bucket (optional). ARGV: 1 if KEYS[1] is a claim, the
/// claim's TTL in seconds, the GCRA interval and tolerance in microseconds. Returns {0, 0}
/// duplicate, {1, 0} accepted, {2, wait_us} limited. `%.0f` keeps times exact (Lua's default
/// number format would round).
const ADMIT_SCRIPT: &str = r"
local claims = tonumber(ARGV[1])
if claims == 1 and not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[2]) then return {0, 0} end
if #KEYS == claims then return {1, 0} end
local bucket = KEYS[claims + 1]
local interval = tonumber(ARGV[3])
local tolerance = tonumber(ARGV[4])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', bucket)) or now
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then return {2, wait} end
local new_tat = tat + interval
redis.call('SET', bucket, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

/// What every inbound message passes before it reaches its thread: dedupe, then the rate limit
/// of its asker. Shared through Redis when configured (`{prefix}dd:{key}` claims,
/// `{prefix}rl:{team}:{user}` buckets; the prefix keeps deployments and tests sharing one Redis
/// apart), in process otherwise and while Redis does not answer.
pub struct IngressGate {
    quota: Quota,
    redis: Option<RedisBackend>,
    prefix: String,
    script: Script,
    buckets: LocalLimiter,
    seen: SeenKeys,
    /// Redis round trips and fallbacks, when the server counts them.
    metrics: Option<Metrics>,
}

impl IngressGate {
    pub fn new(quota: Quota, redis: Option<RedisBackend>, prefix: impl Into<String>) -> Self {
        Self {
            quota,
            redis,
            prefix: prefix.into(),
            script: Script::new(ADMIT_SCRIPT),
            buckets: LocalLimiter::new(),
            seen: SeenKeys::default(),
            metrics: None,
        }
    }

    /// Counts Redis round trips (`threadql_redis_round_trip_seconds`) and in-process fallbacks
    /// (`threadql_redis_fallbacks_total`).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// `per_minute` questions per user per minute (`THREADQL_RATE_LIMIT_PER_MINUTE`).
    pub fn per_minute(per_minute: NonZeroU32, redis: Option<RedisBackend>, prefix: impl Into<String>) -> Self {
        Self::new(Quota::per_minute(per_minute), redis, prefix)
    }

    /// The Redis key of a user's bucket.
    pub fn bucket_key(&self, team: &str, user: &str) -> String {
        format!("{}rl:{team}:{user}", self.prefix)
    }

    /// The Redis key under which a dedupe claim is remembered.
    pub fn claim_key(&self, key: &str) -> String {
        format!("{}dd:{key}", self.prefix)
    }

    /// Claims `claim` (a dedupe key: admitted only the first time) and, with an `asker`
    /// (`team`, `user`), counts one question of theirs. One Redis round trip at most; none when
    /// this process has seen the claim.
    pub async fn admit(&self, claim: Option<&str>, asker: Option<(&str, &str)>) -> Admission {
        let Some(redis) = &self.redis else {
            return self.admit_in_process(claim, asker);
        };
        if claim.is_some_and(|key| self.seen.seen_recently(key)) {
            return Admission::Duplicate;
        }
        let mut keys: Vec<String> = claim.iter().map(|key| self.claim_key(key)).collect();
        if let Some((team, user)) = asker {
            keys.push(self.bucket_key(team, user));
        }
        let (interval, tolerance) = (self.quota.interval_us(), self.quota.tolerance_us());
        let started = Instant::now();
        let answer = redis
            .run(|mut connection| {
                let mut invocation = self.script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation
                    .arg(usize::from(claim.is_some()))
                    .arg(REMEMBER_FOR.as_secs())
                    .arg(interval)
                    .arg(tolerance);
                async move { invocation.invoke_async::<(i64, i64)>(&mut connection).await }
            })
            .await;
        let Some((outcome, wait_us)) = answer else {
            if let Some(metrics) = &self.metrics {
                metrics.redis_fallbacks.inc();
            }
            return self.admit_in_process(claim, asker);
        };
        if let Some(metrics) = &self.metrics {
            metrics.redis_seconds.observe(started.elapsed().as_secs_f64());
        }
        // Remembered here either way, for the fast path above and for a fallback.
        if let Some(key) = claim {
            self.seen.remember(key);
        }
        match outcome {
            0 => Admission::Duplicate,
            2 => Admission::Limited {
                retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
            },
            _ => {
                // Charge the local bucket too, so a fallback starts from this replica's recent
                // traffic rather than from a full bucket.
                if let Some((team, user)) = asker {
                    let _ = self.buckets.check(&format!("{team}:{user}"), &self.quota);
                }
                Admission::Accepted
            }
        }
    }

    fn admit_in_process(&self, claim: Option<&str>, asker: Option<(&str, &str)>) -> Admission {
        if claim.is_some_and(|key| !self.seen.first_time(key)) {
            return Admission::Duplicate;
        }
        match asker.map(|(team, user)| self.buckets.check(&format!("{team}:{user}"), &self.quota)) {
            Some(RateDecision::Limited { retry_after }) => Admission::Limited { retry_after },
            Some(RateDecision::Allowed) | None => Admission::Accepted,
        }
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
}
