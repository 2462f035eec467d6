//! Rate limits, dedupe and concurrency caps against a real Redis: the shared one on
//! 127.0.0.1:6379 (each test under its own key prefix), and Redis servers the tests start, kill
//! and restart themselves to prove the in-process fallback and the recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use threadql::limits::{Admission, IngressGate, QuerySlots, Quota, RedisBackend, RedisSettings, SlotsBusy};
use threadql_testkit::{eventually, free_port, RedisPrefix, RedisServer, SHARED_REDIS};
/// A call must come back about this fast whatever Redis does (its budget is 100 ms).
const CALL_CEILING: Duration = Duration::from_millis(250);

fn per_minute(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// This test's keys on the shared Redis, deleted when it ends.
fn unique_prefix() -> RedisPrefix {
    RedisPrefix::new("threadql-test")
}

/// Probes a down Redis often, so recovery tests need no long sleeps.
fn quick_probes() -> RedisSettings {
    RedisSettings {
        probe_every: Duration::from_millis(100),
        ..RedisSettings::default()
    }
}

async fn shared_backend() -> RedisBackend {
    let backend = RedisBackend::connect(SHARED_REDIS).await.unwrap();
    assert!(backend.is_available(), "the tests need a Redis on {SHARED_REDIS}");
    backend
}

async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn key_exists(url: &str, key: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    connection.exists(key).await.unwrap_or(false)
}

/// Asks `limiter` as `user` and asserts the call came back within [`CALL_CEILING`].
async fn timed_check(limiter: &IngressGate, user: &str) -> Admission {
    let started = Instant::now();
    let decision = limiter.admit(None, Some(("T1", user))).await;
    assert!(
        started.elapsed() < CALL_CEILING,
        "a rate-limit check took {:?}",
        started.elapsed()
    );
    decision
}

async fn timed_claim(dedupe: &IngressGate, key: &str) -> bool {
    let started = Instant::now();
    let first = dedupe.admit(Some(key), None).await == Admission::Accepted;
    assert!(
        started.elapsed() < CALL_CEILING,
        "a dedupe claim took {:?}",
        started.elapsed()
    );
    first
}

async fn assert_eleventh_question_is_limited(limiter: &IngressGate, mode: &str) {
    for question in 1..=10 {
        assert_eq!(
            limiter.admit(None, Some(("T1", "U1"))).await,
            Admission::Accepted,
            "{mode}: question {question} of 10"
        );
    }
    match limiter.admit(None, Some(("T1", "U1"))).await {
        // Ten a minute is one every six seconds: the eleventh may come once one has passed.
        Admission::Limited { retry_after } => assert!(
            retry_after > Duration::from_secs(5) && retry_after <= Duration::from_secs(6),
            "{mode}: retry_after was {retry_after:?}"
        ),
        other => panic!("{mode}: the eleventh question in a minute was {other:?}"),
    }
}

#[tokio::test]
async fn the_eleventh_question_in_a_minute_is_limited_in_process() {
    let limiter = IngressGate::per_minute(per_minute(10), None, unique_prefix().to_string());
    assert_eleventh_question_is_limited(&limiter, "in process").await;
}

#[tokio::test]
async fn the_eleventh_question_in_a_minute_is_limited_with_redis() {
    // Arrange
    let prefix = unique_prefix();
    let limiter = IngressGate::per_minute(per_minute(10), Some(shared_backend().await), prefix.to_string());

    // Act + Assert
    assert_eleventh_question_is_limited(&limiter, "redis").await;
    assert!(
        key_exists(SHARED_REDIS, &limiter.bucket_key("T1", "U1")).await,
        "the bucket lives in Redis"
    );
}

#[tokio::test]
async fn replicas_sharing_redis_share_a_users_budget() {
    let prefix = unique_prefix();
    let quota = Quota::per_minute(per_minute(2));
    let replica_a = IngressGate::new(quota, Some(shared_backend().await), prefix.to_string());
    let replica_b = IngressGate::new(quota, Some(shared_backend().await), prefix.to_string());

    assert_eq!(replica_a.admit(None, Some(("T1", "U1"))).await, Admission::Accepted);
    assert_eq!(replica_b.admit(None, Some(("T1", "U1"))).await, Admission::Accepted);
    assert!(matches!(
        replica_a.admit(None, Some(("T1", "U1"))).await,
        Admission::Limited { .. }
    ));
    assert!(matches!(
        replica_b.admit(None, Some(("T1", "U1"))).await,
        Admission::Limited { .. }
    ));
}

#[tokio::test]
async fn users_and_teams_are_limited_independently() {
    let prefix = unique_prefix();
    for (mode, redis) in [("in process", None), ("redis", Some(shared_backend().await))] {
        let limiter = IngressGate::per_minute(per_minute(1), redis, prefix.to_string());
        assert_eq!(
            limiter.admit(None, Some(("T1", "U1"))).await,
            Admission::Accepted,
            "{mode}"
        );
        assert!(
            matches!(limiter.admit(None, Some(("T1", "U1"))).await, Admission::Limited { .. }),
            "{mode}"
        );
        assert_eq!(
            limiter.admit(None, Some(("T1", "U2"))).await,
            Admission::Accepted,
            "{mode}: another user"
        );
        assert_eq!(
            limiter.admit(None, Some(("T2", "U1"))).await,
            Admission::Accepted,
            "{mode}: same user id, other team"
        );
    }
}

#[tokio::test]
async fn a_bucket_refills_one_question_per_interval() {
    // Two questions per 200 ms: one comes back every 100 ms.
    let quota = Quota::new(per_minute(2), Duration::from_millis(200));
    let prefix = unique_prefix();
    for (mode, redis) in [("in process", None), ("redis", Some(shared_backend().await))] {
        // Arrange
        let limiter = IngressGate::new(quota, redis, prefix.to_string());
        assert_eq!(
            limiter.admit(None, Some(("T1", "U1"))).await,
            Admission::Accepted,
            "{mode}"
        );
        assert_eq!(
            limiter.admit(None, Some(("T1", "U1"))).await,
            Admission::Accepted,
            "{mode}"
        );
        let Admission::Limited { retry_after } = limiter.admit(None, Some(("T1", "U1"))).await else {
            panic!("{mode}: the third question within 200 ms was allowed");
        };
        assert!(
            retry_after <= Duration::from_millis(100),
            "{mode}: retry_after was {retry_after:?}"
        );

        // Act: wait as long as we were told.
        tokio::time::sleep(retry_after + Duration::from_millis(5)).await;

        // Assert: exactly one question came back.
        assert_eq!(
            limiter.admit(None, Some(("T1", "U1"))).await,
            Admission::Accepted,
            "{mode}: after the wait"
        );
        assert!(
            matches!(limiter.admit(None, Some(("T1", "U1"))).await, Admission::Limited { .. }),
            "{mode}: only one came back"
        );
    }
}

#[tokio::test]
async fn a_key_is_first_once_across_deduplicators_sharing_redis() {
    // Two instances stand for two replicas, or one process before and after a restart.
    let prefix = unique_prefix();
    let replica_a = IngressGate::per_minute(per_minute(100), Some(shared_backend().await), prefix.to_string());
    let replica_b = IngressGate::per_minute(per_minute(100), Some(shared_backend().await), prefix.to_string());

    assert!((replica_a.admit(Some("event:Ev1"), None).await == Admission::Accepted));
    assert!(!(replica_a.admit(Some("event:Ev1"), None).await == Admission::Accepted));
    assert!(
        !(replica_b.admit(Some("event:Ev1"), None).await == Admission::Accepted),
        "the other replica sees the key as handled"
    );
    assert!((replica_b.admit(Some("event:Ev2"), None).await == Admission::Accepted));
    assert!(!(replica_a.admit(Some("event:Ev2"), None).await == Admission::Accepted));

    let key = replica_a.claim_key("event:Ev1");
    let ttl: i64 = raw_connection(SHARED_REDIS).await.ttl(&key).await.unwrap();
    assert!(ttl > 0 && ttl <= 3600, "the key expires (ttl {ttl})");
}

#[tokio::test]
async fn duplicates_cost_no_budget_and_a_limited_question_stays_handled() {
    // Two questions a minute; two gates stand for two replicas sharing Redis, and the same
    // checks run in process.
    let prefix = unique_prefix();
    let quota = Quota::per_minute(per_minute(2));
    for (mode, redis) in [("in process", None), ("redis", Some(shared_backend().await))] {
        let replica_a = IngressGate::new(quota, redis.clone(), prefix.to_string());
        let replica_b = if redis.is_some() {
            IngressGate::new(quota, redis.clone(), prefix.to_string())
        } else {
            // In process there is no sharing: the same gate sees the retries.
            IngressGate::new(quota, None, prefix.to_string())
        };
        let other = if redis.is_some() { &replica_b } else { &replica_a };
        let asker = Some(("T1", "U1"));

        assert_eq!(
            replica_a.admit(Some("message:M1"), asker).await,
            Admission::Accepted,
            "{mode}"
        );
        for _ in 0..2 {
            assert_eq!(
                other.admit(Some("message:M1"), asker).await,
                Admission::Duplicate,
                "{mode}: Slack's retry, or the same message under another event id"
            );
        }
        assert_eq!(
            other.admit(Some("message:M3"), asker).await,
            Admission::Accepted,
            "{mode}: the duplicates took nothing from the budget of two"
        );
        assert!(
            matches!(
                replica_a.admit(Some("message:M4"), asker).await,
                Admission::Limited { .. }
            ),
            "{mode}: the third question in a minute"
        );
        assert_eq!(
            other.admit(Some("message:M4"), asker).await,
            Admission::Duplicate,
            "{mode}: a retry of the limited question gets no second notice"
        );
        assert_eq!(
            other.admit(Some("message:M5"), None).await,
            Admission::Accepted,
            "{mode}: an unmetered message passes whatever the budget"
        );
    }
}

#[tokio::test]
async fn limits_and_dedupe_fall_back_in_process_while_redis_is_down_and_return_when_it_is_back() {
    // Arrange
    let mut redis = RedisServer::start().await;
    let backend = RedisBackend::connect_with(&redis.url(), quick_probes()).await.unwrap();
    assert!(backend.is_available());
    let prefix = unique_prefix();
    let limiter = IngressGate::per_minute(per_minute(3), Some(backend.clone()), prefix.to_string());
    let dedupe = IngressGate::per_minute(per_minute(100), Some(backend.clone()), prefix.to_string());
    assert_eq!(timed_check(&limiter, "U1").await, Admission::Accepted);
    assert!(timed_claim(&dedupe, "event:Ev1").await);
    assert!(key_exists(&redis.url(), &limiter.bucket_key("T1", "U1")).await);
    assert!(key_exists(&redis.url(), &dedupe.claim_key("event:Ev1")).await);

    // Act: Redis goes away mid-run.
    redis.kill();

    // Assert: decisions go on, in process, quickly; the limit still holds (U1 used 1 of 3).
    assert_eq!(timed_check(&limiter, "U1").await, Admission::Accepted);
    assert_eq!(timed_check(&limiter, "U1").await, Admission::Accepted);
    assert!(matches!(timed_check(&limiter, "U1").await, Admission::Limited { .. }));
    assert!(
        !timed_claim(&dedupe, "event:Ev1").await,
        "a key seen before the outage is still a duplicate"
    );
    assert!(timed_claim(&dedupe, "event:Ev2").await);
    assert!(!timed_claim(&dedupe, "event:Ev2").await);
    assert!(!backend.is_available());
    // Several probes fall in this window; each must stay within the budget too.
    for _ in 0..6 {
        let _ = timed_check(&limiter, "U3").await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    // Act: Redis comes back, empty, on the same port.
    redis.restart().await;

    // Assert: calls go to Redis again (the keys appear in the new server).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut question = 0;
    loop {
        question += 1;
        let user = format!("U-after-{question}");
        let _ = timed_check(&limiter, &user).await;
        let event = format!("event:after-{question}");
        let _ = timed_claim(&dedupe, &event).await;
        let limit_in_redis = key_exists(&redis.url(), &limiter.bucket_key("T1", &user)).await;
        let dedupe_in_redis = key_exists(&redis.url(), &dedupe.claim_key(&event)).await;
        if limit_in_redis && dedupe_in_redis {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls did not return to Redis after it restarted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(backend.is_available());
}

#[tokio::test]
async fn a_redis_that_stops_answering_costs_one_budget_per_probe_not_per_call() {
    // Arrange
    let redis = RedisServer::start().await;
    let backend = RedisBackend::connect_with(&redis.url(), quick_probes()).await.unwrap();
    let limiter = IngressGate::per_minute(per_minute(100), Some(backend.clone()), unique_prefix().to_string());
    assert_eq!(timed_check(&limiter, "U1").await, Admission::Accepted);

    // Act: the process is alive but frozen, so connections hang instead of being refused.
    redis.pause();

    // Assert: the first call waits out the budget; the calls before the next probe do not wait.
    let started = Instant::now();
    assert_eq!(timed_check(&limiter, "U1").await, Admission::Accepted);
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "the first call waited for Redis"
    );
    assert!(!backend.is_available());
    let started = Instant::now();
    for _ in 0..20 {
        let _ = limiter.admit(None, Some(("T1", "U1"))).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "calls before the next probe skip Redis"
    );

    // Act + Assert: it thaws, and the next probe uses it again.
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !backend.is_available() {
        assert!(
            Instant::now() < deadline,
            "the limiter did not return to Redis after it thawed"
        );
        let _ = timed_check(&limiter, "U2").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(key_exists(&redis.url(), &limiter.bucket_key("T1", "U2")).await);
}

#[tokio::test]
async fn a_redis_that_is_down_at_start_up_is_used_once_it_comes_up() {
    // Arrange: nothing listens on the port yet.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let backend = RedisBackend::connect_with(&url, quick_probes())
        .await
        .expect("start-up must not fail");
    assert!(!backend.is_available());
    let limiter = IngressGate::per_minute(per_minute(1), Some(backend.clone()), unique_prefix().to_string());
    assert_eq!(timed_check(&limiter, "U1").await, Admission::Accepted);
    assert!(
        matches!(timed_check(&limiter, "U1").await, Admission::Limited { .. }),
        "limited in process"
    );

    // Act
    let redis = RedisServer::start_on(port).await;

    // Assert
    let deadline = Instant::now() + Duration::from_secs(3);
    while !key_exists(&redis.url(), &limiter.bucket_key("T1", "U2")).await {
        assert!(
            Instant::now() < deadline,
            "the limiter never used the Redis that came up"
        );
        let _ = timed_check(&limiter, "U2").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(backend.is_available());
}

#[tokio::test]
async fn a_user_cannot_run_more_queries_than_the_per_user_cap() {
    let slots = QuerySlots::new(2, 10);
    let _first = slots.try_acquire("U1").unwrap();
    let _second = slots.try_acquire("U1").unwrap();
    assert_eq!(slots.try_acquire("U1").unwrap_err(), SlotsBusy::User { limit: 2 });
    assert_eq!(slots.acquire("U1").await.unwrap_err(), SlotsBusy::User { limit: 2 });
    assert!(slots.try_acquire("U2").is_ok(), "another user is not affected");
    assert_eq!(slots.running("U1"), 2);
}

#[tokio::test]
async fn the_global_cap_holds_across_users() {
    let slots = QuerySlots::new(2, 3);
    let _held = [
        slots.try_acquire("U1").unwrap(),
        slots.try_acquire("U2").unwrap(),
        slots.try_acquire("U3").unwrap(),
    ];
    assert_eq!(slots.try_acquire("U4").unwrap_err(), SlotsBusy::Global { limit: 3 });
    assert_eq!(slots.available(), 0);
    assert_eq!(slots.running("U4"), 0, "a refused query holds no user slot");
}

#[tokio::test]
async fn permits_release_their_slots_on_drop() {
    let slots = QuerySlots::new(1, 1);
    let permit = slots.try_acquire("U1").unwrap();
    assert!(slots.try_acquire("U1").is_err());
    drop(permit);
    assert_eq!(slots.running("U1"), 0);
    assert_eq!(slots.available(), 1);
    assert!(slots.try_acquire("U1").is_ok());
}

#[tokio::test]
async fn acquire_waits_for_a_global_slot_and_an_abandoned_wait_frees_the_user_slot() {
    // Arrange
    let slots = QuerySlots::new(1, 1);
    let held = slots.try_acquire("U1").unwrap();

    // Act + Assert: U2 waits in line while U1's query runs.
    let waiting = tokio::spawn({
        let slots = slots.clone();
        async move { slots.acquire("U2").await }
    });
    eventually(
        "U2's waiting query counts against U2",
        Duration::from_secs(5),
        || async { slots.running("U2") == 1 },
    )
    .await;
    assert!(!waiting.is_finished());
    drop(held);
    let permit = waiting.await.unwrap().unwrap();
    assert_eq!(slots.available(), 0);
    drop(permit);

    // Act + Assert: a wait that is given up releases its user slot.
    let held = slots.try_acquire("U1").unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(20), slots.acquire("U2")).await;
    assert!(gave_up.is_err());
    assert_eq!(slots.running("U2"), 0);
    drop(held);
    assert_eq!(slots.available(), 1);
}

#[tokio::test]
async fn redis_round_trips_and_fallbacks_are_counted_in_the_metrics() {
    // Arrange
    let mut redis = RedisServer::start().await;
    let backend = RedisBackend::connect_with(&redis.url(), quick_probes()).await.unwrap();
    let metrics = threadql::metrics::Metrics::new().unwrap();
    let prefix = unique_prefix();
    let gate =
        IngressGate::per_minute(per_minute(100), Some(backend), prefix.to_string()).with_metrics(metrics.clone());

    // Act: two decisions over Redis, then two while it is down.
    assert!(timed_claim(&gate, "event:Ev1").await);
    assert!(timed_claim(&gate, "event:Ev2").await);
    redis.kill();
    assert!(timed_claim(&gate, "event:Ev3").await);
    assert!(timed_claim(&gate, "event:Ev4").await);

    // Assert
    assert_eq!(
        metrics.redis_seconds.get_sample_count(),
        2,
        "one round trip per decision taken by Redis"
    );
    assert_eq!(
        metrics.redis_fallbacks.get(),
        2,
        "one fallback per decision taken in process"
    );
    let scrape = metrics.render();
    assert!(
        scrape.lines().any(|l| l == "threadql_redis_fallbacks_total 2"),
        "{scrape}"
    );
    assert!(
        scrape.lines().any(|l| l == "threadql_redis_round_trip_seconds_count 2"),
        "{scrape}"
    );
}
