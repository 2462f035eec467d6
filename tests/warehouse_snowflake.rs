#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Snowflake warehouse against a fake of the SQL API ([`fake_snowflake`]) that runs each
//! statement on a real Postgres database of its own per test, so cancelling and timeouts are
//! seen stopping the statement in the engine.
mod fake_snowflake;

mod demo_threads;

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use demo_threads::{demo_path, DEMO_TABLES};
use fake_snowflake::{Ended, FakeSnowflake, ACCOUNT, TEST_PRIVATE_KEY, USER};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Column as _, Row, TypeInfo, ValueRef};
use threadql::config::{Config, SnowflakeConfig, SnowflakeKey};
use threadql::domain::{ColumnFormat, ColumnKind, ForeignKey, Value};
use threadql::sql::{Dialect, GuardedSql, SqlGuard};
use threadql::startup::connect_warehouse;
use threadql::warehouse::snowflake::{SnowflakeOptions, SnowflakeWarehouse};
use threadql::warehouse::{DescribeSettings, Warehouse, WarehouseError};
use threadql_testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

/// Ten billion rows: hours of work in Postgres, so anything that ends soon was stopped.
const HEAVY_QUERY: &str =
    "SELECT COUNT(*) AS n FROM generate_series(1, 100000) AS a CROSS JOIN generate_series(1, 100000) AS b";
/// Far below the hours `HEAVY_QUERY` would take; generous for a loaded CI machine.
const STOPPED_WELL_BEFORE: Duration = Duration::from_secs(15);

fn guarded(sql: &str) -> GuardedSql {
    SqlGuard::new(Dialect::Snowflake, None).check(sql, 100_000).unwrap()
}

fn never() -> CancellationToken {
    CancellationToken::new()
}

fn config(fake: &FakeSnowflake, user: &str) -> SnowflakeConfig {
    SnowflakeConfig {
        account: ACCOUNT.to_lowercase(),
        user: user.to_string(),
        database: "testdb".into(),
        schema: "public".into(),
        warehouse: Some("reporting_wh".into()),
        role: Some("reader".into()),
        private_key: SnowflakeKey::Pem(TEST_PRIVATE_KEY.to_string().into()),
        api_url: fake.uri().parse().unwrap(),
    }
}

fn options(fake: &FakeSnowflake) -> SnowflakeOptions {
    SnowflakeOptions {
        clock: fake.clock.clone(),
        first_poll: Duration::from_millis(10),
        max_poll: Duration::from_millis(50),
        first_retry: Duration::from_millis(10),
        ..SnowflakeOptions::default()
    }
}

/// A database, the fake in front of it and the warehouse reaching the fake.
async fn arrange(setup: &str) -> (TestDatabase, FakeSnowflake, SnowflakeWarehouse) {
    let db = TestDatabase::create().await;
    if !setup.is_empty() {
        db.execute(setup).await;
    }
    let fake = FakeSnowflake::start(db.url()).await;
    let warehouse = SnowflakeWarehouse::connect_with(&config(&fake, &USER.to_lowercase()), options(&fake))
        .await
        .unwrap();
    (db, fake, warehouse)
}

/// Submissions of statements containing `needle`.
fn submissions(fake: &FakeSnowflake, needle: &str) -> Vec<fake_snowflake::Received> {
    fake.received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v2/statements")
        .filter(|r| {
            r.body
                .as_ref()
                .and_then(|b| b["statement"].as_str())
                .is_some_and(|s| s.contains(needle))
        })
        .collect()
}

#[tokio::test]
async fn snowflake_values_convert_by_type() {
    let (_db, _fake, warehouse) = arrange(
        "CREATE TABLE v (i INT, bi BIGINT, num NUMERIC(12,2), f DOUBLE PRECISION, t TEXT, flag BOOLEAN, \
                         day DATE, at TIMESTAMP, n INT); \
         INSERT INTO v VALUES (3, 9007199254740993, 12.34, 2.25, 'x', true, '2024-02-29', \
                               '2024-01-02 03:04:05.25', NULL);",
    )
    .await;

    let result = warehouse
        .execute(
            &guarded("SELECT i, bi, num, f, t, flag, day, at, n FROM v"),
            Duration::from_secs(10),
            &never(),
        )
        .await
        .unwrap();

    assert_eq!(
        result.rows,
        vec![vec![
            Value::Int(3),
            Value::Int(9_007_199_254_740_993),
            Value::Decimal(Decimal::new(1234, 2)),
            Value::Float(2.25),
            Value::Text("x".into()),
            Value::Bool(true),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 1, 2)
                    .unwrap()
                    .and_hms_milli_opt(3, 4, 5, 250)
                    .unwrap()
            ),
            Value::Null,
        ]]
    );
    // Snowflake names unquoted columns in upper case; threadql reads them in lower case.
    let formats: Vec<(&str, ColumnFormat)> = result.columns.iter().map(|c| (c.name.as_str(), c.format)).collect();
    assert_eq!(
        formats,
        [
            ("i", ColumnFormat::Integer),
            ("bi", ColumnFormat::Integer),
            ("num", ColumnFormat::Number),
            ("f", ColumnFormat::Number),
            ("t", ColumnFormat::Text),
            ("flag", ColumnFormat::Text),
            ("day", ColumnFormat::Date),
            ("at", ColumnFormat::Text),
            ("n", ColumnFormat::Integer),
        ]
    );
}

#[tokio::test]
async fn statements_are_submitted_with_their_context_timeout_and_query_tag() {
    let (_db, fake, warehouse) = arrange("").await;

    warehouse
        .execute(&guarded("SELECT 42 AS answer"), Duration::from_millis(7_500), &never())
        .await
        .unwrap();

    let sent = submissions(&fake, "42");
    assert_eq!(sent.len(), 1);
    let body = sent[0].body.as_ref().unwrap();
    assert_eq!(body["statement"], "SELECT 42 AS answer LIMIT 100000");
    assert_eq!(body["timeout"], 8, "whole seconds, rounded up");
    assert_eq!(body["database"], "TESTDB");
    assert_eq!(body["schema"], "PUBLIC");
    assert_eq!(body["warehouse"], "REPORTING_WH");
    assert_eq!(body["role"], "READER");
    assert_eq!(body["parameters"]["QUERY_TAG"], "threadql");
    assert_eq!(body["parameters"]["MULTI_STATEMENT_COUNT"], "1");
    assert!(sent[0].query.contains("async=true") && sent[0].query.contains("requestId="));
}

#[tokio::test]
async fn a_result_of_several_partitions_is_assembled_in_order() {
    let (_db, fake, warehouse) = arrange("").await;
    fake.set_partition_rows(1_000);

    let result = warehouse
        .execute(
            &guarded("SELECT n FROM generate_series(1, 2500) AS s(n) ORDER BY n"),
            Duration::from_secs(10),
            &never(),
        )
        .await
        .unwrap();

    let expected: Vec<Vec<Value>> = (1..=2500).map(|n| vec![Value::Int(n)]).collect();
    assert_eq!(result.rows, expected);
    let partitions: Vec<String> = fake
        .received()
        .into_iter()
        .filter(|r| r.query.contains("partition="))
        .map(|r| r.query)
        .collect();
    assert_eq!(partitions, ["partition=1", "partition=2"]);
}

#[tokio::test]
async fn a_tagged_statement_carries_its_thread_and_version_as_query_tag() {
    let (_db, fake, warehouse) = arrange("").await;
    let tag = threadql::sql::QueryTag::new(&"T01/C02/1712345678.000100", 3);

    warehouse
        .execute(
            &guarded("SELECT 43 AS answer").tagged(tag),
            Duration::from_secs(5),
            &never(),
        )
        .await
        .unwrap();

    let sent = submissions(&fake, "43");
    let body = sent[0].body.as_ref().unwrap();
    assert_eq!(body["parameters"]["QUERY_TAG"], "threadql:T01/C02/1712345678.000100:3");
    assert_eq!(
        body["statement"], "SELECT 43 AS answer LIMIT 100000",
        "the tag is not in the text"
    );
}

#[tokio::test]
async fn an_export_of_100000_rows_is_handed_over_partition_by_partition() {
    let (_db, fake, warehouse) = arrange("").await;
    fake.set_partition_rows(10_000);
    let (pages, mut received) = tokio::sync::mpsc::channel::<threadql::domain::QueryResult>(1);

    let reader = tokio::spawn(async move {
        let mut sizes = Vec::new();
        let mut next = 1;
        while let Some(page) = received.recv().await {
            sizes.push(page.rows.len());
            for row in page.rows {
                assert_eq!(row, vec![Value::Int(next)], "rows arrive in order");
                next += 1;
            }
        }
        sizes
    });
    let rows = warehouse
        .execute_pages(
            &guarded("SELECT n FROM generate_series(1, 100000) AS s(n) ORDER BY n"),
            Duration::from_secs(60),
            &never(),
            pages,
        )
        .await
        .unwrap();

    assert_eq!(rows, 100_000);
    assert_eq!(reader.await.unwrap(), vec![10_000; 10], "one page per partition");
}

#[tokio::test]
async fn a_running_statement_is_polled_until_its_result_is_ready() {
    let (_db, fake, warehouse) = arrange("").await;
    fake.set_polls(4);

    let result = warehouse
        .execute(&guarded("SELECT 'polled' AS word"), Duration::from_secs(10), &never())
        .await
        .unwrap();

    assert_eq!(result.rows, vec![vec![Value::Text("polled".into())]]);
    let handle = fake.handle_of("polled").unwrap();
    let polls = fake
        .received()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&handle) && r.query.is_empty())
        .count();
    // Four scripted answers of 202 (and more while Postgres was still running it), then the
    // result.
    assert!(polls >= 5, "{polls} polls");
}

#[tokio::test]
async fn a_failing_statement_is_a_query_error_with_snowflakes_message() {
    let (_db, _fake, warehouse) = arrange("").await;

    let result = warehouse
        .execute(
            &guarded("SELECT * FROM no_such_table"),
            Duration::from_secs(10),
            &never(),
        )
        .await;

    assert!(
        matches!(&result, Err(WarehouseError::Query(message)) if message.contains("no_such_table")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_throttled_submission_is_retried_with_the_same_request_id() {
    let (_db, fake, warehouse) = arrange("").await;
    fake.throttle_next(2);

    let result = warehouse
        .execute(
            &guarded("SELECT 'after 429' AS word"),
            Duration::from_secs(10),
            &never(),
        )
        .await
        .unwrap();

    assert_eq!(result.rows, vec![vec![Value::Text("after 429".into())]]);
    let sent = submissions(&fake, "after 429");
    assert_eq!(sent.len(), 3, "two answers of 429, then accepted");
    let request_id = |query: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("requestId="))
            .map(str::to_string)
    };
    assert!(sent.iter().all(|r| request_id(&r.query) == request_id(&sent[0].query)));
    assert!(!sent[0].query.contains("retry=true"));
    assert!(sent[1].query.contains("retry=true") && sent[2].query.contains("retry=true"));
}

#[tokio::test]
async fn an_expired_jwt_is_renewed_before_snowflake_refuses_it() {
    let (_db, fake, warehouse) = arrange("").await;
    warehouse
        .execute(&guarded("SELECT 'first' AS word"), Duration::from_secs(10), &never())
        .await
        .unwrap();
    let first_token = submissions(&fake, "first")[0].token_issued_at;

    // Two hours later the first token (valid 59 minutes) has expired for the fake too.
    fake.clock.advance(Duration::from_secs(2 * 3600));
    let result = warehouse
        .execute(&guarded("SELECT 'second' AS word"), Duration::from_secs(10), &never())
        .await
        .unwrap();

    assert_eq!(result.rows, vec![vec![Value::Text("second".into())]]);
    let second_token = submissions(&fake, "second")[0].token_issued_at;
    assert!(
        second_token >= first_token + 2 * 3600,
        "{first_token} then {second_token}"
    );
    assert!(fake.refused().is_empty(), "refused: {:?}", fake.refused());
}

#[tokio::test]
async fn a_refused_login_is_an_unavailable_warehouse_that_says_why() {
    let db = TestDatabase::create().await;
    let fake = FakeSnowflake::start(db.url()).await;

    let result = SnowflakeWarehouse::connect_with(&config(&fake, "someone_else"), options(&fake)).await;

    let error = format!("{:#}", result.unwrap_err());
    assert!(error.contains("refused the key-pair login"), "{error}");
    assert!(error.contains("RSA_PUBLIC_KEY"), "{error}");
    // Refused once, then once more with a newly signed token.
    assert_eq!(fake.refused(), ["390144", "390144"]);
}

#[tokio::test]
async fn cancelling_stops_the_statement_in_the_engine() {
    let (_db, fake, warehouse) = arrange("").await;
    let cancel = CancellationToken::new();
    let heavy = guarded(HEAVY_QUERY);

    let call = warehouse.execute(&heavy, Duration::from_secs(600), &cancel);
    tokio::pin!(call);
    // Cancels once Postgres runs the statement, not after a guessed delay.
    let handle = tokio::select! {
        result = &mut call => panic!("ended before it was cancelled: {result:?}"),
        handle = fake.running("generate_series") => handle,
    };
    let cancelled_at = Instant::now();
    cancel.cancel();
    let result = call.await;

    assert!(matches!(result, Err(WarehouseError::Cancelled)), "{result:?}");
    let ended = fake.ended(&handle).await;
    assert!(
        matches!(&ended, Ended::Failed { sql_state, message } if sql_state == "57014" && message.contains("user request")),
        "{ended:?}"
    );
    assert!(
        cancelled_at.elapsed() < STOPPED_WELL_BEFORE,
        "took {:?}",
        cancelled_at.elapsed()
    );
}

#[tokio::test]
async fn the_timeout_stops_the_statement_in_the_engine() {
    let (_db, fake, warehouse) = arrange("").await;
    let started = Instant::now();

    let result = warehouse
        .execute(&guarded(HEAVY_QUERY), Duration::from_secs(1), &never())
        .await;

    assert!(
        matches!(result, Err(WarehouseError::Timeout(d)) if d == Duration::from_secs(1)),
        "{result:?}"
    );
    let ended = fake.ended(&fake.handle_of("generate_series").unwrap()).await;
    assert!(
        matches!(&ended, Ended::Failed { sql_state, message } if sql_state == "57014" && message.contains("statement timeout")),
        "{ended:?}"
    );
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_client_deadline_cancels_a_statement_snowflake_did_not_stop() {
    let (_db, fake, warehouse) = arrange("").await;
    fake.ignore_timeouts();
    let started = Instant::now();

    let result = warehouse
        .execute(&guarded(HEAVY_QUERY), Duration::from_secs(1), &never())
        .await;

    assert!(
        matches!(result, Err(WarehouseError::Timeout(d)) if d == Duration::from_secs(1)),
        "{result:?}"
    );
    let ended = fake.ended(&fake.handle_of("generate_series").unwrap()).await;
    assert!(
        matches!(&ended, Ended::Failed { sql_state, message } if sql_state == "57014" && message.contains("user request")),
        "{ended:?}"
    );
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn dropping_a_running_call_cancels_the_statement_in_the_engine() {
    let (_db, fake, warehouse) = arrange("").await;

    let (heavy, no_cancel) = (guarded(HEAVY_QUERY), never());

    let call = warehouse.execute(&heavy, Duration::from_secs(600), &no_cancel);
    // The call is dropped once Postgres runs its statement.
    let handle = tokio::select! {
        result = call => panic!("ended on its own: {result:?}"),
        handle = fake.running("generate_series") => handle,
    };

    let ended = fake.ended(&handle).await;
    assert!(
        matches!(&ended, Ended::Failed { sql_state, message } if sql_state == "57014" && message.contains("user request")),
        "{ended:?}"
    );
}

#[tokio::test]
async fn describe_lists_tables_and_columns_in_lower_case_with_comments_and_values() {
    let (_db, _fake, warehouse) = arrange(
        "CREATE TABLE customers (id INT PRIMARY KEY); \
         CREATE TABLE orders (id INT PRIMARY KEY, status TEXT NOT NULL, total NUMERIC(12,2), placed_on DATE, \
                              placed_at TIMESTAMP, paid BOOLEAN, customer_id INT REFERENCES customers (id)); \
         COMMENT ON TABLE orders IS 'One row per order'; \
         COMMENT ON COLUMN orders.status IS 'Where the order is'; \
         INSERT INTO customers VALUES (7); \
         INSERT INTO orders VALUES (1, 'shipped', 10.50, '2024-01-01', '2024-01-01 10:00', true, 7), \
                                   (2, 'pending', 5.25, '2024-01-02', '2024-01-02 11:00', false, 7); \
         CREATE TABLE \"Mixed\" (\"Name\" TEXT); \
         CREATE TABLE events (date DATE, \"user\" TEXT); \
         INSERT INTO events VALUES ('2024-01-01', 'ada'), ('2024-01-02', 'grace');",
    )
    .await;

    let tables = warehouse.describe(&DescribeSettings::default()).await.unwrap();

    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["customers", "events", "Mixed", "orders"],
        "upper-case names in lower case, others as they are"
    );
    let orders = &tables[3];
    assert_eq!(orders.comment.as_deref(), Some("One row per order"));
    assert_eq!(orders.primary_key, ["id"]);
    assert_eq!(
        orders.foreign_keys,
        [ForeignKey {
            columns: vec!["customer_id".into()],
            table: "customers".into(),
            references: vec!["id".into()],
        }]
    );
    let columns: Vec<(&str, ColumnKind, &str)> = orders
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind, c.data_type.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", ColumnKind::Integer, "NUMBER(38,0)"),
            ("status", ColumnKind::Text, "TEXT"),
            ("total", ColumnKind::Decimal, "NUMBER(12,2)"),
            ("placed_on", ColumnKind::Date, "DATE"),
            ("placed_at", ColumnKind::Timestamp, "TIMESTAMP_NTZ"),
            ("paid", ColumnKind::Boolean, "BOOLEAN"),
            ("customer_id", ColumnKind::Integer, "NUMBER(38,0)"),
        ]
    );
    let status = orders.column("status").unwrap();
    assert_eq!(status.comment.as_deref(), Some("Where the order is"));
    assert_eq!(status.values, ["pending", "shipped"]);
    // Columns with reserved names are written quoted in upper case, the case Snowflake stores.
    let user = tables[1].column("user").unwrap();
    assert_eq!(user.values, ["ada", "grace"], "sampled with SELECT DISTINCT \"USER\"");
    // The cheap listing has the same tables and columns, without comments or values.
    let schema = warehouse.schema().await.unwrap();
    assert_eq!(schema.len(), 4);
    assert!(schema[3].primary_key.is_empty() && schema[3].foreign_keys.is_empty());
    assert!(schema[3]
        .columns
        .iter()
        .all(|c| c.comment.is_none() && c.values.is_empty()));
}

#[tokio::test]
async fn estimate_gives_the_bytes_the_plan_reads() {
    let (_db, _fake, warehouse) = arrange(
        "CREATE TABLE small (id INT, label TEXT); CREATE TABLE big (id INT, label TEXT); \
         INSERT INTO small SELECT n, 'label ' || n FROM generate_series(1, 10) AS s(n); \
         INSERT INTO big SELECT n, 'label ' || n FROM generate_series(1, 100000) AS s(n); \
         ANALYZE small; ANALYZE big;",
    )
    .await;

    let small = warehouse.estimate(&guarded("SELECT * FROM small")).await.unwrap();
    let big = warehouse.estimate(&guarded("SELECT * FROM big")).await.unwrap();

    assert_eq!(small.rows, None, "Snowflake's plan gives no row count");
    let (small, big) = (small.bytes.unwrap(), big.bytes.unwrap());
    assert!(small > 0 && big > small * 1_000, "small {small}, big {big}");
}

// The demo data set, as `tests/warehouse_mysql.rs` does it for MariaDB.

/// The demo tables with the types a Snowflake schema would give them (NUMBER, TEXT, DATE).
const DEMO_SCHEMA: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL,
    region TEXT NOT NULL, segment TEXT NOT NULL, signup_date DATE NOT NULL);
CREATE TABLE products (id INT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    unit_price NUMERIC(10,2) NOT NULL);
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, order_date DATE NOT NULL,
    status TEXT NOT NULL, channel TEXT NOT NULL, total NUMERIC(12,2) NOT NULL);
CREATE TABLE order_items (id INT PRIMARY KEY, order_id INT NOT NULL, product_id INT NOT NULL,
    quantity INT NOT NULL, unit_price NUMERIC(10,2) NOT NULL, discount NUMERIC(4,2) NOT NULL);
CREATE TABLE app_metrics (day DATE NOT NULL, platform TEXT NOT NULL, active_users INT NOT NULL,
    sessions INT NOT NULL, crashes INT NOT NULL, PRIMARY KEY (day, platform));
";

/// Copies the demo tables from the SQLite file into the Postgres behind the fake, as literals
/// (Postgres types each by its column).
async fn load_demo_into(db: &TestDatabase) {
    db.execute(DEMO_SCHEMA).await;
    let options = SqliteConnectOptions::new().filename(demo_path().await).read_only(true);
    let sqlite = SqlitePool::connect_with(options).await.unwrap();
    let mut postgres = db.connect().await;
    for table in DEMO_TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&sqlite)
            .await
            .unwrap();
        let columns: Vec<String> = rows[0].columns().iter().map(|c| c.name().to_string()).collect();
        let literals: Vec<String> = rows
            .iter()
            .map(|row| {
                let cells: Vec<String> = (0..columns.len())
                    .map(|i| {
                        let raw = row.try_get_raw(i).unwrap();
                        match raw.type_info().name() {
                            "INTEGER" => row.get::<i64, _>(i).to_string(),
                            "REAL" => format!("{:?}", row.get::<f64, _>(i)),
                            _ => format!("'{}'", row.get::<String, _>(i).replace('\'', "''")),
                        }
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        for chunk in literals.chunks(2_000) {
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES {}",
                columns.join(", "),
                chunk.join(", ")
            );
            sqlx::raw_sql(&insert).execute(&mut postgres).await.unwrap();
        }
    }
    sqlx::raw_sql("ANALYZE").execute(&mut postgres).await.unwrap();
    sqlite.close().await;
}

#[tokio::test]
async fn demo_questions_get_the_same_answers_on_snowflake_as_on_sqlite() {
    // Arrange: the demo data set in SQLite, and the same rows behind the fake Snowflake, reached
    // the way the server reaches it (WAREHOUSE_URL and the key in the environment).
    let db = TestDatabase::create().await;
    load_demo_into(&db).await;
    let fake = FakeSnowflake::start(db.url()).await;
    let env = [
        (
            "WAREHOUSE_URL",
            format!(
                "snowflake://{}/demo/public?user={}",
                ACCOUNT.to_lowercase(),
                USER.to_lowercase()
            ),
        ),
        ("SNOWFLAKE_PRIVATE_KEY", TEST_PRIVATE_KEY.to_string()),
        ("SNOWFLAKE_API_URL", fake.uri()),
    ];
    let config = Config::from_lookup(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())).unwrap();
    let snowflake = connect_warehouse(&config).await.unwrap();
    assert_eq!(snowflake.dialect(), Dialect::Snowflake);

    // Act and assert: every thread, all failures reported at once.
    demo_threads::assert_same_answers_as_sqlite("Snowflake", snowflake.as_ref()).await;
}
