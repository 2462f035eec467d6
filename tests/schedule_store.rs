#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Scheduled reports in both state stores (Postgres for several replicas, SQLite embedded): a
//! fire time claimed once however many claim it at once, missed fire times recorded by the
//! catch-up policy, a try due again, a run whose replica died taken over with what it posted,
//! and what a finished run leaves on its report.
use chrono::{DateTime, Duration, TimeZone, Utc};
use threadql::domain::{
    AlertSpec, AlertState, CatchUp, Column, ColumnFormat, Condition, DeliveryOptions, Destination, ExecutionStatus,
    ProposedQuery, QueryResult, ReportState, Schedule, ThreadKey, UserId, Value,
};
use threadql::store::{ExecutionEnd, NewReport, PostgresStore, ScheduleStore, SqliteStore};
use threadql_testkit::{new_channel, new_ts, TestDatabase, TEAM};

/// A migrated store, with what keeps it alive (its database, its folder) for the test's length.
enum Store {
    Postgres(#[allow(dead_code)] TestDatabase, PostgresStore),
    Sqlite(#[allow(dead_code)] tempfile::TempDir, SqliteStore),
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
        let url = format!("sqlite://{}", directory.path().join("state.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Self::Sqlite(directory, store)
    }

    fn store(&self) -> &dyn ScheduleStore {
        match self {
            Self::Postgres(_, store) => store,
            Self::Sqlite(_, store) => store,
        }
    }
}

fn monday_9() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()
}

fn new_report(cron: &str, catch_up: CatchUp, alert: Option<AlertSpec>) -> NewReport {
    let options = DeliveryOptions {
        catch_up,
        ..DeliveryOptions::default()
    };
    NewReport {
        origin: ThreadKey::parse(TEAM, &new_channel(), &new_ts()).unwrap(),
        owner: UserId::new("U0ALICE01"),
        question: "revenue by region last month".into(),
        query: ProposedQuery {
            sql: "SELECT region, SUM(total) AS revenue FROM orders GROUP BY region".into(),
            structured: None,
            summary: "Revenue by region".into(),
            formats: vec![("revenue".into(), ColumnFormat::Money)],
            explanation: String::new(),
            usage: None,
        },
        schedule: Schedule::from_cron(cron, chrono_tz::Europe::Berlin, Destination::Me, options).unwrap(),
        alert,
        next_fire_at: monday_9(),
    }
}

async fn check_claims_and_runs(store: &dyn ScheduleStore) {
    let lease = Duration::minutes(10);
    let report = store
        .create_report(&new_report("0 * * * *", CatchUp::Latest, None))
        .await
        .unwrap();
    assert_eq!(report.schedule.destination, Destination::Me);
    assert_eq!(report.schedule.timezone, chrono_tz::Europe::Berlin);
    assert!(store
        .claim_due(monday_9() - Duration::seconds(1), "a", lease, 10)
        .await
        .unwrap()
        .is_empty());

    // Two replicas claim at once, two hours and a bit after the first fire time: one gets one
    // run standing for the two missed ones.
    let now = monday_9() + Duration::hours(2) + Duration::minutes(1);
    let (first, second) = tokio::join!(
        store.claim_due(now, "a", lease, 10),
        store.claim_due(now, "b", lease, 10)
    );
    let mut claims = first.unwrap();
    claims.extend(second.unwrap());
    assert_eq!(claims.len(), 1, "{claims:?}");
    let claim = &claims[0];
    assert_eq!(
        (claim.fire_at, claim.missed, claim.attempt),
        (monday_9() + Duration::hours(2), 2, 1)
    );
    let runs = store.executions(report.id).await.unwrap();
    let statuses: Vec<ExecutionStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            ExecutionStatus::Missed,
            ExecutionStatus::Missed,
            ExecutionStatus::Running
        ]
    );
    let moved = store.report(report.id).await.unwrap().unwrap();
    assert_eq!(moved.next_fire_at, monday_9() + Duration::hours(3));

    // The replica posts, records it, and dies: after its lease the run is taken over with the
    // post it made.
    store
        .record_posted(claim.execution_id, "D0ALICE01", "1.000200")
        .await
        .unwrap();
    assert!(store
        .claim_due(now + Duration::minutes(5), "b", lease, 10)
        .await
        .unwrap()
        .is_empty());
    let retaken = store
        .claim_due(now + Duration::minutes(11), "b", lease, 10)
        .await
        .unwrap();
    assert_eq!(retaken.len(), 1);
    assert_eq!(retaken[0].execution_id, claim.execution_id);
    assert_eq!(retaken[0].attempt, 2);
    assert_eq!(
        retaken[0].posted,
        Some(("D0ALICE01".to_string(), "1.000200".to_string()))
    );

    // It fails once: due again at its retry time, not before.
    let retry_at = now + Duration::minutes(20);
    let retrying = ExecutionEnd {
        retry_at: Some(retry_at),
        error: Some("warehouse down".into()),
        ..ExecutionEnd::status(ExecutionStatus::Retrying)
    };
    store.finish_execution(claim.execution_id, &retrying).await.unwrap();
    assert!(store
        .claim_due(retry_at - Duration::seconds(1), "b", lease, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store.claim_due(retry_at, "b", lease, 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempt), (1, 3));

    // It succeeds: the report keeps the result and its thread.
    let result = QueryResult {
        columns: vec![Column {
            name: "revenue".into(),
            format: ColumnFormat::Money,
        }],
        rows: vec![vec![Value::Float(12.5)]],
    };
    let done = ExecutionEnd {
        last_result: Some(result.clone()),
        delivery_thread: Some(("D0ALICE01".into(), "1.000200".into())),
        ..ExecutionEnd::status(ExecutionStatus::Succeeded)
    };
    store.finish_execution(claim.execution_id, &done).await.unwrap();
    let kept = store.report(report.id).await.unwrap().unwrap();
    assert_eq!(kept.last_result, Some(result));
    assert_eq!(
        kept.delivery_thread,
        Some(("D0ALICE01".to_string(), "1.000200".to_string()))
    );
    let listed = store.reports(Some(TEAM), Some("U0ALICE01")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_status, Some(ExecutionStatus::Succeeded));
    assert!(store.reports(Some(TEAM), Some("U0SOMEONE")).await.unwrap().is_empty());

    // Outside its schedule; then paused, it is not claimed; deleted, it is gone with its runs.
    let now_run = store
        .claim_now(report.id, now + Duration::minutes(30), "a", lease)
        .await
        .unwrap();
    assert!(now_run.is_some());
    let paused = ReportState::Paused {
        reason: Some("its channel cannot be posted in (channel_not_found)".into()),
    };
    assert!(store
        .update_report(report.id, &paused, &kept.schedule, monday_9() + Duration::hours(4))
        .await
        .unwrap());
    assert!(store
        .claim_due(now + Duration::days(1), "a", lease, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.report(report.id).await.unwrap().unwrap().state, paused);
    assert!(store.delete_report(report.id).await.unwrap());
    assert!(store.report(report.id).await.unwrap().is_none());
    assert!(store.executions(report.id).await.unwrap().is_empty());
    assert!(!store.delete_report(report.id).await.unwrap());
}

async fn check_alert_state_is_kept(store: &dyn ScheduleStore) {
    let alert = AlertSpec {
        condition: Condition::DropsBy {
            percent: 20.0,
            versus: "last week".into(),
        },
        state: AlertState::Armed,
        last_value: None,
    };
    let report = store
        .create_report(&new_report("0 9 * * 1", CatchUp::All, Some(alert.clone())))
        .await
        .unwrap();
    assert_eq!(report.alert, Some(alert));
    let claims = store
        .claim_due(monday_9() + Duration::days(14), "a", Duration::minutes(10), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 3, "every missed Monday runs under `all`");
    let firing = AlertSpec {
        condition: Condition::AnyRows,
        state: AlertState::Firing,
        last_value: Some(42.0),
    };
    let end = ExecutionEnd {
        alert: Some(firing.clone()),
        ..ExecutionEnd::status(ExecutionStatus::Succeeded)
    };
    store.finish_execution(claims[0].execution_id, &end).await.unwrap();
    assert_eq!(store.report(report.id).await.unwrap().unwrap().alert, Some(firing));
}

#[tokio::test]
async fn postgres_claims_each_fire_time_once_and_keeps_what_runs_leave() {
    let store = Store::postgres().await;
    check_claims_and_runs(store.store()).await;
    check_alert_state_is_kept(store.store()).await;
}

#[tokio::test]
async fn sqlite_claims_each_fire_time_once_and_keeps_what_runs_leave() {
    let store = Store::sqlite().await;
    check_claims_and_runs(store.store()).await;
    check_alert_state_is_kept(store.store()).await;
}
