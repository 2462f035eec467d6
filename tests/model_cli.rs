#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `threadql model` as a user runs it: the real binary over a warehouse nobody modelled,
//! printing a threadql.toml that loads back to the same model.
use std::path::Path;
use std::process::Command;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use threadql::interpret::SemanticModel;

/// A small TPC-H-like warehouse with declared keys, and snake_case tables without any: one
/// `*_id` column whose values are all in its target, one whose values are not.
async fn create_warehouse(path: &Path) {
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    let mut statements = vec![
        "CREATE TABLE region (r_regionkey INTEGER PRIMARY KEY, r_name VARCHAR(25), r_comment VARCHAR(152))".to_string(),
        "CREATE TABLE nation (n_nationkey INTEGER PRIMARY KEY, n_name VARCHAR(25), \
         n_regionkey INTEGER REFERENCES region (r_regionkey))"
            .to_string(),
        "CREATE TABLE customer (c_custkey INTEGER PRIMARY KEY, c_name VARCHAR(25), c_phone VARCHAR(15), \
         c_nationkey INTEGER REFERENCES nation (n_nationkey), c_acctbal DECIMAL(15,2), c_mktsegment VARCHAR(10))"
            .to_string(),
        "CREATE TABLE orders (o_orderkey INTEGER PRIMARY KEY, o_custkey INTEGER REFERENCES customer (c_custkey), \
         o_orderstatus CHAR(1), o_totalprice DECIMAL(15,2), o_orderdate DATE, o_shippriority INTEGER)"
            .to_string(),
        "CREATE TABLE accounts (id INTEGER, name TEXT, segment TEXT, credit_limit INTEGER, signup_dt DATE)".to_string(),
        "CREATE TABLE sellers (id INTEGER, name TEXT)".to_string(),
        "CREATE TABLE invoices (id INTEGER, account_id INTEGER, seller_id INTEGER, issued_on DATE, paid_on DATE, \
         total_amount DECIMAL(12,2), status TEXT)"
            .to_string(),
    ];
    for (key, name) in ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]
        .iter()
        .enumerate()
    {
        statements.push(format!("INSERT INTO region VALUES ({key}, '{name}', 'comment {key}')"));
        statements.push(format!("INSERT INTO nation VALUES ({key}, 'NATION {key}', {key})"));
    }
    for key in 1..=20 {
        let segment = ["AUTOMOBILE", "BUILDING", "MACHINERY"][key % 3];
        statements.push(format!(
            "INSERT INTO customer VALUES ({key}, 'Customer#{key:09}', '25-{key:03}', {}, {key}00.5, '{segment}')",
            key % 5
        ));
        statements.push(format!(
            "INSERT INTO orders VALUES ({key}, {}, 'F', {key}000.25, '2024-01-{key:02}', 0)",
            key.div_ceil(2)
        ));
        statements.push(format!(
            "INSERT INTO accounts VALUES ({key}, 'Account {key}', '{}', {key}000, '2023-05-01')",
            ["SMB", "Enterprise"][key % 2]
        ));
        // Seller ids 100+ are not in `sellers`: the name says join, the data says no.
        statements.push(format!("INSERT INTO sellers VALUES ({key}, 'Seller {key}')"));
        statements.push(format!(
            "INSERT INTO invoices VALUES ({key}, {key}, {}, '2024-02-01', NULL, {key}0.5, '{}')",
            key + 100,
            ["paid", "draft"][key % 2]
        ));
    }
    for statement in statements {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

fn run_model(workdir: &Path, warehouse: &Path, config: Option<&Path>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_threadql"));
    command
        .arg("model")
        .current_dir(workdir)
        .env_remove("DATABASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("THREADQL_CONFIG")
        .env("WAREHOUSE_URL", format!("sqlite://{}", warehouse.display()));
    if let Some(config) = config {
        command.env("THREADQL_CONFIG", config);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "exit {:?}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The printed TOML without its leading comment lines (which name the model's source).
fn body(printed: &str) -> String {
    printed
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_printed_model_of_an_unmodelled_warehouse_loads_back_to_the_same_model() {
    // Arrange
    let workdir = tempfile::tempdir().unwrap();
    let warehouse = workdir.path().join("warehouse.db");
    create_warehouse(&warehouse).await;

    // Act
    let printed = run_model(workdir.path(), &warehouse, None);

    // Assert: what a data engineer would have written.
    let model = SemanticModel::from_toml_str(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    for (metric, expression) in [
        ("customers", "COUNT(*)"),
        ("account balance", "SUM(customer.c_acctbal)"),
        ("average account balance", "AVG(customer.c_acctbal)"),
        ("total price", "SUM(orders.o_totalprice)"),
        ("invoices", "COUNT(*)"),
        ("total amount", "SUM(invoices.total_amount)"),
        ("average credit limit", "AVG(accounts.credit_limit)"),
    ] {
        assert_eq!(
            model.metric(metric).map(|m| m.expression.as_str()),
            Some(expression),
            "{metric}\n{printed}"
        );
    }
    assert!(
        model.metrics.iter().all(|m| !m.expression.contains("key")
            && !m.expression.contains("_id")
            && !m.expression.contains("priority")),
        "keys and priorities are never summed:\n{printed}"
    );
    for dimension in [
        "region",
        "nation",
        "customer",
        "market segment",
        "order status",
        "segment",
        "invoice status",
    ] {
        assert!(model.dimension(dimension).is_some(), "{dimension}\n{printed}");
    }
    let joins: Vec<String> = model.joins.iter().map(|j| format!("{} -> {}", j.from, j.to)).collect();
    assert!(
        joins.contains(&"orders.o_custkey -> customer.c_custkey".to_string()),
        "{joins:?}"
    );
    assert!(
        joins.contains(&"invoices.account_id -> accounts.id".to_string()),
        "{joins:?}"
    );
    assert!(
        !joins.iter().any(|j| j.starts_with("invoices.seller_id")),
        "the sample contradicts the seller join: {joins:?}"
    );
    assert!(model.reachable_from("orders").contains("region"));
    assert_eq!(
        model.table("invoices").map(|t| t.date_columns()),
        Some(vec!["issued_on", "paid_on"])
    );

    // Act: the printed model as the team's threadql.toml.
    let config = workdir.path().join("threadql.toml");
    std::fs::write(&config, &printed).unwrap();
    let again = run_model(workdir.path(), &warehouse, Some(&config));

    // Assert: the same model, nothing derived twice.
    assert_eq!(body(&again), body(&printed));
}

#[test]
fn the_demo_model_in_use_counts_the_tables_it_only_joins() {
    // Arrange: the demo data set, no WAREHOUSE_URL.
    let workdir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_threadql"))
        .arg("model")
        .current_dir(workdir.path())
        .env_remove("DATABASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("THREADQL_CONFIG")
        .env_remove("WAREHOUSE_URL")
        .env("THREADQL_DEMO_WAREHOUSE", workdir.path().join("demo.db"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();

    // Act
    let model = SemanticModel::from_toml_str(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));

    // Assert: the model every interpreter is given (the LLM's too) counts products and
    // customers, which the demo model's metrics only join to.
    for table in ["products", "customers"] {
        let count = model
            .metrics
            .iter()
            .find(|m| m.table == table && m.expression == "COUNT(*)")
            .unwrap_or_else(|| panic!("no count of {table}\n{printed}"));
        assert!(count.name.contains(table), "{}", count.name);
    }
}
