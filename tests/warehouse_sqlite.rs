//! The embedded demo data set and the read-only SQLite warehouse, against real SQLite files.
// Helpers outside #[test] functions unwrap too: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{Duration as Days, NaiveDate};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use threadql::domain::{ColumnFormat, ColumnKind, Value};
use threadql::sql::Dialect;
use threadql::sql::{GuardedSql, SqlGuard};
use threadql::warehouse::demo::{demo_generated_for, ensure_demo_warehouse};
use threadql::warehouse::sqlite::SqliteWarehouse;
use threadql::warehouse::{Warehouse, WarehouseError};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// A query SQLite needs minutes for: a billion recursive steps.
const SLOW_QUERY: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
                          SELECT COUNT(*) AS n FROM c";
/// Far below the minutes `SLOW_QUERY` would take; generous for a loaded CI machine.
const STOPPED_WELL_BEFORE: Duration = Duration::from_secs(10);

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 15).unwrap()
}

fn guarded(sql: &str) -> GuardedSql {
    SqlGuard::new(Dialect::Sqlite, None).check(sql, 100_000).unwrap()
}

/// One demo data set shared by the tests that only read it (generation takes seconds).
async fn shared_demo() -> &'static Path {
    static DEMO: OnceCell<(tempfile::TempDir, PathBuf)> = OnceCell::const_new();
    let (_, path) = DEMO
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("demo.db");
            let started = Instant::now();
            ensure_demo_warehouse(&path, today()).await.unwrap();
            // Shown with --nocapture: generation speed is a documented property of the demo.
            eprintln!("generated the demo data set in {:?}", started.elapsed());
            (dir, path)
        })
        .await;
    path
}

async fn demo_pool(path: &Path) -> SqlitePool {
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .unwrap()
}

async fn scalar_i64(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn scalar_text(pool: &SqlitePool, sql: &str) -> String {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Every row of every data table, in id order, as one string per table.
async fn contents(path: &Path) -> Vec<String> {
    let pool = demo_pool(path).await;
    let mut tables = Vec::new();
    for sql in [
        "SELECT group_concat(id || '|' || name || '|' || country || '|' || region || '|' || segment || '|' || \
         signup_date, ';') FROM (SELECT * FROM customers ORDER BY id)",
        "SELECT group_concat(id || '|' || name || '|' || category || '|' || unit_price, ';') \
         FROM (SELECT * FROM products ORDER BY id)",
        "SELECT group_concat(id || '|' || customer_id || '|' || order_date || '|' || status || '|' || channel || \
         '|' || total, ';') FROM (SELECT * FROM orders ORDER BY id)",
        "SELECT group_concat(id || '|' || order_id || '|' || product_id || '|' || quantity || '|' || unit_price || \
         '|' || discount, ';') FROM (SELECT * FROM order_items ORDER BY id)",
        "SELECT group_concat(day || '|' || platform || '|' || active_users || '|' || sessions || '|' || crashes, ';') \
         FROM (SELECT * FROM app_metrics ORDER BY day, platform)",
    ] {
        tables.push(scalar_text(&pool, sql).await);
    }
    pool.close().await;
    tables
}

// ---------------------------------------------------------------------------------------------
// Demo data set

#[tokio::test]
async fn the_demo_covers_the_730_days_up_to_yesterday() {
    let pool = demo_pool(shared_demo().await).await;
    let first = (today() - Days::days(730)).format("%Y-%m-%d").to_string();
    let yesterday = (today() - Days::days(1)).format("%Y-%m-%d").to_string();

    assert_eq!(scalar_text(&pool, "SELECT MIN(order_date) FROM orders").await, first);
    assert_eq!(
        scalar_text(&pool, "SELECT MAX(order_date) FROM orders").await,
        yesterday
    );
    assert_eq!(
        scalar_i64(&pool, "SELECT COUNT(DISTINCT order_date) FROM orders").await,
        730
    );
    assert_eq!(scalar_text(&pool, "SELECT MIN(day) FROM app_metrics").await, first);
    assert_eq!(scalar_text(&pool, "SELECT MAX(day) FROM app_metrics").await, yesterday);
    assert_eq!(scalar_i64(&pool, "SELECT COUNT(*) FROM app_metrics").await, 730 * 3);
    assert!(scalar_text(&pool, "SELECT MAX(signup_date) FROM customers").await <= yesterday);
    let marker = scalar_text(&pool, "SELECT generated_for FROM threadql_demo_meta").await;
    assert_eq!(marker, "2025-06-15");
    // Every stored date is ISO text.
    let not_iso = scalar_i64(
        &pool,
        "SELECT (SELECT COUNT(*) FROM orders WHERE date(order_date) IS NOT order_date) + \
                (SELECT COUNT(*) FROM customers WHERE date(signup_date) IS NOT signup_date) + \
                (SELECT COUNT(*) FROM app_metrics WHERE date(day) IS NOT day)",
    )
    .await;
    assert_eq!(not_iso, 0);
}

#[tokio::test]
async fn the_demo_has_the_documented_sizes_and_values() {
    let pool = demo_pool(shared_demo().await).await;

    let customers = scalar_i64(&pool, "SELECT COUNT(*) FROM customers").await;
    assert!((2_000..=5_000).contains(&customers), "{customers} customers");
    let products = scalar_i64(&pool, "SELECT COUNT(*) FROM products").await;
    assert!((40..=60).contains(&products), "{products} products");
    let categories = scalar_i64(&pool, "SELECT COUNT(DISTINCT category) FROM products").await;
    assert!((5..=7).contains(&categories), "{categories} categories");
    let orders = scalar_i64(&pool, "SELECT COUNT(*) FROM orders").await;
    assert!((50_000..=70_000).contains(&orders), "{orders} orders");
    let lines_per_order = scalar_text(
        &pool,
        "SELECT MIN(n) || '-' || MAX(n) FROM (SELECT COUNT(*) AS n FROM order_items GROUP BY order_id)",
    )
    .await;
    assert_eq!(lines_per_order, "1-4");
    assert_eq!(
        scalar_i64(
            &pool,
            "SELECT COUNT(*) FROM orders WHERE id NOT IN (SELECT order_id FROM order_items)"
        )
        .await,
        0
    );

    assert_eq!(
        scalar_text(
            &pool,
            "SELECT group_concat(region, ',') FROM (SELECT DISTINCT region FROM customers ORDER BY 1)"
        )
        .await,
        "AMER,APAC,EMEA"
    );
    let most_countries = scalar_i64(
        &pool,
        "SELECT MAX(n) FROM (SELECT COUNT(DISTINCT country) AS n FROM customers GROUP BY region)",
    )
    .await;
    assert!(most_countries <= 8);
    let uk_in_emea = scalar_i64(
        &pool,
        "SELECT COUNT(*) FROM customers WHERE region = 'EMEA' AND country = 'United Kingdom'",
    )
    .await;
    assert!(uk_in_emea > 0);
    assert_eq!(
        scalar_text(
            &pool,
            "SELECT group_concat(segment, ',') FROM (SELECT DISTINCT segment FROM customers ORDER BY 1)"
        )
        .await,
        "Consumer,Enterprise,SMB"
    );
    assert_eq!(
        scalar_text(
            &pool,
            "SELECT group_concat(channel, ',') FROM (SELECT DISTINCT channel FROM orders ORDER BY 1)"
        )
        .await,
        "mobile,partner,web"
    );
    assert_eq!(
        scalar_text(
            &pool,
            "SELECT group_concat(status, ',') FROM (SELECT DISTINCT status FROM orders ORDER BY 1)"
        )
        .await,
        "cancelled,completed,refunded"
    );
    let completed_percent = scalar_i64(
        &pool,
        "SELECT CAST(100.0 * SUM(status = 'completed') / COUNT(*) AS INTEGER) FROM orders",
    )
    .await;
    assert!((80..=90).contains(&completed_percent), "{completed_percent}% completed");
    assert_eq!(
        scalar_text(
            &pool,
            "SELECT group_concat(discount, ',') FROM (SELECT DISTINCT discount FROM order_items ORDER BY 1)"
        )
        .await,
        "0.0,0.1,0.2"
    );
    // Prices are whole multiples of 0.10.
    assert_eq!(
        scalar_i64(
            &pool,
            "SELECT COUNT(*) FROM products WHERE CAST(ROUND(unit_price * 100) AS INTEGER) % 10 <> 0"
        )
        .await,
        0
    );
    // Orders never precede their customer's signup.
    assert_eq!(
        scalar_i64(
            &pool,
            "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id \
                           WHERE o.order_date < c.signup_date"
        )
        .await,
        0
    );
    // Growth: the last 90 days have more orders than the first 90.
    let first_quarter = scalar_i64(
        &pool,
        "SELECT COUNT(*) FROM orders WHERE order_date < (SELECT date(MIN(order_date), '+90 days') FROM orders)",
    )
    .await;
    let last_quarter = scalar_i64(
        &pool,
        "SELECT COUNT(*) FROM orders WHERE order_date > (SELECT date(MAX(order_date), '-90 days') FROM orders)",
    )
    .await;
    assert!(
        last_quarter > first_quarter * 3 / 2,
        "{first_quarter} then {last_quarter}"
    );
}

#[tokio::test]
async fn every_order_total_is_the_exact_sum_of_its_lines() {
    let pool = demo_pool(shared_demo().await).await;

    // Whole cents on both sides: a line is quantity * unit_price * (1 - discount), exact to the cent.
    let mismatched = scalar_i64(
        &pool,
        "SELECT COUNT(*) FROM orders o JOIN ( \
             SELECT order_id, SUM(CAST(ROUND(quantity * unit_price * (1 - discount) * 100) AS INTEGER)) AS cents \
             FROM order_items GROUP BY order_id) l ON l.order_id = o.id \
         WHERE CAST(ROUND(o.total * 100) AS INTEGER) <> l.cents",
    )
    .await;
    assert_eq!(mismatched, 0);
    // And the line amounts have no fractions of a cent.
    let fractional = scalar_i64(
        &pool,
        "SELECT COUNT(*) FROM order_items \
         WHERE ABS(quantity * unit_price * (1 - discount) * 100 - ROUND(quantity * unit_price * (1 - discount) * 100)) \
               > 0.000001",
    )
    .await;
    assert_eq!(fractional, 0);
    // Totals have at most two decimals.
    assert_eq!(
        scalar_i64(&pool, "SELECT COUNT(*) FROM orders WHERE ROUND(total, 2) <> total").await,
        0
    );
}

#[tokio::test]
async fn the_demo_is_identical_when_generated_twice_for_the_same_day() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let other_day = tempfile::tempdir().unwrap();

    ensure_demo_warehouse(&first.path().join("a.db"), today())
        .await
        .unwrap();
    ensure_demo_warehouse(&second.path().join("b.db"), today())
        .await
        .unwrap();
    ensure_demo_warehouse(&other_day.path().join("c.db"), today() + Days::days(1))
        .await
        .unwrap();

    let first = contents(&first.path().join("a.db")).await;
    assert_eq!(first, contents(&second.path().join("b.db")).await);
    assert_ne!(first, contents(&other_day.path().join("c.db")).await);
}

#[tokio::test]
async fn an_existing_demo_is_reused_rather_than_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.db");
    ensure_demo_warehouse(&path, today()).await.unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();

    let started = Instant::now();
    ensure_demo_warehouse(&path, today() + Days::days(3)).await.unwrap();

    assert_eq!(demo_generated_for(&path).await.unwrap(), Some(today()));
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), modified);
    assert!(started.elapsed() < Duration::from_secs(2));
    // No temporary files are left next to it.
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("demo.db")]);
}

#[tokio::test]
async fn a_file_without_the_completion_marker_is_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.db");
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true))
        .await
        .unwrap();
    // What an older or interrupted generator could have left: data tables but no marker.
    sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(demo_generated_for(&path).await.unwrap(), None);

    ensure_demo_warehouse(&path, today()).await.unwrap();

    assert_eq!(demo_generated_for(&path).await.unwrap(), Some(today()));
}

#[tokio::test]
async fn a_database_that_is_not_a_demo_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.db");
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "not a database").unwrap();

    let refused = ensure_demo_warehouse(&path, today()).await;
    let refused_text = ensure_demo_warehouse(&text_file, today()).await;

    assert!(format!("{:#}", refused.unwrap_err()).contains("Refusing to replace"));
    assert!(refused_text.is_err());
    assert_eq!(std::fs::read_to_string(&text_file).unwrap(), "not a database");
    let pool = demo_pool(&path).await;
    assert_eq!(
        scalar_i64(&pool, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'accounts'").await,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// SQLite warehouse

/// A small database with one value of each SQLite storage class.
async fn typed_database(dir: &Path) -> String {
    let path = dir.join("typed.db");
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE t (i INTEGER, r REAL, s TEXT, d TEXT, b BLOB, n INTEGER); \
         INSERT INTO t VALUES (42, 2.5, 'hello', '2024-02-29', x'00ff', NULL), \
                              (-7, 10, 'world', '2024-03-01', 'ok', NULL);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn sqlite_values_convert_by_their_storage_class() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = SqliteWarehouse::connect(&typed_database(dir.path()).await)
        .await
        .unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT i, r, s, d, b, n FROM t ORDER BY i DESC"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["i", "r", "s", "d", "b", "n"]);
    let formats: Vec<ColumnFormat> = result.columns.iter().map(|c| c.format).collect();
    assert_eq!(
        formats,
        [
            ColumnFormat::Integer,
            ColumnFormat::Number,
            ColumnFormat::Text,
            ColumnFormat::Date,
            ColumnFormat::Text,
            ColumnFormat::Integer
        ]
    );
    assert_eq!(
        result.rows,
        vec![
            vec![
                Value::Int(42),
                Value::Float(2.5),
                Value::Text("hello".into()),
                Value::Text("2024-02-29".into()),
                Value::Text("00ff".into()),
                Value::Null
            ],
            vec![
                Value::Int(-7),
                Value::Float(10.0),
                Value::Text("world".into()),
                Value::Text("2024-03-01".into()),
                Value::Text("ok".into()),
                Value::Null
            ],
        ]
    );
}

#[tokio::test]
async fn expressions_mixing_integers_and_reals_come_back_as_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = SqliteWarehouse::connect(&typed_database(dir.path()).await)
        .await
        .unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT CASE WHEN i > 0 THEN 0 ELSE r END AS x, COUNT(*) AS n FROM t GROUP BY 1 ORDER BY 1"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert_eq!(result.columns[0].format, ColumnFormat::Number);
    assert_eq!(result.columns[1].format, ColumnFormat::Integer);
    assert_eq!(
        result.rows,
        vec![
            vec![Value::Float(0.0), Value::Int(1)],
            vec![Value::Float(10.0), Value::Int(1)]
        ]
    );
}

#[tokio::test]
async fn a_guarded_select_over_the_demo_answers_revenue_by_region() {
    let warehouse = SqliteWarehouse::connect(&shared_demo().await.to_string_lossy())
        .await
        .unwrap();

    let result = warehouse
        .execute(
            &guarded(
                "SELECT c.region, ROUND(SUM(o.total), 2) AS revenue, COUNT(*) AS orders, MAX(o.order_date) AS last_day \
                 FROM orders o JOIN customers c ON c.id = o.customer_id \
                 WHERE o.status = 'completed' GROUP BY c.region ORDER BY revenue DESC",
            ),
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    let formats: Vec<ColumnFormat> = result.columns.iter().map(|c| c.format).collect();
    assert_eq!(
        formats,
        [
            ColumnFormat::Text,
            ColumnFormat::Number,
            ColumnFormat::Integer,
            ColumnFormat::Date
        ]
    );
    assert_eq!(result.rows.len(), 3);
    for row in &result.rows {
        assert!(matches!(&row[0], Value::Text(region) if ["EMEA", "AMER", "APAC"].contains(&region.as_str())));
        assert!(matches!(row[1], Value::Float(revenue) if revenue > 0.0));
        assert!(matches!(row[2], Value::Int(orders) if orders > 0));
        assert_eq!(row[3], Value::Text("2025-06-14".into()));
    }
}

#[tokio::test]
async fn an_empty_result_still_names_its_columns() {
    let warehouse = SqliteWarehouse::connect(&shared_demo().await.to_string_lossy())
        .await
        .unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT id, total, order_date FROM orders WHERE id < 0"),
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
            ("total", ColumnFormat::Number),
            ("order_date", ColumnFormat::Text)
        ]
    );
}

#[tokio::test]
async fn a_failing_statement_returns_the_database_message() {
    let warehouse = SqliteWarehouse::connect(&shared_demo().await.to_string_lossy())
        .await
        .unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT nope FROM orders"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await;

    assert!(
        matches!(&result, Err(WarehouseError::Query(message)) if message.contains("no such column")),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_warehouse_file_is_not_writable_through_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = typed_database(dir.path()).await;
    let warehouse = SqliteWarehouse::connect(&path).await.unwrap();
    let before = std::fs::read(&path).unwrap();

    // The guard only lets queries through; a query cannot write, and the connection itself is
    // read-only (unit tests in src/warehouse/sqlite.rs run INSERT/UPDATE/DDL on it directly).
    let result = warehouse
        .execute(
            &guarded("SELECT COUNT(*) AS n FROM t"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert_eq!(result.rows, vec![vec![Value::Int(2)]]);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test]
async fn a_slow_query_is_stopped_inside_sqlite_by_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // One connection: the follow-up query must reuse the one that ran the slow query.
    let warehouse = SqliteWarehouse::connect_with_max_connections(&typed_database(dir.path()).await, 1)
        .await
        .unwrap();
    let started = Instant::now();

    let result = warehouse
        .execute(
            &guarded(SLOW_QUERY),
            Duration::from_millis(300),
            &CancellationToken::new(),
        )
        .await;

    assert!(
        matches!(result, Err(WarehouseError::Timeout(d)) if d == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
    let after = warehouse
        .execute(
            &guarded("SELECT COUNT(*) AS n FROM t"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(2)]]);
}

#[tokio::test]
async fn a_slow_query_is_stopped_inside_sqlite_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = SqliteWarehouse::connect_with_max_connections(&typed_database(dir.path()).await, 1)
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();

    let result = warehouse
        .execute(&guarded(SLOW_QUERY), Duration::from_secs(600), &cancel)
        .await;

    assert!(matches!(result, Err(WarehouseError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
    let after = warehouse
        .execute(
            &guarded("SELECT COUNT(*) AS n FROM t"),
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(2)]]);
}

#[tokio::test]
async fn dropping_a_running_query_stops_it_and_frees_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = SqliteWarehouse::connect_with_max_connections(&typed_database(dir.path()).await, 1)
        .await
        .unwrap();
    let never = CancellationToken::new();
    let slow = guarded(SLOW_QUERY);

    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        warehouse.execute(&slow, Duration::from_secs(600), &never),
    )
    .await;
    assert!(dropped.is_err(), "the slow query finished: {dropped:?}");

    // With a single connection this waits for the slow query unless dropping stopped it.
    let started = Instant::now();
    let after = warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(60), &never)
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(1)]]);
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_already_cancelled_token_runs_nothing() {
    let warehouse = SqliteWarehouse::connect(&shared_demo().await.to_string_lossy())
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();

    let result = warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(5), &cancel)
        .await;

    assert!(matches!(result, Err(WarehouseError::Cancelled)));
}

#[tokio::test]
async fn the_schema_lists_the_demo_tables_and_column_kinds() {
    let warehouse = SqliteWarehouse::connect(&shared_demo().await.to_string_lossy())
        .await
        .unwrap();

    let schema = warehouse.schema().await.unwrap();

    let tables: Vec<&str> = schema.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        tables,
        ["app_metrics", "customers", "order_items", "orders", "products"]
    );
    let orders = schema.iter().find(|t| t.name == "orders").unwrap();
    let columns: Vec<(&str, ColumnKind)> = orders.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
    assert_eq!(
        columns,
        [
            ("id", ColumnKind::Integer),
            ("customer_id", ColumnKind::Integer),
            ("order_date", ColumnKind::Text),
            ("status", ColumnKind::Text),
            ("channel", ColumnKind::Text),
            ("total", ColumnKind::Decimal),
        ]
    );
    warehouse.ping().await.unwrap();
}

#[tokio::test]
async fn connecting_accepts_sqlite_urls_and_plain_paths() {
    let path = shared_demo().await.to_string_lossy().into_owned();

    for target in [path.clone(), format!("sqlite://{path}"), format!("sqlite:{path}")] {
        let warehouse = SqliteWarehouse::connect(&target).await.unwrap();
        warehouse.ping().await.unwrap();
    }
    assert!(SqliteWarehouse::connect("sqlite:///definitely/not/here.db")
        .await
        .is_err());
}
