//! The server's configuration for a test or a benchmark run.
use std::collections::HashMap;
use std::path::PathBuf;

use threadql::config::Config;

pub const SIGNING_SECRET: &str = "test-signing-secret";
pub const BOT_TOKEN: &str = "xoxb-test-token";
pub const BOT_USER: &str = "UBOT0001";
pub const TEAM: &str = "T0TEST01";

/// Where test and benchmark runs write what they generate: the demo data set (shared, it
/// takes seconds to generate), server logs. Outside the repository, so no run leaves files in it.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("threadql-testkit");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("Failed to create {}: {e}", dir.display()));
    dir
}

/// The demo data set, generated once a day and shared by every run that reads it (generation
/// writes a temporary file and renames it, so concurrent runs do not clash).
pub fn demo_warehouse_path() -> PathBuf {
    scratch_dir().join(format!("threadql-demo-{}.db", chrono::Utc::now().date_naive()))
}

/// The test configuration: listens on a free port, signs with [`SIGNING_SECRET`], posts to
/// `slack_api_url`, keeps state in `database_url`, answers from the demo data set; `overrides`
/// set or replace variables (an empty value unsets one).
pub fn config_with(slack_api_url: &str, database_url: &str, overrides: &[(&str, String)]) -> Config {
    try_config_with(slack_api_url, database_url, overrides).expect("test configuration is valid")
}

/// [`config_with`], returning the configuration error instead of failing the test.
pub fn try_config_with(
    slack_api_url: &str,
    database_url: &str,
    overrides: &[(&str, String)],
) -> anyhow::Result<Config> {
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("THREADQL_LISTEN", "127.0.0.1:0".into());
    vars.insert("SLACK_SIGNING_SECRET", SIGNING_SECRET.into());
    vars.insert("SLACK_BOT_TOKEN", BOT_TOKEN.into());
    vars.insert("SLACK_API_URL", slack_api_url.into());
    vars.insert("DATABASE_URL", database_url.into());
    vars.insert("THREADQL_DEMO_WAREHOUSE", demo_warehouse_path().display().to_string());
    // Tests drive the schedule runner's clock themselves (`AppHandle::run_due_reports`).
    vars.insert("THREADQL_SCHEDULE_POLL_SECS", "0".into());
    for (name, value) in overrides {
        vars.insert(name, value.clone());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).map_err(|e| anyhow::anyhow!("test configuration: {e}"))
}
