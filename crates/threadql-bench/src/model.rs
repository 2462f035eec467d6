//! Scenario `model`: a model derived from a warehouse nobody modelled, at scale (issue 16).
//!
//! A Postgres database gets a generated schema of `--tables` tables in the style of real
//! warehouses (prefixed, abbreviated column names; half the tables declare their foreign keys,
//! half leave them to be inferred from names and checked against the data), each with
//! `--rows` rows. Then, as the server does at start and on every background refresh:
//! describe, infer and check joins, derive the model, read the dimensions' values
//! (`load_model`); and the rules interpreter answers questions over the result.
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use threadql::config::Config;
use threadql::interpret::derive::names::plural;
use threadql::interpret::load::load_model;
use threadql::interpret::{Interpretation, RulesInterpreter};
use threadql::warehouse::postgres::PostgresWarehouse;
use threadql::warehouse::Warehouse;
use threadql_testkit::TestDatabase;

#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Tables in the generated schema.
    #[arg(long, default_value_t = 500)]
    tables: usize,
    /// Rows per table.
    #[arg(long, default_value_t = 200)]
    rows: usize,
    /// Loads of the whole model (the first is start-up, the others background refreshes).
    #[arg(long, default_value_t = 3)]
    loads: usize,
    /// Times each question is interpreted.
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Writes the derived model here as threadql.toml (to read what was derived).
    #[arg(long)]
    model_out: Option<std::path::PathBuf>,
}

/// Table names are `<domain>_<entity>[_<qualifier>]` (`billing_invoice_archive`): 500 names
/// people could say, their columns prefixed with an abbreviation (`binva_totalamt`).
const DOMAINS: &[&str] = &[
    "sales",
    "billing",
    "support",
    "marketing",
    "finance",
    "logistics",
    "web",
    "mobile",
    "partner",
    "retail",
];
const ENTITIES: &[(&str, &str)] = &[
    ("account", "acct"),
    ("invoice", "inv"),
    ("shipment", "shp"),
    ("ticket", "tkt"),
    ("payment", "pmt"),
    ("customer", "cust"),
    ("product", "prod"),
    ("order", "ord"),
    ("contract", "ctr"),
    ("campaign", "cmp"),
];
const QUALIFIERS: &[&str] = &["", "archive", "daily", "history", "staging"];

pub async fn run(args: ModelArgs) -> anyhow::Result<()> {
    // Dropped (WITH FORCE) when the guard goes out of scope, whatever happens.
    let database = TestDatabase::try_create("threadql_bench_")
        .await
        .context("Failed to create the benchmark database (PostgreSQL on 127.0.0.1:5432)")?;
    let started = Instant::now();
    database.execute(&schema_sql(args.tables, args.rows)).await;
    println!(
        "generated {} tables x {} rows in {:.1} s",
        args.tables,
        args.rows,
        started.elapsed().as_secs_f64()
    );
    measure(&args, database.url()).await
}

async fn measure(args: &ModelArgs, url: &str) -> anyhow::Result<()> {
    let config = Config::from_lookup(|name| (name == "WAREHOUSE_URL").then(|| url.to_string()))?;
    let warehouse = PostgresWarehouse::connect(url).await?;
    let mut loads = Vec::new();
    let mut loaded = None;
    for _ in 0..args.loads.max(1) {
        let started = Instant::now();
        let model = load_model(&config, &warehouse, config.query_timeout).await?;
        loads.push(started.elapsed());
        loaded = Some(model);
    }
    let loaded = loaded.context("no load")?;
    if let Some(path) = &args.model_out {
        std::fs::write(path, loaded.model.to_toml()?).with_context(|| format!("Failed to write {}", path.display()))?;
    }
    println!(
        "model: {} tables, {} joins, {} metrics, {} dimensions, {} with values",
        loaded.model.tables.len(),
        loaded.model.joins.len(),
        loaded.model.metrics.len(),
        loaded.model.dimensions.len(),
        loaded.values.len()
    );
    let first = loads.first().copied().unwrap_or_default();
    let rest: Vec<Duration> = loads.iter().skip(1).copied().collect();
    println!(
        "load_model (describe, check joins, derive, values): start {:.0} ms; refreshes {}",
        first.as_secs_f64() * 1000.0,
        rest.iter()
            .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let started = Instant::now();
    let interpreter = RulesInterpreter::new(loaded.model, loaded.values, warehouse.dialect());
    println!(
        "rules interpreter built (vocabulary) in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).context("date")?;
    // Questions answered with a query, and the rest (a clarifying question, or "did you mean"
    // for a typo), timed apart.
    let mut answered: Vec<Duration> = Vec::new();
    let mut replied: Vec<Duration> = Vec::new();
    for question in questions(args.tables) {
        let first = interpreter.interpret_text(&question, None, today);
        let short = format!("{first:?}").chars().take(160).collect::<String>();
        let queried = matches!(first, Interpretation::Query(_));
        let mut own: Vec<Duration> = (0..args.repeats.max(1))
            .map(|_| {
                let started = Instant::now();
                let _ = interpreter.interpret_text(&question, None, today);
                started.elapsed()
            })
            .collect();
        own.sort();
        println!(
            "  {question:?} -> {} (median {:.2} ms)",
            if queried { "query".to_string() } else { short },
            own[own.len() / 2].as_secs_f64() * 1000.0
        );
        if queried {
            answered.extend(own);
        } else {
            replied.extend(own);
        }
    }
    for (what, mut timings) in [("answered", answered), ("not answered", replied)] {
        if timings.is_empty() {
            continue;
        }
        timings.sort();
        let at = |q: f64| {
            let index = ((timings.len() as f64 - 1.0) * q) as usize;
            timings.get(index).copied().unwrap_or_default().as_secs_f64() * 1000.0
        };
        println!(
            "interpretation, {what}: {} runs: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            timings.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    Ok(())
}

/// Table `i` and the prefix of its columns. Every table after the tenth points at an earlier
/// one; even tables declare the key, odd ones leave it to be inferred.
fn table(i: usize) -> (String, String) {
    let (entity, abbreviation) = ENTITIES[i % ENTITIES.len()];
    let domain = DOMAINS[(i / ENTITIES.len()) % DOMAINS.len()];
    let qualifier = QUALIFIERS[(i / (ENTITIES.len() * DOMAINS.len())) % QUALIFIERS.len()];
    let initial = |word: &str| word.chars().next().map(String::from).unwrap_or_default();
    let name = match qualifier {
        "" => format!("{domain}_{entity}"),
        _ => format!("{domain}_{entity}_{qualifier}"),
    };
    (name, format!("{}{abbreviation}{}", initial(domain), initial(qualifier)))
}

fn schema_sql(tables: usize, rows: usize) -> String {
    let mut sql = String::new();
    for i in 0..tables {
        let (name, p) = table(i);
        // One of the ten tables before it, spread so the schema is a web, not a chain.
        let parent = (i >= ENTITIES.len()).then(|| i - 1 - (i * 7) % ENTITIES.len());
        let parent_column = parent.map(|parent| {
            let (parent_name, parent_prefix) = table(parent);
            let reference = if i % 2 == 0 {
                format!(" REFERENCES {parent_name} ({parent_prefix}_id)")
            } else {
                String::new()
            };
            // Inferred keys are named after the table they point at: `<prefix>_<table>_id`.
            format!(", {p}_{parent_name}_id INTEGER{reference}")
        });
        sql.push_str(&format!(
            "CREATE TABLE {name} ({p}_id INTEGER PRIMARY KEY, {p}_name TEXT NOT NULL, {p}_status TEXT NOT NULL, \
             {p}_seg TEXT NOT NULL, {p}_totalamt NUMERIC(12,2) NOT NULL, {p}_qty INTEGER NOT NULL, \
             {p}_created_dt DATE NOT NULL, {p}_closed_dt DATE{});\n",
            parent_column.clone().unwrap_or_default()
        ));
        let parent_value = if parent.is_some() {
            format!(", 1 + (g % {rows})")
        } else {
            String::new()
        };
        sql.push_str(&format!(
            "INSERT INTO {name} SELECT g, '{entity} ' || g, (ARRAY['open','closed','pending'])[1 + g % 3], \
             (ARRAY['SMB','Enterprise','Mid-market','Public'])[1 + g % 4], (g * 37 % 1000) + 0.5, g % 17, \
             DATE '2024-01-01' + g, CASE WHEN g % 2 = 0 THEN DATE '2024-02-01' + g END{parent_value} \
             FROM generate_series(1, {rows}) g;\n",
            entity = name.replace('_', " ")
        ));
    }
    sql.push_str("ANALYZE;\n");
    sql
}

/// Questions of the kinds people ask, over tables spread across the schema.
fn questions(tables: usize) -> Vec<String> {
    let mut questions = Vec::new();
    for i in [0, tables / 3, tables / 2, tables - 1] {
        let (name, _) = table(i);
        let spoken = name.replace('_', " ");
        // "logistics account dailies", as people write the plural.
        let many = plural(&spoken);
        questions.push(format!("how many {many} by status"));
        questions.push(format!("{spoken} total amount by segment last year"));
        questions.push(format!("{many} created in 2024 by month"));
        questions.push(format!("top 5 {many} by quantity"));
        questions.push(format!("{many} by stauts"));
    }
    questions
}
