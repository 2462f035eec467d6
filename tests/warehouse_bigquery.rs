#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The BigQuery warehouse against `fake_bigquery`: Google's token endpoint and BigQuery's REST
//! API, with the SQL run on a real Postgres database of each test's own.
mod fake_bigquery;

mod demo_threads;

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use demo_threads::{demo_path, DEMO_TABLES};
use fake_bigquery::{FakeBigQuery, DATASET, PROJECT};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};
use threadql::domain::{ColumnFormat, ColumnKind, ForeignKey, Value};
use threadql::sql::{Dialect, GuardedSql, SqlGuard};
use threadql::warehouse::bigquery::api::RetrySettings;
use threadql::warehouse::bigquery::{BigQuerySettings, BigQueryWarehouse};
use threadql::warehouse::{DescribeSettings, Warehouse, WarehouseError};
use threadql_testkit::{eventually, TestDatabase};
use tokio_util::sync::CancellationToken;

/// 27 billion rows: hours of work, so anything that ends soon was stopped.
const HEAVY_QUERY: &str = "SELECT COUNT(*) AS n FROM big AS a CROSS JOIN big AS b CROSS JOIN big AS c";
const STOPPED_WELL_BEFORE: Duration = Duration::from_secs(10);

fn guarded(sql: &str) -> GuardedSql {
    SqlGuard::new(Dialect::BigQuery, None).check(sql, 100_000).unwrap()
}

fn never() -> CancellationToken {
    CancellationToken::new()
}

fn settings(fake: &FakeBigQuery) -> BigQuerySettings {
    BigQuerySettings {
        project: PROJECT.into(),
        dataset: DATASET.into(),
        location: Some("US".into()),
        credentials: fake.key_file().to_path_buf(),
        api_url: fake.base_url().to_string(),
        maximum_bytes_billed: 1_000_000_000,
    }
}

/// A warehouse in front of the fake, retrying quickly.
fn warehouse(fake: &FakeBigQuery) -> BigQueryWarehouse {
    let retry = RetrySettings {
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retries: 3,
    };
    BigQueryWarehouse::connect_with_retry(&settings(fake), retry).unwrap()
}

/// A database, the fake in front of it, and the warehouse.
async fn arrange(statements: &str) -> (TestDatabase, FakeBigQuery, BigQueryWarehouse) {
    let db = TestDatabase::create().await;
    if !statements.is_empty() {
        db.execute(statements).await;
    }
    let fake = FakeBigQuery::start(&db).await;
    let warehouse = warehouse(&fake);
    (db, fake, warehouse)
}

/// Statements of `database` Postgres is running now that read the `big` table.
async fn heavy_query_is_running(db: &TestDatabase) -> bool {
    let mut conn = db.connect().await;
    let running: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
         AND query LIKE '%CROSS JOIN%' AND pid <> pg_backend_pid()",
    )
    .bind(db.name())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::Connection::close(conn).await.ok();
    running > 0
}

const BIG_TABLE: &str = "CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 3000) AS g;";

#[tokio::test]
async fn values_convert_by_type() {
    // Arrange
    let (_db, _fake, warehouse) = arrange(
        "CREATE TABLE v (i INT, bi BIGINT, f DOUBLE PRECISION, num NUMERIC(12,2), s TEXT, flag BOOLEAN, \
                         day DATE, at TIMESTAMP, ts TIMESTAMPTZ, n INT);
         INSERT INTO v VALUES (3, 9000000000, 2.5, 12.34, 'EMEA', true, '2024-02-29', '2024-01-02 03:04:05.25',
                               '2024-01-01 00:00:00.123456+00', NULL);",
    )
    .await;

    // Act
    let result = warehouse
        .execute(
            &guarded("SELECT i, bi, f, num, s, flag, day, at, ts, n FROM v"),
            Duration::from_secs(10),
            &never(),
        )
        .await
        .unwrap();

    // Assert
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let at = NaiveDate::from_ymd_opt(2024, 1, 2)
        .unwrap()
        .and_hms_milli_opt(3, 4, 5, 250)
        .unwrap();
    let ts = NaiveDate::from_ymd_opt(2024, 1, 1)
        .unwrap()
        .and_hms_micro_opt(0, 0, 0, 123_456)
        .unwrap();
    assert_eq!(
        result.rows,
        vec![vec![
            Value::Int(3),
            Value::Int(9_000_000_000),
            Value::Float(2.5),
            Value::Decimal(Decimal::new(1234, 2)),
            Value::Text("EMEA".into()),
            Value::Bool(true),
            Value::Date(day),
            Value::Timestamp(at),
            Value::Timestamp(ts),
            Value::Null,
        ]]
    );
    let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["i", "bi", "f", "num", "s", "flag", "day", "at", "ts", "n"]);
    assert_eq!(result.columns[0].format, ColumnFormat::Integer);
    assert_eq!(result.columns[3].format, ColumnFormat::Number);
    assert_eq!(result.columns[6].format, ColumnFormat::Date);
    assert_eq!(
        result.columns[9].format,
        ColumnFormat::Integer,
        "an all-NULL INTEGER column"
    );
}

#[tokio::test]
async fn every_request_carries_the_documented_job_settings() {
    // Arrange
    let (_db, fake, warehouse) = arrange("").await;

    // Act
    warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(10), &never())
        .await
        .unwrap();

    // Assert
    let requests = fake.query_requests();
    let [request] = requests.as_slice() else {
        panic!("one jobs.query call, not {requests:?}")
    };
    assert_eq!(request["query"], "SELECT 1 AS one LIMIT 100000");
    assert_eq!(request["useLegacySql"], false);
    assert_eq!(request["maximumBytesBilled"], "1000000000");
    assert_eq!(request["labels"], serde_json::json!({"app": "threadql"}));
    assert_eq!(request["location"], "US");
    assert_eq!(
        request["defaultDataset"],
        serde_json::json!({"projectId": PROJECT, "datasetId": DATASET})
    );
    assert!(request["maxResults"].as_u64().is_some_and(|n| n > 0), "{request}");
    assert!(request["timeoutMs"].as_u64().is_some_and(|n| n > 0), "{request}");
    let request_id = request["requestId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
}

#[tokio::test]
async fn values_with_quotes_reach_bigquery_as_literals_it_reads() {
    // Arrange
    let (_db, fake, warehouse) =
        arrange("CREATE TABLE c (name TEXT); INSERT INTO c VALUES ('O''Neil'), ('Smith');").await;
    let sql = format!(
        "SELECT COUNT(*) AS n FROM c WHERE name IN ({})",
        threadql::sql::dialect::string_literal("O'Neil", Dialect::BigQuery)
    );

    // Act
    let result = warehouse
        .execute(&guarded(&sql), Duration::from_secs(10), &never())
        .await
        .unwrap();

    // Assert
    assert_eq!(result.rows, vec![vec![Value::Int(1)]]);
    assert_eq!(
        fake.query_requests()[0]["query"],
        r#"SELECT COUNT(*) AS n FROM c WHERE name IN ("O'Neil") LIMIT 100000"#
    );
}

#[tokio::test]
async fn a_tagged_statement_is_labelled_with_its_thread_and_version() {
    // Arrange
    let (_db, fake, warehouse) = arrange("").await;
    let tag = threadql::sql::QueryTag::new(&"T01/C02/1712345678.000100", 3);
    let tagged = guarded("SELECT 1 AS one").tagged(tag);

    // Act
    warehouse.estimate(&tagged).await.unwrap();
    warehouse
        .execute(&tagged, Duration::from_secs(10), &never())
        .await
        .unwrap();
    warehouse
        .execute(&guarded("SELECT 2 AS two"), Duration::from_secs(10), &never())
        .await
        .unwrap();

    // Assert: the tagged job and its dry run carry the thread and version; an untagged
    // statement only says which application started it.
    let expected = serde_json::json!({
        "app": "threadql",
        "threadql_thread": "t01-c02-1712345678-000100",
        "threadql_version": "3",
    });
    assert_eq!(fake.dry_runs()[0]["configuration"]["labels"], expected);
    assert_eq!(fake.query_requests()[0]["labels"], expected);
    assert_eq!(
        fake.query_requests()[1]["labels"],
        serde_json::json!({"app": "threadql"})
    );
}

#[tokio::test]
async fn bigquery_date_functions_run_behind_the_fake() {
    // Arrange: one row a day for the last 30 days.
    let (db, _fake, warehouse) = arrange(
        "CREATE TABLE visits AS SELECT CAST(CURRENT_DATE - g AS DATE) AS day, g AS n FROM generate_series(0, 29) AS g;",
    )
    .await;
    let mut conn = db.connect().await;
    let today: NaiveDate = sqlx::query_scalar("SELECT MAX(day) FROM visits")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.ok();

    // Act
    let result = warehouse
        .execute(
            &guarded(
                "SELECT COUNT(*) AS days, MIN(DATE_TRUNC(DATE(day), ISOWEEK)) AS first_monday \
                 FROM visits WHERE day >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)",
            ),
            Duration::from_secs(10),
            &never(),
        )
        .await
        .unwrap();

    // Assert: today and the seven days before; the Monday of the oldest one's week.
    let oldest = today - chrono::Duration::days(7);
    let monday = oldest - chrono::Duration::days(i64::from(chrono::Datelike::weekday(&oldest).num_days_from_monday()));
    assert_eq!(result.rows, vec![vec![Value::Int(8), Value::Date(monday)]]);
}

#[tokio::test]
async fn several_pages_are_assembled_in_order() {
    // Arrange
    let (_db, fake, warehouse) =
        arrange("CREATE TABLE t AS SELECT g AS id, 'row ' || g AS label FROM generate_series(1, 10) AS g;").await;
    fake.set_page_size(3);

    // Act
    let result = warehouse
        .execute(
            &guarded("SELECT id, label FROM t ORDER BY id"),
            Duration::from_secs(10),
            &never(),
        )
        .await
        .unwrap();

    // Assert
    let expected: Vec<Vec<Value>> = (1..=10)
        .map(|i| vec![Value::Int(i), Value::Text(format!("row {i}"))])
        .collect();
    assert_eq!(result.rows, expected);
    assert_eq!(
        fake.result_requests(),
        3,
        "pages 2, 3 and 4 were read with their page tokens"
    );
}

#[tokio::test]
async fn an_export_of_100000_rows_is_handed_over_page_by_page() {
    // Arrange
    let (_db, _fake, warehouse) =
        arrange("CREATE TABLE numbers AS SELECT g AS n FROM generate_series(1, 100000) AS g;").await;
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

    // Act
    let rows = warehouse
        .execute_pages(
            &guarded("SELECT n FROM numbers ORDER BY n"),
            Duration::from_secs(60),
            &never(),
            pages,
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(rows, 100_000);
    assert_eq!(
        reader.await.unwrap(),
        vec![10_000; 10],
        "one page per page token, of the maxResults the client asks for"
    );
}

#[tokio::test]
async fn an_incomplete_job_is_polled_until_it_completes() {
    // Arrange
    let (_db, fake, warehouse) = arrange("").await;
    fake.set_incomplete_polls(3);

    // Act
    let result = warehouse
        .execute(&guarded("SELECT 42 AS answer"), Duration::from_secs(10), &never())
        .await
        .unwrap();

    // Assert
    assert_eq!(result.rows, vec![vec![Value::Int(42)]]);
    assert_eq!(fake.query_requests().len(), 1);
    // jobs.query and two polls said incomplete, then the third poll had the rows.
    assert_eq!(fake.result_requests(), 3);
}

#[tokio::test]
async fn an_invalid_query_is_a_query_error_with_the_engines_message() {
    // Arrange
    let (_db, _fake, warehouse) = arrange("CREATE TABLE t (id INT);").await;

    // Act
    let result = warehouse
        .execute(&guarded("SELECT missing FROM t"), Duration::from_secs(10), &never())
        .await;

    // Assert
    assert!(
        matches!(&result, Err(WarehouseError::Query(message)) if message.contains("missing")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_rate_limited_call_is_retried() {
    // Arrange
    let (_db, fake, warehouse) = arrange("").await;
    fake.rate_limit_next(2);

    // Act
    let result = warehouse
        .execute(&guarded("SELECT 7 AS n"), Duration::from_secs(10), &never())
        .await;

    // Assert
    assert_eq!(result.unwrap().rows, vec![vec![Value::Int(7)]]);
    assert_eq!(
        fake.query_requests().len(),
        1,
        "the job was started once, after the 429s"
    );
}

#[tokio::test]
async fn rate_limits_that_do_not_end_make_the_warehouse_unavailable() {
    // Arrange
    let (_db, fake, warehouse) = arrange("").await;
    fake.rate_limit_next(100);

    // Act
    let result = warehouse
        .execute(&guarded("SELECT 7 AS n"), Duration::from_secs(10), &never())
        .await;

    // Assert
    assert!(
        matches!(&result, Err(WarehouseError::Unavailable(m)) if m.contains("429")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_token_about_to_expire_is_renewed_before_use() {
    // Arrange: tokens that live a minute are within the renewal margin from the start.
    let (_db, fake, warehouse) = arrange("").await;
    fake.set_token_lifetime(60);

    // Act
    for _ in 0..2 {
        warehouse
            .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(10), &never())
            .await
            .unwrap();
    }

    // Assert
    assert!(fake.tokens_issued() >= 2, "issued {}", fake.tokens_issued());
    assert_eq!(fake.unauthorized(), 0, "no call went out with an expired token");
}

#[tokio::test]
async fn a_token_the_api_says_has_expired_is_renewed_and_the_call_repeated() {
    // Arrange
    let (_db, fake, warehouse) = arrange("").await;
    warehouse
        .execute(&guarded("SELECT 1 AS one"), Duration::from_secs(10), &never())
        .await
        .unwrap();
    assert_eq!(fake.tokens_issued(), 1, "the token is cached");
    fake.expire_tokens();

    // Act
    let result = warehouse
        .execute(&guarded("SELECT 2 AS two"), Duration::from_secs(10), &never())
        .await;

    // Assert
    assert_eq!(result.unwrap().rows, vec![vec![Value::Int(2)]]);
    assert_eq!(fake.unauthorized(), 1);
    assert_eq!(fake.tokens_issued(), 2);
}

#[tokio::test]
async fn a_key_the_token_endpoint_refuses_makes_the_warehouse_unavailable() {
    // Arrange: a key file whose account the fake does not know.
    let (_db, fake, _) = arrange("").await;
    let mut key: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fake.key_file()).unwrap()).unwrap();
    key["client_email"] = "someone-else@elsewhere.iam.gserviceaccount.com".into();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), key.to_string()).unwrap();
    let mut settings = settings(&fake);
    settings.credentials = file.path().to_path_buf();
    let warehouse = BigQueryWarehouse::connect(&settings).unwrap();

    // Act
    let result = warehouse.ping().await;

    // Assert
    assert!(
        matches!(&result, Err(WarehouseError::Unavailable(m)) if m.contains("invalid_grant")),
        "{result:?}"
    );
}

#[tokio::test]
async fn cancelling_stops_the_statement_in_the_engine() {
    // Arrange
    let (db, fake, warehouse) = arrange(BIG_TABLE).await;
    let cancel = CancellationToken::new();
    let running = {
        let warehouse = warehouse.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            warehouse
                .execute(&guarded(HEAVY_QUERY), Duration::from_secs(300), &cancel)
                .await
        })
    };
    eventually("the heavy query runs in Postgres", Duration::from_secs(20), || {
        heavy_query_is_running(&db)
    })
    .await;

    // Act
    cancel.cancel();
    let result = tokio::time::timeout(STOPPED_WELL_BEFORE, running)
        .await
        .unwrap()
        .unwrap();

    // Assert
    assert!(matches!(result, Err(WarehouseError::Cancelled)), "{result:?}");
    assert_eq!(fake.cancels().len(), 1, "jobs.cancel was called");
    eventually("the statement stopped in Postgres", STOPPED_WELL_BEFORE, || async {
        !heavy_query_is_running(&db).await
    })
    .await;
}

#[tokio::test]
async fn a_timeout_stops_the_statement_in_the_engine() {
    // Arrange
    let (db, fake, warehouse) = arrange(BIG_TABLE).await;

    // Act
    let result = tokio::time::timeout(
        STOPPED_WELL_BEFORE,
        warehouse.execute(&guarded(HEAVY_QUERY), Duration::from_secs(1), &never()),
    )
    .await
    .unwrap();

    // Assert
    assert!(
        matches!(result, Err(WarehouseError::Timeout(d)) if d == Duration::from_secs(1)),
        "{result:?}"
    );
    assert_eq!(fake.cancels().len(), 1, "jobs.cancel was called");
    eventually("the statement stopped in Postgres", STOPPED_WELL_BEFORE, || async {
        !heavy_query_is_running(&db).await
    })
    .await;
}

#[tokio::test]
async fn dropping_a_running_query_cancels_it_in_the_engine() {
    // Arrange
    let (db, fake, warehouse) = arrange(BIG_TABLE).await;
    let running = {
        let warehouse = warehouse.clone();
        tokio::spawn(async move {
            warehouse
                .execute(&guarded(HEAVY_QUERY), Duration::from_secs(300), &never())
                .await
        })
    };
    eventually("the heavy query runs in Postgres", Duration::from_secs(20), || {
        heavy_query_is_running(&db)
    })
    .await;

    // Act
    running.abort();

    // Assert
    eventually("jobs.cancel was called", STOPPED_WELL_BEFORE, || async {
        fake.cancels().len() == 1
    })
    .await;
    eventually("the statement stopped in Postgres", STOPPED_WELL_BEFORE, || async {
        !heavy_query_is_running(&db).await
    })
    .await;
}

#[tokio::test]
async fn describe_reads_tables_columns_keys_descriptions_and_values() {
    // Arrange
    let (_db, _fake, warehouse) = arrange(
        "CREATE TABLE customers (id INT PRIMARY KEY, email TEXT, region VARCHAR(20), signup DATE);
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT REFERENCES customers (id),
                              total NUMERIC(12,2), status TEXT, placed_at TIMESTAMPTZ);
         COMMENT ON COLUMN orders.status IS 'completed, refunded or cancelled';
         INSERT INTO customers VALUES (1, 'a@x.io', 'EMEA', '2024-01-01'), (2, 'b@x.io', 'APAC', '2024-02-01');
         INSERT INTO orders VALUES (1, 1, 10, 'completed', now()), (2, 2, 20, 'refunded', now());",
    )
    .await;

    // Act
    let tables = warehouse.describe(&DescribeSettings::default()).await.unwrap();

    // Assert
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["customers", "orders"]);
    let customers = &tables[0];
    let columns: Vec<(&str, &str, ColumnKind)> = customers
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str(), c.kind))
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "INT64", ColumnKind::Integer),
            ("email", "STRING", ColumnKind::Text),
            ("region", "STRING(20)", ColumnKind::Text),
            ("signup", "DATE", ColumnKind::Date),
        ]
    );
    assert_eq!(customers.primary_key, ["id"]);
    assert_eq!(customers.column("region").unwrap().values, ["APAC", "EMEA"]);
    assert!(
        customers.column("email").unwrap().values.is_empty(),
        "emails are never sampled"
    );
    let orders = &tables[1];
    assert_eq!(orders.column("total").unwrap().kind, ColumnKind::Decimal);
    assert_eq!(orders.column("placed_at").unwrap().kind, ColumnKind::Timestamp);
    assert_eq!(
        orders.foreign_keys,
        [ForeignKey {
            columns: vec!["customer_id".into()],
            table: "customers".into(),
            references: vec!["id".into()],
        }]
    );
    assert_eq!(
        orders.column("status").unwrap().comment.as_deref(),
        Some("completed, refunded or cancelled")
    );
    assert_eq!(orders.column("status").unwrap().values, ["completed", "refunded"]);
}

#[tokio::test]
async fn estimate_is_a_dry_run_giving_the_bytes_read() {
    // Arrange
    let (db, fake, warehouse) = arrange(BIG_TABLE).await;
    let mut conn = db.connect().await;
    let size: i64 = sqlx::query_scalar("SELECT pg_relation_size('big')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.ok();

    // Act
    let estimate = warehouse.estimate(&guarded("SELECT COUNT(*) FROM big")).await.unwrap();

    // Assert
    assert_eq!(estimate.bytes, Some(u64::try_from(size).unwrap()));
    assert!(size > 0);
    assert!(fake.query_requests().is_empty(), "nothing ran");
    let dry_runs = fake.dry_runs();
    assert_eq!(dry_runs.len(), 1);
    assert_eq!(dry_runs[0]["configuration"]["dryRun"], true);
    assert_eq!(dry_runs[0]["configuration"]["query"]["useLegacySql"], false);
}

#[tokio::test]
async fn estimate_refuses_what_bigquery_does_not_read_as_a_select() {
    // Arrange: the guard lets only queries through, so the fake reports the engine's reading.
    let (_db, fake, warehouse) = arrange(BIG_TABLE).await;
    fake.report_statement_type("SCRIPT");

    // Act
    let result = warehouse.estimate(&guarded("SELECT COUNT(*) FROM big")).await;

    // Assert
    assert!(
        matches!(&result, Err(WarehouseError::Query(m)) if m.contains("SCRIPT") && m.contains("only SELECT")),
        "{result:?}"
    );
}

#[tokio::test]
async fn ping_runs_a_query() {
    let (_db, fake, warehouse) = arrange("").await;
    warehouse.ping().await.unwrap();
    assert_eq!(fake.query_requests().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The demo data set behind the fake: the rules interpreter's questions get the same answers
// there as on SQLite.

/// The demo tables with the types a BigQuery data set would give them (INT64, NUMERIC, STRING,
/// DATE), in Postgres' words.
const DEMO_SCHEMA: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL,
    region TEXT NOT NULL, segment TEXT NOT NULL, signup_date DATE NOT NULL);
CREATE TABLE products (id INT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    unit_price NUMERIC(10,2) NOT NULL);
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL REFERENCES customers (id), order_date DATE NOT NULL,
    status TEXT NOT NULL, channel TEXT NOT NULL, total NUMERIC(12,2) NOT NULL);
CREATE TABLE order_items (id INT PRIMARY KEY, order_id INT NOT NULL REFERENCES orders (id),
    product_id INT NOT NULL REFERENCES products (id), quantity INT NOT NULL, unit_price NUMERIC(10,2) NOT NULL,
    discount NUMERIC(4,2) NOT NULL);
CREATE TABLE app_metrics (day DATE NOT NULL, platform TEXT NOT NULL, active_users INT NOT NULL,
    sessions INT NOT NULL, crashes INT NOT NULL, PRIMARY KEY (day, platform));
";

/// Copies the demo tables from the SQLite file into the Postgres database behind the fake, as
/// literals Postgres casts to each column's type.
async fn load_demo_into(db: &TestDatabase) {
    db.execute(DEMO_SCHEMA).await;
    let options = SqliteConnectOptions::new().filename(demo_path().await).read_only(true);
    let sqlite = SqlitePool::connect_with(options).await.unwrap();
    let mut statements = String::new();
    for table in DEMO_TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&sqlite)
            .await
            .unwrap();
        let columns: Vec<String> = rows[0].columns().iter().map(|c| c.name().to_string()).collect();
        for chunk in rows.chunks(2_000) {
            let values: Vec<String> = chunk
                .iter()
                .map(|row| {
                    let cells: Vec<String> = (0..columns.len())
                        .map(|i| {
                            let text = match row.try_get_raw(i).unwrap().type_info().name() {
                                "INTEGER" => row.get::<i64, _>(i).to_string(),
                                "REAL" => row.get::<f64, _>(i).to_string(),
                                _ => row.get::<String, _>(i),
                            };
                            format!("'{}'", text.replace('\'', "''"))
                        })
                        .collect();
                    format!("({})", cells.join(", "))
                })
                .collect();
            statements.push_str(&format!(
                "INSERT INTO {table} ({}) VALUES {};\n",
                columns.join(", "),
                values.join(", ")
            ));
        }
    }
    db.execute(&statements).await;
    sqlite.close().await;
}

#[tokio::test]
async fn demo_questions_get_the_same_answers_on_bigquery_as_on_sqlite() {
    // Arrange: the demo data set in SQLite, and the same rows behind the fake BigQuery.
    let db = TestDatabase::create().await;
    load_demo_into(&db).await;
    let fake = FakeBigQuery::start(&db).await;
    let bigquery = warehouse(&fake);

    // Act and assert: every thread, all failures reported at once.
    demo_threads::assert_same_answers_as_sqlite("BigQuery", &bigquery).await;
}

/// The fake speaks the real protocol: Google's own Python client (google-auth signing the JWT
/// for the fake's token endpoint, then jobs.query and getQueryResults) reads a result through it.
/// Needs `pip install google-cloud-bigquery`.
#[tokio::test]
#[ignore = "needs python3 with google-cloud-bigquery"]
async fn the_official_python_client_reads_results_through_the_fake() {
    // Arrange
    let (_db, fake, _) = arrange(
        "CREATE TABLE orders (id INT, region TEXT, total NUMERIC(12,2), placed_on DATE, paid_at TIMESTAMPTZ);
         INSERT INTO orders VALUES (1, 'EMEA', 10.50, '2026-01-05', '2026-01-05 10:00:00+00'),
                                   (2, 'APAC', 20.25, '2026-01-06', '2026-01-06 11:30:00+00'),
                                   (3, 'EMEA', 5.00, '2026-02-01', NULL);",
    )
    .await;
    fake.set_page_size(2);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bigquery_client_check.py");

    // Act
    let output = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(fake.base_url())
        .arg(fake.key_file())
        .arg(PROJECT)
        .arg(DATASET)
        .output()
        .await
        .expect("python3 runs");

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(fake.tokens_issued() >= 1, "google-auth exchanged its JWT at the fake");
}
