//! Questions over warehouses nobody modelled: the model is derived from the schema exactly as
//! the server derives it (`load_model`, then the dimensions' distinct values), the rules
//! interpreter answers over it, and each answer (interpreted, compiled, guarded, run) is
//! compared with the rows of SQL written by hand. Every schema runs on SQLite and Postgres;
//! each Postgres test creates its own database and drops it at the end.
// Helpers outside #[test] functions unwrap too: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::postgres::PgPool;
use threadql::config::Config;
use threadql::domain::Value;
use threadql::interpret::load::load_model;
use threadql::interpret::{Interpretation, ProposedQuery, RulesInterpreter, SemanticModel};
use threadql::sql::SqlGuard;
use threadql::startup::{connect_warehouse, load_dimension_values};
use threadql::warehouse::Warehouse;
use tokio_util::sync::CancellationToken;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// The day relative phrases ("last month") resolve against.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// Where a schema lives: a SQLite file in a temporary directory, or a Postgres database named
/// `threadql_test_<uuid>` that [`Place::remove`] drops.
enum Place {
    /// Kept only so the directory lives as long as the warehouse.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres(String),
}

impl Place {
    /// Creates the place and runs `statements` (DDL and inserts) in it; returns its URL.
    async fn create(engine: Engine, statements: &str) -> (Self, String) {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("warehouse.db").display());
                let options = url
                    .parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .unwrap()
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
                sqlx::raw_sql(statements).execute(&pool).await.unwrap();
                pool.close().await;
                (Place::Sqlite { _dir: dir }, url)
            }
            Engine::Postgres => {
                let name = format!("threadql_test_{}", uuid::Uuid::new_v4().simple());
                let admin = PgPool::connect(&format!("{SERVER}/postgres")).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let url = format!("{SERVER}/{name}");
                let pool = PgPool::connect(&url).await.unwrap();
                let result = sqlx::raw_sql(statements).execute(&pool).await;
                pool.close().await;
                let place = Place::Postgres(name);
                if let Err(error) = result {
                    place.remove().await;
                    panic!("setting up the schema failed: {error}");
                }
                (place, url)
            }
        }
    }

    async fn remove(self) {
        if let Place::Postgres(name) = self {
            let admin = PgPool::connect(&format!("{SERVER}/postgres")).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

/// One warehouse with the model the server would derive for it and the interpreter over it.
struct Derived {
    engine: &'static str,
    warehouse: Arc<dyn Warehouse>,
    interpreter: RulesInterpreter,
    place: Option<Place>,
}

fn config_for(url: &str, model_path: Option<&std::path::Path>) -> Config {
    let mut vars: HashMap<&str, String> = HashMap::from([("WAREHOUSE_URL", url.to_string())]);
    if let Some(path) = model_path {
        vars.insert("THREADQL_CONFIG", path.display().to_string());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

impl Derived {
    async fn new(engine: Engine, statements: &str) -> Self {
        let (place, url) = Place::create(engine, statements).await;
        let config = config_for(&url, None);
        let mut derived = Self::from_config(engine.name(), &config).await;
        derived.place = Some(place);
        derived
    }

    /// The server's steps: connect, load the model (configured or derived), read the values.
    async fn from_config(engine: &'static str, config: &Config) -> Self {
        let warehouse = connect_warehouse(config).await.unwrap();
        let model = load_model(config, warehouse.as_ref()).await.unwrap();
        let guard = SqlGuard::new(warehouse.dialect(), None);
        let values = load_dimension_values(&model, warehouse.as_ref(), &guard, config).await;
        let interpreter = RulesInterpreter::new(model, values, warehouse.dialect());
        Self {
            engine,
            warehouse,
            interpreter,
            place: None,
        }
    }

    fn model(&self) -> &SemanticModel {
        self.interpreter.model()
    }

    async fn finish(mut self) {
        if let Some(place) = self.place.take() {
            place.remove().await;
        }
    }

    /// Interprets each text in turn as one thread would, each refining the previous answer.
    fn thread(&self, texts: &[&str]) -> Result<ProposedQuery, String> {
        let mut current: Option<ProposedQuery> = None;
        for text in texts {
            match self.interpreter.interpret_text(text, current.as_ref(), today()) {
                Interpretation::Query(query) => current = Some(*query),
                other => return Err(format!("'{text}' was not interpreted as a query: {other:?}")),
            }
        }
        current.ok_or_else(|| "no texts".to_string())
    }

    /// What the interpreter says to a text that is not a query (a clarifying question or a
    /// refusal), as text.
    fn reply(&self, text: &str) -> String {
        match self.interpreter.interpret_text(text, None, today()) {
            Interpretation::Query(query) => panic!("{}: '{text}' was answered: {}", self.engine, query.sql),
            other => format!("{other:?}"),
        }
    }

    async fn run(&self, sql: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
        let guarded = SqlGuard::new(self.warehouse.dialect(), None)
            .check(sql, 100_000)
            .map_err(|error| format!("the guard refused ({error}):\n{sql}"))?;
        let result = self
            .warehouse
            .execute(&guarded, Duration::from_secs(30), &CancellationToken::new())
            .await
            .map_err(|error| format!("the query failed ({error}):\n{sql}"))?;
        let columns = result.columns.iter().map(|c| c.name.clone()).collect();
        let rows = result.rows.iter().map(|row| row.iter().map(cell).collect()).collect();
        Ok((columns, rows))
    }

    /// The thread's answer compared with the hand-written SQL's rows (values only: column
    /// names are the interpreter's to choose). `ordered` also compares row order.
    async fn check(&self, case: &Case) -> Result<(), String> {
        let proposed = self.thread(case.texts)?;
        let (_, mut got) = self.run(&proposed.sql).await?;
        let (_, mut want) = self.run(case.sql).await.map_err(|e| format!("hand-written SQL: {e}"))?;
        if want.is_empty() {
            return Err("the hand-written SQL returns no rows, the case proves nothing".into());
        }
        if !case.ordered {
            got.sort();
            want.sort();
        }
        if got != want {
            return Err(format!(
                "rows differ\ncompiled:\n{}\ngot:  {got:?}\nwant: {want:?}",
                proposed.sql
            ));
        }
        Ok(())
    }

    /// Runs every case and reports all failures at once.
    async fn check_all(&self, cases: &[Case]) -> Vec<String> {
        let mut failures = Vec::new();
        for case in cases {
            if let Err(error) = self.check(case).await {
                failures.push(format!("{} {:?}: {error}", self.engine, case.texts));
            }
        }
        failures
    }
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

/// A question (or a refinement sequence) and the SQL that answers it by hand.
struct Case {
    texts: &'static [&'static str],
    sql: &'static str,
    ordered: bool,
}

const fn case(texts: &'static [&'static str], sql: &'static str) -> Case {
    Case {
        texts,
        sql,
        ordered: false,
    }
}

const fn ordered(texts: &'static [&'static str], sql: &'static str) -> Case {
    Case {
        texts,
        sql,
        ordered: true,
    }
}

/// No metric of a derived model sums or averages a key column.
fn assert_no_metric_over_a_key(model: &SemanticModel) {
    for metric in &model.metrics {
        for definition in metric.definitions() {
            let lower = definition.expression.to_lowercase();
            let over_key = ["sum(", "avg("].iter().any(|f| lower.contains(f))
                && (lower.contains("id)")
                    || lower.contains("key)")
                    || lower.contains("_id")
                    || lower.contains("key\""));
            assert!(
                !over_key,
                "metric {} aggregates a key: {}",
                metric.name, definition.expression
            );
        }
    }
}

async fn run_schema(engine: Engine, statements: &str, cases: &[Case], clarifications: &[(&str, &[&str])]) {
    let derived = Derived::new(engine, statements).await;
    assert_no_metric_over_a_key(derived.model());
    let mut failures = derived.check_all(cases).await;
    for (text, options) in clarifications {
        let reply = derived.reply(text);
        if !reply.contains("Clarify") || !options.iter().all(|o| reply.contains(o)) {
            failures.push(format!(
                "{engine:?} '{text}': expected a question naming {options:?}, got {reply}"
            ));
        }
    }
    let model = derived.model().to_toml().unwrap();
    derived.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\n\nmodel:\n{model}",
        failures.len(),
        cases.len() + clarifications.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// (b) snake_case, `*_id` columns, no declared keys: joins are inferred from names and checked.

const SNAKE: &str = "
CREATE TABLE regions (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL);
CREATE TABLE territories (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, region_id INTEGER NOT NULL);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY, name VARCHAR(80) NOT NULL, segment VARCHAR(20) NOT NULL,
    country VARCHAR(40) NOT NULL, credit_limit NUMERIC(12,2) NOT NULL, signup_dt DATE NOT NULL,
    territory_id INTEGER NOT NULL);
CREATE TABLE invoices (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, issued_on DATE NOT NULL, paid_on DATE,
    total_amount NUMERIC(12,2) NOT NULL, status VARCHAR(20) NOT NULL);
INSERT INTO regions VALUES (1, 'North'), (2, 'South');
INSERT INTO territories VALUES (1, 'Alpine', 1), (2, 'Baltic', 1), (3, 'Coastal', 2);
INSERT INTO accounts VALUES
    (1, 'Acme Ltd', 'enterprise', 'Germany', 50000, '2019-03-04', 1),
    (2, 'Birch Co', 'smb', 'Sweden', 8000, '2024-06-10', 2),
    (3, 'Cobalt AG', 'enterprise', 'Austria', 70000, '2026-10-12', 1),
    (4, 'Dune SA', 'smb', 'Spain', 5000, '2024-02-01', 3),
    (5, 'Ember plc', 'midmarket', 'Portugal', 20000, '2026-10-30', 3),
    (6, 'Fjord AS', 'midmarket', 'Norway', 15000, '2019-11-20', 2);
INSERT INTO invoices VALUES
    (1, 1, '2019-05-01', '2019-05-20', 1200.00, 'paid'),
    (2, 1, '2024-01-15', '2024-02-01', 800.00, 'paid'),
    (3, 2, '2024-07-01', NULL, 450.50, 'open'),
    (4, 3, '2026-10-20', '2026-11-02', 3000.00, 'paid'),
    (5, 4, '2019-08-08', '2019-09-01', 90.00, 'paid'),
    (6, 5, '2026-10-31', '2026-10-31', 610.00, 'paid'),
    (7, 6, '2026-11-05', NULL, 240.00, 'overdue'),
    (8, 6, '2019-12-30', '2020-01-10', 75.25, 'paid'),
    (9, 2, '2026-09-15', '2026-10-15', 330.00, 'paid'),
    (10, 4, '2024-03-03', NULL, 120.00, 'void');
";

const SNAKE_CASES: &[Case] = &[
    case(&["invoices"], "SELECT COUNT(*) FROM invoices"),
    case(
        &["total amount by status"],
        "SELECT status, SUM(total_amount) FROM invoices GROUP BY status",
    ),
    case(
        &["invoices by segment"],
        "SELECT a.segment, COUNT(*) FROM invoices i JOIN accounts a ON a.id = i.account_id GROUP BY a.segment",
    ),
    case(
        &["invoices by region"],
        "SELECT r.name, COUNT(*) FROM invoices i JOIN accounts a ON a.id = i.account_id \
         JOIN territories t ON t.id = a.territory_id JOIN regions r ON r.id = t.region_id GROUP BY r.name",
    ),
    case(
        &["total amount by territory"],
        "SELECT t.name, SUM(i.total_amount) FROM invoices i JOIN accounts a ON a.id = i.account_id \
         JOIN territories t ON t.id = a.territory_id GROUP BY t.name",
    ),
    case(
        &["invoices in 2019"],
        "SELECT COUNT(*) FROM invoices WHERE issued_on >= '2019-01-01' AND issued_on < '2020-01-01'",
    ),
    case(
        &["invoices issued in 2019"],
        "SELECT COUNT(*) FROM invoices WHERE issued_on >= '2019-01-01' AND issued_on < '2020-01-01'",
    ),
    case(
        &["invoices paid last month"],
        "SELECT COUNT(*) FROM invoices WHERE paid_on >= '2026-10-01' AND paid_on < '2026-11-01'",
    ),
    case(
        &["invoices issued last month"],
        "SELECT COUNT(*) FROM invoices WHERE issued_on >= '2026-10-01' AND issued_on < '2026-11-01'",
    ),
    case(
        &["total amount paid in 2020"],
        "SELECT SUM(total_amount) FROM invoices WHERE paid_on >= '2020-01-01' AND paid_on < '2021-01-01'",
    ),
    case(
        &["accounts signed up in 2024"],
        "SELECT COUNT(*) FROM accounts WHERE signup_dt >= '2024-01-01' AND signup_dt < '2025-01-01'",
    ),
    case(
        &["accounts by segment"],
        "SELECT segment, COUNT(*) FROM accounts GROUP BY segment",
    ),
    case(
        &["credit limit by country"],
        "SELECT country, SUM(credit_limit) FROM accounts GROUP BY country",
    ),
    case(
        &["accounts by regions"],
        "SELECT r.name, COUNT(*) FROM accounts a JOIN territories t ON t.id = a.territory_id \
         JOIN regions r ON r.id = t.region_id GROUP BY r.name",
    ),
    case(
        &["invoices by statuses"],
        "SELECT status, COUNT(*) FROM invoices GROUP BY status",
    ),
    case(
        &["paid invoices"],
        "SELECT COUNT(*) FROM invoices WHERE status = 'paid'",
    ),
    case(
        &["invoices by segment", "only enterprise"],
        "SELECT a.segment, COUNT(*) FROM invoices i JOIN accounts a ON a.id = i.account_id \
         WHERE a.segment = 'enterprise' GROUP BY a.segment",
    ),
    case(
        &["total amount by region", "by territory instead"],
        "SELECT t.name, SUM(i.total_amount) FROM invoices i JOIN accounts a ON a.id = i.account_id \
         JOIN territories t ON t.id = a.territory_id GROUP BY t.name",
    ),
    ordered(
        &["top 3 accounts by total amount"],
        "SELECT a.name, SUM(i.total_amount) AS s FROM invoices i JOIN accounts a ON a.id = i.account_id \
         GROUP BY a.name ORDER BY s DESC LIMIT 3",
    ),
    ordered(
        &["top 2 accounts by credit limit"],
        "SELECT name, SUM(credit_limit) AS s FROM accounts GROUP BY name ORDER BY s DESC LIMIT 2",
    ),
    case(
        &["total amount for Acme Ltd"],
        "SELECT SUM(i.total_amount) FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.name = 'Acme Ltd'",
    ),
];

#[tokio::test]
async fn snake_case_schema_without_declared_keys_on_sqlite() {
    run_schema(Engine::Sqlite, SNAKE, SNAKE_CASES, &[]).await;
}

#[tokio::test]
async fn snake_case_schema_without_declared_keys_on_postgres() {
    run_schema(Engine::Postgres, SNAKE, SNAKE_CASES, &[]).await;
}
