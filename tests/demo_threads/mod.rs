//! The rules interpreter's demo threads on another warehouse: the demo data set is generated in
//! SQLite once per test binary, each warehouse test loads the same rows into its engine, and
//! every thread must give the same answer there as on SQLite. Shared by the MySQL, Snowflake and
//! BigQuery warehouse tests.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use threadql::domain::Value;
use threadql::interpret::{Interpretation, ProposedQuery, RulesInterpreter, SemanticModel};
use threadql::sql::SqlGuard;
use threadql::warehouse::demo::ensure_demo_warehouse;
use threadql::warehouse::sqlite::SqliteWarehouse;
use threadql::warehouse::Warehouse;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// The demo tables, in the order their rows are copied (parents first).
pub const DEMO_TABLES: [&str; 5] = ["customers", "products", "orders", "order_items", "app_metrics"];

/// A Sunday: "last week" and "this week" are both visible in the data.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

/// One demo data set for the whole binary (generating it takes seconds).
pub async fn demo_path() -> &'static Path {
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

pub async fn demo_interpreter(warehouse: &dyn Warehouse) -> RulesInterpreter {
    let model = SemanticModel::demo().unwrap();
    let guard = SqlGuard::new(warehouse.dialect(), None);
    let mut values = Vec::new();
    for dimension in &model.dimensions {
        let sql = model.distinct_values_sql(&dimension.name, warehouse.dialect()).unwrap();
        let result = warehouse
            .execute(
                &guard.check(&sql, 1_000).unwrap(),
                Duration::from_secs(30),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let list: Vec<String> = result.rows.iter().map(|row| cell(&row[0])).collect();
        assert!(!list.is_empty(), "dimension {} has values", dimension.name);
        values.push((dimension.name.clone(), list));
    }
    RulesInterpreter::new(model, values, warehouse.dialect())
}

/// Numbers rounded to two decimals so engines agree; dates as ISO text.
pub fn cell(value: &Value) -> String {
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

/// The thread's answer on one warehouse: the compiled SQL, column names and rows as text.
async fn answer(
    interpreter: &RulesInterpreter,
    warehouse: &dyn Warehouse,
    texts: &[&str],
) -> Result<(String, Vec<String>, Vec<Vec<String>>), String> {
    let proposed = thread(interpreter, texts)?;
    let guarded = SqlGuard::new(warehouse.dialect(), None)
        .check(&proposed.sql, 100_000)
        .map_err(|error| format!("the guard refused ({error}):\n{}", proposed.sql))?;
    let result = warehouse
        .execute(&guarded, Duration::from_secs(60), &CancellationToken::new())
        .await
        .map_err(|error| format!("the query failed ({error}):\n{}", proposed.sql))?;
    let columns = result.columns.iter().map(|c| c.name.clone()).collect();
    let rows = result.rows.iter().map(|row| row.iter().map(cell).collect()).collect();
    Ok((proposed.sql, columns, rows))
}

/// The threads of `tests/rules_interpreter.rs` (each answered there against hand-written SQL on
/// SQLite), and whether their rows come in an order that matters (top N, time series).
pub const DEMO_THREADS: &[(&[&str], bool)] = &[
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

/// Asserts that every demo thread gets the same answer on `warehouse` (named `engine` in
/// failures) as on the demo data set in SQLite; all failures are reported at once.
pub async fn assert_same_answers_as_sqlite(engine: &str, warehouse: &dyn Warehouse) {
    let sqlite = SqliteWarehouse::connect(&demo_path().await.display().to_string())
        .await
        .unwrap();
    let on_sqlite = demo_interpreter(&sqlite).await;
    let on_engine = demo_interpreter(warehouse).await;

    // Act and assert: every thread, all failures reported at once.
    let mut failures = Vec::new();
    let mut compared = 0;
    for (texts, ordered) in DEMO_THREADS {
        let want = answer(&on_sqlite, &sqlite, texts).await;
        let got = answer(&on_engine, warehouse, texts).await;
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
                        "{texts:?}: answers differ\n{engine}:\n{got_sql}\n{got_columns:?}\n{got:?}\n\
                         SQLite:\n{want_sql}\n{want_columns:?}\n{want:?}"
                    ));
                }
                compared += 1;
            }
            (want, got) => failures.push(format!(
                "{texts:?}: SQLite {:?}, {engine} {:?}",
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
