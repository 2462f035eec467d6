//! Several replicas over one Postgres (issue 13), in process: each thread's turns run on the
//! one replica that holds its lease, events reaching another replica are forwarded to it over
//! the internal endpoint (with the cluster secret), and a replica that lost a thread while it
//! was paused writes and posts nothing for it: the message goes to the new owner.
use sqlx::Row;

use threadql_testkit::{
    app_mention, free_port, new_channel, new_ts, post_text, spawn_app_with, thread_reply, Replica, TestApp,
};

const SECRET: &str = "cluster-secret-for-tests";

/// The cluster settings of a replica advertised on `port`, with a lease long enough that no
/// renewal happens during a test unless it asks for one.
fn clustered(port: u16) -> Vec<(&'static str, String)> {
    clustered_with_lease(port, 60)
}

/// The same with a lease of `secs` (renewals and the sweep for dead replicas' threads every
/// third of it).
fn clustered_with_lease(port: u16, secs: u64) -> Vec<(&'static str, String)> {
    vec![
        ("THREADQL_ADVERTISE_URL", format!("http://127.0.0.1:{port}")),
        ("THREADQL_CLUSTER_SECRET", SECRET.to_string()),
        ("THREADQL_LEASE_SECS", secs.to_string()),
    ]
}

async fn two_replicas() -> (TestApp, u16, Replica, u16) {
    let (first_port, second_port) = (free_port(), free_port());
    let app = spawn_app_with(&clustered(first_port)).await;
    let replica = app.start_replica(&clustered(second_port)).await;
    (app, first_port, replica, second_port)
}

/// `threadql serve` advertised on `port` with a 3 s lease, over the test's fake Slack and Postgres.
async fn serve(
    slack: &threadql_testkit::FakeSlack,
    database: &threadql_testkit::TestDatabase,
    port: u16,
) -> threadql_testkit::ServerProcess {
    serve_with(slack, database, clustered_with_lease(port, 3)).await
}

/// `threadql serve` with `settings`, over the test's fake Slack and Postgres.
async fn serve_with(
    slack: &threadql_testkit::FakeSlack,
    database: &threadql_testkit::TestDatabase,
    settings: Vec<(&'static str, String)>,
) -> threadql_testkit::ServerProcess {
    threadql_testkit::ServerProcess::start(
        env!("CARGO_BIN_EXE_threadql"),
        &slack.api_url(),
        database.url(),
        &settings,
    )
    .await
}

/// A thread started at `server` whose first turn is over (answered, its snapshot written).
async fn thread_answered_at(
    server: &threadql_testkit::ServerProcess,
    slack: &threadql_testkit::FakeSlack,
) -> (String, String) {
    let (channel, root) = (new_channel(), new_ts());
    server
        .post_event(&app_mention(&format!("Ev{root}"), &channel, &root, "orders by channel"))
        .await;
    slack.wait_for_posts(&channel, &root, 1).await;
    turns_over(slack, 1).await;
    (channel, root)
}

/// The threads a replica's internal endpoint lists as owned there (live and answering).
async fn owned_at(port: u16) -> Vec<String> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/internal/threads"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["owned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key.as_str().unwrap().to_string())
        .collect()
}

/// `threadql serve` advertised on `port` with a 3 s lease, sharing `redis` (under the test's
/// prefix), with limits high enough for one user to ask hundreds of questions at once.
async fn serve_busy(
    slack: &threadql_testkit::FakeSlack,
    database: &threadql_testkit::TestDatabase,
    port: u16,
    redis: (&str, &str),
) -> threadql_testkit::ServerProcess {
    let mut settings = clustered_with_lease(port, 3);
    settings.push(("REDIS_URL", redis.0.to_string()));
    settings.push(("THREADQL_REDIS_PREFIX", redis.1.to_string()));
    settings.push(("THREADQL_RATE_LIMIT_PER_MINUTE", "100000".to_string()));
    settings.push(("THREADQL_MAX_QUERIES_PER_USER", "1000".to_string()));
    settings.push(("THREADQL_MAX_QUERIES", "1000".to_string()));
    serve_with(slack, database, settings).await
}

/// Messages kept in the inbox (taken, not answered yet) for the thread rooted at `root`.
async fn kept(database: &threadql_testkit::TestDatabase, root: &str) -> i64 {
    let mut connection = database.connect().await;
    sqlx::query_scalar("SELECT count(*) FROM thread_inbox WHERE thread_ts = $1")
        .bind(root)
        .fetch_one(&mut connection)
        .await
        .unwrap()
}

/// Waits until `count` turns are over: each one's ✅ comes after its last snapshot write.
async fn turns_over(slack: &threadql_testkit::FakeSlack, count: usize) {
    threadql_testkit::eventually("the turns are over", std::time::Duration::from_secs(15), || async {
        let done = slack
            .requests("/api/reactions.add")
            .await
            .iter()
            .filter(|request| {
                serde_json::from_slice::<serde_json::Value>(&request.body)
                    .is_ok_and(|body| body["name"] == "white_check_mark")
            })
            .count();
        done >= count
    })
    .await;
}

/// (owner URL, epoch) of the thread's lease.
async fn lease(app: &TestApp, channel: &str, root: &str) -> (String, i64) {
    let mut connection = app.database.connect().await;
    let row = sqlx::query("SELECT owner_url, epoch FROM thread_owners WHERE channel_id = $1 AND thread_ts = $2")
        .bind(channel)
        .bind(root)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[actix_rt::test]
async fn a_threads_events_reaching_either_replica_are_answered_by_its_one_owner() {
    let (app, first_port, replica, _) = two_replicas().await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention(&format!("Ev{root}"), &channel, &root, "orders by channel"))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;

    // Six follow-ups at once, alternating between the replicas: two owners would interleave
    // their turns and refuse each other's snapshot writes ("changed elsewhere").
    for i in 0..6 {
        let ts = new_ts();
        let event = thread_reply(&format!("Ev{ts}"), &channel, &root, &ts, "show sql");
        let response = if i % 2 == 0 {
            replica.post_event(&event).await
        } else {
            app.post_event(&event).await
        };
        assert_eq!(response.status(), 200);
    }
    app.slack.wait_for_posts(&channel, &root, 7).await;
    app.wait_until_idle().await;
    replica.handle.wait_until_idle().await;

    let posts = app.slack.posts_in_thread(&channel, &root).await;
    assert_eq!(posts.len(), 7, "each message answered once: {posts:#?}");
    for post in &posts[1..] {
        let text = post_text(post);
        assert!(text.contains("SELECT"), "an answer, not an error: {text}");
    }
    // The thread stayed with the replica that started it.
    assert_eq!(
        lease(&app, &channel, &root).await,
        (format!("http://127.0.0.1:{first_port}/"), 1)
    );
}

#[actix_rt::test]
async fn a_forwarded_event_without_the_cluster_secret_is_refused_and_not_handled() {
    let (app, _, _replica, second_port) = two_replicas().await;
    let (channel, root) = (new_channel(), new_ts());
    let forwarded = serde_json::json!({
        "thread": {"team": threadql_testkit::TEAM, "channel": channel, "thread_ts": root},
        "user": "U0ALICE01", "text": "orders by channel", "message_ts": root,
        "origin": "mention", "version": null, "event_id": "Ev1",
    });
    let endpoint = format!("http://127.0.0.1:{second_port}/internal/forward");
    for authorization in [None, Some("Bearer wrong"), Some(SECRET)] {
        let mut request = app.client.post(&endpoint).json(&forwarded);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{authorization:?}");
    }
    app.wait_until_idle().await;
    assert!(app.slack.posts_in_thread(&channel, &root).await.is_empty());

    // With the secret, the replica takes it as its own.
    let accepted = app
        .client
        .post(&endpoint)
        .bearer_auth(SECRET)
        .json(&forwarded)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    app.slack.wait_for_posts(&channel, &root, 1).await;
}

#[actix_rt::test]
async fn a_replica_that_lost_its_lease_while_paused_posts_nothing_and_hands_the_message_over() {
    let (app, _, replica, second_port) = two_replicas().await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention(&format!("Ev{root}"), &channel, &root, "orders by channel"))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    // Its turn is over (the answer's in-flight marker cleared), so nothing is in flight.
    app.wait_until_idle().await;
    assert_eq!(lease(&app, &channel, &root).await.1, 1);

    // The first replica is paused past its lease (as with SIGSTOP): its lease passes, and the
    // next event, at the other replica, moves the thread there.
    let mut connection = app.database.connect().await;
    sqlx::query("UPDATE thread_owners SET expires_at = now() - interval '1 second' WHERE thread_ts = $1")
        .bind(&root)
        .execute(&mut connection)
        .await
        .unwrap();
    let ts = new_ts();
    replica
        .post_event(&thread_reply(&format!("Ev{ts}"), &channel, &root, &ts, "only web"))
        .await;
    app.slack.wait_for_posts(&channel, &root, 2).await;
    assert_eq!(
        lease(&app, &channel, &root).await,
        (format!("http://127.0.0.1:{second_port}/"), 2)
    );

    // The first replica wakes and is sent a message of the thread: its live actor still
    // thinks the thread is its own. Its write is refused, it says nothing, and the new owner
    // answers, from the state the new owner wrote ("only web" still applies).
    let ts = new_ts();
    app.post_event(&thread_reply(
        &format!("Ev{ts}"),
        &channel,
        &root,
        &ts,
        "by week instead",
    ))
    .await;
    app.slack.wait_for_posts(&channel, &root, 3).await;
    app.wait_until_idle().await;
    replica.handle.wait_until_idle().await;
    let posts = app.slack.posts_in_thread(&channel, &root).await;
    assert_eq!(posts.len(), 3, "answered once: {posts:#?}");
    let last = post_text(&posts[2]);
    assert!(last.contains("web") && last.to_lowercase().contains("week"), "{last}");
    assert!(app
        .metrics()
        .await
        .contains(r#"threadql_snapshot_writes_total{outcome="fenced"} 1"#));
    assert_eq!(
        lease(&app, &channel, &root).await.0,
        format!("http://127.0.0.1:{second_port}/")
    );
}

#[actix_rt::test]
async fn a_thread_whose_replica_died_mid_question_is_taken_over_and_its_question_reported() {
    use threadql::domain::{InFlight, ThreadKey, ThreadState};
    use threadql::store::{PostgresStore, StateStore};
    let port = free_port();
    let settings = clustered_with_lease(port, 3);
    let app = spawn_app_with(&settings).await;

    // A replica (since killed) was working on a question in a thread; its lease has passed.
    let (channel, root) = (new_channel(), new_ts());
    let thread = ThreadKey::parse(threadql_testkit::TEAM, &channel, &root).unwrap();
    let store = PostgresStore::connect(app.database.url()).await.unwrap();
    let mut state = ThreadState::default();
    state.in_flight = Some(InFlight {
        question: "refunds by region".into(),
        answered: false,
    });
    let mut connection = app.database.connect().await;
    sqlx::query(
        "INSERT INTO thread_owners (team_id, channel_id, thread_ts, owner, owner_url, epoch, expires_at) \
         VALUES ($1, $2, $3, 'killed-replica', 'http://127.0.0.1:9', 1, now() - interval '1 second')",
    )
    .bind(threadql_testkit::TEAM)
    .bind(&channel)
    .bind(&root)
    .execute(&mut connection)
    .await
    .unwrap();
    store.save_snapshot(&thread, 0, &state).await.unwrap();

    // The live replica takes the thread over and tells it, once.
    let told = app.slack.wait_for_posts(&channel, &root, 1).await;
    let text = post_text(&told[0]);
    assert!(
        text.contains("was not answered") && text.contains("refunds by region"),
        "{text}"
    );
    app.wait_until_idle().await;
    assert_eq!(
        lease(&app, &channel, &root).await,
        (format!("http://127.0.0.1:{port}/"), 2)
    );
    let snapshot = store.load_snapshot(&thread).await.unwrap().unwrap();
    assert_eq!(snapshot.state.in_flight, None, "reported once, then forgotten");
    assert_eq!(app.slack.posts_in_thread(&channel, &root).await.len(), 1);
}

#[actix_rt::test]
async fn when_the_owner_is_killed_with_sigkill_its_threads_go_on_at_another_replica_with_their_context() {
    // Two `threadql serve` processes sharing one Postgres, with a short lease.
    let slack = threadql_testkit::FakeSlack::start().await;
    let database = threadql_testkit::TestDatabase::create().await;
    let mut owner = serve(&slack, &database, free_port()).await;
    let other = serve(&slack, &database, free_port()).await;
    // Between turns: the ✅ comes after the turn's last snapshot write (killed before it, the
    // answer would still be marked in flight, and the other replica would say so).
    let (channel, root) = thread_answered_at(&owner, &slack).await;

    // The owner dies between turns without releasing anything; the next message reaches the
    // other replica, which forwards to the dead owner, fails, and claims the thread once the
    // lease passes.
    owner.kill_9();
    let ts = new_ts();
    let response = other
        .post_event(&thread_reply(&format!("Ev{ts}"), &channel, &root, &ts, "only web"))
        .await;
    assert_eq!(response.status(), 200);

    let posts = slack.wait_for_posts(&channel, &root, 2).await;
    let refined = post_text(&posts[1]);
    assert!(refined.contains("version 2") && refined.contains("web"), "{refined}");
    assert!(
        !refined.contains("mobile"),
        "the refinement applied to the thread's query: {refined}"
    );
    assert_eq!(slack.posts_in_thread(&channel, &root).await.len(), 2, "answered once");
}

#[actix_rt::test]
async fn a_message_delivered_to_two_replicas_without_a_shared_redis_is_answered_once() {
    // No REDIS_URL: each replica remembers only the messages it took itself.
    let (app, _, replica, _) = two_replicas().await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention(&format!("Ev{root}"), &channel, &root, "orders by channel"))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;

    // Slack's retry of a reply reaches the other replica: both take it.
    let ts = new_ts();
    let event = thread_reply(&format!("Ev{ts}"), &channel, &root, &ts, "only web");
    assert_eq!(app.post_event(&event).await.status(), 200);
    assert_eq!(replica.post_event(&event).await.status(), 200);
    app.slack.wait_for_posts(&channel, &root, 2).await;
    app.wait_until_idle().await;
    replica.handle.wait_until_idle().await;

    let posts = app.slack.posts_in_thread(&channel, &root).await;
    assert_eq!(posts.len(), 2, "answered once: {posts:#?}");
}

#[actix_rt::test]
async fn events_for_two_hundred_threads_spread_over_three_processes_are_answered_in_order_once_each() {
    const THREADS: usize = 200;
    let slack = threadql_testkit::FakeSlack::start().await;
    let database = threadql_testkit::TestDatabase::create().await;
    let redis = threadql_testkit::RedisPrefix::new("replicas");
    let (mut replicas, mut ports) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let port = free_port();
        ports.push(port);
        let mut settings = clustered(port);
        settings.push(("REDIS_URL", "redis://127.0.0.1:6379/".to_string()));
        settings.push(("THREADQL_REDIS_PREFIX", redis.as_str().to_string()));
        // One user asks all 400 questions, many at once.
        settings.push(("THREADQL_RATE_LIMIT_PER_MINUTE", "100000".to_string()));
        settings.push(("THREADQL_MAX_QUERIES_PER_USER", "1000".to_string()));
        settings.push(("THREADQL_MAX_QUERIES", "1000".to_string()));
        let server = serve_with(&slack, &database, settings).await;
        replicas.push(server);
    }
    let threads: Vec<(String, String)> = (0..THREADS).map(|_| (new_channel(), new_ts())).collect();

    // Each question to one replica, round robin, and Slack's retry of it to the next one.
    for (i, (channel, root)) in threads.iter().enumerate() {
        let event = app_mention(&format!("Ev{root}"), channel, root, "orders by channel");
        replicas[i % 3].post_event(&event).await;
        replicas[(i + 1) % 3].post_event(&event).await;
    }
    for (channel, root) in &threads {
        slack.wait_for_posts(channel, root, 1).await;
    }
    // Then a refinement in each, to a third replica, retried to the first.
    for (i, (channel, root)) in threads.iter().enumerate() {
        let ts = new_ts();
        let event = thread_reply(&format!("Ev{ts}"), channel, root, &ts, "only web");
        replicas[(i + 2) % 3].post_event(&event).await;
        replicas[i % 3].post_event(&event).await;
    }
    for (channel, root) in &threads {
        slack.wait_for_posts(channel, root, 2).await;
    }

    let mut connection = database.connect().await;
    for (channel, root) in &threads {
        let posts = slack.posts_in_thread(channel, root).await;
        assert_eq!(posts.len(), 2, "each message answered once in {channel}: {posts:#?}");
        let (first, second) = (post_text(&posts[0]), post_text(&posts[1]));
        assert!(first.contains("version 1") && first.contains("mobile"), "{first}");
        assert!(second.contains("version 2") && !second.contains("mobile"), "{second}");
        // One owner from start to end: the lease never changed hands.
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM thread_owners WHERE channel_id = $1 AND thread_ts = $2")
            .bind(channel)
            .bind(root)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(epoch, 1);
    }
    // One live actor answers each thread, at one replica (the others forward to it).
    let mut owned = Vec::new();
    for port in &ports {
        owned.extend(owned_at(*port).await);
    }
    let distinct: std::collections::HashSet<&String> = owned.iter().collect();
    assert_eq!(distinct.len(), owned.len(), "a thread owned at two replicas");
    for (channel, root) in &threads {
        let key = format!("{}/{channel}/{root}", threadql_testkit::TEAM);
        assert!(distinct.contains(&key), "{key} is owned somewhere");
    }
}

#[actix_rt::test]
async fn a_message_for_an_unreachable_owner_is_kept_in_postgres_and_answered_after_its_replica_dies() {
    let port = free_port();
    let settings = clustered_with_lease(port, 3);
    let app = spawn_app_with(&settings).await;
    let mut other = {
        let settings = clustered_with_lease(free_port(), 3);
        serve_with(&app.slack, &app.database, settings).await
    };

    // The thread belongs to a replica that stopped answering (its lease holds a few seconds).
    let (channel, root) = (new_channel(), new_ts());
    let mut connection = app.database.connect().await;
    sqlx::query(
        "INSERT INTO thread_owners (team_id, channel_id, thread_ts, owner, owner_url, epoch, expires_at) \
         VALUES ($1, $2, $3, 'silent-replica', 'http://127.0.0.1:9', 1, now() + interval '6 seconds')",
    )
    .bind(threadql_testkit::TEAM)
    .bind(&channel)
    .bind(&root)
    .execute(&mut connection)
    .await
    .unwrap();

    // A question reaches the other process, which cannot forward it: it keeps it in Postgres,
    // then dies before it could take the thread over.
    other
        .post_event(&app_mention(&format!("Ev{root}"), &channel, &root, "orders by channel"))
        .await;
    let kept = || async {
        let mut connection = app.database.connect().await;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM thread_inbox WHERE thread_ts = $1")
            .bind(&root)
            .fetch_one(&mut connection)
            .await
            .unwrap();
        count
    };
    threadql_testkit::eventually("the question is kept", std::time::Duration::from_secs(15), || async {
        kept().await == 1
    })
    .await;
    other.kill_9();

    // Once the silent replica's lease passes, the live one takes the thread and answers.
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(post_text(&posts[0]).contains("mobile"), "{}", post_text(&posts[0]));
    app.wait_until_idle().await;
    assert_eq!(kept().await, 0, "taken by the answer");
    assert_eq!(app.slack.posts_in_thread(&channel, &root).await.len(), 1);
    assert_eq!(
        lease(&app, &channel, &root).await.0,
        format!("http://127.0.0.1:{port}/")
    );
}

#[actix_rt::test]
async fn an_owner_paused_past_its_lease_with_sigstop_writes_and_posts_nothing_for_its_threads_when_resumed() {
    let slack = threadql_testkit::FakeSlack::start().await;
    let database = threadql_testkit::TestDatabase::create().await;
    let (owner_port, other_port) = (free_port(), free_port());
    let owner = serve(&slack, &database, owner_port).await;
    let other = serve(&slack, &database, other_port).await;
    let (channel, root) = thread_answered_at(&owner, &slack).await;

    // Frozen past its lease; the thread's next message, at the other process, moves it there.
    owner.pause();
    let lapsed = || async {
        let mut connection = database.connect().await;
        sqlx::query_scalar::<_, bool>("SELECT expires_at < now() FROM thread_owners WHERE thread_ts = $1")
            .bind(&root)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    };
    threadql_testkit::eventually(
        "the frozen owner's lease passes",
        std::time::Duration::from_secs(15),
        lapsed,
    )
    .await;
    let ts = new_ts();
    other
        .post_event(&thread_reply(&format!("Ev{ts}"), &channel, &root, &ts, "only web"))
        .await;
    slack.wait_for_posts(&channel, &root, 2).await;

    // Thawed: it keeps its live actor for the thread, but learns at its next renewal or write
    // that the thread moved; a message that reaches it goes to the new owner.
    owner.resume();
    let ts = new_ts();
    owner
        .post_event(&thread_reply(
            &format!("Ev{ts}"),
            &channel,
            &root,
            &ts,
            "by week instead",
        ))
        .await;
    let posts = slack.wait_for_posts(&channel, &root, 3).await;
    let last = post_text(&posts[2]);
    assert!(last.contains("version 3") && last.contains("web"), "{last}");
    let mut connection = database.connect().await;
    let (url, epoch): (String, i64) = sqlx::query_as("SELECT owner_url, epoch FROM thread_owners WHERE thread_ts = $1")
        .bind(&root)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!((url, epoch), (format!("http://127.0.0.1:{other_port}/"), 2));
    // Nothing more comes from the thawed process: three messages, three answers; and its actor
    // for the thread no longer answers there.
    turns_over(&slack, 3).await;
    assert_eq!(slack.posts_in_thread(&channel, &root).await.len(), 3);
    let key = format!("{}/{channel}/{root}", threadql_testkit::TEAM);
    assert!(!owned_at(owner_port).await.contains(&key));
    assert_eq!(owned_at(other_port).await, [key]);
}

#[actix_rt::test]
async fn an_owner_killed_mid_turn_has_its_question_reported_and_the_message_queued_behind_it_answered_elsewhere() {
    let slack = threadql_testkit::FakeSlack::start().await;
    let database = threadql_testkit::TestDatabase::create().await;
    let other_port = free_port();
    let mut owner = serve(&slack, &database, free_port()).await;
    let _other = serve(&slack, &database, other_port).await;
    let (channel, root) = thread_answered_at(&owner, &slack).await;

    // A refinement whose answer is on its way to Slack when the owner dies, and a message
    // queued behind it at the owner.
    slack.stall_next_post_in(&channel);
    let asked = new_ts();
    owner
        .post_event(&thread_reply(
            &format!("Ev{asked}"),
            &channel,
            &root,
            &asked,
            "only web",
        ))
        .await;
    slack.wait_for_posts(&channel, &root, 2).await;
    let queued = new_ts();
    let response = owner
        .post_event(&thread_reply(
            &format!("Ev{queued}"),
            &channel,
            &root,
            &queued,
            "show sql",
        ))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        kept(&database, &root).await,
        2,
        "both taken messages are kept until answered"
    );
    owner.kill_9();

    // The other replica takes the thread once the lease passes: it reports the interrupted
    // question and answers the one queued behind it, each once.
    let posts = slack.wait_for_posts(&channel, &root, 4).await;
    let report = post_text(&posts[2]);
    assert!(
        report.contains("I was restarted while") && report.contains("only web"),
        "{report}"
    );
    let sql = post_text(&posts[3]);
    assert!(sql.contains("SELECT") && sql.contains("web"), "{sql}");
    // Each message leaves the inbox once its turn is over.
    threadql_testkit::eventually("the inbox is emptied", std::time::Duration::from_secs(10), || async {
        kept(&database, &root).await == 0
    })
    .await;
    assert_eq!(
        slack.posts_in_thread(&channel, &root).await.len(),
        4,
        "nothing answered twice"
    );
    assert_eq!(
        owned_at(other_port).await,
        [format!("{}/{channel}/{root}", threadql_testkit::TEAM)]
    );
}

#[actix_rt::test]
async fn with_redis_stopped_retries_at_other_replicas_are_answered_once_and_redis_is_used_again_when_back() {
    let slack = threadql_testkit::FakeSlack::start().await;
    let database = threadql_testkit::TestDatabase::create().await;
    let mut redis = threadql_testkit::RedisServer::start().await;
    let prefix = threadql_testkit::RedisPrefix::new("replicas-redis-down");
    let url = redis.url();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(serve_busy(&slack, &database, free_port(), (&url, prefix.as_str())).await);
    }
    // Each round: questions in new threads, each delivered to one replica and retried at the
    // next, then a refinement in each, delivered and retried likewise.
    async fn round(replicas: &[threadql_testkit::ServerProcess], slack: &threadql_testkit::FakeSlack) {
        let threads: Vec<(String, String)> = (0..12).map(|_| (new_channel(), new_ts())).collect();
        for (i, (channel, root)) in threads.iter().enumerate() {
            let event = app_mention(&format!("Ev{root}"), channel, root, "orders by channel");
            assert_eq!(replicas[i % 3].post_event(&event).await.status(), 200);
            assert_eq!(replicas[(i + 1) % 3].post_event(&event).await.status(), 200);
        }
        for (channel, root) in &threads {
            slack.wait_for_posts(channel, root, 1).await;
        }
        for (i, (channel, root)) in threads.iter().enumerate() {
            let ts = new_ts();
            let event = thread_reply(&format!("Ev{ts}"), channel, root, &ts, "only web");
            assert_eq!(replicas[(i + 2) % 3].post_event(&event).await.status(), 200);
            assert_eq!(replicas[i % 3].post_event(&event).await.status(), 200);
        }
        for (channel, root) in &threads {
            let posts = slack.wait_for_posts(channel, root, 2).await;
            assert!(post_text(&posts[1]).contains("version 2"), "{}", post_text(&posts[1]));
        }
        turns_over_in(slack, &threads).await;
        for (channel, root) in &threads {
            let posts = slack.posts_in_thread(channel, root).await;
            assert_eq!(posts.len(), 2, "each message answered once in {channel}: {posts:#?}");
        }
    }

    round(&replicas, &slack).await;
    let claims = redis.keys(&format!("{}dd:*", prefix.as_str())).await.unwrap();
    assert!(!claims.is_empty(), "the replicas dedupe through Redis while it runs");

    redis.kill();
    round(&replicas, &slack).await;

    // Back (empty): the replicas use it again.
    redis.restart().await;
    threadql_testkit::eventually(
        "the replicas claim messages in Redis again",
        std::time::Duration::from_secs(30),
        || async {
            round(&replicas, &slack).await;
            redis
                .keys(&format!("{}dd:*", prefix.as_str()))
                .await
                .is_some_and(|claims| !claims.is_empty())
        },
    )
    .await;
}

/// Waits until every turn in `threads` is over (a ✅ on each of their messages).
async fn turns_over_in(slack: &threadql_testkit::FakeSlack, threads: &[(String, String)]) {
    let channels: std::collections::HashSet<&str> = threads.iter().map(|(channel, _)| channel.as_str()).collect();
    threadql_testkit::eventually("the turns are over", std::time::Duration::from_secs(30), || async {
        let done = slack
            .requests("/api/reactions.add")
            .await
            .iter()
            .filter_map(|request| serde_json::from_slice::<serde_json::Value>(&request.body).ok())
            .filter(|body| {
                body["name"] == "white_check_mark" && channels.contains(body["channel"].as_str().unwrap_or_default())
            })
            .count();
        done >= threads.len() * 2
    })
    .await;
}

/// Steady traffic over threads that live through a test: each step sends the next thread's
/// next message (its question, then refinements that each make a new version) to the next
/// replica in the rotation.
struct Traffic {
    threads: Vec<(String, String)>,
    /// Messages sent to each thread so far.
    sent: Vec<usize>,
    steps: usize,
}

impl Traffic {
    const REFINEMENTS: [&'static str; 4] = ["only web", "by week instead", "only mobile", "by month instead"];

    fn new(threads: usize) -> Self {
        Self {
            threads: (0..threads).map(|_| (new_channel(), new_ts())).collect(),
            sent: vec![0; threads],
            steps: 0,
        }
    }

    /// As a person would: a thread's next message comes once its last one is answered (a newer
    /// question while a query runs would replace it).
    async fn step(
        &mut self,
        rotation: &[Option<threadql_testkit::ServerProcess>],
        slack: &threadql_testkit::FakeSlack,
    ) {
        let index = self.steps % self.threads.len();
        let (channel, root) = &self.threads[index];
        if self.sent[index] > 0 {
            slack.wait_for_posts(channel, root, self.sent[index]).await;
        }
        let event = match self.sent[index] {
            0 => app_mention(&format!("Ev{root}"), channel, root, "orders by channel"),
            count => {
                let ts = new_ts();
                let text = Self::REFINEMENTS[(count - 1) % Self::REFINEMENTS.len()];
                thread_reply(&format!("Ev{ts}"), channel, root, &ts, text)
            }
        };
        let live: Vec<&threadql_testkit::ServerProcess> = rotation.iter().flatten().collect();
        let response = live[self.steps % live.len()].post_event(&event).await;
        assert_eq!(response.status(), 200, "acked by a replica in the rotation");
        self.sent[index] += 1;
        self.steps += 1;
    }
}

#[actix_rt::test]
async fn a_rolling_restart_of_three_replicas_under_steady_traffic_loses_and_doubles_nothing() {
    let slack = threadql_testkit::FakeSlack::start().await;
    let database = threadql_testkit::TestDatabase::create().await;
    let prefix = threadql_testkit::RedisPrefix::new("replicas-rolling");
    let redis = ("redis://127.0.0.1:6379/", prefix.as_str());
    let mut rotation = Vec::new();
    for _ in 0..3 {
        rotation.push(Some(serve_busy(&slack, &database, free_port(), redis).await));
    }
    let mut traffic = Traffic::new(30);
    let mut stopped = Vec::new();
    for _ in 0..30 {
        traffic.step(&rotation, &slack).await;
    }
    for restarting in 0..3 {
        // Out of the rotation (as a terminating pod leaves its Service's endpoints), then
        // SIGTERM: it finishes its turns and releases its leases while traffic goes on.
        let leaving = rotation[restarting].take().unwrap();
        leaving.terminate();
        for _ in 0..15 {
            traffic.step(&rotation, &slack).await;
        }
        let mut leaving = leaving;
        let status = leaving.wait_for_exit(std::time::Duration::from_secs(30)).await;
        assert!(status.is_some_and(|status| status.success()), "{}", leaving.log_tail());
        // Kept (exited) so that its log stays should the test fail.
        stopped.push(leaving);
        rotation[restarting] = Some(serve_busy(&slack, &database, free_port(), redis).await);
        for _ in 0..15 {
            traffic.step(&rotation, &slack).await;
        }
    }

    // Every message answered, once, in each thread's order.
    for ((channel, root), &sent) in traffic.threads.iter().zip(&traffic.sent) {
        slack.wait_for_posts(channel, root, sent).await;
    }
    // Each message leaves the inbox once its turn is over.
    threadql_testkit::eventually("every turn is over", std::time::Duration::from_secs(30), || async {
        let mut connection = database.connect().await;
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM thread_inbox")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        kept == 0
    })
    .await;
    for ((channel, root), &sent) in traffic.threads.iter().zip(&traffic.sent) {
        let posts = slack.posts_in_thread(channel, root).await;
        assert_eq!(posts.len(), sent, "{channel}: {posts:#?}");
        for (index, post) in posts.iter().enumerate() {
            let text = post_text(post);
            assert!(
                text.contains(&format!("version {}", index + 1)),
                "answer {} in {channel}: {text}",
                index + 1
            );
        }
    }
}
