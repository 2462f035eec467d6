#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The audit trail: rows read back by time and user from both state stores, the retention that
//! deletes old ones, and `threadql audit` as an operator runs it.
use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use sqlx::Connection;
use threadql::domain::{ErrorCode, ThreadKey};
use threadql::store::{delete_expired_audit_rows, AuditRecord, AuditRetention, PostgresStore, SqliteStore, StateStore};
use threadql_testkit::{new_channel, new_ts, TestDatabase, TEAM};

/// A migrated state store of one test, and a way to write rows dated in the past (the store
/// itself only writes "now").
enum Store {
    Postgres(TestDatabase, PostgresStore),
    Sqlite(tempfile::TempDir, SqliteStore),
}

impl Store {
    async fn postgres() -> Self {
        let database = TestDatabase::create().await;
        let store = PostgresStore::connect(database.url()).await.unwrap();
        store.migrate().await.unwrap();
        Self::Postgres(database, store)
    }

    async fn sqlite() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::connect(&sqlite_url(directory.path())).await.unwrap();
        store.migrate().await.unwrap();
        Self::Sqlite(directory, store)
    }

    fn url(&self) -> String {
        match self {
            Self::Postgres(database, _) => database.url().to_string(),
            Self::Sqlite(directory, _) => sqlite_url(directory.path()),
        }
    }

    fn store(&self) -> &dyn StateStore {
        match self {
            Self::Postgres(_, store) => store,
            Self::Sqlite(_, store) => store,
        }
    }

    /// An audit row of `user` written `hours_ago`, with the `created_at` each store writes.
    async fn insert_aged(&self, user: &str, action: &str, hours_ago: i64) {
        let insert =
            "INSERT INTO audit_logs (team_id, channel_id, thread_ts, user_id, action, detail, event_id, created_at)";
        match self {
            Self::Postgres(database, _) => {
                database
                    .execute(&format!(
                        "{insert} VALUES ('{TEAM}', 'C1', '1.1', '{user}', '{action}', 'aged', 'Ev{hours_ago}', \
                         now() - make_interval(hours => {hours_ago}))"
                    ))
                    .await
            }
            Self::Sqlite(directory, _) => {
                let mut connection = sqlx::SqliteConnection::connect(&sqlite_url(directory.path()))
                    .await
                    .unwrap();
                sqlx::query(&format!(
                    "{insert} VALUES ('{TEAM}', 'C1', '1.1', '{user}', '{action}', 'aged', 'Ev{hours_ago}', \
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{hours_ago} hours'))"
                ))
                .execute(&mut connection)
                .await
                .unwrap();
                connection.close().await.unwrap();
            }
        }
    }

    async fn actions_since(&self, since: DateTime<Utc>) -> Vec<String> {
        let rows = self.store().audit_rows(since, None, 1_000).await.unwrap();
        rows.into_iter().map(|row| row.action).collect()
    }
}

/// Before every row of a test.
fn long_ago() -> DateTime<Utc> {
    Utc::now() - Duration::days(365 * 100)
}

fn sqlite_url(directory: &Path) -> String {
    format!("sqlite://{}", directory.join("state.db").display())
}

fn refusal(user: &str) -> AuditRecord {
    AuditRecord {
        thread: ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap(),
        user: user.into(),
        event_id: "Ev0NOW".to_string(),
        action: "permission_refused".to_string(),
        code: Some(ErrorCode::from_code("not_permitted").unwrap()),
        detail: "customers.email".to_string(),
    }
}

/// Rows of two users over three days: U1 48 h ago, U1 3 h ago, U2 2 h ago, U1 now.
async fn arrange_rows_of_two_users(store: &Store) -> AuditRecord {
    store.insert_aged("U1", "u1_two_days_ago", 48).await;
    store.insert_aged("U1", "u1_three_hours_ago", 3).await;
    store.insert_aged("U2", "u2_two_hours_ago", 2).await;
    let now = refusal("U1");
    store.store().record_audit(&now).await.unwrap();
    now
}

async fn rows_are_read_back_since_a_time_for_a_user_oldest_first(store: Store) {
    // Arrange
    let recorded = arrange_rows_of_two_users(&store).await;
    let day_ago = Utc::now() - Duration::days(1);

    // Act
    let everyone = store.store().audit_rows(day_ago, None, 100).await.unwrap();
    let u1 = store.store().audit_rows(day_ago, Some("U1"), 100).await.unwrap();
    let oldest_two = store.store().audit_rows(day_ago, None, 2).await.unwrap();

    // Assert: the two-day-old row is out, the rest in the order they were written.
    let actions = |rows: &[threadql::store::AuditRow]| rows.iter().map(|r| r.action.clone()).collect::<Vec<_>>();
    assert_eq!(
        actions(&everyone),
        ["u1_three_hours_ago", "u2_two_hours_ago", "permission_refused"]
    );
    assert_eq!(actions(&u1), ["u1_three_hours_ago", "permission_refused"]);
    assert_eq!(actions(&oldest_two), ["u1_three_hours_ago", "u2_two_hours_ago"]);
    let now = everyone.last().unwrap();
    assert_eq!(now.thread, recorded.thread);
    assert_eq!(now.user, recorded.user);
    assert_eq!(now.event_id, "Ev0NOW", "the event id is stored");
    assert_eq!(now.code.as_deref(), Some("not_permitted"));
    assert_eq!(now.detail, "customers.email");
    assert!(
        (Utc::now() - now.created_at).num_minutes().abs() < 5,
        "{}",
        now.created_at
    );
    let three_hours_ago = everyone.first().unwrap();
    let age = Utc::now() - three_hours_ago.created_at;
    assert!(age > Duration::minutes(170) && age < Duration::minutes(190), "{age}");
    assert!(everyone.windows(2).all(|pair| pair[0].id != pair[1].id));
}

#[tokio::test]
async fn postgres_reads_audit_rows_back_since_a_time_for_a_user_oldest_first() {
    rows_are_read_back_since_a_time_for_a_user_oldest_first(Store::postgres().await).await;
}

#[tokio::test]
async fn sqlite_reads_audit_rows_back_since_a_time_for_a_user_oldest_first() {
    rows_are_read_back_since_a_time_for_a_user_oldest_first(Store::sqlite().await).await;
}

async fn rows_before_a_cutoff_are_deleted_and_counted(store: Store) {
    // Arrange
    arrange_rows_of_two_users(&store).await;

    // Act: everything older than a day goes, then everything older than an hour.
    let first = store
        .store()
        .delete_audit_before(Utc::now() - Duration::days(1))
        .await
        .unwrap();
    let left_after_first = store.actions_since(long_ago()).await;
    let second = store
        .store()
        .delete_audit_before(Utc::now() - Duration::hours(1))
        .await
        .unwrap();

    // Assert
    assert_eq!(first, 1);
    assert_eq!(
        left_after_first,
        ["u1_three_hours_ago", "u2_two_hours_ago", "permission_refused"]
    );
    assert_eq!(second, 2);
    assert_eq!(store.actions_since(long_ago()).await, ["permission_refused"]);
}

#[tokio::test]
async fn the_postgres_audit_clean_up_runs_at_one_replica_at_a_time() {
    // Arrange: another replica's pass holds the clean-up's lock.
    let store = Store::postgres().await;
    arrange_rows_of_two_users(&store).await;
    let Store::Postgres(database, _) = &store else {
        unreachable!()
    };
    let mut other_replica = database.connect().await;
    sqlx::query("BEGIN").execute(&mut other_replica).await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, 1)")
        .bind(threadql::store::AUDIT_RETENTION_LOCK_CLASS)
        .fetch_one(&mut other_replica)
        .await
        .unwrap();
    assert!(held);

    // Act and assert: this pass leaves the rows to it, and deletes them once it is over.
    let cutoff = Utc::now() - Duration::days(1);
    assert_eq!(store.store().delete_audit_before(cutoff).await.unwrap(), 0);
    assert_eq!(store.actions_since(long_ago()).await.len(), 4);
    sqlx::query("COMMIT").execute(&mut other_replica).await.unwrap();
    assert_eq!(store.store().delete_audit_before(cutoff).await.unwrap(), 1);
}

#[tokio::test]
async fn postgres_deletes_audit_rows_before_a_cutoff_and_counts_them() {
    rows_before_a_cutoff_are_deleted_and_counted(Store::postgres().await).await;
}

#[tokio::test]
async fn sqlite_deletes_audit_rows_before_a_cutoff_and_counts_them() {
    rows_before_a_cutoff_are_deleted_and_counted(Store::sqlite().await).await;
}

async fn retention_of_90_days_keeps_an_89_day_old_row_and_deletes_a_91_day_old_one(store: Store) {
    // Arrange
    store.insert_aged("U1", "eighty_nine_days_old", 89 * 24).await;
    store.insert_aged("U1", "ninety_one_days_old", 91 * 24).await;

    // Act
    let kept_forever = delete_expired_audit_rows(store.store(), 0, Utc::now()).await.unwrap();
    let after_zero = store.actions_since(long_ago()).await;
    let deleted = delete_expired_audit_rows(store.store(), 90, Utc::now()).await.unwrap();

    // Assert
    assert_eq!(kept_forever, 0, "0 keeps rows forever");
    assert_eq!(after_zero, ["ninety_one_days_old", "eighty_nine_days_old"]);
    assert_eq!(deleted, 1);
    assert_eq!(store.actions_since(long_ago()).await, ["eighty_nine_days_old"]);
}

#[tokio::test]
async fn postgres_retention_of_90_days_keeps_an_89_day_old_row_and_deletes_a_91_day_old_one() {
    retention_of_90_days_keeps_an_89_day_old_row_and_deletes_a_91_day_old_one(Store::postgres().await).await;
}

#[tokio::test]
async fn sqlite_retention_of_90_days_keeps_an_89_day_old_row_and_deletes_a_91_day_old_one() {
    retention_of_90_days_keeps_an_89_day_old_row_and_deletes_a_91_day_old_one(Store::sqlite().await).await;
}

#[tokio::test]
async fn the_retention_job_counts_what_it_deletes_in_its_metric() {
    // Arrange: a 91-day-old row, and the job over the server's store (batching layer included).
    let store = Store::postgres().await;
    store.insert_aged("U1", "ninety_one_days_old", 91 * 24).await;
    let served = threadql::store::connect_and_migrate(&store.url()).await.unwrap();
    let metrics = threadql::metrics::Metrics::new().unwrap();
    let job = AuditRetention::new(served, 90, metrics.clone());

    // Act
    let deleted = job.run_once(Utc::now()).await.unwrap();

    // Assert
    assert_eq!(deleted, 1);
    assert_eq!(metrics.audit_rows_deleted.get(), 1);
    assert!(
        metrics
            .render()
            .lines()
            .any(|l| l == "threadql_audit_rows_deleted_total 1"),
        "{}",
        metrics.render()
    );
    assert!(store.actions_since(long_ago()).await.is_empty());
}

/// `threadql audit <args>` over `database_url`, from a directory without a .env.
fn audit(database_url: &str, args: &[&str]) -> Output {
    let workdir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_threadql"))
        .arg("audit")
        .args(args)
        .current_dir(workdir.path())
        .env("DATABASE_URL", database_url)
        .env_remove("WAREHOUSE_URL")
        .env_remove("THREADQL_CONFIG")
        .env_remove("THREADQL_DBT_PROJECT")
        .env_remove("OPENAI_API_KEY")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
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
async fn audit_since_one_day_prints_the_recent_rows_and_not_the_older_ones() {
    for store in [Store::postgres().await, Store::sqlite().await] {
        // Arrange
        let recorded = arrange_rows_of_two_users(&store).await;

        // Act
        let output = audit(&store.url(), &["--since", "1d"]);

        // Assert
        let stdout = stdout_of(&output);
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(lines[0].starts_with("time "), "a header first:\n{stdout}");
        assert_eq!(lines.len(), 4, "{stdout}");
        assert!(
            lines[1].contains("u1_three_hours_ago") && lines[2].contains("u2_two_hours_ago"),
            "{stdout}"
        );
        let now = lines[3];
        for part in [
            recorded.thread.to_string().as_str(),
            "U1",
            "Ev0NOW",
            "permission_refused",
            "not_permitted",
            "customers.email",
        ] {
            assert!(now.contains(part), "{part} in {now}");
        }
        assert!(!stdout.contains("u1_two_days_ago"), "{stdout}");
    }
}

#[tokio::test]
async fn audit_for_a_user_prints_only_that_users_rows_and_says_when_there_is_none() {
    // Arrange
    let store = Store::postgres().await;
    arrange_rows_of_two_users(&store).await;

    // Act
    let u2 = stdout_of(&audit(&store.url(), &["--since", "1d", "--user", "U2"]));
    let nobody = stdout_of(&audit(&store.url(), &["--since", "1d", "--user", "U3"]));

    // Assert
    assert_eq!(u2.lines().count(), 2, "{u2}");
    assert!(u2.contains("u2_two_hours_ago") && !u2.contains("U1 "), "{u2}");
    assert!(
        nobody.starts_with("No audit rows since ") && nobody.contains("for user U3"),
        "{nobody}"
    );
}

#[tokio::test]
async fn audit_json_prints_one_object_per_line_with_every_field() {
    // Arrange
    let store = Store::postgres().await;
    let recorded = arrange_rows_of_two_users(&store).await;

    // Act
    let stdout = stdout_of(&audit(&store.url(), &["--since", "1d", "--user", "U1", "--json"]));

    // Assert
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["action"], "u1_three_hours_ago");
    assert_eq!(lines[0]["event_id"], "Ev3");
    assert_eq!(lines[0]["code"], serde_json::Value::Null);
    let now = &lines[1];
    assert!(now["id"].as_i64().unwrap() > lines[0]["id"].as_i64().unwrap());
    let at = DateTime::parse_from_rfc3339(now["at"].as_str().unwrap()).unwrap();
    assert!((Utc::now() - at.with_timezone(&Utc)).num_minutes().abs() < 5, "{at}");
    assert_eq!(now["team"], TEAM);
    assert_eq!(now["channel"], recorded.thread.channel().as_str());
    assert_eq!(now["thread_ts"], recorded.thread.thread_ts().as_str());
    assert_eq!(now["user"], "U1");
    assert_eq!(now["event_id"], "Ev0NOW");
    assert_eq!(now["action"], "permission_refused");
    assert_eq!(now["code"], "not_permitted");
    assert_eq!(now["detail"], "customers.email");
}

#[tokio::test]
async fn audit_says_on_stderr_when_the_limit_cut_the_rows() {
    // Arrange
    let store = Store::sqlite().await;
    arrange_rows_of_two_users(&store).await;

    // Act
    let output = audit(&store.url(), &["--since", "1d", "--limit", "2", "--json"]);

    // Assert
    let stdout = stdout_of(&output);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--limit 2"), "{stderr}");
}

#[test]
fn audit_with_a_bad_since_exits_2_and_says_what_it_expects() {
    let directory = tempfile::tempdir().unwrap();
    let url = sqlite_url(directory.path());
    for bad in ["yesterday", "1x", "-3d"] {
        // `--since=…` so that `-3d` is read as the value, not as a flag.
        let output = audit(&url, &[&format!("--since={bad}")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--since"), "{bad}: {stderr}");
        assert!(stderr.contains("30m, 12h, 1d, 7d"), "{bad}: {stderr}");
    }
    assert!(!directory.path().join("state.db").exists(), "nothing was opened");
}
