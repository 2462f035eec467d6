//! Scheduled reports and alerts, end to end: made in a thread, echoed with their cron, zone and
//! next runs, run by the server's schedule runner at instants the test chooses (no sleeping
//! until Monday), delivered once across two replicas, updated rather than posted again after a
//! crash, caught up after a downtime, with diffs, skips, alerts, retries, and buttons.
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, Row};

use threadql::store::{PostgresStore, ScheduleStore};
use threadql_testkit::{
    app_mention, button_click, button_value, direct_channel, new_channel, new_ts, post_text, spawn_app, spawn_app_with,
    thread_reply, TestApp, TestDatabase, TEAM,
};

const ALICE: &str = "U0ALICE01";

/// A thread started with `question`, answered: (channel, thread ts).
async fn thread_with(app: &TestApp, question: &str) -> (String, String) {
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&app_mention(&format!("Ev{root}"), &channel, &root, question))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    (channel, root)
}

/// Says `text` in the thread and returns the bot's reply to it.
async fn say(app: &TestApp, channel: &str, root: &str, text: &str) -> Value {
    let before = app.slack.posts_in_thread(channel, root).await.len();
    let ts = new_ts();
    app.post_event(&thread_reply(&format!("Ev{ts}"), channel, root, &ts, text))
        .await;
    let posts = app.slack.wait_for_posts(channel, root, before + 1).await;
    posts[before].clone()
}

/// The schedule number on an echo's Pause (or Resume) button.
fn schedule_id(echo: &Value) -> i64 {
    let value = button_value(echo, "schedule_pause")
        .or_else(|| button_value(echo, "schedule_resume"))
        .unwrap_or_else(|| panic!("an echo with the schedule's buttons: {echo:#}"));
    value["report"].as_i64().unwrap()
}

async fn next_fire_at(app: &TestApp, id: i64) -> DateTime<Utc> {
    let mut connection = app.database.connect().await;
    sqlx::query("SELECT next_fire_at FROM scheduled_reports WHERE id = $1")
        .bind(id)
        .fetch_one(&mut connection)
        .await
        .unwrap()
        .get("next_fire_at")
}

/// The statuses of a schedule's runs, oldest fire time first.
async fn run_statuses(app: &TestApp, id: i64) -> Vec<String> {
    let mut connection = app.database.connect().await;
    sqlx::query("SELECT status FROM report_executions WHERE report_id = $1 ORDER BY fire_at, id")
        .bind(id)
        .fetch_all(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get("status"))
        .collect()
}

/// Runs what is due at `at` and waits until what it posted reached the fake Slack.
async fn run_due(app: &TestApp, at: DateTime<Utc>) -> Vec<(&'static str, usize)> {
    let summary = app.handle().run_due_reports(at).await.unwrap();
    app.wait_until_idle().await;
    summary.into_iter().collect()
}

/// Top-level messages the bot posted in `channel` (a schedule's deliveries start there).
async fn roots(app: &TestApp, channel: &str) -> Vec<(String, Value)> {
    app.slack.roots_in_channel(channel).await
}

#[actix_rt::test]
async fn a_schedule_is_echoed_with_its_cron_zone_and_next_runs_and_each_run_is_delivered_once_in_its_own_thread() {
    let app = spawn_app().await;
    app.slack.set_timezone(ALICE, "Europe/Berlin");
    let (channel, root) = thread_with(&app, "revenue by region last month").await;

    let echo = say(&app, &channel, &root, "every monday at 9:00").await;

    let text = post_text(&echo);
    assert!(text.contains("cron `0 9 * * 1`"), "{text}");
    assert!(text.contains("Europe/Berlin"), "the asker's Slack time zone: {text}");
    let fallback = echo["text"].as_str().unwrap();
    assert!(
        fallback.contains("Next runs:") && fallback.matches("Mon ").count() == 3,
        "{fallback}"
    );
    assert!(button_value(&echo, "schedule_edit").is_some() && button_value(&echo, "schedule_delete").is_some());
    let id = schedule_id(&echo);
    let fire = next_fire_at(&app, id).await;
    let local = fire.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(local.format("%a %H:%M").to_string(), "Mon 09:00", "{fire}");

    assert!(
        run_due(&app, fire - Duration::minutes(1)).await.is_empty(),
        "not due yet"
    );
    assert!(roots(&app, &channel).await.is_empty());

    assert_eq!(run_due(&app, fire + Duration::seconds(5)).await, [("succeeded", 1)]);
    assert!(
        run_due(&app, fire + Duration::seconds(6)).await.is_empty(),
        "once per fire time"
    );
    let delivered = roots(&app, &channel).await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    let (thread_ts, first) = &delivered[0];
    let first = post_text(first);
    assert!(
        first.contains(&format!("Schedule {id}")) && first.contains("EMEA"),
        "{first}"
    );

    // A week later: in the schedule's own thread, with what changed (nothing: "last month" is
    // still the same month, the demo data does not move).
    let second = next_fire_at(&app, id).await;
    assert_eq!(second - fire, Duration::days(7));
    assert_eq!(run_due(&app, second + Duration::seconds(5)).await, [("succeeded", 1)]);
    let replies = app.slack.posts_in_thread(&channel, thread_ts).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    let reply = post_text(&replies[0]);
    assert!(reply.contains("No change since the last run"), "{reply}");
    assert_eq!(roots(&app, &channel).await.len(), 1);
    assert_eq!(run_statuses(&app, id).await, ["succeeded", "succeeded"]);
}

#[actix_rt::test]
async fn two_replicas_racing_for_the_same_fire_time_deliver_it_once() {
    let app = spawn_app().await;
    let replica = app.start_replica(&[]).await;
    let (channel, root) = thread_with(&app, "orders by channel").await;
    let id = schedule_id(&say(&app, &channel, &root, "daily at 7").await);
    let fire = next_fire_at(&app, id).await + Duration::seconds(1);

    let (mine, theirs) = tokio::join!(app.handle().run_due_reports(fire), replica.handle.run_due_reports(fire));
    app.wait_until_idle().await;
    replica.handle.wait_until_idle().await;

    let ran: usize = mine.unwrap().values().sum::<usize>() + theirs.unwrap().values().sum::<usize>();
    assert_eq!(ran, 1);
    assert_eq!(roots(&app, &channel).await.len(), 1);
    assert_eq!(run_statuses(&app, id).await, ["succeeded"]);
}

#[actix_rt::test]
async fn a_run_posted_by_a_replica_that_died_before_recording_it_is_updated_not_posted_again() {
    let app = spawn_app().await;
    let (channel, root) = thread_with(&app, "revenue by region last month").await;
    let id = schedule_id(&say(&app, &channel, &root, "every monday at 9").await);
    let fire = next_fire_at(&app, id).await + Duration::seconds(1);

    // A replica claims the run, posts it (marked with the run's id, as the server marks it)
    // and dies before recording the post.
    let store = PostgresStore::connect(app.database.url()).await.unwrap();
    let claims = store
        .claim_due(fire, "replica-that-dies", Duration::minutes(10), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let run = claims[0].execution_id;
    let half_done = json!({
        "channel": channel,
        "text": "half-done",
        "metadata": { "event_type": "threadql_report_run", "event_payload": { "report": id, "run": run } },
    });
    let posted: Value = app
        .client
        .post(format!("{}/chat.postMessage", app.slack.api_url()))
        .json(&half_done)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ts = posted["ts"].as_str().unwrap().to_string();

    // Its lease runs out; this server takes the run over.
    assert!(
        run_due(&app, fire + Duration::minutes(1)).await.is_empty(),
        "the lease still holds"
    );
    assert_eq!(run_due(&app, fire + Duration::minutes(11)).await, [("succeeded", 1)]);

    let delivered = roots(&app, &channel).await;
    assert_eq!(delivered.len(), 1, "updated, not posted again: {delivered:#?}");
    assert_eq!(delivered[0].0, ts);
    let text = post_text(&delivered[0].1);
    assert!(
        text.contains(&format!("Schedule {id}")) && text.contains("EMEA"),
        "{text}"
    );
    assert_eq!(app.slack.requests("/api/chat.update").await.len(), 1);
    assert_eq!(run_statuses(&app, id).await, ["succeeded"]);
}

#[actix_rt::test]
async fn after_a_downtime_of_three_fire_times_the_catch_up_policy_decides_what_runs() {
    let app = spawn_app().await;
    let (latest_channel, root) = thread_with(&app, "orders by channel").await;
    let latest = schedule_id(&say(&app, &latest_channel, &root, "every hour").await);
    let (all_channel, root) = thread_with(&app, "orders by channel").await;
    let all = schedule_id(&say(&app, &all_channel, &root, "every hour, catch up all missed runs").await);
    let (skip_channel, root) = thread_with(&app, "orders by channel").await;
    let skip = schedule_id(&say(&app, &skip_channel, &root, "every hour skip missed runs").await);
    let fire = next_fire_at(&app, latest).await;

    // Down from before the first fire time until 20 minutes after the third.
    let back = fire + Duration::hours(2) + Duration::minutes(20);
    run_due(&app, back).await;

    assert_eq!(run_statuses(&app, latest).await, ["missed", "missed", "succeeded"]);
    let delivered = roots(&app, &latest_channel).await;
    assert_eq!(delivered.len(), 1);
    let text = post_text(&delivered[0].1);
    assert!(text.contains("2 earlier runs were missed"), "{text}");

    assert_eq!(run_statuses(&app, all).await, ["succeeded", "succeeded", "succeeded"]);
    let delivered = roots(&app, &all_channel).await;
    assert_eq!(delivered.len(), 1, "the first run starts the schedule's thread");
    let thread = app.slack.posts_in_thread(&all_channel, &delivered[0].0).await;
    assert_eq!(thread.len(), 2, "the others reply in it: {thread:#?}");

    assert_eq!(run_statuses(&app, skip).await, ["missed", "missed", "missed"]);
    assert!(roots(&app, &skip_channel).await.is_empty());
    // The schedule goes on from its next fire time.
    assert_eq!(next_fire_at(&app, skip).await, fire + Duration::hours(3));
}

/// A Postgres warehouse the test changes between runs, with a model of its one table.
struct RefundsWarehouse {
    database: TestDatabase,
    _config: tempfile::TempDir,
}

impl RefundsWarehouse {
    async fn create(rows: &[(&str, f64)]) -> Self {
        let database = TestDatabase::create().await;
        let mut connection = database.connect().await;
        connection
            .execute(
                "CREATE TABLE refunds (id SERIAL PRIMARY KEY, region TEXT NOT NULL, amount NUMERIC(12,2) NOT NULL, \
                 refunded_on DATE NOT NULL DEFAULT CURRENT_DATE)",
            )
            .await
            .unwrap();
        let warehouse = Self {
            database,
            _config: tempfile::tempdir().unwrap(),
        };
        warehouse.set(rows).await;
        warehouse
    }

    /// Replaces the table's rows.
    async fn set(&self, rows: &[(&str, f64)]) {
        let mut connection = self.database.connect().await;
        connection.execute("DELETE FROM refunds").await.unwrap();
        for (region, amount) in rows {
            sqlx::query("INSERT INTO refunds (region, amount) VALUES ($1, $2)")
                .bind(region)
                .bind(rust_decimal::Decimal::try_from(*amount).unwrap())
                .execute(&mut connection)
                .await
                .unwrap();
        }
        connection.close().await.unwrap();
    }

    async fn app(&self) -> TestApp {
        let path = self._config.path().join("threadql.toml");
        std::fs::write(
            &path,
            r#"
[[tables]]
name = "refunds"
columns = ["id", "region", "amount", "refunded_on"]
time_column = "refunded_on"

[[metrics]]
name = "refunds"
synonyms = ["number of refunds"]
table = "refunds"
expression = "COUNT(*)"
format = "integer"

[[metrics]]
name = "refunded amount"
table = "refunds"
expression = "SUM(refunds.amount)"
format = "money"

[[dimensions]]
name = "region"
table = "refunds"
column = "region"
"#,
        )
        .unwrap();
        spawn_app_with(&[
            ("WAREHOUSE_URL", self.database.url().to_string()),
            ("THREADQL_CONFIG", path.display().to_string()),
        ])
        .await
    }
}

#[actix_rt::test]
async fn each_run_after_the_first_says_what_changed_and_empty_or_unchanged_runs_can_be_skipped() {
    let warehouse = RefundsWarehouse::create(&[("EMEA", 100.0), ("LATAM", 40.0), ("APAC", 10.0)]).await;
    let app = warehouse.app().await;
    let (channel, root) = thread_with(&app, "refunded amount by region").await;
    let id = schedule_id(&say(&app, &channel, &root, "daily at 8 skip if unchanged").await);
    let fire = next_fire_at(&app, id).await;
    run_due(&app, fire).await;

    warehouse.set(&[("EMEA", 150.0), ("APAC", 10.0), ("NA", 5.0)]).await;
    run_due(&app, fire + Duration::days(1)).await;
    // Unchanged the day after: skipped.
    run_due(&app, fire + Duration::days(2)).await;

    assert_eq!(
        run_statuses(&app, id).await,
        ["succeeded", "succeeded", "skipped_unchanged"]
    );
    let delivered = roots(&app, &channel).await;
    let thread = app.slack.posts_in_thread(&channel, &delivered[0].0).await;
    assert_eq!(thread.len(), 1, "{thread:#?}");
    let diff = post_text(&thread[0]);
    assert!(diff.contains("Since the last run"), "{diff}");
    assert!(diff.contains("new: NA") && diff.contains("gone: LATAM"), "{diff}");
    assert!(diff.contains("EMEA") && diff.contains("(+50%)"), "{diff}");

    // Skip if empty: nothing is posted while there are no rows.
    let (channel, root) = thread_with(&app, "refunds by region").await;
    let empty = schedule_id(&say(&app, &channel, &root, "every hour skip if empty").await);
    warehouse.set(&[]).await;
    let fire = next_fire_at(&app, empty).await;
    run_due(&app, fire).await;
    assert!(roots(&app, &channel).await.is_empty());
    warehouse.set(&[("EMEA", 1.0)]).await;
    run_due(&app, fire + Duration::hours(1)).await;
    assert_eq!(roots(&app, &channel).await.len(), 1);
    assert_eq!(run_statuses(&app, empty).await, ["skipped_empty", "succeeded"]);
}

#[actix_rt::test]
async fn an_alert_fires_once_stays_quiet_while_it_holds_and_says_back_to_normal_once() {
    let warehouse = RefundsWarehouse::create(&[("EMEA", 1.0)]).await;
    let app = warehouse.app().await;
    let (channel, root) = thread_with(&app, "refunded amount by region").await;
    let echo = say(&app, &channel, &root, "alert me when refunds > 2").await;
    let text = post_text(&echo);
    assert!(
        text.contains("when refunds is above 2") && text.contains("every hour"),
        "{text}"
    );
    let id = schedule_id(&echo);
    let fire = next_fire_at(&app, id).await;
    let hour = |n: i64| fire + Duration::hours(n);

    run_due(&app, hour(0)).await; // 1 refund: quiet
    warehouse.set(&[("EMEA", 1.0), ("EMEA", 2.0), ("APAC", 3.0)]).await;
    run_due(&app, hour(1)).await; // 3: fires
    run_due(&app, hour(2)).await; // still 3: quiet
    warehouse.set(&[("EMEA", 1.0)]).await;
    run_due(&app, hour(3)).await; // back to normal
    run_due(&app, hour(4)).await; // quiet

    assert_eq!(
        run_statuses(&app, id).await,
        ["quiet", "succeeded", "quiet", "succeeded", "quiet"]
    );
    let delivered = roots(&app, &channel).await;
    assert_eq!(delivered.len(), 1);
    let fired = post_text(&delivered[0].1);
    assert!(fired.contains("refunds is above 2 (now 3)"), "{fired}");
    let thread = app.slack.posts_in_thread(&channel, &delivered[0].0).await;
    assert_eq!(thread.len(), 1);
    let normal = post_text(&thread[0]);
    assert!(
        normal.contains("back to normal") && normal.contains("(now 1)"),
        "{normal}"
    );
}

#[actix_rt::test]
async fn a_failing_run_is_tried_three_times_then_reported_in_its_thread_and_to_its_owner() {
    let warehouse = RefundsWarehouse::create(&[("EMEA", 1.0)]).await;
    let app = warehouse.app().await;
    let (channel, root) = thread_with(&app, "refunds by region").await;
    let id = schedule_id(&say(&app, &channel, &root, "every monday at 9").await);
    let fire = next_fire_at(&app, id).await;
    let mut connection = warehouse.database.connect().await;
    connection.execute("DROP TABLE refunds").await.unwrap();

    assert_eq!(run_due(&app, fire).await, [("retrying", 1)]);
    assert!(
        run_due(&app, fire + Duration::seconds(30)).await.is_empty(),
        "not before its backoff"
    );
    assert_eq!(run_due(&app, fire + Duration::minutes(1)).await, [("retrying", 1)]);
    assert_eq!(run_due(&app, fire + Duration::minutes(6)).await, [("failed", 1)]);

    assert_eq!(run_statuses(&app, id).await, ["failed"]);
    let posts = app.slack.posts_in_thread(&channel, &root).await;
    let reported = post_text(posts.last().unwrap());
    assert!(
        reported.contains(&format!("Schedule {id}")) && reported.contains("after 3 tries"),
        "{reported}"
    );
    assert!(!reported.contains("does not exist"), "no raw database text: {reported}");
    let direct = app.slack.direct_messages(ALICE).await;
    assert_eq!(direct.len(), 1, "{direct:#?}");
    assert!(post_text(&direct[0]).contains("after 3 tries"));
}

#[actix_rt::test]
async fn pause_resume_edit_and_delete_work_from_the_buttons_and_schedules_lists_them() {
    let app = spawn_app().await;
    let (channel, root) = thread_with(&app, "orders by channel").await;
    let echo = say(&app, &channel, &root, "every monday at 9").await;
    let id = schedule_id(&echo);
    let fire = next_fire_at(&app, id).await;

    let count = app.slack.posts_in_thread(&channel, &root).await.len();
    app.click(&button_click(
        &channel,
        "schedule_pause",
        &button_value(&echo, "schedule_pause").unwrap(),
    ))
    .await;
    let paused = app.slack.wait_for_posts(&channel, &root, count + 1).await[count].clone();
    assert!(post_text(&paused).contains("Paused"), "{paused:#}");
    assert!(run_due(&app, fire).await.is_empty(), "a paused schedule does not run");

    app.click(&button_click(
        &channel,
        "schedule_resume",
        &button_value(&paused, "schedule_resume").unwrap(),
    ))
    .await;
    let resumed = app.slack.wait_for_posts(&channel, &root, count + 2).await[count + 1].clone();
    assert!(post_text(&resumed).contains("Resumed"), "{resumed:#}");

    // Edit: the button opens a dialog with the schedule's words; a submission that is not a
    // schedule is refused in the dialog; a good one changes the schedule.
    let mut click = button_click(
        &channel,
        "schedule_edit",
        &button_value(&resumed, "schedule_edit").unwrap(),
    );
    click["trigger_id"] = json!("1337.42.abcdef");
    app.click(&click).await;
    app.wait_until_idle().await;
    let opened = app.slack.requests("/api/views.open").await;
    assert_eq!(opened.len(), 1);
    let view: Value = serde_json::from_slice(&opened[0].body).unwrap();
    assert_eq!(view["trigger_id"], "1337.42.abcdef");
    let initial = view["view"]["blocks"][0]["element"]["initial_value"].as_str().unwrap();
    assert!(initial.starts_with("cron 0 9 * * 1"), "{initial}");
    let metadata = view["view"]["private_metadata"].as_str().unwrap().to_string();
    let submission = |words: &str| {
        let mut payload = threadql_testkit::fixture("app-backend/views/ViewSubmissionPayload.json");
        payload["type"] = json!("view_submission");
        payload["team"]["id"] = json!(TEAM);
        payload["user"]["id"] = json!(ALICE);
        payload["view"]["callback_id"] = json!("schedule_edit");
        payload["view"]["private_metadata"] = json!(metadata);
        payload["view"]["state"]["values"] =
            json!({ "schedule": { "words": { "type": "plain_text_input", "value": words } } });
        payload
    };
    let refused: Value = app.click(&submission("every blue moon")).await.json().await.unwrap();
    assert_eq!(refused["response_action"], "errors", "{refused:#}");
    assert!(refused["errors"]["schedule"]
        .as_str()
        .unwrap()
        .contains("every monday at 9:00"));
    let accepted = app.click(&submission("every friday at 17:00 Europe/Berlin")).await;
    assert_eq!(accepted.status(), 200);
    let changed = app.slack.wait_for_posts(&channel, &root, count + 3).await[count + 2].clone();
    let text = post_text(&changed);
    assert!(
        text.contains("Changed") && text.contains("cron `0 17 * * 5`") && text.contains("Europe/Berlin"),
        "{text}"
    );

    // "schedules", asked anywhere, lists the asker's.
    let (elsewhere, listing_root) = (new_channel(), new_ts());
    app.post_event(&app_mention("EvList1", &elsewhere, &listing_root, "schedules"))
        .await;
    let listing = app.slack.wait_for_posts(&elsewhere, &listing_root, 1).await;
    let listed = post_text(&listing[0]);
    assert!(
        listed.contains(&format!("Schedule {id}")) && listed.contains("0 17 * * 5"),
        "{listed}"
    );

    app.click(&button_click(
        &channel,
        "schedule_delete",
        &button_value(&changed, "schedule_delete").unwrap(),
    ))
    .await;
    let deleted = app.slack.wait_for_posts(&channel, &root, count + 4).await[count + 3].clone();
    assert!(post_text(&deleted).contains("Deleted"), "{deleted:#}");
    let store = PostgresStore::connect(app.database.url()).await.unwrap();
    assert!(store.report(id).await.unwrap().is_none());
}

#[actix_rt::test]
async fn someone_else_cannot_change_a_schedule_and_a_channel_that_is_gone_pauses_it_with_a_dm() {
    let app = spawn_app().await;
    let (channel, root) = thread_with(&app, "orders by channel").await;
    let echo = say(&app, &channel, &root, "every monday at 9 to <#C0GONE001|old-sales>").await;
    let id = schedule_id(&echo);

    let mut click = button_click(
        &channel,
        "schedule_delete",
        &button_value(&echo, "schedule_delete").unwrap(),
    );
    click["user"]["id"] = json!("U0MALLORY");
    app.click(&click).await;
    let refused = app.slack.wait_for_posts(&channel, &root, 3).await[2].clone();
    assert!(post_text(&refused).contains("no_such_schedule"), "{refused:#}");

    app.slack.refuse_posts_in("C0GONE001", "channel_not_found");
    let fire = next_fire_at(&app, id).await;
    assert_eq!(run_due(&app, fire).await, [("failed", 1)]);
    let store = PostgresStore::connect(app.database.url()).await.unwrap();
    let report = store.report(id).await.unwrap().unwrap();
    assert!(
        matches!(&report.state, threadql::domain::ReportState::Paused { reason: Some(reason) } if reason.contains("channel_not_found")),
        "{:?}",
        report.state
    );
    let direct = app.slack.direct_messages(ALICE).await;
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["channel"], direct_channel(ALICE).as_str());
    assert!(post_text(&direct[0]).contains("is paused"), "{:#}", direct[0]);
}

#[actix_rt::test]
async fn a_schedule_with_csv_attaches_the_rows_to_each_run_in_its_thread() {
    let app = spawn_app().await;
    let (channel, root) = thread_with(&app, "orders by channel").await;
    let id = schedule_id(&say(&app, &channel, &root, "every monday at 9 with csv").await);
    let fire = next_fire_at(&app, id).await;

    assert_eq!(run_due(&app, fire).await, [("succeeded", 1)]);

    let delivered = roots(&app, &channel).await;
    assert_eq!(delivered.len(), 1);
    let completed = app.slack.completed_uploads().await;
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0]["channel_id"], channel);
    assert_eq!(completed[0]["thread_ts"], delivered[0].0, "in the schedule's thread");
    let csv = String::from_utf8(app.slack.uploads().await.pop().unwrap()).unwrap();
    assert!(csv.starts_with("channel,") && csv.lines().count() > 2, "{csv}");
}

#[actix_rt::test]
async fn a_schedule_whose_owner_may_no_longer_read_its_data_is_paused_and_its_owner_told() {
    // Alice is the analysts' only member; everyone else reads nothing.
    let folder = tempfile::tempdir().unwrap();
    let model = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/interpret/demo_model.toml")).unwrap();
    let path = folder.path().join("threadql.toml");
    std::fs::write(
        &path,
        format!("{model}\n[[roles]]\nname = \"analysts\"\nmembers = [\"{ALICE}\"]\ntables = [\"*\"]\n\n[access]\ndefault_role = \"none\"\n"),
    )
    .unwrap();
    let app = spawn_app_with(&[("THREADQL_CONFIG", path.display().to_string())]).await;
    let (channel, root) = thread_with(&app, "revenue by region last month").await;
    let echo = say(&app, &channel, &root, "every monday at 9").await;
    let id = schedule_id(&echo);
    // Ownership passes to someone in no role (Alice left the team; an admin reassigned it).
    let mut connection = app.database.connect().await;
    sqlx::query("UPDATE scheduled_reports SET owner_id = 'U0LEFT001' WHERE id = $1")
        .bind(id)
        .execute(&mut connection)
        .await
        .unwrap();
    let fire = next_fire_at(&app, id).await;

    assert_eq!(
        run_due(&app, fire).await,
        [("failed", 1)],
        "not tried again: it cannot succeed"
    );

    assert!(roots(&app, &channel).await.is_empty(), "no data posted");
    let store = PostgresStore::connect(app.database.url()).await.unwrap();
    let report = store.report(id).await.unwrap().unwrap();
    assert!(
        matches!(report.state, threadql::domain::ReportState::Paused { .. }),
        "{:?}",
        report.state
    );
    let told = app.slack.direct_messages("U0LEFT001").await;
    assert_eq!(told.len(), 1, "{told:#?}");
    let text = post_text(&told[0]);
    assert!(text.contains("paused") && text.contains("not_permitted"), "{text}");
}

#[actix_rt::test]
async fn a_schedule_whose_owner_left_the_workspace_is_paused_and_its_thread_told() {
    let app = spawn_app().await;
    let (channel, root) = thread_with(&app, "orders by channel").await;
    let id = schedule_id(&say(&app, &channel, &root, "every monday at 9").await);
    let fire = next_fire_at(&app, id).await;
    app.slack.deactivate(ALICE);

    assert_eq!(run_due(&app, fire).await, [("failed", 1)]);

    assert!(roots(&app, &channel).await.is_empty(), "nothing delivered");
    let told = post_text(app.slack.posts_in_thread(&channel, &root).await.last().unwrap());
    assert!(told.contains("has left the workspace"), "{told}");
    let store = PostgresStore::connect(app.database.url()).await.unwrap();
    let report = store.report(id).await.unwrap().unwrap();
    assert!(
        matches!(&report.state, threadql::domain::ReportState::Paused { reason: Some(reason) } if reason.contains("left")),
        "{:?}",
        report.state
    );
}
