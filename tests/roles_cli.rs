#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `threadql roles check` and `threadql roles who` as an admin runs them: the real binary over
//! the demo data set, with the roles of a threadql.toml.
use std::path::Path;
use std::process::{Command, Output};

fn roles(workdir: &Path, toml: &str, args: &[&str]) -> Output {
    let config = workdir.join("threadql.toml");
    std::fs::write(&config, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_threadql"))
        .arg("roles")
        .args(args)
        .current_dir(workdir)
        .env_remove("DATABASE_URL")
        .env_remove("WAREHOUSE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("SLACK_BOT_TOKEN")
        .env("THREADQL_DEMO_WAREHOUSE", workdir.join("demo.db"))
        .env("THREADQL_CONFIG", &config)
        .output()
        .unwrap()
}

const GOOD: &str = r#"
[[roles]]
name = "emea-sales"
members = ["U0123ABCD", "@sales-emea"]
tables = ["orders", "customers", "products"]
deny_columns = ["customers.name"]
row_filters = { customers = "customers.region = 'EMEA'" }

[[roles]]
name = "viewer"
tables = ["products"]

[access]
default_role = "viewer"
"#;

#[test]
fn roles_that_match_the_warehouse_pass_the_check() {
    let workdir = tempfile::tempdir().unwrap();
    let output = roles(workdir.path(), GOOD, &["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("✓ role emea-sales") && stdout.contains("✓ role viewer"),
        "{stdout}"
    );
}

#[test]
fn roles_naming_what_the_warehouse_lacks_fail_the_check_with_each_problem() {
    let workdir = tempfile::tempdir().unwrap();
    let bad = r#"
[[roles]]
name = "finance"
members = ["U1"]
tables = ["orders", "invoices"]
deny_columns = ["customers.ssn"]
row_filters = { orders = "orders.cost_center = 'FIN'" }
"#;
    let output = roles(workdir.path(), bad, &["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for expected in [
        "✗ role finance",
        "table invoices is not in the warehouse",
        "denied column customers.ssn is not in the warehouse",
        "row filter on orders (orders.cost_center = 'FIN') does not run",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
}

#[test]
fn invalid_roles_are_named_and_fail_the_check() {
    let workdir = tempfile::tempdir().unwrap();
    let output = roles(
        workdir.path(),
        "[[roles]]\nname = \"a\"\n[access]\ndefault_role = \"ghost\"\n",
        &["check"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout.contains("\"ghost\" names no declared role"), "{stdout}");
}

#[test]
fn who_prints_what_a_user_may_see() {
    let workdir = tempfile::tempdir().unwrap();

    let member = roles(workdir.path(), GOOD, &["who", "U0123ABCD"]);
    let by_group = roles(workdir.path(), GOOD, &["who", "U777", "--group", "sales-emea"]);
    let other = roles(workdir.path(), GOOD, &["who", "U777"]);

    let member = String::from_utf8_lossy(&member.stdout).to_string();
    assert!(member.starts_with("U0123ABCD is in: emea-sales\n"), "{member}");
    assert!(member.contains("tables: customers, orders, products\n"), "{member}");
    assert!(member.contains("denied columns: customers.name\n"), "{member}");
    assert!(member.contains("  customers: customers.region = 'EMEA'\n"), "{member}");
    assert!(String::from_utf8_lossy(&by_group.stdout).starts_with("U777 is in: emea-sales"));
    let other = String::from_utf8_lossy(&other.stdout).to_string();
    assert!(
        other.starts_with("U777 is in: viewer (default)\ntables: products\n"),
        "{other}"
    );
}
