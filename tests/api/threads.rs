//! Thread actors under pressure: cancel and supersede in the warehouse, rate limits,
//! Slack's 429s.
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection, Row};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    app_mention, create_database, new_channel, new_ts, post_text, spawn_app, spawn_app_with, thread_reply, TestApp,
};

/// A Postgres warehouse with a view that takes minutes to count and a small table.
pub async fn slow_warehouse() -> String {
    let url = create_database().await;
    let mut connection = PgConnection::connect(&url).await.unwrap();
    connection
        .execute(
            "CREATE TABLE fast_numbers (n integer); INSERT INTO fast_numbers SELECT generate_series(1, 10); \
             CREATE VIEW slow_numbers AS SELECT g AS n, pg_sleep(0.01) IS NULL AS paused FROM generate_series(1, 1000000) AS g;",
        )
        .await
        .unwrap();
    url
}

/// Active statements on the warehouse that read `slow_numbers`.
pub async fn slow_queries_running(warehouse_url: &str) -> i64 {
    let mut connection = PgConnection::connect(warehouse_url).await.unwrap();
    sqlx::query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
         AND query ILIKE '%slow_numbers%' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap()
    .get::<i64, _>("n")
}

pub async fn wait_until_slow_query_runs(warehouse_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow_queries_running(warehouse_url).await == 0 {
        assert!(Instant::now() < deadline, "the slow query never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn app_over(warehouse_url: &str) -> TestApp {
    spawn_app_with(&[
        ("WAREHOUSE_URL", warehouse_url.to_string()),
        ("THREADQL_QUERY_TIMEOUT_SECS", "600".into()),
    ])
    .await
}

#[actix_rt::test]
async fn cancel_stops_the_running_query_in_postgres() {
    // Arrange
    let warehouse = slow_warehouse().await;
    let app = app_over(&warehouse).await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvC1", &channel, &root, "slow numbers count"))
        .await;
    wait_until_slow_query_runs(&warehouse).await;

    // Act
    app.post_event(&thread_reply("EvC2", &channel, &root, &new_ts(), "cancel"))
        .await;

    // Assert: the turn says so, and Postgres no longer runs it.
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(
        post_text(&posts[0]).contains("Cancelled the query.\nIt was the query for “slow numbers count”.")
            && post_text(&posts[0]).contains("code `query_cancelled`"),
        "{}",
        post_text(&posts[0])
    );
    assert_eq!(
        slow_queries_running(&warehouse).await,
        0,
        "the statement was cancelled in Postgres, not merely dropped"
    );
}

#[actix_rt::test]
async fn a_newer_question_supersedes_the_running_one_and_is_answered() {
    // Arrange
    let warehouse = slow_warehouse().await;
    let app = app_over(&warehouse).await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvS1", &channel, &root, "slow numbers count"))
        .await;
    wait_until_slow_query_runs(&warehouse).await;

    // Act
    app.post_event(&thread_reply("EvS2", &channel, &root, &new_ts(), "fast numbers count"))
        .await;

    // Assert
    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    assert!(
        post_text(&posts[0]).contains("your newer message replaced it")
            && post_text(&posts[0]).contains("code `query_superseded`"),
        "{}",
        post_text(&posts[0])
    );
    let answer = post_text(&posts[1]);
    assert!(answer.contains("10") && answer.contains("fast_numbers"), "{answer}");
    assert_eq!(slow_queries_running(&warehouse).await, 0);
}

#[actix_rt::test]
async fn cancel_with_nothing_running_says_so() {
    let app = spawn_app().await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvN1", &channel, &root, "cancel")).await;
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(
        post_text(&posts[0]).contains("nothing to cancel"),
        "{}",
        post_text(&posts[0])
    );
}

async fn eleven_questions_from_one_user(app: &TestApp) -> (usize, Vec<serde_json::Value>) {
    let mut threads = Vec::new();
    for i in 0..11 {
        let (channel, root) = (new_channel(), new_ts());
        let response = app
            .post_event(&app_mention(&format!("EvR{i}"), &channel, &root, "help"))
            .await;
        assert_eq!(response.status().as_u16(), 200, "question {i} is acked like any other");
        threads.push((channel, root));
    }
    // The ten allowed questions are answered…
    let mut answered = 0;
    for (channel, root) in &threads[..10] {
        app.slack.wait_for_posts(channel, root, 1).await;
        answered += 1;
    }
    // …and the eleventh gets an ephemeral notice instead of an answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let notices = loop {
        let notices = app.slack.ephemerals().await;
        if !notices.is_empty() || Instant::now() > deadline {
            break notices;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let (channel, root) = &threads[10];
    assert!(
        app.slack.posts_in_thread(channel, root).await.is_empty(),
        "the eleventh question is not answered"
    );
    (answered, notices)
}

fn assert_is_rate_limit_notice(notices: &[serde_json::Value]) {
    assert_eq!(notices.len(), 1, "{notices:#?}");
    let text = notices[0]["text"].as_str().unwrap();
    assert!(
        text.contains("at most 10 questions a minute") && text.contains("ask again in"),
        "{text}"
    );
    assert_eq!(notices[0]["user"], "U0ALICE01");
}

#[actix_rt::test]
async fn the_eleventh_question_in_a_minute_gets_an_ephemeral_notice_without_redis() {
    let app = spawn_app().await;
    let (answered, notices) = eleven_questions_from_one_user(&app).await;
    assert_eq!(answered, 10);
    assert_is_rate_limit_notice(&notices);
}

#[actix_rt::test]
async fn the_eleventh_question_in_a_minute_gets_an_ephemeral_notice_with_redis() {
    let prefix = format!("threadql-test-{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(&[
        ("REDIS_URL", "redis://127.0.0.1:6379".into()),
        ("THREADQL_REDIS_PREFIX", prefix.clone()),
    ])
    .await;
    let (answered, notices) = eleven_questions_from_one_user(&app).await;
    assert_eq!(answered, 10);
    assert_is_rate_limit_notice(&notices);
    // The bucket lives in Redis, under this server's prefix.
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}rl:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[actix_rt::test]
async fn an_answer_rate_limited_by_slack_is_posted_after_retry_after() {
    // Arrange: Slack answers the first post with 429 and Retry-After: 2.
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.slack.server)
        .await;
    let (channel, root) = (new_channel(), new_ts());

    // Act
    let asked = Instant::now();
    app.post_event(&app_mention("Ev429", &channel, &root, "help")).await;

    // Assert: the answer arrives after the wait Slack asked for, on the second attempt.
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "retried before Retry-After: {:?}",
        asked.elapsed()
    );
    assert!(post_text(&posts[0]).contains("show sql"));
    let attempts: Vec<serde_json::Value> = app
        .slack
        .requests("/api/chat.postMessage")
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(attempts.len(), 2, "one refused post, one delivered");
    assert_eq!(attempts[0], attempts[1], "the same message is sent again");
}

/// Runs `threadql serve` as a child process, as a user would.
struct ServerProcess {
    child: std::process::Child,
    address: String,
}

impl ServerProcess {
    async fn start(slack_api_url: &str, database_url: &str, warehouse_url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_threadql"))
            .arg("serve")
            .env("THREADQL_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLACK_SIGNING_SECRET", crate::helpers::SIGNING_SECRET)
            .env("SLACK_BOT_TOKEN", "xoxb-test-token")
            .env("SLACK_API_URL", slack_api_url)
            .env("DATABASE_URL", database_url)
            .env("WAREHOUSE_URL", warehouse_url)
            .env("THREADQL_QUERY_TIMEOUT_SECS", "600")
            .env_remove("REDIS_URL")
            .env_remove("OPENAI_API_KEY")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(format!("{address}/healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "threadql serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, address }
    }

    async fn post_event(&self, envelope: &serde_json::Value) {
        let body = serde_json::to_vec(envelope).unwrap();
        let client = reqwest::Client::new();
        let response =
            crate::helpers::post_signed_to(&client, &self.address, "/slack/events", "application/json", body, &[])
                .await;
        assert_eq!(response.status().as_u16(), 200);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_rt::test]
async fn a_question_interrupted_by_a_kill_is_reported_in_its_thread_after_restart() {
    // Arrange: a question whose query runs for minutes.
    let warehouse = slow_warehouse().await;
    let slack = crate::helpers::FakeSlack::start().await;
    let database = create_database().await;
    let mut server = ServerProcess::start(&slack.api_url(), &database, &warehouse).await;
    let (channel, root) = (new_channel(), new_ts());
    server
        .post_event(&app_mention("EvK1", &channel, &root, "slow numbers count"))
        .await;
    wait_until_slow_query_runs(&warehouse).await;

    // Act: SIGKILL, then start again.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _restarted = ServerProcess::start(&slack.api_url(), &database, &warehouse).await;

    // Assert: the thread hears that its question was not answered.
    let posts = slack.wait_for_posts(&channel, &root, 1).await;
    let notice = post_text(&posts[0]);
    assert!(
        notice.contains("restarted while working on “slow numbers count”"),
        "{notice}"
    );
}

#[actix_rt::test]
async fn a_new_thread_beyond_the_backlog_is_left_for_slack_to_redeliver_and_answered_when_it_comes_again() {
    // Arrange: a backlog of one message, taken by a slow query.
    let warehouse = slow_warehouse().await;
    let app = spawn_app_with(&[
        ("WAREHOUSE_URL", warehouse.clone()),
        ("THREADQL_QUERY_TIMEOUT_SECS", "600".into()),
        ("THREADQL_MAX_BACKLOG", "1".into()),
    ])
    .await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvB1", &channel, &root, "slow numbers count"))
        .await;
    wait_until_slow_query_runs(&warehouse).await;

    // Act: a question that would start a new thread.
    let (other_channel, other_root) = (new_channel(), new_ts());
    let question = app_mention("EvB2", &other_channel, &other_root, "help");
    let refused = app.post_event(&question).await;

    // Assert: not taken (Slack retries a non-200), nothing claimed or posted; the busy thread
    // itself still takes its `cancel`.
    assert_eq!(refused.status().as_u16(), 503);
    let cancel = app
        .post_event(&thread_reply("EvB3", &channel, &root, &new_ts(), "cancel"))
        .await;
    assert_eq!(cancel.status().as_u16(), 200, "a live thread is never refused");
    app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(app.slack.posts_in_thread(&other_channel, &other_root).await.is_empty());

    // Act: Slack redelivers the same event until it is taken (the backlog empties once the
    // cancelled turn is over).
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.post_event(&question).await.status().as_u16() != 200 {
        assert!(Instant::now() < deadline, "the redelivered event was never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert: answered, once.
    let posts = app.slack.wait_for_posts(&other_channel, &other_root, 1).await;
    assert!(post_text(&posts[0]).contains("show sql"), "{}", post_text(&posts[0]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.slack.posts_in_thread(&other_channel, &other_root).await.len(), 1);
    // Counted once for the first delivery, and again for each redelivery refused meanwhile.
    let metrics = app.metrics().await;
    let refusals: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"threadql_slack_requests_total{endpoint="events",outcome="overloaded"} "#))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    assert!(refusals >= 1.0, "the refusals are counted: {refusals}");
}
