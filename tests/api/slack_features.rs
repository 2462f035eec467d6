//! Slack as users expect it: buttons, charts, the slash command, progress with Cancel,
//! reactions.
use std::time::{Duration, Instant};

use serde_json::Value;

use threadql_testkit::{
    app_mention, button_click, button_value, is_progress, new_channel, new_ts, post_text, spawn_app, spawn_app_with,
    thread_reply,
};

#[actix_rt::test]
async fn buttons_on_an_older_answer_act_on_the_version_that_answer_showed() {
    // Arrange: version 1 (all regions), then version 2 (only EMEA).
    let app = spawn_app().await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvB1", &channel, &root, "revenue by region last month"))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    app.post_event(&thread_reply("EvB2", &channel, &root, &new_ts(), "only EMEA"))
        .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    for action in ["show_sql", "export_csv", "chart", "undo"] {
        assert!(
            button_value(&posts[1], action).is_some(),
            "the answer has a {action} button: {:#}",
            posts[1]
        );
    }
    let first_answer = button_value(&posts[0], "show_sql").unwrap();
    assert_eq!(first_answer["version"], 1);

    // Act: Show SQL on the first answer.
    let response = app.click(&button_click(&channel, "show_sql", &first_answer)).await;
    assert_eq!(response.status().as_u16(), 200);

    // Assert: the SQL of version 1, not of the current version 2.
    let posts = app.slack.wait_for_posts(&channel, &root, 3).await;
    let sql = post_text(&posts[2]);
    assert!(sql.contains("SELECT") && !sql.contains("EMEA"), "{sql}");

    // Act: Undo on the second answer, then Chart on the first.
    app.click(&button_click(
        &channel,
        "undo",
        &button_value(&posts[1], "undo").unwrap(),
    ))
    .await;
    let posts = app.slack.wait_for_posts(&channel, &root, 4).await;
    assert!(
        post_text(&posts[3]).contains("Back to version 1"),
        "{}",
        post_text(&posts[3])
    );
    app.click(&button_click(&channel, "chart", &first_answer)).await;

    // Assert: a PNG of at least 800×500 was uploaded into the thread.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.slack.completed_uploads().await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let png = app.slack.uploads().await.remove(0);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    let (width, height) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert!(width >= 800 && height >= 500, "{width}×{height}");
    let completed = app.slack.completed_uploads().await;
    assert_eq!(completed[0].get("thread_ts"), Some(&root));
}

#[actix_rt::test]
async fn the_slash_command_starts_a_thread_and_answers_in_it() {
    let app = spawn_app().await;
    let channel = new_channel();

    // Act
    let response = app.slash_command(&channel, "revenue by region last month").await;

    // Assert: acked at once; the question becomes a thread root, answered in its thread.
    assert_eq!(response.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let root = loop {
        if let Some((ts, body)) = app.slack.roots_in_channel(&channel).await.into_iter().next() {
            break (ts, body);
        }
        assert!(Instant::now() < deadline, "no thread root was posted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(
        post_text(&root.1).contains("revenue by region last month"),
        "{}",
        post_text(&root.1)
    );
    let posts = app.slack.wait_for_posts(&channel, &root.0, 1).await;
    assert!(post_text(&posts[0]).contains("EMEA"), "{}", post_text(&posts[0]));
}

#[actix_rt::test]
async fn slash_command_help_answers_ephemerally_with_what_the_bot_knows() {
    let app = spawn_app().await;
    let response = app.slash_command(&new_channel(), "help").await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response_type"], "ephemeral");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("revenue") && text.contains("region"), "{text}");
    assert_eq!(app.slack.all_posts().await, 0, "help posts nothing in the channel");
}

#[actix_rt::test]
async fn a_slow_query_shows_progress_whose_cancel_button_stops_it() {
    // Arrange
    let warehouse = crate::threads::slow_warehouse().await;
    let app = spawn_app_with(&[
        ("WAREHOUSE_URL", warehouse.url().to_string()),
        ("THREADQL_QUERY_TIMEOUT_SECS", "600".into()),
    ])
    .await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvP1", &channel, &root, "slow numbers count"))
        .await;

    // Assert: after two seconds, a progress message with a Cancel button.
    let deadline = Instant::now() + Duration::from_secs(30);
    let progress = loop {
        let posts = app.slack.posts_in_thread(&channel, &root).await;
        if let Some(post) = posts.into_iter().find(is_progress) {
            break post;
        }
        assert!(
            Instant::now() < deadline,
            "no progress message: {:#?}",
            app.slack.posts_in_thread(&channel, &root).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Act: click Cancel.
    app.click(&button_click(
        &channel,
        "cancel",
        &button_value(&progress, "cancel").unwrap(),
    ))
    .await;

    // Assert: the progress message now says the query was cancelled, and Postgres stopped it.
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(
        post_text(&posts[0]).contains("Cancelled the query.")
            && post_text(&posts[0]).contains("code `query_cancelled`"),
        "{}",
        post_text(&posts[0])
    );
    assert_eq!(crate::threads::slow_queries_running(&warehouse).await, 0);
}

#[actix_rt::test]
async fn questions_are_marked_while_worked_on_and_when_done() {
    let app = spawn_app().await;
    let (channel, root, other) = (new_channel(), new_ts(), new_ts());
    app.post_event(&app_mention("EvM1", &channel, &root, "revenue by region last month"))
        .await;
    app.post_event(&app_mention("EvM2", &channel, &other, "revenue by flavour"))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    app.slack.wait_for_posts(&channel, &other, 1).await;
    // Every turn is over and every reaction has reached Slack: the list is final.
    app.wait_until_idle().await;
    let reactions: Vec<(String, String)> = app
        .slack
        .requests("/api/reactions.add")
        .await
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .map(|b| {
            (
                b["timestamp"].as_str().unwrap().to_string(),
                b["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let on = |ts: &str| {
        reactions
            .iter()
            .filter(|(t, _)| t == ts)
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(on(&root), ["eyes", "white_check_mark"]);
    assert_eq!(on(&other), ["eyes", "warning"]);
}
