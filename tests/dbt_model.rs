#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A dbt project's MetricFlow semantic models (tests/fixtures/dbt/jaffle) loaded as the server
//! loads them, over SQLite and Postgres: every metric answered by the rules interpreter gives
//! the rows of SQL written by hand; and `threadql model --check` names each problem's line.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{Connection, Executor, PgConnection};
use threadql::config::Config;
use threadql::domain::Value;
use threadql::interpret::load::load_model;
use threadql::interpret::{Interpretation, RulesInterpreter};
use threadql::sql::SqlGuard;
use threadql::warehouse::Warehouse;
use tokio_util::sync::CancellationToken;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt/jaffle")
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 15).unwrap()
}

/// Customers in three regions; orders over two years, some refunded, one customer with none.
fn statements(boolean: (&str, &str), money: &str) -> Vec<String> {
    let mut statements = vec![
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, region TEXT, first_ordered_at DATE)"
            .to_string(),
        format!(
            "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (customer_id), \
             ordered_at DATE, status TEXT, amount {money}, is_refunded BOOLEAN)"
        ),
    ];
    for id in 1..=6 {
        let region = ["Europe", "Americas", "Asia"][id % 3];
        statements.push(format!(
            "INSERT INTO customers VALUES ({id}, 'Customer {id}', '{region}', '2023-0{id}-01')"
        ));
    }
    for id in 1..=30 {
        let customer = id % 5 + 1;
        let year = if id % 2 == 0 { 2024 } else { 2025 };
        let month = id % 12 + 1;
        let status = ["completed", "shipped", "returned"][id % 3];
        let refunded = if id % 4 == 0 { boolean.0 } else { boolean.1 };
        statements.push(format!(
            "INSERT INTO orders VALUES ({id}, {customer}, '{year}-{month:02}-10', '{status}', {id}.25, {refunded})"
        ));
    }
    statements
}

/// Numbers rounded to two decimals, so SQLite's floats and Postgres' numerics compare.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => format!("{:.2}", *i as f64),
        Value::Float(f) => format!("{f:.2}"),
        Value::Decimal(d) => format!("{:.2}", d.to_f64().unwrap()),
        Value::Text(t) => t.clone(),
        Value::Date(d) => d.to_string(),
        Value::Timestamp(t) => t.to_string(),
    }
}

struct Shop {
    config: Config,
    warehouse: Arc<dyn Warehouse>,
    interpreter: RulesInterpreter,
}

impl Shop {
    /// The model from the dbt project, loaded as the server loads it.
    async fn open(warehouse_url: &str) -> Shop {
        let vars = HashMap::from([
            ("WAREHOUSE_URL".to_string(), warehouse_url.to_string()),
            ("THREADQL_DBT_PROJECT".to_string(), project().display().to_string()),
        ]);
        let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let warehouse = threadql::startup::connect_warehouse(&config).await.unwrap();
        let loaded = load_model(&config, warehouse.as_ref(), config.query_timeout)
            .await
            .unwrap();
        let interpreter = RulesInterpreter::new(loaded.model, loaded.values, warehouse.dialect());
        Shop {
            config,
            warehouse,
            interpreter,
        }
    }

    async fn assert_same(&self, question: &str, expected_sql: &str) {
        let proposed = match self.interpreter.interpret_text(question, None, today()) {
            Interpretation::Query(query) => query,
            other => panic!("'{question}' was not interpreted as a query: {other:?}"),
        };
        let mut got = run(self.warehouse.as_ref(), &proposed.sql).await;
        let mut want = run(self.warehouse.as_ref(), expected_sql).await;
        assert!(!want.is_empty(), "{question}: the hand-written SQL returns no rows");
        got.sort();
        want.sort();
        assert_eq!(
            got,
            want,
            "{question} ({:?}): rows differ\ncompiled:\n{}\nexpected:\n{expected_sql}",
            self.warehouse.dialect(),
            proposed.sql
        );
    }

    /// Every metric of the project, and its dimensions (own, joined, time), answered.
    async fn answers_every_metric(&self) {
        let cases = [
            ("order total", "SELECT SUM(amount) FROM orders"),
            ("revenue", "SELECT SUM(amount) FROM orders"),
            ("orders placed", "SELECT COUNT(*) FROM orders"),
            (
                "order total by status",
                "SELECT status, SUM(amount) FROM orders GROUP BY status",
            ),
            (
                "order total by region",
                "SELECT c.region, SUM(o.amount) FROM orders o JOIN customers c ON c.customer_id = o.customer_id \
                 GROUP BY c.region",
            ),
            (
                "order total in 2024",
                "SELECT SUM(amount) FROM orders WHERE ordered_at >= '2024-01-01' AND ordered_at < '2025-01-01'",
            ),
            (
                "europe revenue",
                "SELECT SUM(o.amount) FROM orders o JOIN customers c ON c.customer_id = o.customer_id \
                 WHERE c.region = 'Europe'",
            ),
            (
                "europe revenue by status",
                "SELECT o.status, SUM(o.amount) FROM orders o JOIN customers c ON c.customer_id = o.customer_id \
                 WHERE c.region = 'Europe' GROUP BY o.status",
            ),
            (
                "refunded orders",
                "SELECT SUM(CASE WHEN is_refunded THEN 1 ELSE 0 END) FROM orders",
            ),
            (
                "refund rate",
                "SELECT CAST(SUM(CASE WHEN is_refunded THEN 1 ELSE 0 END) AS REAL) / COUNT(*) FROM orders",
            ),
            (
                "refund rate by status",
                "SELECT status, CAST(SUM(CASE WHEN is_refunded THEN 1 ELSE 0 END) AS REAL) / COUNT(*) \
                 FROM orders GROUP BY status",
            ),
            (
                "average order value",
                "SELECT CAST(SUM(amount) AS REAL) / COUNT(*) FROM orders",
            ),
            (
                "aov by region",
                "SELECT c.region, CAST(SUM(o.amount) AS REAL) / COUNT(*) FROM orders o \
                 JOIN customers c ON c.customer_id = o.customer_id GROUP BY c.region",
            ),
            ("largest order", "SELECT MAX(amount) FROM orders"),
            ("customer count", "SELECT COUNT(DISTINCT customer_id) FROM customers"),
            (
                "customer count by region",
                "SELECT region, COUNT(DISTINCT customer_id) FROM customers GROUP BY region",
            ),
        ];
        for (question, sql) in cases {
            self.assert_same(question, sql).await;
        }
        // A ratio whose denominator is zero is NULL, not an error or an integer 0.
        let none = self.interpreter.interpret_text("refund rate in 2020", None, today());
        let Interpretation::Query(query) = none else {
            panic!("'refund rate in 2020' was not understood: {none:?}");
        };
        let rows = run(self.warehouse.as_ref(), &query.sql).await;
        assert_eq!(rows, vec![vec!["NULL".to_string()]], "{}", query.sql);
        assert!(self.config.dbt_project.is_some());
    }
}

async fn run(warehouse: &dyn Warehouse, sql: &str) -> Vec<Vec<String>> {
    let guarded = match SqlGuard::new(warehouse.dialect(), None).check(sql, 100_000) {
        Ok(guarded) => guarded,
        Err(error) => panic!("the guard refused ({error}):\n{sql}"),
    };
    let result = match warehouse
        .execute(&guarded, Duration::from_secs(30), &CancellationToken::new())
        .await
    {
        Ok(result) => result,
        Err(error) => panic!("query failed: {error}\n{sql}"),
    };
    result.rows.iter().map(|row| row.iter().map(cell).collect()).collect()
}

async fn sqlite_shop(dir: &Path) -> String {
    let path = dir.join("shop.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for statement in statements(("1", "0"), "REAL") {
        connection.execute(statement.as_str()).await.unwrap();
    }
    connection.close().await.unwrap();
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn every_dbt_metric_is_answered_like_hand_written_sql_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_shop(dir.path()).await;
    Shop::open(&url).await.answers_every_metric().await;
}

#[tokio::test]
async fn every_dbt_metric_is_answered_like_hand_written_sql_on_postgres() {
    let name = format!("threadql_test_dbt_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{POSTGRES}/postgres")).await.unwrap();
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let url = format!("{POSTGRES}/{name}");
    let outcome = {
        let mut connection = PgConnection::connect(&url).await.unwrap();
        for statement in statements(("TRUE", "FALSE"), "NUMERIC(10,2)") {
            connection.execute(statement.as_str()).await.unwrap();
        }
        connection.close().await.unwrap();
        let shop = Shop::open(&url).await;
        let outcome = tokio::spawn(async move { shop.answers_every_metric().await }).await;
        outcome
    };
    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

fn run_check(workdir: &Path, warehouse_url: &str, dbt: Option<&Path>, config: Option<&Path>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_threadql"));
    command
        .args(["model", "--check"])
        .current_dir(workdir)
        .env_remove("DATABASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("THREADQL_CONFIG")
        .env_remove("THREADQL_DBT_PROJECT")
        .env("WAREHOUSE_URL", warehouse_url);
    if let Some(dbt) = dbt {
        command.env("THREADQL_DBT_PROJECT", dbt);
    }
    if let Some(config) = config {
        command.env("THREADQL_CONFIG", config);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status.success(), format!("{stdout}{stderr}"))
}

fn line_containing(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|line| line.contains(needle))
        .unwrap()
        + 1
}

#[tokio::test]
async fn model_check_reports_the_unsupported_cumulative_metric_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_shop(dir.path()).await;
    let (ok, output) = run_check(dir.path(), &url, Some(&project()), None);
    let file = project().join("models/marts/orders.yml");
    let line = line_containing(&file, "name: revenue_last_7_days");
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!(
            "{}:{line}: metric 'revenue_last_7_days' (cumulative)",
            file.display()
        )),
        "{output}"
    );
    assert_eq!(
        output.lines().filter(|l| l.contains(": ")).count(),
        1,
        "only that problem:\n{output}"
    );
}

#[tokio::test]
async fn model_check_reports_an_unknown_column_and_a_failing_metric_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_shop(dir.path()).await;
    let config = dir.path().join("threadql.toml");
    std::fs::write(
        &config,
        r#"[[tables]]
name = "orders"
columns = ["order_id", "amount", "discount"]

[[metrics]]
name = "discounts"
table = "orders"
expression = "SUM(orders.discount)"
format = "money"

[[metrics]]
name = "broken total"
table = "orders"
expression = "SUM(orders.amount) + ABS(orders.amount, orders.amount)"
format = "money"
"#,
    )
    .unwrap();
    let (ok, output) = run_check(dir.path(), &url, None, Some(&config));
    assert!(!ok, "{output}");
    let at = |needle: &str| format!("{}:{}:", config.display(), line_containing(&config, needle));
    assert!(
        output.contains(&format!(
            "{} column 'discount' is not in warehouse table 'orders'",
            at("columns = [")
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "{} metric 'broken total': its SQL fails",
            at("name = \"broken total\"")
        )),
        "{output}"
    );
}

#[tokio::test]
async fn model_check_passes_a_model_without_problems() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_shop(dir.path()).await;
    let config = dir.path().join("threadql.toml");
    std::fs::write(
        &config,
        "[[tables]]\nname = \"orders\"\ncolumns = [\"order_id\", \"amount\"]\n\n[[metrics]]\nname = \"sales\"\n\
         table = \"orders\"\nexpression = \"SUM(orders.amount)\"\nformat = \"money\"\n",
    )
    .unwrap();
    let (ok, output) = run_check(dir.path(), &url, None, Some(&config));
    assert!(ok, "{output}");
    assert!(output.contains("no problems"), "{output}");
}
