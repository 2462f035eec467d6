#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `threadql schedules list` and `threadql schedules run <id>` as an operator runs them: the real
//! binary over a Postgres state store with a schedule in it, the demo data set as the warehouse,
//! and the fake Slack as the Web API.
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use sqlx::Row;
use threadql::domain::{DeliveryOptions, Destination, ProposedQuery, Schedule, ThreadKey, UserId};
use threadql::store::{NewReport, PostgresStore, ScheduleStore};
use threadql_testkit::{
    demo_warehouse_path, new_channel, new_ts, post_text, FakeSlack, TestDatabase, BOT_TOKEN, SIGNING_SECRET, TEAM,
};

const OWNER: &str = "U0ALICE01";
/// The Web API of the commands that do not call Slack: nothing listens there.
const NO_SLACK: &str = "http://127.0.0.1:9/api";

/// A weekly schedule of "customers by region" made in a thread of `channel`.
async fn create_schedule(database: &TestDatabase, channel: &str) -> i64 {
    let store = PostgresStore::connect(database.url()).await.unwrap();
    store.migrate().await.unwrap();
    let schedule = Schedule::from_cron(
        "0 9 * * 1",
        chrono_tz::UTC,
        Destination::Thread,
        DeliveryOptions::default(),
    )
    .unwrap();
    let new = NewReport {
        origin: ThreadKey::parse(TEAM, channel, &new_ts()).unwrap(),
        owner: UserId::new(OWNER),
        question: "customers by region".to_string(),
        query: ProposedQuery {
            sql: "SELECT region, COUNT(*) AS customers FROM customers GROUP BY region".to_string(),
            structured: None,
            summary: "Customers by region".to_string(),
            formats: Vec::new(),
            explanation: String::new(),
            usage: None,
        },
        next_fire_at: schedule.next_fire_times(Utc::now(), 1)[0],
        schedule,
        alert: None,
    };
    store.create_report(&new).await.unwrap().id
}

/// `threadql schedules <args>` with the test configuration over `database_url` and
/// `slack_api_url` (and nothing from the developer's environment), from a directory without a
/// .env. Off the test's runtime, which serves the fake Slack meanwhile.
async fn schedules(database_url: &str, slack_api_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let workdir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_threadql"));
    command
        .arg("schedules")
        .args(args)
        .current_dir(workdir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("SLACK_API_URL", slack_api_url)
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .env("THREADQL_DEMO_WAREHOUSE", demo_warehouse_path())
        .envs(env.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    drop(workdir);
    output
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\n{}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn list_prints_each_schedule_on_an_aligned_line() {
    // Arrange
    let database = TestDatabase::create().await;
    let channel = new_channel();
    let id = create_schedule(&database, &channel).await;

    // Act
    let stdout = stdout_of(&schedules(database.url(), NO_SLACK, &["list"], &[]).await);

    // Assert
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "a header and the schedule:\n{stdout}");
    assert!(lines[0].starts_with("id ") && lines[0].contains("next run"), "{stdout}");
    let line = lines[1];
    assert!(line.starts_with(&format!("{id} ")), "{line}");
    for part in [
        "schedule",
        "active",
        OWNER,
        &format!("{TEAM}/{channel}"),
        "0 9 * * 1 UTC",
        "“Customers by region” every Monday at 09:00 (UTC), cron `0 9 * * 1`",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(line.contains("  -  "), "never run yet: {line}");
}

#[tokio::test]
async fn list_json_prints_one_object_per_schedule_with_every_field() {
    // Arrange
    let database = TestDatabase::create().await;
    let channel = new_channel();
    let id = create_schedule(&database, &channel).await;

    // Act
    let stdout = stdout_of(&schedules(database.url(), NO_SLACK, &["list", "--json"], &[]).await);

    // Assert
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let schedule = &lines[0];
    assert_eq!(schedule["id"], id);
    assert_eq!(schedule["kind"], "schedule");
    assert_eq!(schedule["state"], "active");
    assert_eq!(schedule["paused_reason"], serde_json::Value::Null);
    assert_eq!(schedule["owner"], OWNER);
    assert_eq!(schedule["team"], TEAM);
    assert_eq!(schedule["channel"], channel.as_str());
    assert_eq!(schedule["cron"], "0 9 * * 1");
    assert_eq!(schedule["timezone"], "UTC");
    assert_eq!(schedule["destination"], "thread");
    assert_eq!(schedule["last_status"], serde_json::Value::Null);
    assert_eq!(schedule["summary"], "Customers by region");
    let next = chrono::DateTime::parse_from_rfc3339(schedule["next_run_at"].as_str().unwrap()).unwrap();
    assert!(next > Utc::now() && next < Utc::now() + Duration::days(8), "{next}");
    assert!(
        schedule["description"]
            .as_str()
            .unwrap()
            .contains("every Monday at 09:00"),
        "{schedule}"
    );
}

#[tokio::test]
async fn run_posts_the_schedule_in_its_channel_and_records_a_succeeded_run() {
    // Arrange
    let database = TestDatabase::create().await;
    let slack = FakeSlack::start().await;
    let channel = new_channel();
    let id = create_schedule(&database, &channel).await;

    // Act
    let output = schedules(database.url(), &slack.api_url(), &["run", &id.to_string()], &[]).await;

    // Assert
    let stdout = stdout_of(&output);
    assert_eq!(stdout, format!("schedule {id}: succeeded\n"));
    let delivered = slack.roots_in_channel(&channel).await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    let text = post_text(&delivered[0].1);
    assert!(
        text.contains(&format!("Schedule {id}")) && text.contains("EMEA"),
        "{text}"
    );
    let mut connection = database.connect().await;
    let runs = sqlx::query("SELECT status, slack_channel FROM report_executions WHERE report_id = $1")
        .bind(id)
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].get::<String, _>("status"), "succeeded");
    assert_eq!(
        runs[0].get::<Option<String>, _>("slack_channel").as_deref(),
        Some(channel.as_str())
    );
    let listed = stdout_of(&schedules(database.url(), &slack.api_url(), &["list", "--json"], &[]).await);
    let listed: serde_json::Value = serde_json::from_str(listed.trim_end()).unwrap();
    assert_eq!(listed["last_status"], "succeeded", "{listed}");
}

#[tokio::test]
async fn run_of_an_unknown_schedule_fails_and_says_so() {
    // Arrange
    let database = TestDatabase::create().await;
    let slack = FakeSlack::start().await;
    create_schedule(&database, &new_channel()).await;

    // Act
    let output = schedules(database.url(), &slack.api_url(), &["run", "999999"], &[]).await;

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("There is no schedule 999999"), "{stderr}");
    assert!(stderr.contains("threadql schedules list"), "{stderr}");
    assert_eq!(slack.all_posts().await, 0);
}

#[tokio::test]
async fn run_without_a_bot_token_says_it_is_needed_to_post() {
    // Arrange
    let database = TestDatabase::create().await;
    let slack = FakeSlack::start().await;
    let id = create_schedule(&database, &new_channel()).await;

    // Act
    let output = schedules(
        database.url(),
        &slack.api_url(),
        &["run", &id.to_string()],
        &[("SLACK_BOT_TOKEN", "")],
    )
    .await;

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("SLACK_BOT_TOKEN is needed"), "{stderr}");
    assert_eq!(slack.all_posts().await, 0);
}

#[tokio::test]
async fn list_of_an_empty_store_says_there_is_none_and_how_to_make_one() {
    // Arrange
    let database = TestDatabase::create().await;

    // Act
    let text = stdout_of(&schedules(database.url(), NO_SLACK, &["list"], &[]).await);
    let json = schedules(database.url(), NO_SLACK, &["list", "--json"], &[]).await;

    // Assert
    assert!(text.starts_with("No schedules yet"), "{text}");
    assert!(text.contains("`every monday at 9:00`"), "{text}");
    assert_eq!(stdout_of(&json), "", "JSON Lines stay empty");
    assert!(String::from_utf8_lossy(&json.stderr).contains("No schedules yet"));
}
