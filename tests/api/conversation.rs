//! A whole conversation through the real server: ask, refine, show SQL, export CSV, undo,
//! retries and double deliveries, and a restart.
use chrono::{Datelike, NaiveDate};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::Row;

use threadql_testkit::{
    app_mention, demo_warehouse_path, new_channel, new_ts, post_text, spawn_app, start_server, thread_reply,
};

/// `1234567.891` → `1,234,567.89`.
fn money(value: f64) -> String {
    let fixed = format!("{value:.2}");
    let (whole, cents) = fixed.split_once('.').unwrap();
    let digits: Vec<char> = whole.chars().collect();
    let mut grouped = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(*c);
    }
    format!("{grouped}.{cents}")
}

fn last_month(today: NaiveDate) -> (String, String) {
    let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap();
    let start = this_month.checked_sub_months(chrono::Months::new(1)).unwrap();
    (start.to_string(), this_month.to_string())
}

/// Revenue by region last month, computed by the test itself on the demo data.
async fn expected_revenue_by_region() -> Vec<(String, f64)> {
    let pool = SqlitePoolOptions::new()
        .connect(&format!("sqlite://{}?mode=ro", demo_warehouse_path().display()))
        .await
        .unwrap();
    let (start, end) = last_month(chrono::Utc::now().date_naive());
    sqlx::query(
        "SELECT c.region AS region, SUM(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.status = 'completed' AND o.order_date >= ? AND o.order_date < ? GROUP BY c.region ORDER BY revenue DESC",
    )
    .bind(start)
    .bind(end)
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.get::<String, _>("region"), row.get::<f64, _>("revenue")))
    .collect()
}

fn table_line<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines().find(|line| line.split_whitespace().next() == Some(label))
}

#[actix_rt::test]
async fn a_thread_is_answered_refined_shown_exported_undone_and_survives_a_restart() {
    // Arrange
    let app = spawn_app().await;
    let channel = new_channel();
    let root = new_ts();
    let expected = expected_revenue_by_region().await;
    assert_eq!(
        expected.len(),
        3,
        "the demo data has three regions with revenue last month"
    );

    // Act 1: the question.
    let response = app
        .post_event(&app_mention("EvQ1", &channel, &root, "revenue by region last month"))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;

    // Assert: every region's revenue, exactly, in the thread.
    let answer = post_text(&posts[0]);
    for (region, revenue) in &expected {
        let line = table_line(&answer, region).unwrap_or_else(|| panic!("no {region} row in:\n{answer}"));
        assert!(
            line.contains(&money(*revenue)),
            "{region}: expected {} in {line:?}",
            money(*revenue)
        );
    }
    assert!(answer.contains("3 rows"), "context line with the row count: {answer}");

    // Retried delivery of the same event, and the `message` copy of the mention: no new answer.
    let retry = app
        .post_signed(
            "/slack/events",
            "application/json",
            serde_json::to_vec(&app_mention("EvQ1", &channel, &root, "revenue by region last month")).unwrap(),
            &[("x-slack-retry-num", "1"), ("x-slack-retry-reason", "http_timeout")],
        )
        .await;
    assert_eq!(retry.status().as_u16(), 200);
    let mut copy = thread_reply(
        "EvQ1copy",
        &channel,
        &root,
        &root,
        &format!("<@{}> revenue by region last month", threadql_testkit::BOT_USER),
    );
    copy["event"].as_object_mut().unwrap().remove("thread_ts");
    assert_eq!(app.post_event(&copy).await.status().as_u16(), 200);

    // Act 2: refine.
    app.post_event(&thread_reply("EvQ2", &channel, &root, &new_ts(), "only EMEA"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    let refined = post_text(&posts[1]);
    let emea = expected.iter().find(|(r, _)| r == "EMEA").unwrap();
    assert!(
        table_line(&refined, "EMEA").is_some_and(|l| l.contains(&money(emea.1))),
        "{refined}"
    );
    assert!(
        table_line(&refined, "AMER").is_none() && table_line(&refined, "APAC").is_none(),
        "{refined}"
    );

    // Act 3: show sql.
    app.post_event(&thread_reply("EvQ3", &channel, &root, &new_ts(), "show sql"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 3).await;
    let sql = post_text(&posts[2]);
    assert!(
        sql.contains("SELECT") && sql.contains("EMEA") && sql.contains("LIMIT"),
        "{sql}"
    );

    // Act 4: export csv → upload-v2 into the thread.
    app.post_event(&thread_reply("EvQ4", &channel, &root, &new_ts(), "export csv"))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.slack.completed_uploads().await.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let uploads = app.slack.uploads().await;
    assert_eq!(uploads.len(), 1);
    let csv = String::from_utf8(uploads[0].clone()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "region,revenue");
    assert_eq!(lines.len(), 2, "header plus the one EMEA row: {csv}");
    assert!(lines[1].starts_with("EMEA,"), "{csv}");
    let completed = app.slack.completed_uploads().await;
    assert_eq!(completed[0].get("channel_id"), Some(&channel));
    assert_eq!(completed[0].get("thread_ts"), Some(&root));

    // Act 5: undo → all regions again.
    app.post_event(&thread_reply("EvQ5", &channel, &root, &new_ts(), "undo"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 4).await;
    let undone = post_text(&posts[3]);
    for (region, revenue) in &expected {
        assert!(
            table_line(&undone, region).is_some_and(|l| l.contains(&money(*revenue))),
            "{region} after undo: {undone}"
        );
    }

    // Act 6: restart the server; the old thread still refines its query.
    let (slack, database) = app.stop().await;
    let app = start_server(slack, database).await;
    app.post_event(&thread_reply("EvQ6", &channel, &root, &new_ts(), "only APAC"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 5).await;
    let after_restart = post_text(&posts[4]);
    let apac = expected.iter().find(|(r, _)| r == "APAC").unwrap();
    assert!(
        table_line(&after_restart, "APAC").is_some_and(|l| l.contains(&money(apac.1))),
        "{after_restart}"
    );
    // Versions 1 and 2 survived the restart: the refinement of version 1 (current after undo) is 3.
    assert!(
        after_restart.contains("version 3"),
        "a new version on top of the restored history: {after_restart}"
    );
}

#[actix_rt::test]
async fn a_reply_in_a_thread_the_bot_was_never_asked_in_is_ignored() {
    // Arrange
    let app = spawn_app().await;
    let channel = new_channel();
    let root = new_ts();

    // Act
    let response = app
        .post_event(&thread_reply("EvX1", &channel, &root, &new_ts(), "only EMEA"))
        .await;
    app.wait_until_idle().await;

    // Assert: handed to its thread (its turn is over by now), and nothing said in that thread
    // or anywhere else.
    assert_eq!(response.status().as_u16(), 200);
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line == r#"threadql_slack_requests_total{endpoint="events",outcome="accepted"} 1"#),
        "the reply reached its thread: {metrics}"
    );
    assert!(app.slack.posts_in_thread(&channel, &root).await.is_empty());
    assert_eq!(app.slack.all_posts().await, 0);
    assert!(app.slack.ephemerals().await.is_empty());
}

#[actix_rt::test]
async fn a_question_longer_than_slacks_message_limit_is_refused_with_a_sentence() {
    let app = spawn_app().await;
    let channel = new_channel();
    let root = new_ts();
    // 40,008 characters of an otherwise answerable question.
    let question = "revenue ".repeat(5_001);
    app.post_event(&app_mention("EvLong1", &channel, &root, question.trim_end()))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let reply = post_text(&posts[0]);
    assert!(
        reply.contains("That one is 40,007 characters long."),
        "says how long it was: {reply}"
    );
    assert!(
        reply.contains("longer than the 40,000 characters I read"),
        "names the limit: {reply}"
    );
    assert!(reply.contains("code `question_too_long`"), "names the code: {reply}");
}

#[actix_rt::test]
async fn a_question_the_rules_cannot_map_gets_a_helpful_reply() {
    let app = spawn_app().await;
    let channel = new_channel();
    let root = new_ts();
    app.post_event(&app_mention("EvU1", &channel, &root, "revenue by flavour"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let reply = post_text(&posts[0]);
    assert!(reply.contains("flavour"), "names what it did not understand: {reply}");
    assert!(reply.contains("region"), "lists what it knows: {reply}");
}

#[actix_rt::test]
async fn a_mention_redelivered_after_a_restart_without_redis_is_not_answered_twice() {
    // Arrange: a mention answered by a first server.
    let app = spawn_app().await;
    let (channel, root) = (threadql_testkit::new_channel(), new_ts());
    let mention = app_mention("EvRe1", &channel, &root, "revenue by region last month");
    app.post_event(&mention).await;
    app.slack.wait_for_posts(&channel, &root, 1).await;

    // Act: a new process (its in-process dedupe memory is empty) gets Slack's retry.
    let (slack, database) = app.stop().await;
    let app = start_server(slack, database).await;
    let retry = app
        .post_signed(
            "/slack/events",
            "application/json",
            serde_json::to_vec(&mention).unwrap(),
            &[("x-slack-retry-num", "2")],
        )
        .await;
    assert_eq!(retry.status().as_u16(), 200);
    // A later question in the same thread is answered, so the retry's turn is over by then.
    app.post_event(&thread_reply("EvRe2", &channel, &root, &new_ts(), "only EMEA"))
        .await;

    // Assert: after the first answer, only the refinement was answered (a second answer to the
    // retry would come before it, as version 1).
    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    let refined = post_text(&posts[1]);
    assert!(
        refined.contains("version 2") && refined.contains("region: EMEA") && !refined.contains("AMER"),
        "{refined}"
    );
}
