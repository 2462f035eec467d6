//! Stopping `threadql serve` with SIGTERM, as a deploy does: the turns under way finish when they
//! can, and the process is gone within its grace (`THREADQL_SHUTDOWN_GRACE`) whatever is stuck.
use std::io::Write;
use std::time::{Duration, Instant};

use threadql_testkit::{
    app_mention, eventually, new_channel, new_ts, post_text, FakeSlack, ServerProcess, TestDatabase,
};

use crate::threads::{slow_warehouse, wait_until_slow_query_runs};

/// What the bound allows past the grace: process exit and the test's own polling on a loaded
/// machine. A correctness bound (before, the same stop took 30 s or more), not a speed target.
const MARGIN: Duration = Duration::from_secs(3);

/// `threadql serve` over `warehouse` with `grace`, queries allowed to run for minutes.
async fn serve(slack: &FakeSlack, database: &TestDatabase, warehouse: &TestDatabase, grace: Duration) -> ServerProcess {
    ServerProcess::start(
        env!("CARGO_BIN_EXE_threadql"),
        &slack.api_url(),
        database.url(),
        &[
            ("WAREHOUSE_URL", warehouse.url().to_string()),
            ("THREADQL_QUERY_TIMEOUT_SECS", "600".into()),
            ("THREADQL_SHUTDOWN_GRACE", grace.as_secs().to_string()),
        ],
    )
    .await
}

/// Sends SIGTERM and waits for the exit; returns how long it took. Fails the test when the
/// process is still there after `grace` + [`MARGIN`] (it is then killed on drop).
async fn terminate(server: &mut ServerProcess, grace: Duration) -> Duration {
    let signalled = Instant::now();
    server.terminate();
    let status = server.wait_for_exit(grace + MARGIN).await;
    let took = signalled.elapsed();
    let Some(status) = status else {
        panic!(
            "still running {took:?} after SIGTERM (grace {grace:?}):\n{}",
            server.log_tail()
        );
    };
    // A success: the stop's own deadline ended it, not the watchdog behind it.
    assert!(status.success(), "exited with {status}:\n{}", server.log_tail());
    took
}

#[actix_rt::test]
async fn sigterm_ends_the_server_within_its_grace_though_a_turn_is_stuck_in_the_warehouse_and_a_request_is_half_sent() {
    // Arrange: a question whose query runs for minutes (a view over pg_sleep), and a client
    // that sent half a request: before, actix-web waited 30 s for that request alone.
    let grace = Duration::from_secs(2);
    let warehouse = slow_warehouse().await;
    let slack = FakeSlack::start().await;
    let database = TestDatabase::create().await;
    let mut server = serve(&slack, &database, &warehouse, grace).await;
    let (channel, root) = (new_channel(), new_ts());
    let asked = server
        .post_event(&app_mention("EvStop1", &channel, &root, "slow numbers count"))
        .await;
    assert_eq!(asked.status().as_u16(), 200);
    wait_until_slow_query_runs(&warehouse).await;
    let address = server.address().trim_start_matches("http://").to_string();
    let mut half_sent = std::net::TcpStream::connect(&address).unwrap();
    half_sent
        .write_all(
            b"POST /slack/events HTTP/1.1\r\nhost: threadql\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{\"type\":",
        )
        .unwrap();
    // Connections are accepted in order: once a later one is answered, the half-sent one is
    // with an HTTP worker.
    let health = reqwest::get(format!("{}/healthz", server.address())).await.unwrap();
    assert!(health.status().is_success());

    // Act
    let took = terminate(&mut server, grace).await;

    // Assert: gone within the grace, saying what it left behind.
    assert!(took <= grace + MARGIN, "SIGTERM took {took:?} (grace {grace:?})");
    let log = server.log_tail();
    assert!(log.contains("Stopping with work unfinished"), "{log}");
    assert!(log.contains("turns=1"), "the stuck turn is named in the log: {log}");
    drop(half_sent);

    // Assert: the abandoned question is reported in its thread by the next process, as after
    // a crash (its in-flight marker was never cleared).
    let _restarted = serve(&slack, &database, &warehouse, grace).await;
    // (A "working on it" message the stopped server may have posted first stays above it.)
    eventually(
        "the thread is told its question was not answered",
        Duration::from_secs(60),
        || async {
            slack
                .posts_in_thread(&channel, &root)
                .await
                .iter()
                .any(|post| post_text(post).contains("restarted while working on “slow numbers count”"))
        },
    )
    .await;
}

#[actix_rt::test]
async fn sigterm_lets_a_turn_under_way_finish_and_post_its_answer_before_the_process_exits() {
    // Arrange: a question whose query takes about a second, well within the grace.
    let grace = Duration::from_secs(15);
    let warehouse = TestDatabase::create().await;
    warehouse
        .execute(
            "CREATE VIEW brief_numbers AS SELECT g AS n, pg_sleep(0.1) IS NULL AS paused \
             FROM generate_series(1, 10) AS g",
        )
        .await;
    let slack = FakeSlack::start().await;
    let database = TestDatabase::create().await;
    let mut server = serve(&slack, &database, &warehouse, grace).await;
    let (channel, root) = (new_channel(), new_ts());
    let asked = server
        .post_event(&app_mention("EvStop2", &channel, &root, "brief numbers count"))
        .await;
    assert_eq!(asked.status().as_u16(), 200);
    eventually("the brief query runs", Duration::from_secs(30), || async {
        brief_queries_running(&warehouse).await > 0
    })
    .await;

    // Act: SIGTERM while the query runs.
    terminate(&mut server, grace).await;

    // Assert: the answer was posted before the process went, and nothing was left behind.
    let posts = slack.posts_in_thread(&channel, &root).await;
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert!(post_text(&posts[0]).contains("10"), "{}", post_text(&posts[0]));
    let log = server.log_tail();
    assert!(log.contains("Stopped: every turn finished"), "{log}");
}

/// Active statements on the warehouse that read `brief_numbers`.
async fn brief_queries_running(warehouse: &TestDatabase) -> i64 {
    let mut connection = warehouse.connect().await;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
         AND query ILIKE '%brief_numbers%' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap()
}
