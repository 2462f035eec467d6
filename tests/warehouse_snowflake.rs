#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Snowflake warehouse against a fake of the SQL API ([`fake_snowflake`]) that runs each
//! statement on a real Postgres database of its own per test, so cancelling and timeouts are
//! seen stopping the statement in the engine.
mod fake_snowflake;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use fake_snowflake::{Ended, FakeSnowflake, ACCOUNT, TEST_PRIVATE_KEY, USER};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Column as _, Row, TypeInfo, ValueRef};
use threadql::config::{Config, SnowflakeConfig, SnowflakeKey};
use threadql::domain::{ColumnFormat, ColumnKind, ForeignKey, Value};
use threadql::interpret::{Interpretation, ProposedQuery, RulesInterpreter, SemanticModel};
use threadql::sql::{Dialect, GuardedSql, SqlGuard};
use threadql::startup::connect_warehouse;
use threadql::warehouse::demo::ensure_demo_warehouse;
use threadql::warehouse::snowflake::{SnowflakeOptions, SnowflakeWarehouse};
use threadql::warehouse::sqlite::SqliteWarehouse;
use threadql::warehouse::{DescribeSettings, Warehouse, WarehouseError};
use threadql_testkit::TestDatabase;
use tokio::sync::OnceCell;
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

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

/// One demo data set for the whole binary (generating it takes seconds).
async fn demo_path() -> &'static Path {
    static DEMO: OnceCell<(tempfile::TempDir, PathBuf)> = OnceCell::const_new();
    let (_, path) = DEMO
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("demo.db");
            ensure_demo_warehouse(&path, today()).await.unwrap();
            (dir, path)
        })
        .await;
    path
}

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
const DEMO_TABLES: [&str; 5] = ["customers", "products", "orders", "order_items", "app_metrics"];

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

/// The demo model's interpreter over one warehouse, with the dimensions' values read from it
/// through the guard, the way the server reads them.
async fn demo_interpreter(warehouse: &dyn Warehouse) -> RulesInterpreter {
    let model = SemanticModel::demo().unwrap();
    let guard = SqlGuard::new(warehouse.dialect(), None);
    let mut values = Vec::new();
    for dimension in &model.dimensions {
        let sql = model.distinct_values_sql(&dimension.name, warehouse.dialect()).unwrap();
        let result = warehouse
            .execute(&guard.check(&sql, 1_000).unwrap(), Duration::from_secs(30), &never())
            .await
            .unwrap();
        let list: Vec<String> = result.rows.iter().map(|row| cell(&row[0])).collect();
        assert!(!list.is_empty(), "dimension {} has values", dimension.name);
        values.push((dimension.name.clone(), list));
    }
    RulesInterpreter::new(model, values, warehouse.dialect())
}

/// Numbers rounded to two decimals so engines agree; dates as ISO text.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => format!("{:.2}", *n as f64),
        Value::Float(f) => format!("{f:.2}"),
        Value::Decimal(d) => format!("{:.2}", d.to_string().parse::<f64>().unwrap_or(f64::NAN)),
        Value::Text(t) => t.clone(),
        Value::Date(d) => d.to_string(),
        Value::Timestamp(t) => t.date().to_string(),
    }
}

fn thread(interpreter: &RulesInterpreter, texts: &[&str]) -> Result<ProposedQuery, String> {
    let mut current: Option<ProposedQuery> = None;
    for text in texts {
        match interpreter.interpret_text(text, current.as_ref(), today()) {
            Interpretation::Query(query) => current = Some(*query),
            other => return Err(format!("'{text}' was not interpreted as a query: {other:?}")),
        }
    }
    current.ok_or_else(|| "no texts".into())
}

type Answer = (String, Vec<String>, Vec<Vec<String>>);

/// The thread's answer on one warehouse: the compiled SQL, column names and rows as text.
async fn answer(interpreter: &RulesInterpreter, warehouse: &dyn Warehouse, texts: &[&str]) -> Result<Answer, String> {
    let proposed = thread(interpreter, texts)?;
    let guarded = SqlGuard::new(warehouse.dialect(), None)
        .check(&proposed.sql, 100_000)
        .map_err(|error| format!("the guard refused ({error}):\n{}", proposed.sql))?;
    let result = warehouse
        .execute(&guarded, Duration::from_secs(60), &never())
        .await
        .map_err(|error| format!("the query failed ({error}):\n{}", proposed.sql))?;
    let columns = result.columns.iter().map(|c| c.name.clone()).collect();
    let rows = result.rows.iter().map(|row| row.iter().map(cell).collect()).collect();
    Ok((proposed.sql, columns, rows))
}

/// The threads of `tests/rules_interpreter.rs` (each answered there against hand-written SQL on
/// SQLite), and whether their rows come in an order that matters (top N, time series).
const DEMO_THREADS: &[(&[&str], bool)] = &[
    (&["revenue by region last month"], false),
    (&["revenue by region last month", "only EMEA"], false),
    (&["revenue by region last month", "only EMEA", "by week"], true),
    (&["revenue by region last month", "only EMEA", "by week", "top 5"], true),
    (&["orders by channel this year"], false),
    (&["orders by channel this year", "exclude partner"], false),
    (
        &["orders by channel this year", "exclude partner", "without mobile"],
        false,
    ),
    (&["revenue by category in 2025"], false),
    (&["units by product top 10"], true),
    (&["active users by platform last 7 days"], false),
    (&["average order value by segment Q3 2025"], false),
    (&["refunds by month since March"], true),
    (&["revenue by country in EMEA"], false),
    (&["revenue by country in EMEA", "remove the region filter"], false),
    (&["revenue by country in EMEA for mobile", "all regions"], false),
    (&["revenue last month"], false),
    (&["revenue last month", "what about last year?"], false),
    (&["revenue last month", "remove the time range"], false),
    (&["sales and orders by region"], false),
    (&["revenue and refunds by channel last quarter"], false),
    (&["daily active users last week"], true),
    (&["sessions by platform by month in 2025"], true),
    (&["crashes yesterday by platform"], false),
    (&["orders by status last month"], false),
    (&["orders by status", "exclude cancelled and refunded"], false),
    (&["revenue by segment and channel this year"], false),
    (&["revenue in EMEA and APAC by country last quarter"], false),
    (&["bottom 3 countries by revenue in 2025"], true),
    (&["orders for mobile in united kingdom last month"], false),
    (
        &["units by category", "only electronics", "by product instead", "top 5"],
        true,
    ),
    (&["revenue by month in 2025", "by quarter instead"], true),
    (&["yearly revenue"], true),
    (&["orders by region", "and by segment"], false),
    (&["revenue by region last month", "orders instead"], false),
    (&["revenue by category", "and units"], false),
    (&["aov by channel in October"], false),
    (&["refunds by category this year"], false),
    (&["orders by product in Home & Kitchen last month"], false),
    (&["Enterprise revenue by quarter in 2025"], true),
    (&["units by category last 3 months"], false),
    (&["revenue by week last month", "only EMEA", "and APAC"], true),
    (&["active users on web by month this year"], true),
    (&["revenue by region last month", "in Q3 2025"], false),
    (&["top 5 products by revenue last year"], true),
    (&["sessions and crashes by platform last month"], false),
    (&["units of analytics suite by month since September"], true),
    (&["which segment had the highest average order value?"], true),
    (&["which platform crashed the most?"], true),
    (&["which country had the least revenue last year"], true),
    (&["top 3 products in Apparel by revenue"], true),
    (&["what was the worst week for sessions?"], true),
    (&["best month for revenue this year"], true),
    (&["orders this quarter vs last quarter"], false),
    (&["crashes by platform this week compared to last week"], false),
    (&["revenue by region", "this year vs last year"], false),
    (&["revenue growth this month"], false),
    (&["sessions growth by platform last week"], false),
    (&["revenue in Q1 2025", "what about the previous quarter?"], false),
    (&["revenue by country", "sort by name"], true),
    (&["revenue by category top 3", "sort by name", "sort descending"], true),
    (&["new customers by region this year"], false),
    (&["how many SMB customers"], false),
    (&["number of products by category"], false),
    (&["refund rate by region"], false),
    (&["share of revenue by channel"], false),
    (&["orders by segment this year", "as a share"], false),
    (&["revenue from customers in Canada last year"], false),
    (&["customers who signed up in 2025 by segment"], false),
    (&["units sold to Enterprise customers by category"], false),
];

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
    let sqlite = SqliteWarehouse::connect(&demo_path().await.display().to_string())
        .await
        .unwrap();
    let on_sqlite = demo_interpreter(&sqlite).await;
    let on_snowflake = demo_interpreter(snowflake.as_ref()).await;

    // Act and assert: every thread, all failures reported at once.
    let mut failures = Vec::new();
    let mut compared = 0;
    for (texts, ordered) in DEMO_THREADS {
        let want = answer(&on_sqlite, &sqlite, texts).await;
        let got = answer(&on_snowflake, snowflake.as_ref(), texts).await;
        match (want, got) {
            (Ok((want_sql, want_columns, mut want)), Ok((got_sql, got_columns, mut got))) => {
                if want.is_empty() {
                    failures.push(format!("{texts:?}: no rows on SQLite, the case proves nothing"));
                    continue;
                }
                if !ordered {
                    want.sort();
                    got.sort();
                }
                if got_columns != want_columns || got != want {
                    failures.push(format!(
                        "{texts:?}: answers differ\nSnowflake:\n{got_sql}\n{got_columns:?}\n{got:?}\n\
                         SQLite:\n{want_sql}\n{want_columns:?}\n{want:?}"
                    ));
                }
                compared += 1;
            }
            (want, got) => failures.push(format!(
                "{texts:?}: SQLite {:?}, Snowflake {:?}",
                want.map(|(sql, ..)| sql),
                got.map(|(sql, ..)| sql)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} threads failed:\n\n{}",
        failures.len(),
        DEMO_THREADS.len(),
        failures.join("\n\n")
    );
    assert_eq!(compared, DEMO_THREADS.len());
}
