#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `threadql installations list`, `threadql installations rekey` and `threadql check` as an
//! operator runs them: the real binary over a Postgres state store holding installations sealed
//! with a key that is then rotated.
use std::process::{Command, Output};

use secrecy::{ExposeSecret, SecretString};
use threadql::slack::install::{Installation, InstallationIdentity, InstallationStore, SealingKeys};
use threadql::store::PostgresStore;
use threadql_testkit::TestDatabase;

const OLD_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const NEW_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000002";

/// `threadql <args>` over `database_url` with the app's credentials and `keys`
/// (current, previous), from a directory without a .env and nothing from the environment.
async fn installations(database_url: &str, args: &[&str], keys: (&str, Option<&str>)) -> Output {
    let workdir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_threadql"));
    command
        .args(args)
        .current_dir(workdir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("SLACK_CLIENT_ID", "1234.5678")
        .env("SLACK_CLIENT_SECRET", "client-secret-for-tests")
        .env("THREADQL_ENCRYPTION_KEY", keys.0)
        .env("THREADQL_DEMO_WAREHOUSE", threadql_testkit::demo_warehouse_path());
    if let Some(previous) = keys.1 {
        command.env("THREADQL_ENCRYPTION_KEY_PREVIOUS", previous);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    drop(workdir);
    output
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\n{}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn store(pool: &sqlx::PgPool, key: &str) -> InstallationStore {
    InstallationStore::new(pool.clone(), SealingKeys::new(&SecretString::from(key), None).unwrap())
}

#[tokio::test]
async fn list_shows_each_installation_and_its_state_and_rekey_reseals_with_the_new_key() {
    let database = TestDatabase::create().await;
    PostgresStore::connect(database.url())
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(database.url()).await.unwrap();
    let old = store(&pool, OLD_KEY);
    for (team, name) in [("T0ACME001", "Acme"), ("T0GLOBEX1", "Globex")] {
        old.save(&Installation {
            identity: InstallationIdentity::new(None, Some(team), "A0THREADQL").unwrap(),
            is_enterprise_install: false,
            bot_user_id: "U0BOT".to_string(),
            bot_token: Some(SecretString::from(format!("xoxb-secret-of-{team}"))),
            bot_scopes: vec!["chat:write".to_string(), "commands".to_string()],
            bot_refresh_token: None,
            bot_token_expires_at: None,
            installer_user_id: "U0ADMIN".to_string(),
            team_name: name.to_string(),
            active: true,
            inactive_reason: None,
        })
        .await
        .unwrap();
    }
    let globex = InstallationIdentity::new(None, Some("T0GLOBEX1"), "A0THREADQL").unwrap();
    old.deactivate(&globex, "Slack refused to renew its token (invalid_refresh_token)")
        .await
        .unwrap();

    let listed = stdout_of(&installations(database.url(), &["installations", "list"], (OLD_KEY, None)).await);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].contains("T0ACME001") && lines[0].contains("Acme") && lines[0].contains("\tactive\t"),
        "{listed}"
    );
    assert!(
        lines[1].contains("T0GLOBEX1") && lines[1].contains("inactive (Slack refused to renew its token"),
        "{listed}"
    );
    assert!(lines[0].contains("scopes chat:write,commands"), "{listed}");
    assert!(!listed.contains("xoxb-"), "never a token: {listed}");
    let checked = stdout_of(&installations(database.url(), &["check"], (OLD_KEY, None)).await);
    assert!(
        checked.contains("installed through OAuth: 2 installation(s), 1 active"),
        "{checked}"
    );

    // The key rotates: the old one stays as the previous key until rekey re-seals everything.
    let rekeyed =
        stdout_of(&installations(database.url(), &["installations", "rekey"], (NEW_KEY, Some(OLD_KEY))).await);
    assert!(rekeyed.contains("Re-sealed 2 token(s)"), "{rekeyed}");
    let new_only = store(&pool, NEW_KEY);
    let acme = new_only.find(None, Some("T0ACME001"), false).await.unwrap().unwrap();
    assert_eq!(acme.bot_token.unwrap().expose_secret(), "xoxb-secret-of-T0ACME001");
    assert!(
        store(&pool, OLD_KEY)
            .find(None, Some("T0ACME001"), false)
            .await
            .is_err(),
        "the old key no longer opens it"
    );
}

#[tokio::test]
async fn without_an_oauth_app_the_commands_say_what_to_set() {
    let workdir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_threadql"))
        .args(["installations", "list"])
        .current_dir(workdir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SLACK_CLIENT_ID") && stderr.contains("THREADQL_ENCRYPTION_KEY"),
        "{stderr}"
    );
}
