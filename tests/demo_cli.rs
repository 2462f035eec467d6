#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `threadql demo` as a user runs it: the real binary, questions typed on its standard input.
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn the_terminal_demo_answers_refines_shows_sql_exports_and_undoes() {
    // Arrange: an empty working directory, embedded defaults only.
    let workdir = tempfile::tempdir().unwrap();
    let demo_db = threadql_testkit::demo_warehouse_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_threadql"))
        .arg("demo")
        .current_dir(workdir.path())
        .env_remove("DATABASE_URL")
        .env_remove("WAREHOUSE_URL")
        .env_remove("OPENAI_API_KEY")
        .env("THREADQL_DEMO_WAREHOUSE", &demo_db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Act
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"revenue by region last month\nonly EMEA\nshow sql\nexport csv\nundo\nhelp\nquit\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);

    // Assert
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for region in ["EMEA", "AMER", "APAC"] {
        assert!(stdout.contains(region), "{region} missing:\n{stdout}");
    }
    assert!(stdout.contains("SELECT"), "show sql:\n{stdout}");
    assert!(
        stdout.contains("version 2") && stdout.contains("Back to version 1"),
        "refine and undo:\n{stdout}"
    );
    let written = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Wrote "))
        .unwrap_or_else(|| panic!("no export path:\n{stdout}"));
    let csv = std::fs::read_to_string(written.trim()).unwrap();
    assert!(csv.starts_with("region,revenue\n") && csv.lines().count() == 2, "{csv}");
    assert!(
        workdir.path().join("threadql.db").exists(),
        "the embedded state store was created"
    );
}
