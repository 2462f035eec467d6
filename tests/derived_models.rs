//! Questions over warehouses nobody modelled: the model is derived from the schema exactly as
//! the server derives it (`load_model`, then the dimensions' distinct values), the rules
//! interpreter answers over it, and each answer (interpreted, compiled, guarded, run) is
//! compared with the rows of SQL written by hand. Every schema runs on SQLite, Postgres and
//! MariaDB; each Postgres or MariaDB test creates its own database and drops it at the end.
// Helpers outside #[test] functions unwrap too: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::postgres::PgPool;
use threadql::config::Config;
use threadql::domain::Value;
use threadql::interpret::load::{load_model, ModelRefresh};
use threadql::interpret::{
    InterpretRequest, Interpretation, Interpreter, PendingClarification, ProposedQuery, RulesInterpreter, SemanticModel,
};
use threadql::sql::SqlGuard;
use threadql::startup::connect_warehouse;
use threadql::warehouse::Warehouse;
use threadql_testkit::TestMySqlDatabase;
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
    MariaDb,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mariadb",
        }
    }
}

/// Where a schema lives: a SQLite file in a temporary directory, or a Postgres or MariaDB
/// database named `threadql_test_<uuid>` that [`Place::remove`] drops.
enum Place {
    /// Kept only so the directory lives as long as the warehouse.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres(String),
    /// The database is dropped with its guard.
    MariaDb {
        _db: TestMySqlDatabase,
    },
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
            Engine::MariaDb => {
                let db = TestMySqlDatabase::create().await;
                // The schemas quote identifiers the standard way, as ANSI_QUOTES reads them.
                db.execute(&format!(
                    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES');\n{statements}"
                ))
                .await;
                let url = db.url().to_string();
                (Place::MariaDb { _db: db }, url)
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
    /// MySQL reads `"x"` as a string: the hand-written SQL's identifiers get backquotes there.
    backquoted: bool,
    url: String,
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
        let mut derived = Self::from_config(engine.name(), &url, &config).await;
        derived.backquoted = matches!(engine, Engine::MariaDb);
        derived.place = Some(place);
        derived
    }

    /// The server's steps: connect, load the model (configured or derived), read the values.
    async fn from_config(engine: &'static str, url: &str, config: &Config) -> Self {
        let warehouse = connect_warehouse(config).await.unwrap();
        let loaded = load_model(config, warehouse.as_ref(), config.query_timeout)
            .await
            .unwrap();
        let interpreter = RulesInterpreter::new(loaded.model, loaded.values, warehouse.dialect());
        Self {
            engine,
            backquoted: false,
            url: url.to_string(),
            warehouse,
            interpreter,
            place: None,
        }
    }

    fn model(&self) -> Arc<SemanticModel> {
        self.interpreter.model()
    }

    async fn finish(mut self) {
        if let Some(place) = self.place.take() {
            place.remove().await;
        }
    }

    /// Interprets each text in turn as one thread would, each refining the previous answer; a
    /// text after a clarifying question answers it (the server passes the pending question).
    async fn thread(&self, texts: &[&str]) -> Result<ProposedQuery, String> {
        let mut current: Option<ProposedQuery> = None;
        let mut pending: Option<PendingClarification> = None;
        for text in texts {
            let request = InterpretRequest {
                text,
                current: current.as_ref(),
                today: today(),
                history: &[],
                clarifying: pending.as_ref(),
                access: None,
            };
            match self.interpreter.interpret(request).await.map_err(|e| e.to_string())? {
                Interpretation::Query(query) => {
                    current = Some(*query);
                    pending = None;
                }
                Interpretation::Clarify(asked) => {
                    pending = Some(PendingClarification {
                        question: text.to_string(),
                        asked,
                    })
                }
                other => return Err(format!("'{text}' was not interpreted as a query: {other:?}")),
            }
        }
        match pending {
            Some(pending) => Err(format!("the thread ends with a question: {}", pending.asked)),
            None => current.ok_or_else(|| "no texts".to_string()),
        }
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
        let proposed = self.thread(case.texts).await?;
        let (_, mut got) = self.run(&proposed.sql).await?;
        let sql = if self.backquoted {
            case.sql.replace('"', "`")
        } else {
            case.sql.to_string()
        };
        let (_, mut want) = self.run(&sql).await.map_err(|e| format!("hand-written SQL: {e}"))?;
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
    assert_no_metric_over_a_key(&derived.model());
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

    // `threadql model` prints this TOML: saved and loaded as THREADQL_CONFIG, the same answers.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threadql.toml");
    std::fs::write(&path, &model).unwrap();
    let mut configured =
        Derived::from_config(derived.engine, &derived.url, &config_for(&derived.url, Some(&path))).await;
    configured.backquoted = derived.backquoted;
    assert_eq!(
        *configured.model(),
        *derived.model(),
        "the model read back from its TOML differs"
    );
    for failure in configured.check_all(cases).await {
        failures.push(format!("from the printed model: {failure}"));
    }
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

#[tokio::test]
async fn snake_case_schema_without_declared_keys_on_mariadb() {
    run_schema(Engine::MariaDb, SNAKE, SNAKE_CASES, &[]).await;
}

// ---------------------------------------------------------------------------------------------
// (a) TPC-H-like: prefixed, abbreviated names with declared primary and foreign keys.

const TPCH: &str = "
CREATE TABLE region (r_regionkey INTEGER PRIMARY KEY, r_name VARCHAR(25) NOT NULL, r_comment VARCHAR(152));
CREATE TABLE nation (n_nationkey INTEGER PRIMARY KEY, n_name VARCHAR(25) NOT NULL,
    n_regionkey INTEGER NOT NULL REFERENCES region (r_regionkey), n_comment VARCHAR(152));
CREATE TABLE customer (c_custkey INTEGER PRIMARY KEY, c_name VARCHAR(25) NOT NULL, c_address VARCHAR(40) NOT NULL,
    c_nationkey INTEGER NOT NULL REFERENCES nation (n_nationkey), c_phone VARCHAR(15) NOT NULL,
    c_acctbal NUMERIC(15,2) NOT NULL, c_mktsegment VARCHAR(10) NOT NULL, c_comment VARCHAR(117));
CREATE TABLE supplier (s_suppkey INTEGER PRIMARY KEY, s_name VARCHAR(25) NOT NULL, s_address VARCHAR(40) NOT NULL,
    s_nationkey INTEGER NOT NULL REFERENCES nation (n_nationkey), s_phone VARCHAR(15) NOT NULL,
    s_acctbal NUMERIC(15,2) NOT NULL, s_comment VARCHAR(101));
CREATE TABLE part (p_partkey INTEGER PRIMARY KEY, p_name VARCHAR(55) NOT NULL, p_brand VARCHAR(10) NOT NULL,
    p_type VARCHAR(25) NOT NULL, p_size INTEGER NOT NULL, p_retailprice NUMERIC(15,2) NOT NULL);
CREATE TABLE orders (o_orderkey INTEGER PRIMARY KEY, o_custkey INTEGER NOT NULL REFERENCES customer (c_custkey),
    o_orderstatus CHAR(1) NOT NULL, o_totalprice NUMERIC(15,2) NOT NULL, o_orderdate DATE NOT NULL,
    o_orderpriority VARCHAR(15) NOT NULL, o_clerk VARCHAR(15) NOT NULL);
CREATE TABLE lineitem (l_orderkey INTEGER NOT NULL REFERENCES orders (o_orderkey), l_linenumber INTEGER NOT NULL,
    l_partkey INTEGER NOT NULL REFERENCES part (p_partkey), l_suppkey INTEGER NOT NULL REFERENCES supplier (s_suppkey),
    l_quantity NUMERIC(15,2) NOT NULL, l_extendedprice NUMERIC(15,2) NOT NULL, l_discount NUMERIC(15,2) NOT NULL,
    l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL, l_shipmode VARCHAR(10) NOT NULL,
    PRIMARY KEY (l_orderkey, l_linenumber));
INSERT INTO region VALUES (0, 'AMERICA', 'the americas'), (1, 'EUROPE', 'old world'), (2, 'ASIA', 'far east');
INSERT INTO nation VALUES (0, 'CANADA', 0, 'north'), (1, 'BRAZIL', 0, 'south'), (2, 'FRANCE', 1, 'west'),
    (3, 'GERMANY', 1, 'centre'), (4, 'JAPAN', 2, 'islands');
INSERT INTO customer VALUES
    (1, 'Customer#001', '12 Elm St', 0, '11-111', 711.56, 'BUILDING', 'quick brown'),
    (2, 'Customer#002', '3 Oak Ave', 2, '22-222', 121.65, 'AUTOMOBILE', 'lazy dog'),
    (3, 'Customer#003', '9 Pine Rd', 3, '33-333', 7498.12, 'AUTOMOBILE', 'jumps over'),
    (4, 'Customer#004', '1 Main St', 4, '44-444', 2866.83, 'MACHINERY', 'the fence'),
    (5, 'Customer#005', '5 High St', 1, '55-555', 794.47, 'HOUSEHOLD', 'slowly'),
    (6, 'Customer#006', '8 Low Rd', 2, '66-666', 7638.57, 'BUILDING', 'carefully');
INSERT INTO supplier VALUES
    (1, 'Supplier#001', '4 Mill Ln', 3, '77-777', 5755.94, 'reliable'),
    (2, 'Supplier#002', '6 Dock Rd', 4, '88-888', 4032.68, 'late'),
    (3, 'Supplier#003', '2 Quay St', 0, '99-999', -283.84, 'cheap');
INSERT INTO part VALUES
    (1, 'goldenrod lavender spring', 'Brand#13', 'PROMO BURNISHED COPPER', 7, 901.00),
    (2, 'blush thistle blue', 'Brand#13', 'LARGE BRUSHED BRASS', 1, 902.00),
    (3, 'spring green yellow', 'Brand#42', 'STANDARD POLISHED BRASS', 21, 903.00),
    (4, 'cornflower chocolate', 'Brand#34', 'SMALL PLATED BRASS', 14, 904.00);
INSERT INTO orders VALUES
    (1, 1, 'O', 1730.00, '2024-01-02', '5-LOW', 'Clerk#951'),
    (2, 2, 'F', 4005.00, '2024-03-15', '1-URGENT', 'Clerk#880'),
    (3, 3, 'F', 2540.00, '2025-06-30', '5-LOW', 'Clerk#955'),
    (4, 4, 'O', 910.50, '2026-10-05', '2-HIGH', 'Clerk#136'),
    (5, 5, 'P', 1500.00, '2026-11-03', '1-URGENT', 'Clerk#925'),
    (6, 6, 'F', 3300.00, '2023-12-20', '3-MEDIUM', 'Clerk#880'),
    (7, 3, 'O', 620.00, '2026-10-28', '2-HIGH', 'Clerk#136');
INSERT INTO lineitem VALUES
    (1, 1, 1, 1, 17, 1000.00, 0.04, '2024-01-10', '2024-01-20', '2024-01-25', 'TRUCK'),
    (1, 2, 2, 2, 36, 730.00, 0.09, '2024-01-12', '2024-01-22', '2024-02-03', 'MAIL'),
    (2, 1, 3, 3, 8, 4005.00, 0.10, '2024-03-20', '2024-03-30', '2024-04-02', 'SHIP'),
    (3, 1, 4, 1, 28, 2540.00, 0.00, '2025-07-02', '2025-07-10', '2025-07-12', 'AIR'),
    (4, 1, 1, 2, 24, 910.50, 0.05, '2026-10-06', '2026-10-15', '2026-10-20', 'TRUCK'),
    (5, 1, 2, 3, 32, 1500.00, 0.02, '2026-11-04', '2026-11-10', '2026-11-12', 'RAIL'),
    (6, 1, 3, 1, 38, 3300.00, 0.07, '2023-12-28', '2024-01-05', '2024-01-03', 'SHIP'),
    (7, 1, 4, 2, 5, 620.00, 0.01, '2026-10-30', '2026-11-06', '2026-11-02', 'AIR');
";

const TPCH_CASES: &[Case] = &[
    case(
        &["customers by market segment"],
        "SELECT c_mktsegment, COUNT(*) FROM customer GROUP BY c_mktsegment",
    ),
    case(
        &["sum of total price by order priority"],
        "SELECT o_orderpriority, SUM(o_totalprice) FROM orders GROUP BY o_orderpriority",
    ),
    case(
        &["orders in 2024"],
        "SELECT COUNT(*) FROM orders WHERE o_orderdate >= '2024-01-01' AND o_orderdate < '2025-01-01'",
    ),
    case(
        &["orders by region"],
        "SELECT r_name, COUNT(*) FROM orders JOIN customer ON c_custkey = o_custkey \
         JOIN nation ON n_nationkey = c_nationkey JOIN region ON r_regionkey = n_regionkey GROUP BY r_name",
    ),
    case(
        &["total price by nation"],
        "SELECT n_name, SUM(o_totalprice) FROM orders JOIN customer ON c_custkey = o_custkey \
         JOIN nation ON n_nationkey = c_nationkey GROUP BY n_name",
    ),
    case(
        &["quantity by ship mode"],
        "SELECT l_shipmode, SUM(l_quantity) FROM lineitem GROUP BY l_shipmode",
    ),
    case(
        &["quantity shipped in 2024"],
        "SELECT SUM(l_quantity) FROM lineitem WHERE l_shipdate >= '2024-01-01' AND l_shipdate < '2025-01-01'",
    ),
    case(
        &["quantity received in 2024"],
        "SELECT SUM(l_quantity) FROM lineitem WHERE l_receiptdate >= '2024-01-01' AND l_receiptdate < '2025-01-01'",
    ),
    case(
        &["quantity committed last month"],
        "SELECT SUM(l_quantity) FROM lineitem WHERE l_commitdate >= '2026-10-01' AND l_commitdate < '2026-11-01'",
    ),
    case(
        &["quantity by brand"],
        "SELECT p_brand, SUM(l_quantity) FROM lineitem JOIN part ON p_partkey = l_partkey GROUP BY p_brand",
    ),
    case(
        &["orders by order status"],
        "SELECT o_orderstatus, COUNT(*) FROM orders GROUP BY o_orderstatus",
    ),
    case(
        &["orders by market segment", "only automobile"],
        "SELECT c_mktsegment, COUNT(*) FROM orders JOIN customer ON c_custkey = o_custkey \
         WHERE c_mktsegment = 'AUTOMOBILE' GROUP BY c_mktsegment",
    ),
    case(
        &["orders in europe"],
        "SELECT COUNT(*) FROM orders JOIN customer ON c_custkey = o_custkey \
         JOIN nation ON n_nationkey = c_nationkey JOIN region ON r_regionkey = n_regionkey WHERE r_name = 'EUROPE'",
    ),
    case(
        &["total price by order priorities last month"],
        "SELECT o_orderpriority, SUM(o_totalprice) FROM orders \
         WHERE o_orderdate >= '2026-10-01' AND o_orderdate < '2026-11-01' GROUP BY o_orderpriority",
    ),
    case(
        &["customers by nations"],
        "SELECT n_name, COUNT(*) FROM customer JOIN nation ON n_nationkey = c_nationkey GROUP BY n_name",
    ),
    case(
        &["suppliers by region"],
        "SELECT r_name, COUNT(*) FROM supplier JOIN nation ON n_nationkey = s_nationkey \
         JOIN region ON r_regionkey = n_regionkey GROUP BY r_name",
    ),
    ordered(
        &["top 2 customers by total price"],
        "SELECT c_name, SUM(o_totalprice) AS s FROM orders JOIN customer ON c_custkey = o_custkey \
         GROUP BY c_name ORDER BY s DESC LIMIT 2",
    ),
    case(
        &["orders by region", "by nation instead"],
        "SELECT n_name, COUNT(*) FROM orders JOIN customer ON c_custkey = o_custkey \
         JOIN nation ON n_nationkey = c_nationkey GROUP BY n_name",
    ),
    case(
        &["orders in 2024", "by order priority"],
        "SELECT o_orderpriority, COUNT(*) FROM orders \
         WHERE o_orderdate >= '2024-01-01' AND o_orderdate < '2025-01-01' GROUP BY o_orderpriority",
    ),
    case(
        &["quantity by ship mode", "shipped in 2026"],
        "SELECT l_shipmode, SUM(l_quantity) FROM lineitem \
         WHERE l_shipdate >= '2026-01-01' AND l_shipdate < '2027-01-01' GROUP BY l_shipmode",
    ),
    ordered(
        &["top 2 customers by account balance"],
        "SELECT c_name, SUM(c_acctbal) AS s FROM customer GROUP BY c_name ORDER BY s DESC LIMIT 2",
    ),
    case(
        &["account balance by nation", "supplier account balance"],
        "SELECT n_name, SUM(s_acctbal) FROM supplier JOIN nation ON n_nationkey = s_nationkey GROUP BY n_name",
    ),
    case(
        &["suppliers in japan"],
        "SELECT COUNT(*) FROM supplier JOIN nation ON n_nationkey = s_nationkey WHERE n_name = 'JAPAN'",
    ),
    case(
        &["customer account balance for customer#003"],
        "SELECT SUM(c_acctbal) FROM customer WHERE c_name = 'Customer#003'",
    ),
    case(
        &["parts by brands"],
        "SELECT p_brand, COUNT(*) FROM part GROUP BY p_brand",
    ),
    // Shipped, committed or received: a time range over line items asks which, and the answer
    // names the date.
    case(
        &["quantity in 2024", "receipt date"],
        "SELECT SUM(l_quantity) FROM lineitem WHERE l_receiptdate >= '2024-01-01' AND l_receiptdate < '2025-01-01'",
    ),
    // A name is a breakdown only as a top N: asked for, then answered.
    ordered(
        &["total price by customer address", "top 3"],
        "SELECT c_address, SUM(o_totalprice) FROM orders JOIN customer ON c_custkey = o_custkey \
         GROUP BY c_address ORDER BY 2 DESC LIMIT 3",
    ),
    case(
        &["line items by ship mode", "only truck and air"],
        "SELECT l_shipmode, COUNT(*) FROM lineitem WHERE l_shipmode IN ('TRUCK', 'AIR') GROUP BY l_shipmode",
    ),
];

/// Questions the derived TPC-H model must ask about, with the options the question names.
const TPCH_CLARIFICATIONS: &[(&str, &[&str])] = &[
    ("quantity in 2024", &["ship date", "commit date", "receipt date"]),
    ("line items by month", &["ship date", "commit date", "receipt date"]),
    // One value per customer: listed only as a top N.
    ("total price by customer address", &["top 10", "customer addresses"]),
    (
        "account balance by region",
        &["customer account balance", "supplier account balance"],
    ),
    (
        "account balance",
        &["customer account balance", "supplier account balance"],
    ),
];

#[tokio::test]
async fn prefixed_schema_with_declared_keys_on_sqlite() {
    run_schema(Engine::Sqlite, TPCH, TPCH_CASES, TPCH_CLARIFICATIONS).await;
}

#[tokio::test]
async fn prefixed_schema_with_declared_keys_on_postgres() {
    run_schema(Engine::Postgres, TPCH, TPCH_CASES, TPCH_CLARIFICATIONS).await;
}

#[tokio::test]
async fn prefixed_schema_with_declared_keys_on_mariadb() {
    run_schema(Engine::MariaDb, TPCH, TPCH_CASES, TPCH_CLARIFICATIONS).await;
}

#[tokio::test]
async fn help_on_a_large_derived_model_lists_the_central_tables_first_and_the_rest_on_request() {
    // Arrange
    let derived = Derived::new(Engine::Sqlite, TPCH).await;

    // Act
    let help = derived.interpreter.help();
    let metrics_help = derived.reply("help metrics");
    let table_help = derived.reply("help supplier");
    derived.finish().await;

    // Assert
    let line = |prefix: &str| {
        help.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
            .to_string()
    };
    let metrics = line("Metrics:");
    let breakdowns = line("Break down by:");
    assert!(metrics.matches(", ").count() < 12 + 10, "{help}");
    assert!(
        metrics.contains("orders") && metrics.contains("extended price"),
        "{help}"
    );
    assert!(
        !metrics.contains("regions ("),
        "a lookup table's count is not among the first: {help}"
    );
    assert!(
        !breakdowns.contains("address") && !breakdowns.contains("phone"),
        "{help}"
    );
    assert!(help.contains("help metrics"), "{help}");
    assert!(metrics_help.contains("supplier account balance"), "{metrics_help}");
    assert!(metrics_help.contains("regions"), "{metrics_help}");
    assert!(table_help.contains("supplier address"), "{table_help}");
}

// ---------------------------------------------------------------------------------------------
// (c) CamelCase tables and columns, keys named after the table, comments (Postgres only: SQLite
// has none) and no declared foreign keys.

// ---------------------------------------------------------------------------------------------
// (d) Tables named `<domain>_<entity>`, every column prefixed with the table's abbreviation, the
// same columns in every table (status, segment, amounts, dates): the shape of the bench's
// 500-table warehouse, small enough to read.

const DOMAINS: &str = "
CREATE TABLE sales_account (sacct_id INTEGER PRIMARY KEY, sacct_name VARCHAR(40) NOT NULL,
    sacct_status VARCHAR(20) NOT NULL, sacct_seg VARCHAR(20) NOT NULL, sacct_qty INTEGER NOT NULL,
    sacct_created_dt DATE NOT NULL, sacct_closed_dt DATE);
CREATE TABLE billing_account (bacct_id INTEGER PRIMARY KEY, bacct_name VARCHAR(40) NOT NULL,
    bacct_status VARCHAR(20) NOT NULL, bacct_seg VARCHAR(20) NOT NULL, bacct_qty INTEGER NOT NULL,
    bacct_created_dt DATE NOT NULL, bacct_closed_dt DATE,
    bacct_sales_account_id INTEGER NOT NULL REFERENCES sales_account (sacct_id));
CREATE TABLE marketing_campaign (mcmp_id INTEGER PRIMARY KEY, mcmp_name VARCHAR(40) NOT NULL,
    mcmp_status VARCHAR(20) NOT NULL, mcmp_seg VARCHAR(20) NOT NULL, mcmp_qty INTEGER NOT NULL,
    mcmp_created_dt DATE NOT NULL, mcmp_closed_dt DATE,
    mcmp_billing_account_id INTEGER NOT NULL REFERENCES billing_account (bacct_id));
INSERT INTO sales_account VALUES
    (1, 'North desk', 'open', 'SMB', 3, '2024-01-10', NULL),
    (2, 'South desk', 'closed', 'Enterprise', 9, '2023-05-02', '2024-03-01');
INSERT INTO billing_account VALUES
    (1, 'Acme billing', 'active', 'SMB', 5, '2024-02-01', NULL, 1),
    (2, 'Birch billing', 'suspended', 'Enterprise', 12, '2024-08-15', NULL, 1),
    (3, 'Cobalt billing', 'active', 'Enterprise', 7, '2025-01-20', '2025-06-30', 2),
    (4, 'Dune billing', 'active', 'SMB', 1, '2023-11-11', NULL, 2);
INSERT INTO marketing_campaign VALUES
    (1, 'Spring push', 'running', 'SMB', 40, '2024-03-01', NULL, 1),
    (2, 'Autumn push', 'done', 'Enterprise', 25, '2024-09-01', '2024-10-01', 2),
    (3, 'Winter push', 'running', 'SMB', 10, '2025-12-01', NULL, 2);
";

const DOMAINS_CASES: &[Case] = &[
    // Billing accounts join sales accounts, which have a status too: the accounts' own one.
    case(
        &["how many billing accounts by status"],
        "SELECT bacct_status, COUNT(*) FROM billing_account GROUP BY bacct_status",
    ),
    case(
        &["billing accounts by segment"],
        "SELECT bacct_seg, COUNT(*) FROM billing_account GROUP BY bacct_seg",
    ),
    // `bacct_created_dt`: the prefix is no part of the event.
    case(
        &["billing accounts created in 2024"],
        "SELECT COUNT(*) FROM billing_account WHERE bacct_created_dt >= '2024-01-01' AND bacct_created_dt < '2025-01-01'",
    ),
    case(
        &["sales accounts closed in 2024"],
        "SELECT COUNT(*) FROM sales_account WHERE sacct_closed_dt >= '2024-01-01' AND sacct_closed_dt < '2025-01-01'",
    ),
    // Every table has a quantity: the one of the accounts ranked.
    ordered(
        &["top 2 billing accounts by quantity"],
        "SELECT bacct_name, SUM(bacct_qty) AS q FROM billing_account GROUP BY bacct_name ORDER BY q DESC LIMIT 2",
    ),
    // "marketing" is one word, not "market ing".
    case(
        &["marketing campaigns by status"],
        "SELECT mcmp_status, COUNT(*) FROM marketing_campaign GROUP BY mcmp_status",
    ),
    case(
        &["marketing campaigns by billing account segment"],
        "SELECT b.bacct_seg, COUNT(*) FROM marketing_campaign m JOIN billing_account b ON b.bacct_id = m.mcmp_billing_account_id GROUP BY b.bacct_seg",
    ),
];

async fn domains_schema(engine: Engine) {
    run_schema(
        engine,
        DOMAINS,
        DOMAINS_CASES,
        &[("by status", &["billing account status", "sales account status"])],
    )
    .await;
    // A typo of a word every table has suggests the word, not every table's column.
    let derived = Derived::new(engine, DOMAINS).await;
    let reply = derived.reply("billing accounts by stauts");
    derived.finish().await;
    assert!(reply.contains(r#"Did you mean \"status\"?"#), "{reply}");
}

#[tokio::test]
async fn domain_prefixed_schema_on_sqlite() {
    domains_schema(Engine::Sqlite).await;
}

#[tokio::test]
async fn domain_prefixed_schema_on_postgres() {
    domains_schema(Engine::Postgres).await;
}

const CAMEL: &str = r#"
CREATE TABLE "Account" ("AccountId" INTEGER PRIMARY KEY, "AccountName" VARCHAR(60) NOT NULL,
    "AccountType" VARCHAR(20) NOT NULL);
CREATE TABLE "JournalEntry" ("EntryId" INTEGER PRIMARY KEY, "AccountId" INTEGER NOT NULL,
    "PostedDate" DATE NOT NULL, "DueDate" DATE NOT NULL, "DebitAmt" NUMERIC(12,2) NOT NULL,
    "CreditAmt" NUMERIC(12,2) NOT NULL, "Memo" VARCHAR(200));
INSERT INTO "Account" VALUES (1, 'Cash', 'Asset'), (2, 'Sales', 'Revenue'), (3, 'Rent', 'Expense'),
    (4, 'Loan', 'Liability');
INSERT INTO "JournalEntry" VALUES
    (1, 1, '2026-10-03', '2026-11-03', 500.00, 0, 'opening'),
    (2, 2, '2026-10-03', '2026-11-03', 0, 500.00, 'sale'),
    (3, 3, '2026-11-01', '2026-10-15', 1200.00, 0, 'rent november'),
    (4, 1, '2026-11-01', '2026-10-15', 0, 1200.00, 'rent paid'),
    (5, 4, '2025-06-30', '2025-07-30', 0, 10000.00, 'loan drawn'),
    (6, 1, '2025-06-30', '2025-07-30', 10000.00, 0, 'loan cash');
"#;

const CAMEL_COMMENTS: &str = r#"
COMMENT ON TABLE "JournalEntry" IS 'Ledger postings';
COMMENT ON COLUMN "JournalEntry"."DebitAmt" IS 'Amount debited, in EUR';
COMMENT ON COLUMN "JournalEntry"."CreditAmt" IS 'Amount credited, in EUR';
COMMENT ON COLUMN "JournalEntry"."Memo" IS 'Free text the bookkeeper wrote on the entry';
COMMENT ON TABLE "Account" IS 'Chart of accounts';
"#;

const CAMEL_CASES: &[Case] = &[
    case(
        &["debit amount by account type"],
        r#"SELECT a."AccountType", SUM(j."DebitAmt") FROM "JournalEntry" j JOIN "Account" a ON a."AccountId" = j."AccountId" GROUP BY a."AccountType""#,
    ),
    case(
        &["credit amount by account type in 2025"],
        r#"SELECT a."AccountType", SUM(j."CreditAmt") FROM "JournalEntry" j JOIN "Account" a ON a."AccountId" = j."AccountId"
           WHERE j."PostedDate" >= '2025-01-01' AND j."PostedDate" < '2026-01-01' GROUP BY a."AccountType""#,
    ),
    case(
        &["journal entries posted last month"],
        r#"SELECT COUNT(*) FROM "JournalEntry" WHERE "PostedDate" >= '2026-10-01' AND "PostedDate" < '2026-11-01'"#,
    ),
    case(
        &["journal entries due last month"],
        r#"SELECT COUNT(*) FROM "JournalEntry" WHERE "DueDate" >= '2026-10-01' AND "DueDate" < '2026-11-01'"#,
    ),
    case(
        &["journal entries for expense"],
        r#"SELECT COUNT(*) FROM "JournalEntry" j JOIN "Account" a ON a."AccountId" = j."AccountId" WHERE a."AccountType" = 'Expense'"#,
    ),
    case(
        &["accounts by account types"],
        r#"SELECT "AccountType", COUNT(*) FROM "Account" GROUP BY "AccountType""#,
    ),
    ordered(
        &["top 2 accounts by debit amount"],
        r#"SELECT a."AccountName", SUM(j."DebitAmt") AS s FROM "JournalEntry" j JOIN "Account" a ON a."AccountId" = j."AccountId"
           GROUP BY a."AccountName" ORDER BY s DESC LIMIT 2"#,
    ),
];

#[tokio::test]
async fn camel_case_schema_with_named_keys_on_sqlite() {
    run_schema(Engine::Sqlite, CAMEL, CAMEL_CASES, &[]).await;
}

#[tokio::test]
async fn camel_case_schema_with_comments_on_postgres() {
    run_schema(Engine::Postgres, &format!("{CAMEL}{CAMEL_COMMENTS}"), CAMEL_CASES, &[]).await;
}

/// MariaDB has no `COMMENT ON`: comments are table and column options.
const CAMEL_COMMENTS_MARIADB: &str = r#"
ALTER TABLE "JournalEntry" COMMENT = 'Ledger postings',
    MODIFY "DebitAmt" NUMERIC(12,2) NOT NULL COMMENT 'Amount debited, in EUR',
    MODIFY "CreditAmt" NUMERIC(12,2) NOT NULL COMMENT 'Amount credited, in EUR',
    MODIFY "Memo" VARCHAR(200) COMMENT 'Free text the bookkeeper wrote on the entry';
ALTER TABLE "Account" COMMENT = 'Chart of accounts';
"#;

#[tokio::test]
async fn camel_case_schema_with_comments_on_mariadb() {
    run_schema(
        Engine::MariaDb,
        &format!("{CAMEL}{CAMEL_COMMENTS_MARIADB}"),
        CAMEL_CASES,
        &[],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The model is read again in the background: a table created after start is answered.

#[tokio::test]
async fn a_table_created_after_start_is_answered_after_the_model_refresh() {
    // Arrange: a warehouse with accounts only, loaded as the server loads it at start.
    let (place, url) = Place::create(
        Engine::Postgres,
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, plan TEXT NOT NULL);
         INSERT INTO accounts VALUES (1, 'free'), (2, 'pro'), (3, 'pro');",
    )
    .await;
    let config = config_for(&url, None);
    let warehouse = connect_warehouse(&config).await.unwrap();
    let loaded = load_model(&config, warehouse.as_ref(), config.query_timeout)
        .await
        .unwrap();
    let guard = SqlGuard::new(warehouse.dialect(), Some(loaded.relations()));
    let rules = Arc::new(RulesInterpreter::new(loaded.model, loaded.values, warehouse.dialect()));
    let interpreter: Arc<dyn Interpreter> = rules.clone();
    let refresh = ModelRefresh::new(config.clone(), warehouse.clone(), interpreter, guard.clone());
    let ask = || rules.interpret_text("tickets by priority", None, today());
    assert!(matches!(ask(), Interpretation::NotUnderstood(_)), "{:?}", ask());
    sqlx::raw_sql(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, priority TEXT NOT NULL);
         INSERT INTO tickets VALUES (1, 1, 'high'), (2, 2, 'low'), (3, 2, 'high'), (4, 3, 'high');",
    )
    .execute(&PgPool::connect(&url).await.unwrap())
    .await
    .unwrap();
    assert!(
        guard.check("SELECT COUNT(*) FROM tickets", 1).is_err(),
        "the guard knows only the start's tables"
    );

    // Act
    refresh.refresh().await.unwrap();

    // Assert: the new table is understood, allowed by the guard and answered.
    let Interpretation::Query(proposed) = ask() else {
        panic!("not answered after the refresh: {:?}", ask());
    };
    let guarded = guard.check(&proposed.sql, 100).unwrap();
    let result = warehouse
        .execute(&guarded, Duration::from_secs(10), &CancellationToken::new())
        .await
        .unwrap();
    let mut rows: Vec<Vec<String>> = result.rows.iter().map(|row| row.iter().map(cell).collect()).collect();
    rows.sort();
    assert_eq!(rows, [["high", "3.00"], ["low", "1.00"]]);
    assert!(matches!(
        rules.interpret_text("tickets by account plan", None, today()),
        Interpretation::Query(_)
    ));
    place.remove().await;
}
