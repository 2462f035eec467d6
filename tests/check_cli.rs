#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `threadql check` as an operator runs it before `serve`: the real binary, each dependency
//! reached for real (SQLite files, the local Redis) or through a local fake that speaks its
//! protocol (Slack's `auth.test`, an OpenAI-compatible `/models`), pointed at with the same
//! variables a user sets.
use std::process::Output;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BOT_TOKEN: &str = "xoxb-1234-check-secret-token";
const OPENAI_KEY: &str = "sk-check-secret-key";

async fn fake_slack() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/api/auth.test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "threadql",
            "team_id": "T0CHECK01", "user_id": "U0BOTCHK1", "bot_id": "B0BOTCHK1"
        })))
        .mount(&server)
        .await;
    server
}

async fn fake_openai(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "object": "list", "data": [{ "id": "gpt-4o-mini", "object": "model", "owned_by": "test" }]
        })))
        .mount(&server)
        .await;
    server
}

/// Runs `threadql check` with only `vars` set (besides PATH), in an empty folder.
async fn check(folder: &std::path::Path, vars: &[(&str, String)]) -> (Output, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_threadql"));
    command.arg("check").current_dir(folder).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// A warehouse of one table, as SQLite.
async fn warehouse(folder: &std::path::Path) -> String {
    let url = format!("sqlite://{}?mode=rwc", folder.join("warehouse.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total_amount REAL)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    format!("sqlite://{}", folder.join("warehouse.db").display())
}

#[tokio::test]
async fn every_configured_dependency_is_reached_and_named() {
    let folder = tempfile::tempdir().unwrap();
    let (slack, openai) = (fake_slack().await, fake_openai(200).await);
    let vars = [
        (
            "DATABASE_URL",
            format!("sqlite://{}", folder.path().join("state.db").display()),
        ),
        ("WAREHOUSE_URL", warehouse(folder.path()).await),
        ("SLACK_BOT_TOKEN", BOT_TOKEN.to_string()),
        ("SLACK_API_URL", format!("{}/api/", slack.uri())),
        ("REDIS_URL", "redis://127.0.0.1:6379".to_string()),
        ("OPENAI_API_KEY", OPENAI_KEY.to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", openai.uri())),
    ];

    let (output, text) = check(folder.path(), &vars).await;

    assert!(output.status.success(), "{text}");
    for line in [
        "ok    DATABASE_URL     reachable, migrations applied",
        "ok    WAREHOUSE_URL    reachable, 1 tables",
        "ok    SLACK_API_URL    auth.test ok, bot user U0BOTCHK1",
        "ok    REDIS_URL        PONG",
        "ok    OPENAI_BASE_URL  reachable, model gpt-4o-mini",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains(BOT_TOKEN) && !text.contains(OPENAI_KEY), "{text}");
    // Each fake saw its own credential.
    let seen = |requests: Vec<wiremock::Request>| {
        requests
            .iter()
            .filter_map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(slack.received_requests().await.unwrap()),
        [format!("Bearer {BOT_TOKEN}")]
    );
    assert_eq!(
        seen(openai.received_requests().await.unwrap()),
        [format!("Bearer {OPENAI_KEY}")]
    );
}

#[tokio::test]
async fn each_unreachable_dependency_fails_by_its_variable_without_printing_secrets() {
    let folder = tempfile::tempdir().unwrap();
    let openai = fake_openai(401).await;
    let vars = [
        // Nothing listens on port 9: the state store cannot be reached.
        (
            "DATABASE_URL",
            "postgres://postgres:hunter2-secret@127.0.0.1:9/threadql".to_string(),
        ),
        ("WAREHOUSE_URL", warehouse(folder.path()).await),
        ("REDIS_URL", "redis://:redis-secret@127.0.0.1:9".to_string()),
        ("OPENAI_API_KEY", OPENAI_KEY.to_string()),
        ("OPENAI_BASE_URL", format!("{}/v1", openai.uri())),
    ];

    let (output, text) = check(folder.path(), &vars).await;

    assert!(!output.status.success(), "a failed check exits non-zero:\n{text}");
    for prefix in [
        "FAIL  DATABASE_URL",
        "FAIL  REDIS_URL",
        "FAIL  OPENAI_BASE_URL  answered HTTP 401",
    ] {
        assert!(text.contains(prefix), "missing {prefix:?} in:\n{text}");
    }
    assert!(text.contains("ok    WAREHOUSE_URL"), "{text}");
    assert!(
        text.contains("skip  SLACK_API_URL    SLACK_BOT_TOKEN is not set"),
        "{text}"
    );
    for secret in ["hunter2-secret", "redis-secret", OPENAI_KEY] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
}

#[tokio::test]
async fn a_mysql_warehouse_is_reached_and_its_password_never_printed() {
    let folder = tempfile::tempdir().unwrap();
    let db = threadql_testkit::TestMySqlDatabase::create().await;
    db.execute("CREATE TABLE invoices (id INT PRIMARY KEY, total_amount DECIMAL(12,2))")
        .await;
    let state = (
        "DATABASE_URL",
        format!("sqlite://{}", folder.path().join("state.db").display()),
    );

    let (reached, reached_text) = check(
        folder.path(),
        &[
            state.clone(),
            ("WAREHOUSE_URL", db.url().replacen("mysql://", "mariadb://", 1)),
        ],
    )
    .await;
    // Nothing listens on port 9.
    let (unreachable, unreachable_text) = check(
        folder.path(),
        &[
            state,
            (
                "WAREHOUSE_URL",
                "mysql://reader:mysql-secret@127.0.0.1:9/shop".to_string(),
            ),
        ],
    )
    .await;

    assert!(reached.status.success(), "{reached_text}");
    assert!(
        reached_text.contains("ok    WAREHOUSE_URL    reachable, 1 tables"),
        "{reached_text}"
    );
    assert!(!unreachable.status.success(), "{unreachable_text}");
    assert!(unreachable_text.contains("FAIL  WAREHOUSE_URL"), "{unreachable_text}");
    assert!(!unreachable_text.contains("mysql-secret"), "{unreachable_text}");
}
