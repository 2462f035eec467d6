#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Postgres warehouse against the local PostgreSQL server. Each test creates its own
//! database ([`TestDatabase`]), dropped at the end also when the test fails.
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::postgres::PgPool;
use threadql::domain::{ColumnFormat, ColumnKind, Value};
use threadql::sql::Dialect;
use threadql::sql::{GuardedSql, SqlGuard};
use threadql::warehouse::postgres::PostgresWarehouse;
use threadql::warehouse::{Warehouse, WarehouseError};
use threadql_testkit::{TestDatabase, POSTGRES_SERVER as SERVER};
use tokio_util::sync::CancellationToken;

/// Ten billion rows: hours of work, so anything that ends soon was stopped.
const HEAVY_QUERY: &str =
    "SELECT count(*) AS n FROM generate_series(1, 100000) AS a CROSS JOIN generate_series(1, 100000) AS b";
/// Far below the hours `HEAVY_QUERY` would take; generous for a loaded CI machine.
const STOPPED_WELL_BEFORE: Duration = Duration::from_secs(10);

fn guarded(sql: &str) -> GuardedSql {
    SqlGuard::new(Dialect::Postgres, None).check(sql, 100_000).unwrap()
}

#[tokio::test]
async fn postgres_values_convert_by_type() {
    let db = TestDatabase::create().await;
    db.execute("CREATE TYPE mood AS ENUM ('happy', 'sad')").await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(
            &guarded(
                "SELECT 1::int2 AS i2, 2::int4 AS i4, 3::int8 AS i8, 1.5::float4 AS f4, 2.25::float8 AS f8, \
                        12.34::numeric AS num, 'x'::text AS t, 'y'::varchar AS v, 'z'::char(2) AS c, \
                        DATE '2024-02-29' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts, \
                        TIMESTAMPTZ '2024-01-02 03:04:05+02' AS tstz, true AS b, NULL::int4 AS n, \
                        ARRAY[1, 2] AS arr, '1 day'::interval AS iv, '{\"a\": 1}'::jsonb AS j, \
                        'happy'::mood AS m, 7 AS i4",
            ),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    let ts = NaiveDate::from_ymd_opt(2024, 1, 2)
        .unwrap()
        .and_hms_opt(3, 4, 5)
        .unwrap();
    let tstz = NaiveDate::from_ymd_opt(2024, 1, 2)
        .unwrap()
        .and_hms_opt(1, 4, 5)
        .unwrap();
    assert_eq!(
        result.rows,
        vec![vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::Float(1.5),
            Value::Float(2.25),
            Value::Decimal(Decimal::new(1234, 2)),
            Value::Text("x".into()),
            Value::Text("y".into()),
            Value::Text("z ".into()),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Timestamp(ts),
            Value::Timestamp(tstz),
            Value::Bool(true),
            Value::Null,
            Value::Text("{1,2}".into()),
            Value::Text("1 day".into()),
            Value::Text("{\"a\": 1}".into()),
            Value::Text("happy".into()),
            Value::Int(7),
        ]]
    );
    let columns: Vec<(&str, ColumnFormat)> = result.columns.iter().map(|c| (c.name.as_str(), c.format)).collect();
    assert_eq!(
        columns,
        [
            ("i2", ColumnFormat::Integer),
            ("i4", ColumnFormat::Integer),
            ("i8", ColumnFormat::Integer),
            ("f4", ColumnFormat::Number),
            ("f8", ColumnFormat::Number),
            ("num", ColumnFormat::Number),
            ("t", ColumnFormat::Text),
            ("v", ColumnFormat::Text),
            ("c", ColumnFormat::Text),
            ("d", ColumnFormat::Date),
            ("ts", ColumnFormat::Text),
            ("tstz", ColumnFormat::Text),
            ("b", ColumnFormat::Text),
            ("n", ColumnFormat::Integer),
            ("arr", ColumnFormat::Text),
            ("iv", ColumnFormat::Text),
            ("j", ColumnFormat::Text),
            ("m", ColumnFormat::Text),
            ("i4", ColumnFormat::Integer),
        ]
    );
}

#[tokio::test]
async fn rows_keep_their_order_and_day_timestamps_read_as_dates() {
    let db = TestDatabase::create().await;
    db.execute(
        "CREATE TABLE sales (id int PRIMARY KEY, sold_at timestamp NOT NULL, amount numeric(10,2), tags text[]); \
         INSERT INTO sales SELECT g, TIMESTAMP '2024-01-01' + g * interval '1 day', g * 1.5, ARRAY['t' || g] \
         FROM generate_series(1, 50) AS g;",
    )
    .await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();

    // `tags` is cast to text by the server, which wraps the statement; the order must survive.
    let result = warehouse
        .execute(
            &guarded("SELECT date_trunc('week', sold_at) AS week, amount, tags FROM sales ORDER BY id DESC"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert_eq!(result.rows.len(), 50);
    assert_eq!(result.columns[0].format, ColumnFormat::Date);
    let amounts: Vec<Value> = result.rows.iter().map(|row| row[1].clone()).collect();
    let expected: Vec<Value> = (1..=50)
        .rev()
        .map(|g| Value::Decimal(Decimal::new(g * 15, 1)))
        .collect();
    assert_eq!(amounts, expected);
    assert_eq!(result.rows[0][2], Value::Text("{t50}".into()));
}

#[tokio::test]
async fn statements_run_in_a_read_only_transaction_with_the_statement_timeout() {
    let db = TestDatabase::create().await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(
            &guarded(
                "SELECT current_setting('transaction_read_only') AS read_only, \
                        current_setting('statement_timeout') AS statement_timeout",
            ),
            Duration::from_millis(1500),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert_eq!(
        result.rows,
        vec![vec![Value::Text("on".into()), Value::Text("1500ms".into())]]
    );
}

#[tokio::test]
async fn a_write_hidden_in_a_query_is_refused_by_the_read_only_transaction() {
    let db = TestDatabase::create().await;
    db.execute("CREATE TABLE t (id int)").await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();
    // A data-modifying CTE is a query to the parser; whether or not the guard catches it, the
    // transaction must.
    let Ok(sql) = SqlGuard::new(Dialect::Postgres, None).check(
        "WITH w AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM w",
        100,
    ) else {
        return;
    };

    let result = warehouse
        .execute(&sql, Duration::from_secs(5), &CancellationToken::new())
        .await;

    assert!(
        matches!(&result, Err(WarehouseError::Query(message)) if message.contains("read-only transaction")),
        "{result:?}"
    );
    let count = warehouse
        .execute(
            &guarded("SELECT count(*) AS n FROM t"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(count.rows, vec![vec![Value::Int(0)]]);
}

#[tokio::test]
async fn a_heavy_query_is_stopped_by_the_statement_timeout() {
    let db = TestDatabase::create().await;
    // One connection: the follow-up query must reuse the one that ran the heavy query.
    let warehouse = PostgresWarehouse::connect_with_max_connections(db.url(), 1)
        .await
        .unwrap();
    let started = Instant::now();

    let result = warehouse
        .execute(
            &guarded(HEAVY_QUERY),
            Duration::from_millis(500),
            &CancellationToken::new(),
        )
        .await;

    assert!(
        matches!(result, Err(WarehouseError::Timeout(d)) if d == Duration::from_millis(500)),
        "{result:?}"
    );
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
    let after = warehouse
        .execute(
            &guarded("SELECT 1 AS one"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(1)]]);
}

/// Statements of `database` the server is still running.
async fn active_statements(database: &str) -> i64 {
    active_statements_like(database, "%").await
}

/// Statements of `database` the server is still running whose text matches `pattern` (ILIKE).
/// Only clients' statements: autovacuum works in fresh databases too.
async fn active_statements_like(database: &str, pattern: &str) -> i64 {
    let admin = PgPool::connect(&format!("{SERVER}/postgres")).await.unwrap();
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query ILIKE $2 \
         AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .bind(pattern)
    .fetch_one(&admin)
    .await
    .unwrap();
    admin.close().await;
    active
}

#[tokio::test]
async fn cancelling_stops_the_statement_in_the_server() {
    let db = TestDatabase::create().await;
    let warehouse = PostgresWarehouse::connect_with_max_connections(db.url(), 1)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let name = db.name().to_string();
    // Cancels once the server shows the statement running (not after a guessed delay), and in
    // any case after 30 s, so a statement that never shows up fails the test instead of running.
    let cancelled_while_running = tokio::spawn(async move {
        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            // The heavy statement itself, not the transaction's set-up query before it, shown
            // with its tag to whoever looks at pg_stat_activity.
            while active_statements_like(&name, "/* threadql:T1/C1/1.2:7 */%generate_series%").await != 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok();
        trigger.cancel();
        (seen, Instant::now())
    });

    let result = warehouse
        .execute(
            &guarded(HEAVY_QUERY).tagged(threadql::sql::QueryTag::new(&"T1/C1/1.2", 7)),
            Duration::from_secs(600),
            &cancel,
        )
        .await;

    let (seen_running, cancelled_at) = cancelled_while_running.await.unwrap();
    assert!(seen_running, "the heavy query never showed as running");
    assert!(matches!(result, Err(WarehouseError::Cancelled)), "{result:?}");
    assert!(
        cancelled_at.elapsed() < STOPPED_WELL_BEFORE,
        "stopped {:?} after the cancel",
        cancelled_at.elapsed()
    );
    assert_eq!(active_statements(db.name()).await, 0);
    let after = warehouse
        .execute(
            &guarded("SELECT 1 AS one"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(1)]]);
}

#[tokio::test]
async fn dropping_a_running_query_cancels_it_in_the_server() {
    let db = TestDatabase::create().await;
    let warehouse = PostgresWarehouse::connect_with_max_connections(db.url(), 1)
        .await
        .unwrap();
    let never = CancellationToken::new();
    let heavy = guarded(HEAVY_QUERY);

    let dropped = tokio::time::timeout(
        Duration::from_millis(500),
        warehouse.execute(&heavy, Duration::from_secs(600), &never),
    )
    .await;
    assert!(dropped.is_err(), "the heavy query finished: {dropped:?}");

    // With a single connection this waits for the heavy query unless dropping cancelled it.
    let started = Instant::now();
    let after = warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(60), &never)
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(1)]]);
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
    assert_eq!(active_statements(db.name()).await, 0);
}

#[tokio::test]
async fn an_empty_result_still_names_its_columns() {
    let db = TestDatabase::create().await;
    db.execute("CREATE TABLE t (id int, label text, at date)").await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT id, label, at FROM t"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert!(result.rows.is_empty());
    let columns: Vec<(&str, ColumnFormat)> = result.columns.iter().map(|c| (c.name.as_str(), c.format)).collect();
    assert_eq!(
        columns,
        [
            ("id", ColumnFormat::Integer),
            ("label", ColumnFormat::Text),
            ("at", ColumnFormat::Date)
        ]
    );
}

#[tokio::test]
async fn a_failing_statement_returns_the_database_message() {
    let db = TestDatabase::create().await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT nope FROM missing"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await;

    assert!(
        matches!(&result, Err(WarehouseError::Query(message)) if message.contains("\"missing\" does not exist")),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_schema_lists_user_tables_and_column_kinds() {
    let db = TestDatabase::create().await;
    db.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, ordered_on date, total numeric(12,2), status varchar(20), \
                              paid boolean, created_at timestamptz, payload jsonb); \
         CREATE SCHEMA sales; \
         CREATE TABLE sales.targets (region text, amount double precision);",
    )
    .await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();

    let schema = warehouse.schema().await.unwrap();

    let tables: Vec<&str> = schema.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tables, ["orders", "sales.targets"]);
    let columns: Vec<(&str, ColumnKind)> = schema[0].columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
    assert_eq!(
        columns,
        [
            ("id", ColumnKind::Integer),
            ("ordered_on", ColumnKind::Date),
            ("total", ColumnKind::Decimal),
            ("status", ColumnKind::Text),
            ("paid", ColumnKind::Boolean),
            ("created_at", ColumnKind::Timestamp),
            ("payload", ColumnKind::Other),
        ]
    );
    assert_eq!(schema[1].columns[1].kind, ColumnKind::Decimal);
    warehouse.ping().await.unwrap();
}

#[tokio::test]
async fn connecting_to_a_missing_database_fails() {
    let result = PostgresWarehouse::connect(&format!("{SERVER}/threadql_test_does_not_exist")).await;

    assert!(result.is_err());
}

#[tokio::test]
async fn the_planner_estimates_rows_and_bytes_without_running_the_query() {
    let db = TestDatabase::create().await;
    db.execute(
        "CREATE TABLE small (id int PRIMARY KEY); CREATE TABLE big (id int, small_id int, note text); \
         INSERT INTO small SELECT g FROM generate_series(1, 10) g; \
         INSERT INTO big SELECT g, g % 10 + 1, repeat('x', 40) FROM generate_series(1, 20000) g; \
         ANALYZE small; ANALYZE big",
    )
    .await;
    let warehouse = PostgresWarehouse::connect(db.url()).await.unwrap();

    let one = warehouse
        .estimate(&guarded("SELECT id FROM small WHERE id = 3"))
        .await
        .unwrap();
    let scan = warehouse
        .estimate(&guarded("SELECT COUNT(*) AS n FROM big"))
        .await
        .unwrap();
    let heavy = warehouse.estimate(&guarded(HEAVY_QUERY)).await.unwrap();

    assert_eq!(one.rows, Some(1));
    let (scan_rows, scan_bytes) = (scan.rows.unwrap(), scan.bytes.unwrap());
    assert!((15_000..=25_000).contains(&scan_rows), "{scan:?}");
    // Rows of an int, an int and 41 bytes of text: a scan of at least 40 bytes per row.
    assert!(scan_bytes >= scan_rows * 40, "{scan:?}");
    // The cross join is estimated (at millions of rows) without being run: this returns at once.
    assert!(heavy.rows.unwrap() >= 1_000_000, "{heavy:?}");
    assert_eq!(active_statements(db.name()).await, 0);
}
