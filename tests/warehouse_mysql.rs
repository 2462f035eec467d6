#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The MySQL warehouse against the local MariaDB server. Each test creates its own database
//! ([`TestMySqlDatabase`]), dropped at the end also when the test fails.
mod demo_threads;

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use demo_threads::{cell, demo_path, DEMO_TABLES};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Column as _, Connection as _, MySql, QueryBuilder, Row, TypeInfo, ValueRef};
use threadql::config::Config;
use threadql::domain::{ColumnFormat, ColumnKind, ForeignKey, Value};
use threadql::sql::{Dialect, GuardError, GuardedSql, SqlGuard};
use threadql::startup::connect_warehouse;
use threadql::warehouse::mysql::{MySqlWarehouse, Server};
use threadql::warehouse::{DescribeSettings, Warehouse, WarehouseError};
use threadql_testkit::{eventually, TestMySqlDatabase, MARIADB_SERVER};
use tokio_util::sync::CancellationToken;

/// Ten billion rows from MariaDB's sequence engine: hours of work, so anything that ends soon
/// was stopped. (The guard refuses `SLEEP()`; the unit tests in `mysql.rs` use it unguarded.)
const HEAVY_QUERY: &str = "SELECT COUNT(*) AS n FROM seq_1_to_100000 AS a CROSS JOIN seq_1_to_100000 AS b";
/// Far below the hours `HEAVY_QUERY` would take; generous for a loaded CI machine.
const STOPPED_WELL_BEFORE: Duration = Duration::from_secs(10);

fn guarded(sql: &str) -> GuardedSql {
    SqlGuard::new(Dialect::MySql, None).check(sql, 100_000).unwrap()
}

fn never() -> CancellationToken {
    CancellationToken::new()
}

/// Statements of `database` the server is running now whose text matches `pattern` (LIKE),
/// from the process list (what `SHOW PROCESSLIST` shows). A prepared statement runs as
/// `Execute`, plain text as `Query`.
async fn running_statements_like(database: &str, pattern: &str) -> i64 {
    let mut admin = sqlx::MySqlConnection::connect(MARIADB_SERVER).await.unwrap();
    let running: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE DB = ? AND COMMAND IN ('Query', 'Execute') AND INFO LIKE ? AND ID <> CONNECTION_ID()",
    )
    .bind(database)
    .bind(pattern)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    sqlx::Connection::close(admin).await.ok();
    running
}

async fn heavy_query_is_running(database: &str) -> bool {
    running_statements_like(database, "%seq_1_to_100000%").await > 0
}

#[tokio::test]
async fn mysql_values_convert_by_type() {
    let db = TestMySqlDatabase::create().await;
    db.execute(
        "CREATE TABLE v (ti TINYINT, si SMALLINT, i INT, bi BIGINT, ubi BIGINT UNSIGNED, flag TINYINT(1), \
                         f FLOAT, d DOUBLE, num DECIMAL(12,2), vc VARCHAR(20), t TEXT, c CHAR(3), day DATE, \
                         at DATETIME, ts TIMESTAMP NULL, tm TIME, mood ENUM('happy','sad'), j JSON, y YEAR, n INT); \
         INSERT INTO v VALUES (1, 2, 3, 4, 18446744073709551615, 1, 1.5, 2.25, 12.34, 'x', 'long text', 'z', \
                               '2024-02-29', '2024-01-02 03:04:05', '2024-01-02 03:04:05', '10:11:12', 'happy', \
                               '{\"a\": 1}', 2024, NULL);",
    )
    .await;
    let warehouse = MySqlWarehouse::connect(db.url()).await.unwrap();
    assert_eq!(warehouse.server(), Server::MariaDb);

    let result = warehouse
        .execute(
            &guarded("SELECT ti, si, i, bi, ubi, flag, f, d, num, vc, t, c, day, at, ts, tm, mood, j, y, n FROM v"),
            Duration::from_secs(5),
            &never(),
        )
        .await
        .unwrap();

    let at = NaiveDate::from_ymd_opt(2024, 1, 2)
        .unwrap()
        .and_hms_opt(3, 4, 5)
        .unwrap();
    assert_eq!(
        result.rows,
        vec![vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::Int(4),
            Value::Decimal(Decimal::from(u64::MAX)),
            Value::Bool(true),
            Value::Float(1.5),
            Value::Float(2.25),
            Value::Decimal(Decimal::new(1234, 2)),
            Value::Text("x".into()),
            Value::Text("long text".into()),
            Value::Text("z".into()),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Timestamp(at),
            // Stored and read in the session's time zone, UTC.
            Value::Timestamp(at),
            Value::Text("10:11:12".into()),
            Value::Text("happy".into()),
            Value::Text("{\"a\": 1}".into()),
            Value::Int(2024),
            Value::Null,
        ]]
    );
    let formats: Vec<(&str, ColumnFormat)> = result.columns.iter().map(|c| (c.name.as_str(), c.format)).collect();
    assert_eq!(
        formats,
        [
            ("ti", ColumnFormat::Integer),
            ("si", ColumnFormat::Integer),
            ("i", ColumnFormat::Integer),
            ("bi", ColumnFormat::Integer),
            ("ubi", ColumnFormat::Number),
            ("flag", ColumnFormat::Text),
            ("f", ColumnFormat::Number),
            ("d", ColumnFormat::Number),
            ("num", ColumnFormat::Number),
            ("vc", ColumnFormat::Text),
            ("t", ColumnFormat::Text),
            ("c", ColumnFormat::Text),
            ("day", ColumnFormat::Date),
            ("at", ColumnFormat::Text),
            ("ts", ColumnFormat::Text),
            ("tm", ColumnFormat::Text),
            ("mood", ColumnFormat::Text),
            ("j", ColumnFormat::Text),
            ("y", ColumnFormat::Integer),
            ("n", ColumnFormat::Integer),
        ]
    );
}

#[tokio::test]
async fn aggregates_and_date_buckets_convert_as_numbers_and_dates() {
    let db = TestMySqlDatabase::create().await;
    db.execute(
        "CREATE TABLE sales (id INT PRIMARY KEY, sold_on DATE NOT NULL, amount DECIMAL(10,2), units INT); \
         INSERT INTO sales SELECT seq, '2024-01-01' + INTERVAL seq DAY, seq * 1.5, seq FROM seq_1_to_50;",
    )
    .await;
    let warehouse = MySqlWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(
            &guarded(
                "SELECT DATE_SUB(DATE(sold_on), INTERVAL WEEKDAY(sold_on) DAY) AS week, SUM(amount) AS amount, \
                        SUM(units) AS units, COUNT(*) AS n, AVG(units) AS average \
                 FROM sales GROUP BY 1 ORDER BY 1 DESC",
            ),
            Duration::from_secs(5),
            &never(),
        )
        .await
        .unwrap();

    let formats: Vec<ColumnFormat> = result.columns.iter().map(|c| c.format).collect();
    assert_eq!(
        formats,
        [
            ColumnFormat::Date,
            ColumnFormat::Number,
            ColumnFormat::Number,
            ColumnFormat::Integer,
            ColumnFormat::Number
        ]
    );
    // 2024-02-19 is the Monday of the last week (days 49 and 50: 2024-02-19 and 2024-02-20).
    assert_eq!(
        result.rows[0],
        vec![
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 19).unwrap()),
            Value::Decimal(Decimal::new(1485, 1)),
            Value::Decimal(Decimal::from(99)),
            Value::Int(2),
            Value::Decimal(Decimal::new(495, 1)),
        ]
    );
}

#[tokio::test]
async fn an_empty_result_still_names_its_columns() {
    let db = TestMySqlDatabase::create().await;
    db.execute("CREATE TABLE t (id INT, label VARCHAR(10), at DATE)").await;
    let warehouse = MySqlWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT id, label, at FROM t"),
            Duration::from_secs(5),
            &never(),
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
async fn describe_reads_tables_keys_comments_and_values_of_the_urls_database_only() {
    let db = TestMySqlDatabase::create().await;
    let other = TestMySqlDatabase::create().await;
    other.execute("CREATE TABLE elsewhere (id INT PRIMARY KEY)").await;
    db.execute(
        "CREATE TABLE regions (code CHAR(2), name VARCHAR(40) NOT NULL, PRIMARY KEY (code)) \
           COMMENT = 'Sales regions'; \
         CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(80) NOT NULL, \
           segment VARCHAR(20) NOT NULL COMMENT 'Commercial segment', region_code CHAR(2) NOT NULL, \
           active TINYINT(1) NOT NULL, email VARCHAR(80), signed_up DATE, seen_at DATETIME, \
           credit DECIMAL(12,2), notes BLOB, \
           FOREIGN KEY (region_code) REFERENCES regions (code)); \
         CREATE TABLE visits (customer_id BIGINT NOT NULL, day DATE NOT NULL, pages INT NOT NULL, \
           PRIMARY KEY (customer_id, day), \
           CONSTRAINT visits_customer FOREIGN KEY (customer_id) REFERENCES customers (id)); \
         CREATE TABLE visit_notes (customer_id BIGINT NOT NULL, day DATE NOT NULL, note TEXT, \
           FOREIGN KEY (customer_id, day) REFERENCES visits (customer_id, day)); \
         CREATE VIEW enterprise AS SELECT id, name FROM customers WHERE segment = 'enterprise'; \
         INSERT INTO regions VALUES ('EU', 'Europe'), ('NA', 'North America'); \
         INSERT INTO customers VALUES \
           (1, 'Acme', 'enterprise', 'EU', 1, 'a@acme.test', '2024-01-01', NULL, 10, NULL), \
           (2, 'Birch', 'smb', 'NA', 0, 'b@birch.test', '2024-02-01', NULL, 20, NULL), \
           (3, 'Cobalt', 'smb', 'EU', 1, 'c@cobalt.test', '2024-03-01', NULL, 30, NULL);",
    )
    .await;
    // Through the server's own wiring, with the `mariadb://` scheme.
    let url = db.url().replacen("mysql://", "mariadb://", 1);
    let config = Config::from_lookup(|name| (name == "WAREHOUSE_URL").then(|| url.clone())).unwrap();
    let warehouse = connect_warehouse(&config).await.unwrap();
    assert_eq!(warehouse.dialect(), Dialect::MySql);
    warehouse.ping().await.unwrap();

    let tables = warehouse.describe(&DescribeSettings::default()).await.unwrap();

    // In the server's collation order.
    let mut names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["customers", "enterprise", "regions", "visit_notes", "visits"]);
    let table = |name: &str| tables.iter().find(|t| t.name == name).unwrap();
    let customers = table("customers");
    let kinds: Vec<(&str, ColumnKind)> = customers.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("id", ColumnKind::Integer),
            ("name", ColumnKind::Text),
            ("segment", ColumnKind::Text),
            ("region_code", ColumnKind::Text),
            ("active", ColumnKind::Boolean),
            ("email", ColumnKind::Text),
            ("signed_up", ColumnKind::Date),
            ("seen_at", ColumnKind::Timestamp),
            ("credit", ColumnKind::Decimal),
            ("notes", ColumnKind::Other),
        ]
    );
    assert_eq!(customers.primary_key, ["id"]);
    assert_eq!(
        customers.foreign_keys,
        [ForeignKey {
            columns: vec!["region_code".into()],
            table: "regions".into(),
            references: vec!["code".into()],
        }]
    );
    let column = |name: &str| customers.columns.iter().find(|c| c.name == name).unwrap();
    assert_eq!(column("segment").comment.as_deref(), Some("Commercial segment"));
    assert_eq!(column("segment").values, ["enterprise", "smb"]);
    assert_eq!(column("region_code").values, ["EU", "NA"]);
    assert_eq!(column("email").values, Vec::<String>::new(), "contact details");
    assert_eq!(table("regions").comment.as_deref(), Some("Sales regions"));
    assert_eq!(table("regions").primary_key, ["code"]);
    assert_eq!(table("visits").primary_key, ["customer_id", "day"]);
    assert_eq!(
        table("visit_notes").foreign_keys,
        [ForeignKey {
            columns: vec!["customer_id".into(), "day".into()],
            table: "visits".into(),
            references: vec!["customer_id".into(), "day".into()],
        }]
    );
    assert_eq!(table("enterprise").comment, None, "a view's comment is not `VIEW`");
    drop(other);
}

#[tokio::test]
async fn statements_run_in_a_read_only_transaction_with_the_servers_statement_timeout() {
    let db = TestMySqlDatabase::create().await;
    let warehouse = MySqlWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(
            &guarded("SELECT @@session.tx_read_only AS read_only, @@session.max_statement_time AS timeout"),
            Duration::from_millis(1500),
            &never(),
        )
        .await
        .unwrap();

    // MariaDB counts max_statement_time in seconds.
    let cells: Vec<String> = result.rows[0].iter().map(cell).collect();
    assert_eq!(cells, ["1.00", "1.50"], "{:?}", result.rows);
}

#[tokio::test]
async fn a_write_is_refused_by_the_guard_and_again_by_the_read_only_transaction() {
    let db = TestMySqlDatabase::create().await;
    db.execute(
        "CREATE TABLE t (id INT); \
         CREATE FUNCTION bump() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO t VALUES (1); RETURN 1; END",
    )
    .await;
    let warehouse = MySqlWarehouse::connect(db.url()).await.unwrap();
    let guard = SqlGuard::new(Dialect::MySql, None);

    // The guard refuses a write outright.
    let refused = guard.check("INSERT INTO t VALUES (1)", 100);
    assert!(matches!(refused, Err(GuardError::NotAQuery(_))), "{refused:?}");
    // A function with a side effect looks like a query to the guard; the transaction refuses
    // the write it makes.
    let smuggled = guard.check("SELECT bump() AS b", 100).unwrap();
    let result = warehouse.execute(&smuggled, Duration::from_secs(5), &never()).await;

    assert!(
        matches!(&result, Err(WarehouseError::Query(message)) if message.contains("READ ONLY transaction")),
        "{result:?}"
    );
    let count = warehouse
        .execute(
            &guarded("SELECT COUNT(*) AS n FROM t"),
            Duration::from_secs(5),
            &never(),
        )
        .await
        .unwrap();
    assert_eq!(count.rows, vec![vec![Value::Int(0)]]);
}

#[tokio::test]
async fn a_heavy_query_is_stopped_in_the_server_by_the_statement_timeout() {
    let db = TestMySqlDatabase::create().await;
    // One connection: the follow-up query must reuse the one that ran the heavy query.
    let warehouse = MySqlWarehouse::connect_with_max_connections(db.url(), 1).await.unwrap();
    let started = Instant::now();

    let result = warehouse
        .execute(&guarded(HEAVY_QUERY), Duration::from_millis(500), &never())
        .await;

    assert!(
        matches!(result, Err(WarehouseError::Timeout(d)) if d == Duration::from_millis(500)),
        "{result:?}"
    );
    assert!(started.elapsed() < STOPPED_WELL_BEFORE, "took {:?}", started.elapsed());
    assert!(!heavy_query_is_running(db.name()).await, "the server still runs it");
    let after = warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(5), &never())
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(1)]]);
}

#[tokio::test]
async fn cancelling_kills_the_statement_in_the_server() {
    let db = TestMySqlDatabase::create().await;
    let warehouse = MySqlWarehouse::connect_with_max_connections(db.url(), 1).await.unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let name = db.name().to_string();
    // Cancels once the server shows the statement running (not after a guessed delay), and in
    // any case after 30 s, so a statement that never shows up fails the test instead of running.
    let cancelled_while_running = tokio::spawn(async move {
        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            // Shown with its tag to whoever reads SHOW PROCESSLIST.
            while running_statements_like(&name, "/* threadql:T1/C1/1.2:7 */%seq_1_to_100000%").await == 0 {
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
    assert!(!heavy_query_is_running(db.name()).await, "the server still runs it");
    let after = warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(5), &never())
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(1)]]);
}

#[tokio::test]
async fn dropping_a_running_query_kills_it_in_the_server() {
    let db = TestMySqlDatabase::create().await;
    let warehouse = MySqlWarehouse::connect_with_max_connections(db.url(), 1).await.unwrap();
    let heavy = guarded(HEAVY_QUERY);
    let name = db.name().to_string();

    let never = never();
    let dropped = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            result = warehouse.execute(&heavy, Duration::from_secs(600), &never) => Some(result),
            _ = eventually("the heavy query runs", Duration::from_secs(30), || heavy_query_is_running(&name)) => None,
        }
    })
    .await
    .unwrap();
    assert!(dropped.is_none(), "the heavy query finished: {dropped:?}");

    // The server stops it soon after: the process list proves it.
    eventually("the server stopped the dropped query", STOPPED_WELL_BEFORE, || async {
        !heavy_query_is_running(db.name()).await
    })
    .await;
    let after = warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(60), &never)
        .await
        .unwrap();
    assert_eq!(after.rows, vec![vec![Value::Int(1)]]);
}

#[tokio::test]
async fn a_failing_statement_is_a_query_error() {
    let db = TestMySqlDatabase::create().await;
    let warehouse = MySqlWarehouse::connect(db.url()).await.unwrap();

    let result = warehouse
        .execute(&guarded("SELECT nope FROM missing"), Duration::from_secs(5), &never())
        .await;

    assert!(
        matches!(&result, Err(WarehouseError::Query(message)) if message.contains("missing")),
        "{result:?}"
    );
}

#[tokio::test]
async fn connecting_without_a_database_or_to_a_missing_one_fails() {
    assert!(MySqlWarehouse::connect(MARIADB_SERVER).await.is_err());
    assert!(
        MySqlWarehouse::connect(&format!("{MARIADB_SERVER}/threadql_test_does_not_exist"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn explain_estimates_the_rows_a_statement_reads() {
    let db = TestMySqlDatabase::create().await;
    db.execute(
        "CREATE TABLE small (id INT PRIMARY KEY); CREATE TABLE big (id INT PRIMARY KEY, small_id INT); \
         INSERT INTO small SELECT seq FROM seq_1_to_10; \
         INSERT INTO big SELECT seq, seq % 10 + 1 FROM seq_1_to_5000; ANALYZE TABLE small, big;",
    )
    .await;
    let warehouse = MySqlWarehouse::connect(db.url()).await.unwrap();

    let one = warehouse
        .estimate(&guarded("SELECT id FROM small WHERE id = 3"))
        .await
        .unwrap()
        .rows
        .unwrap();
    let scan = warehouse
        .estimate(&guarded("SELECT COUNT(*) AS n FROM big"))
        .await
        .unwrap()
        .rows
        .unwrap();
    let join = warehouse
        .estimate(&guarded("SELECT COUNT(*) AS n FROM big b CROSS JOIN small s"))
        .await
        .unwrap()
        .rows
        .unwrap();

    assert_eq!(one, 1);
    assert!((4_000..=6_000).contains(&scan), "{scan}");
    assert!((40_000..=60_000).contains(&join), "{join}");
}

// ---------------------------------------------------------------------------------------------
// The demo data set loaded into MariaDB: the rules interpreter's questions get the same answers
// there as on SQLite.

/// The demo tables with the types a MySQL schema would give them.
const DEMO_SCHEMA: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, country VARCHAR(60) NOT NULL,
    region VARCHAR(20) NOT NULL, segment VARCHAR(20) NOT NULL, signup_date DATE NOT NULL);
CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, category VARCHAR(40) NOT NULL,
    unit_price DECIMAL(10,2) NOT NULL);
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, order_date DATE NOT NULL,
    status VARCHAR(20) NOT NULL, channel VARCHAR(20) NOT NULL, total DECIMAL(12,2) NOT NULL,
    FOREIGN KEY (customer_id) REFERENCES customers (id), KEY (order_date));
CREATE TABLE order_items (id INT PRIMARY KEY, order_id INT NOT NULL, product_id INT NOT NULL,
    quantity INT NOT NULL, unit_price DECIMAL(10,2) NOT NULL, discount DECIMAL(4,2) NOT NULL,
    FOREIGN KEY (order_id) REFERENCES orders (id), FOREIGN KEY (product_id) REFERENCES products (id));
CREATE TABLE app_metrics (day DATE NOT NULL, platform VARCHAR(20) NOT NULL, active_users INT NOT NULL,
    sessions INT NOT NULL, crashes INT NOT NULL, PRIMARY KEY (day, platform));
";

/// A value read from SQLite, to bind into MariaDB.
enum Cell {
    Int(i64),
    Real(f64),
    Text(String),
}

/// Copies the demo tables from the SQLite file into the MariaDB database.
async fn load_demo_into(db: &TestMySqlDatabase) {
    db.execute(DEMO_SCHEMA).await;
    let options = SqliteConnectOptions::new().filename(demo_path().await).read_only(true);
    let sqlite = SqlitePool::connect_with(options).await.unwrap();
    let mut mariadb = db.connect().await;
    sqlx::raw_sql("SET foreign_key_checks = 0")
        .execute(&mut mariadb)
        .await
        .unwrap();
    for table in DEMO_TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&sqlite)
            .await
            .unwrap();
        let columns: Vec<String> = rows[0].columns().iter().map(|c| c.name().to_string()).collect();
        let cells: Vec<Vec<Cell>> = rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| {
                        let raw = row.try_get_raw(i).unwrap();
                        match raw.type_info().name() {
                            "INTEGER" => Cell::Int(row.get(i)),
                            "REAL" => Cell::Real(row.get(i)),
                            _ => Cell::Text(row.get(i)),
                        }
                    })
                    .collect()
            })
            .collect();
        for chunk in cells.chunks(2_000) {
            let mut insert = QueryBuilder::<MySql>::new(format!("INSERT INTO {table} ({}) ", columns.join(", ")));
            insert.push_values(chunk, |mut row, cells| {
                for cell in cells {
                    match cell {
                        Cell::Int(v) => row.push_bind(*v),
                        Cell::Real(v) => row.push_bind(*v),
                        Cell::Text(v) => row.push_bind(v.clone()),
                    };
                }
            });
            insert.build().execute(&mut mariadb).await.unwrap();
        }
    }
    sqlx::raw_sql("ANALYZE TABLE customers, products, orders, order_items, app_metrics")
        .execute(&mut mariadb)
        .await
        .unwrap();
    sqlite.close().await;
}

#[tokio::test]
async fn demo_questions_get_the_same_answers_on_mariadb_as_on_sqlite() {
    // Arrange: the demo data set in SQLite, and the same rows in MariaDB.
    let db = TestMySqlDatabase::create().await;
    load_demo_into(&db).await;
    let mariadb = MySqlWarehouse::connect(db.url()).await.unwrap();

    // Act and assert: every thread, all failures reported at once.
    demo_threads::assert_same_answers_as_sqlite("MariaDB", &mariadb).await;
}
