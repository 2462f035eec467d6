//! Thread actors that survive: a thousand interleaved events, a panicking turn, passivation,
//! stale snapshot writes, a SIGKILLed server process and a Redis that goes away.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use threadql::actors::{ThreadRegistry, UserMessage};
use threadql::domain::Origin;
use threadql::domain::Value as Cell;
use threadql::domain::{ErrorCode, ProposedQuery, Reply};
use threadql::domain::{ThreadKey, ThreadState, Turn};
use threadql::interpret::{InterpretError, InterpretRequest, Interpretation, Interpreter};
use threadql::startup::Backends;
use threadql::store::{PostgresStore, SnapshotWrite, SqliteStore, StateStore, StoreError};
use threadql::turn::Replier;

use threadql_testkit::{
    app_mention, config_with, eventually, eventually_every, new_channel, new_ts, post_text, spawn_app, spawn_app_with,
    thread_reply, FakeSlack, RedisPrefix, RedisServer, ServerProcess, TestApp, TestDatabase, TEAM,
};

const QUESTION: &str = "revenue by region last month";

/// The same envelope, written by `user`.
fn from_user(mut envelope: Value, user: &str) -> Value {
    envelope["event"]["user"] = json!(user);
    envelope
}

/// Whether an answer's table has a row for `label` (`EMEA   | 657,544.85`).
fn has_row(text: &str, label: &str) -> bool {
    text.lines().any(|line| line.split_whitespace().next() == Some(label))
}

fn assert_only_emea(answer: &str) {
    assert!(has_row(answer, "EMEA"), "an EMEA row: {answer}");
    assert!(
        !has_row(answer, "AMER") && !has_row(answer, "APAC"),
        "only EMEA: {answer}"
    );
}

/// The value of an unlabelled gauge or counter in Prometheus text.
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Many threads at once
// ---------------------------------------------------------------------------------------------

const THREADS: usize = 200;
const CONVERSATION: [&str; 5] = [QUESTION, "only EMEA", "by week", "top 2", "show sql"];

#[actix_rt::test]
async fn a_thousand_events_across_two_hundred_threads_get_their_replies_in_order_once_each() {
    // Arrange: 200 threads, each in its own channel (Slack paces posts per channel) and asked by
    // its own user (so neither the rate limit nor the per-user query cap is what is tested).
    let app = spawn_app().await;
    let threads: Vec<(String, String, String)> = (0..THREADS)
        .map(|i| (new_channel(), "1700000000.000100".to_string(), format!("U0LOAD{i:04}")))
        .collect();

    // Act: every thread sends its five messages one after the other (each once acked), and the
    // 200 threads do so at the same time, so their events interleave at the server.
    let senders = threads.iter().enumerate().map(|(i, (channel, root, user))| {
        let app = &app;
        async move {
            for (k, text) in CONVERSATION.iter().enumerate() {
                let event_id = format!("EvLoad{i}x{k}");
                let envelope = if k == 0 {
                    app_mention(&event_id, channel, root, text)
                } else {
                    thread_reply(&event_id, channel, root, &format!("1700000000.00010{k}"), text)
                };
                let response = app.post_event(&from_user(envelope, user)).await;
                assert_eq!(response.status().as_u16(), 200, "{event_id} is acked");
            }
        }
    });
    futures::future::join_all(senders).await;

    // Assert: in each thread, one reply per message, in the order of the messages (a slow turn
    // shows a progress message first, which its reply then replaces). A refinement that
    // arrives while the previous question's query still runs supersedes it: that question then
    // gets the "replaced" notice in its place, and its version is still kept for the
    // refinement to build on, so version numbers stay 1..4.
    let expected = THREADS * CONVERSATION.len();
    // Polled slowly: the fake Slack holds a thousand messages by then.
    eventually_every(
        "every message is replied to",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async { app.slack.all_posts().await >= expected },
    )
    .await;
    for (channel, root, _) in &threads {
        let posts: Vec<String> = app
            .slack
            .wait_for_posts(channel, root, CONVERSATION.len())
            .await
            .iter()
            .map(post_text)
            .collect();
        for (k, text) in CONVERSATION[..4].iter().enumerate() {
            let reply = &posts[k];
            let answered = reply.contains(&format!("· version {}", k + 1));
            let superseded = reply.contains("Stopped the query: your newer message replaced it.")
                && reply.contains(&format!("It was the query for “{text}”."));
            assert!(
                answered || superseded,
                "{channel}: reply {k} should answer {text:?} as version {} (or say a newer message replaced it): {reply}",
                k + 1
            );
        }
        // Nothing follows `top 2` that could supersede it, so it is always answered.
        assert!(
            posts[3].contains("· version 4") && posts[3].contains("2 rows"),
            "{channel}: top 2 of the weekly EMEA revenue: {}",
            posts[3]
        );
        assert!(
            posts[4].contains("LIMIT 2") && posts[4].contains("'EMEA'") && posts[4].contains("week"),
            "{channel}: the SQL of version 4: {}",
            posts[4]
        );
    }
    assert_eq!(app.slack.all_posts().await, expected, "none missing, none doubled");
}

// ---------------------------------------------------------------------------------------------
// 2. A panicking turn
// ---------------------------------------------------------------------------------------------

/// Words that make [`PanicsOnMagicWords`] panic.
const MAGIC_WORDS: &str = "trigger the test panic";

/// The real interpreter, except that it panics when asked [`MAGIC_WORDS`].
struct PanicsOnMagicWords {
    inner: Arc<dyn Interpreter>,
}

#[async_trait]
impl Interpreter for PanicsOnMagicWords {
    async fn interpret(&self, request: InterpretRequest<'_>) -> Result<Interpretation, InterpretError> {
        if request.text.contains(MAGIC_WORDS) {
            panic!("test-only panic inside a turn");
        }
        self.inner.interpret(request).await
    }

    fn help(&self) -> String {
        self.inner.help()
    }

    async fn revise(
        &self,
        request: InterpretRequest<'_>,
        failed: &ProposedQuery,
        error: &str,
    ) -> Result<Option<Interpretation>, InterpretError> {
        self.inner.revise(request, failed, error).await
    }
}

/// Keeps every reply, by thread, in the order they were made.
#[derive(Default)]
struct RecordingReplier {
    replies: Mutex<Vec<(ThreadKey, Reply)>>,
}

impl RecordingReplier {
    fn replies_in(&self, thread: &ThreadKey) -> Vec<Reply> {
        self.replies
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| key == thread)
            .map(|(_, reply)| reply.clone())
            .collect()
    }
}

#[async_trait]
impl Replier for RecordingReplier {
    async fn reply(&self, thread: &ThreadKey, reply: Reply) -> anyhow::Result<()> {
        self.replies.lock().unwrap().push((thread.clone(), reply));
        Ok(())
    }
}

/// Sends a message to a thread and waits (bounded) until its turn is over.
/// The server's backends over a database of the test's own, with no Slack to reach: replies go
/// to the replier the test gives its registry.
async fn local_backends() -> (TestDatabase, threadql::config::Config, Backends) {
    let database = TestDatabase::create().await;
    let config = config_with("http://127.0.0.1:9/api", database.url(), &[]);
    let backends = Backends::build(&config).await.unwrap();
    (database, config, backends)
}

/// A registry whose turns run `permits` at a time across all threads, replying through `replier`.
fn registry_with_permits(
    config: &threadql::config::Config,
    backends: &Backends,
    replier: Arc<dyn Replier>,
    permits: usize,
) -> Arc<ThreadRegistry> {
    let mut services = backends.thread_services(config, replier);
    Arc::get_mut(&mut services).unwrap().turn_permits = threadql::turn::TurnQueue::new(permits);
    ThreadRegistry::start(services, 2, 0)
}

/// `count` new threads, each in a channel of its own.
fn new_threads(count: usize) -> Vec<ThreadKey> {
    (0..count)
        .map(|_| ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap())
        .collect()
}

async fn turn(registry: &ThreadRegistry, thread: &ThreadKey, origin: Origin, text: &str) {
    let (done, finished) = tokio::sync::oneshot::channel();
    registry.dispatch(
        thread.clone(),
        UserMessage::new("U0ALICE01", text, &new_ts(), origin).with_done(done),
    );
    // A panicked turn drops `done` instead of firing it: either way the turn is over.
    let _ = tokio::time::timeout(Duration::from_secs(30), finished)
        .await
        .unwrap_or_else(|_| panic!("the turn {text:?} in {thread} did not finish"));
}

/// The version and the region labels of an answer.
fn answered(reply: &Reply) -> (usize, Vec<String>) {
    let Reply::Answer(answer) = reply else {
        panic!("expected an answer, got {reply:?}");
    };
    let regions = answer
        .result
        .rows
        .iter()
        .filter_map(|row| match row.first() {
            Some(Cell::Text(region)) => Some(region.clone()),
            _ => None,
        })
        .collect();
    (answer.version, regions)
}

#[actix_rt::test]
async fn a_panicking_turn_gets_an_apology_and_the_thread_goes_on_with_its_context() {
    // Arrange: the real services over Postgres and the demo data, with an interpreter that
    // panics on the magic words, and replies recorded instead of posted.
    let (_database, config, mut backends) = local_backends().await;
    backends.interpreter = Arc::new(PanicsOnMagicWords {
        inner: backends.interpreter.clone(),
    });
    let replier = Arc::new(RecordingReplier::default());
    let registry = ThreadRegistry::start(backends.thread_services(&config, replier.clone()), 2, 0);
    let victim = ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap();
    let bystander = ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap();
    turn(&registry, &victim, Origin::Mention, QUESTION).await;

    // Act: the panic in one thread while another thread asks, then both refine.
    futures::join!(
        turn(&registry, &victim, Origin::ThreadReply, MAGIC_WORDS),
        turn(&registry, &bystander, Origin::Mention, QUESTION),
    );
    futures::join!(
        turn(&registry, &victim, Origin::ThreadReply, "only EMEA"),
        turn(&registry, &bystander, Origin::ThreadReply, "only EMEA"),
    );

    // Assert: the panicked turn got the short apology, and the refinement still refined the
    // first question (version 2 of it, EMEA only).
    let replies = replier.replies_in(&victim);
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert_eq!(answered(&replies[0]).0, 1);
    assert!(
        matches!(&replies[1], Reply::Error(error) if error.code == ErrorCode::Internal
            && error.text().contains("Sorry, something went wrong")),
        "{:?}",
        replies[1]
    );
    assert_eq!(answered(&replies[2]), (2, vec!["EMEA".to_string()]));
    assert!(registry.is_live(&victim), "the thread's actor kept running");
    // The other thread noticed nothing.
    let replies = replier.replies_in(&bystander);
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert_eq!(answered(&replies[0]).0, 1);
    assert_eq!(answered(&replies[1]), (2, vec!["EMEA".to_string()]));
    // Counted: one restart after a panic, one panicked turn.
    assert_eq!(backends.metrics.restarts.get(), 1);
    assert_eq!(backends.metrics.turns.with_label_values(&["ask", "panicked"]).get(), 1);
}

/// Slack as seen during an outage: answers never go through (the outbox would retry them for
/// as long as it takes); plain texts do.
#[derive(Default)]
struct AnswersNeverArrive;

#[async_trait]
impl Replier for AnswersNeverArrive {
    async fn reply(&self, _thread: &ThreadKey, reply: Reply) -> anyhow::Result<()> {
        if matches!(reply, Reply::Answer(_)) {
            futures::future::pending::<()>().await;
        }
        Ok(())
    }
}

#[actix_rt::test]
async fn an_answer_saved_but_not_yet_posted_when_the_process_stops_is_reported_after_the_restart() {
    // Arrange: a server whose answers cannot be posted.
    let (_database, config, backends) = local_backends().await;
    let store = backends.store.clone();
    let registry = ThreadRegistry::start(backends.thread_services(&config, Arc::new(AnswersNeverArrive)), 2, 0);
    let thread = ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap();
    registry.dispatch(
        thread.clone(),
        UserMessage::new("U0ALICE01", QUESTION, thread.thread_ts(), Origin::Mention),
    );
    eventually("the answer is saved", Duration::from_secs(15), || async {
        let snapshot = store.load_snapshot(&thread).await.unwrap();
        snapshot.is_some_and(|s| s.state.current().is_some())
    })
    .await;

    // Act: the process stops with the post still pending; a new one starts on the same store.
    drop(registry);
    let replier = Arc::new(RecordingReplier::default());
    let restarted = ThreadRegistry::start(backends.thread_services(&config, replier.clone()), 2, 0);
    restarted.activate(thread.clone());

    // Assert: the thread is told its answer never arrived, and the marker is cleared.
    eventually("the thread is told", Duration::from_secs(15), || async {
        !replier.replies_in(&thread).is_empty()
    })
    .await;
    let replies = replier.replies_in(&thread);
    assert!(
        matches!(&replies[..], [Reply::Text(text)] if text.contains("restarted while posting my answer to “revenue by region last month”")),
        "{replies:?}"
    );
    eventually("the marker is cleared", Duration::from_secs(15), || async {
        store
            .load_snapshot(&thread)
            .await
            .unwrap()
            .is_some_and(|s| s.state.in_flight.is_none())
    })
    .await;
}

/// Counts replies being sent at once; each takes a while, like a post to a slow Slack.
#[derive(Default)]
struct SlowReplier {
    sending: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
    sent: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Replier for SlowReplier {
    async fn reply(&self, _thread: &ThreadKey, _reply: Reply) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.sending.fetch_add(1, SeqCst) + 1;
        self.most_at_once.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.sending.fetch_sub(1, SeqCst);
        self.sent.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[actix_rt::test]
async fn a_burst_of_new_threads_runs_at_most_the_cap_of_turns_at_once_and_answers_them_all() {
    // Arrange: two turns at a time across all threads.
    let (_database, config, backends) = local_backends().await;
    let replier = Arc::new(SlowReplier::default());
    let registry = registry_with_permits(&config, &backends, replier.clone(), 2);

    // Act: twenty new threads at once.
    let threads = new_threads(20);
    futures::future::join_all(
        threads
            .iter()
            .map(|thread| turn(&registry, thread, Origin::Mention, "help")),
    )
    .await;

    // Assert
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(replier.sent.load(SeqCst), 20, "every thread was answered");
    assert_eq!(replier.most_at_once.load(SeqCst), 2, "turns ran two at a time, no more");
}

/// Holds every reply until the test lets it through (`gate.add_permits`), then keeps the order
/// of the threads replied to. `entered` fires when a reply reaches the gate.
struct GatedReplier {
    gate: tokio::sync::Semaphore,
    entered: tokio::sync::Notify,
    order: Mutex<Vec<ThreadKey>>,
}

impl GatedReplier {
    fn closed() -> Arc<Self> {
        Arc::new(Self {
            gate: tokio::sync::Semaphore::new(0),
            entered: tokio::sync::Notify::new(),
            order: Mutex::default(),
        })
    }
}

#[async_trait]
impl Replier for GatedReplier {
    async fn reply(&self, thread: &ThreadKey, _reply: Reply) -> anyhow::Result<()> {
        self.entered.notify_one();
        self.gate.acquire().await?.forget();
        self.order.lock().unwrap().push(thread.clone());
        Ok(())
    }
}

#[actix_rt::test]
async fn new_threads_wait_without_an_actor_and_are_answered_first_come_first_served() {
    // Arrange: one turn at a time; the first reply holds its turn until the gate opens.
    let (_database, config, backends) = local_backends().await;
    let replier = GatedReplier::closed();
    let registry = registry_with_permits(&config, &backends, replier.clone(), 1);
    let threads = new_threads(8);
    let mut finished = Vec::new();
    let mut ask = |thread: &ThreadKey| {
        let (done, over) = tokio::sync::oneshot::channel();
        registry.dispatch(
            thread.clone(),
            UserMessage::new("U0ALICE01", "help", &new_ts(), Origin::Mention).with_done(done),
        );
        finished.push(over);
    };

    // Act: eight new threads, then a second message in the fourth while it waits.
    for thread in &threads {
        ask(thread);
    }
    replier.entered.notified().await;
    ask(&threads[3]);

    // Assert: only the first thread has an actor; the others wait in line, messages kept.
    assert_eq!(registry.live_threads(), 1);
    assert_eq!(registry.waiting_threads(), 7);
    assert_eq!(registry.backlog(), 9);
    assert!(registry.is_live(&threads[5]), "a waiting thread counts as live");
    replier.gate.add_permits(100);
    for over in finished {
        tokio::time::timeout(Duration::from_secs(30), over)
            .await
            .unwrap()
            .unwrap();
    }
    // The fourth thread's second message came after every first message: it is answered last.
    let mut expected = threads.clone();
    expected.push(threads[3].clone());
    assert_eq!(*replier.order.lock().unwrap(), expected, "answered in the order asked");
    assert_eq!(registry.waiting_threads(), 0);
    assert_eq!(registry.backlog(), 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Passivation and stale snapshots
// ---------------------------------------------------------------------------------------------

async fn live_threads(app: &TestApp) -> f64 {
    metric(&app.metrics().await, "threadql_live_threads").unwrap_or(f64::NAN)
}

#[actix_rt::test]
async fn a_passivated_thread_is_reactivated_with_its_refinement_history() {
    // Arrange: threads passivate after one idle second.
    let app = spawn_app_with(&[("THREADQL_IDLE_SECS", "1".into())]).await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvP1", &channel, &root, QUESTION)).await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    eventually("the idle thread is passivated", Duration::from_secs(15), || async {
        live_threads(&app).await == 0.0
    })
    .await;

    // Act
    app.post_event(&thread_reply("EvP2", &channel, &root, &new_ts(), "only EMEA"))
        .await;

    // Assert: the refinement applies to the question asked before passivation.
    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    let refined = post_text(&posts[1]);
    assert!(refined.contains("· version 2"), "{refined}");
    assert_only_emea(&refined);
    assert_eq!(live_threads(&app).await, 1.0, "the thread is live again");
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "threadql_thread_passivations_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, r#"threadql_thread_activations_total{source="new"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, r#"threadql_thread_activations_total{source="snapshot"}"#),
        Some(1.0),
        "reactivated from its snapshot"
    );
    assert_eq!(metric(&metrics, "threadql_thread_activation_seconds_count"), Some(2.0));
}

#[actix_rt::test]
async fn mailbox_depth_is_sampled_per_thread_at_each_scrape() {
    // Arrange: replies wait at a gate, so turns stay under way.
    let (_database, config, backends) = local_backends().await;
    let replier = GatedReplier::closed();
    let registry = ThreadRegistry::start(backends.thread_services(&config, replier.clone()), 2, 0);
    let (busy, quiet) = (
        ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap(),
        ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap(),
    );

    // Act: three messages for one thread (one running, two queued), one for another.
    let mut done = Vec::new();
    for (thread, count) in [(&busy, 3), (&quiet, 1)] {
        for n in 0..count {
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let origin = if n == 0 { Origin::Mention } else { Origin::ThreadReply };
            let ts = if n == 0 {
                thread.thread_ts().to_string()
            } else {
                new_ts()
            };
            registry.dispatch(
                thread.clone(),
                UserMessage::new("U0ALICE01", "help", &ts, origin).with_done(sender),
            );
            done.push(receiver);
        }
    }

    // Assert: the sum over actors and the deepest actor, as a scrape sees them.
    let scrape = backends.metrics.render();
    assert_eq!(metric(&scrape, "threadql_mailbox_messages"), Some(4.0), "{scrape}");
    assert_eq!(metric(&scrape, "threadql_mailbox_messages_max"), Some(3.0), "{scrape}");
    replier.gate.add_permits(100);
    for receiver in done {
        receiver.await.unwrap();
    }
    let scrape = backends.metrics.render();
    assert_eq!(metric(&scrape, "threadql_mailbox_messages"), Some(0.0), "{scrape}");
    assert_eq!(metric(&scrape, "threadql_mailbox_messages_max"), Some(0.0), "{scrape}");
}

fn state_after(texts: &[&str]) -> ThreadState {
    let mut state = ThreadState::default();
    state.engaged = true;
    for text in texts {
        state.record_turn(Turn {
            user: "U0ALICE01".into(),
            text: (*text).into(),
            message_ts: new_ts().into(),
        });
    }
    state
}

#[actix_rt::test]
async fn snapshot_writes_are_counted_by_outcome_with_their_batch_size_and_latency() {
    // Arrange: the batching store every server uses, counting into its metrics.
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(database.url()).await.unwrap();
    store.migrate().await.unwrap();
    let store = threadql::store::SnapshotBatcher::new(Arc::new(store));
    let metrics = threadql::metrics::Metrics::new().unwrap();
    store.instrument(&metrics);
    let thread = ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap();

    // Act: a write, a second one based on it, and a late one based on the first.
    let first = state_after(&[QUESTION]);
    assert_eq!(store.save_snapshot(&thread, 0, &first).await.unwrap(), 1);
    assert_eq!(store.save_snapshot(&thread, 1, &first).await.unwrap(), 2);
    let late = store.save_snapshot(&thread, 1, &first).await;

    // Assert
    assert!(matches!(late, Err(StoreError::StaleSnapshot { .. })), "{late:?}");
    let count = |outcome: &str| metrics.snapshot_writes.with_label_values(&[outcome]).get();
    assert_eq!((count("saved"), count("stale"), count("failed")), (2, 1, 0));
    assert_eq!(
        metrics.snapshot_batch_size.get_sample_count(),
        3,
        "one batch per write here"
    );
    assert_eq!(metrics.snapshot_batch_size.get_sample_sum(), 3.0);
    assert_eq!(metrics.snapshot_write_seconds.get_sample_count(), 3);
}

#[actix_rt::test]
async fn a_snapshot_write_based_on_an_old_version_is_refused_by_postgres() {
    // Arrange: version 2 of a thread's snapshot is stored.
    let database = TestDatabase::create().await;
    let store = PostgresStore::connect(database.url()).await.unwrap();
    store.migrate().await.unwrap();
    let thread = ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap();
    let first = state_after(&[QUESTION]);
    let second = state_after(&[QUESTION, "only EMEA"]);
    assert_eq!(store.save_snapshot(&thread, 0, &first).await.unwrap(), 1);
    assert_eq!(store.save_snapshot(&thread, 1, &second).await.unwrap(), 2);

    // Act: writers that read version 1, or no snapshot at all, write late.
    let stale = state_after(&[QUESTION, "only APAC"]);
    let from_version_1 = store.save_snapshot(&thread, 1, &stale).await;
    let from_nothing = store.save_snapshot(&thread, 0, &stale).await;

    // Assert: both are refused, and version 2 is intact.
    assert!(
        matches!(from_version_1, Err(StoreError::StaleSnapshot { expected: 1, .. })),
        "{from_version_1:?}"
    );
    assert!(
        matches!(from_nothing, Err(StoreError::StaleSnapshot { expected: 0, .. })),
        "{from_nothing:?}"
    );
    let stored = store.load_snapshot(&thread).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.state, second);
}

#[actix_rt::test]
async fn a_batched_snapshot_write_based_on_an_old_version_is_refused_and_the_rest_of_the_batch_is_written() {
    // The batched write is the one thread actors' saves go through (`SnapshotBatcher`): one
    // statement on Postgres, one transaction on SQLite.
    let database = TestDatabase::create().await;
    let postgres = PostgresStore::connect(database.url()).await.unwrap();
    postgres.migrate().await.unwrap();
    let directory = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::connect(&format!("sqlite://{}", directory.path().join("state.db").display()))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let stores: [(&str, Arc<dyn StateStore>); 2] = [("postgres", Arc::new(postgres)), ("sqlite", Arc::new(sqlite))];
    for (name, store) in stores {
        // Arrange: thread A is at version 2; thread B has no snapshot yet.
        let (a, b) = (
            ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap(),
            ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap(),
        );
        let current = state_after(&[QUESTION, "only EMEA"]);
        store.save_snapshot(&a, 0, &state_after(&[QUESTION])).await.unwrap();
        store.save_snapshot(&a, 1, &current).await.unwrap();
        let stale = state_after(&[QUESTION, "only APAC"]);
        let fresh = state_after(&["top products"]);

        // Act: one batch with a late write for A (read at version 1) and a first write for B.
        let results = store
            .save_snapshots(&[
                SnapshotWrite {
                    thread: a.clone(),
                    expected: 1,
                    state: stale,
                    fence: None,
                },
                SnapshotWrite {
                    thread: b.clone(),
                    expected: 0,
                    state: fresh.clone(),
                    fence: None,
                },
            ])
            .await;

        // Assert
        assert!(
            matches!(results[0], Err(StoreError::StaleSnapshot { expected: 1, .. })),
            "{name}: {results:?}"
        );
        assert!(matches!(results[1], Ok(1)), "{name}: {results:?}");
        let stored = store.load_snapshot(&a).await.unwrap().unwrap();
        assert_eq!((stored.version, stored.state), (2, current), "{name}");
        let stored = store.load_snapshot(&b).await.unwrap().unwrap();
        assert_eq!((stored.version, stored.state), (1, fresh), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. kill -9
// ---------------------------------------------------------------------------------------------

/// `threadql serve` over `database`, as a user runs it.
async fn serve(slack: &FakeSlack, database: &TestDatabase) -> ServerProcess {
    ServerProcess::start(env!("CARGO_BIN_EXE_threadql"), &slack.api_url(), database.url(), &[]).await
}

#[actix_rt::test]
async fn a_server_killed_with_sigkill_mid_conversation_goes_on_refining_after_a_restart() {
    // Arrange: the real binary, asked a question and answered.
    let slack = FakeSlack::start().await;
    let database = TestDatabase::create().await;
    let mut server = serve(&slack, &database).await;
    let (channel, root) = (new_channel(), new_ts());
    let response = server.post_event(&app_mention("EvK1", &channel, &root, QUESTION)).await;
    assert_eq!(response.status().as_u16(), 200);
    let posts = slack.wait_for_posts(&channel, &root, 1).await;
    assert!(post_text(&posts[0]).contains("· version 1"), "{}", post_text(&posts[0]));
    // Between turns: the ✅ on the question comes after the turn's last snapshot write (killed
    // between the post and that write, the restarted server would say the answer may be lost).
    eventually("the turn is over", Duration::from_secs(15), || async {
        slack.requests("/api/reactions.add").await.iter().any(|request| {
            serde_json::from_slice::<Value>(&request.body).is_ok_and(|body| body["name"] == "white_check_mark")
        })
    })
    .await;

    // Act: kill -9, start again over the same state store, refine in the same thread.
    server.kill_9();
    let server = serve(&slack, &database).await;
    let response = server
        .post_event(&thread_reply("EvK2", &channel, &root, &new_ts(), "only EMEA"))
        .await;
    assert_eq!(response.status().as_u16(), 200);

    // Assert
    let posts = slack.wait_for_posts(&channel, &root, 2).await;
    let refined = post_text(&posts[1]);
    assert!(refined.contains("· version 2"), "{refined}");
    assert_only_emea(&refined);
}

// ---------------------------------------------------------------------------------------------
// 5. Redis goes away and comes back
// ---------------------------------------------------------------------------------------------

/// Posts a question from `user` in a new thread; returns the thread and how long the ack took.
async fn ask_in_new_thread(app: &TestApp, event_id: &str, user: &str) -> ((String, String), Duration) {
    let (channel, root) = (new_channel(), new_ts());
    let started = Instant::now();
    let response = app
        .post_event(&from_user(app_mention(event_id, &channel, &root, "help"), user))
        .await;
    let acked_in = started.elapsed();
    assert_eq!(response.status().as_u16(), 200, "{event_id} is acked");
    ((channel, root), acked_in)
}

#[actix_rt::test]
async fn when_redis_stops_the_server_keeps_answering_and_limiting_and_uses_redis_again_when_it_returns() {
    // Arrange: a Redis of our own, three questions a minute per user.
    let mut redis = RedisServer::start().await;
    // Its keys live in this test's own Redis, which goes with it.
    let prefix = RedisPrefix::new("threadql-test");
    let app = spawn_app_with(&[
        ("REDIS_URL", redis.url()),
        ("THREADQL_REDIS_PREFIX", prefix.to_string()),
        ("THREADQL_RATE_LIMIT_PER_MINUTE", "3".into()),
    ])
    .await;
    for i in 1..=2 {
        let ((channel, root), _) = ask_in_new_thread(&app, &format!("EvRd{i}"), "U0ALICE01").await;
        app.slack.wait_for_posts(&channel, &root, 1).await;
    }
    let bucket = format!("{prefix}rl:{TEAM}:U0ALICE01");
    assert_eq!(
        redis.keys(&bucket).await,
        Some(vec![bucket.clone()]),
        "the limit is kept in Redis while it runs"
    );

    // Act 1: Redis dies; Alice asks her third and fourth questions.
    redis.kill();
    let (third, third_ack) = ask_in_new_thread(&app, "EvRd3", "U0ALICE01").await;
    let (fourth, fourth_ack) = ask_in_new_thread(&app, "EvRd4", "U0ALICE01").await;

    // Assert: acks stay fast, the third is answered, the fourth is over the limit.
    assert!(
        third_ack < Duration::from_secs(1) && fourth_ack < Duration::from_secs(1),
        "acks must not wait on a dead Redis: {third_ack:?}, {fourth_ack:?}"
    );
    app.slack.wait_for_posts(&third.0, &third.1, 1).await;
    eventually("the fourth question gets a notice", Duration::from_secs(30), || async {
        !app.slack.ephemerals().await.is_empty()
    })
    .await;
    let notices = app.slack.ephemerals().await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0]["user"], "U0ALICE01");
    assert!(
        notices[0]["text"]
            .as_str()
            .unwrap()
            .contains("at most 3 questions a minute"),
        "{notices:#?}"
    );
    assert!(
        app.slack.posts_in_thread(&fourth.0, &fourth.1).await.is_empty(),
        "the question over the limit is not answered"
    );

    // Act 2: Redis comes back on the same port (empty: it kept nothing).
    redis.restart().await;

    // Assert: within a few of the server's probes, a new question is deduplicated in Redis
    // again, and is answered.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut attempt = 0;
    let (channel, root) = loop {
        attempt += 1;
        let event_id = format!("EvRdBack{attempt}");
        // A new user each time: the attempts that fell back to this process count too.
        let (thread, _) = ask_in_new_thread(&app, &event_id, &format!("U0BOB{attempt:04}")).await;
        let key = format!("{prefix}dd:message:{}:{}:{}", TEAM, thread.0, thread.1);
        if redis.keys(&key).await == Some(vec![key.clone()]) {
            break thread;
        }
        assert!(
            Instant::now() < deadline,
            "the server never used Redis again; keys: {:?}",
            redis.keys("*").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    app.slack.wait_for_posts(&channel, &root, 1).await;
}
