#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store of Slack installations (issue 15) in Postgres: tokens sealed at rest and bound to
//! their installation, org-wide installs found for every team of the org, key rotation and
//! re-sealing, single-use OAuth states, revocation and uninstall, and token refreshes that take
//! turns across replicas.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPool;
use threadql::slack::install::{
    Installation, InstallationIdentity, InstallationStore, SealError, SealingKeys, StateError,
};
use threadql::store::{PostgresStore, StoreError};
use threadql_testkit::{eventually, TestDatabase};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const NEW_KEY: &str = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100";
const APP: &str = "A0THREADQL";
const BOT_TOKEN: &str = "xoxb-17-secret-bot-token";
const REFRESH_TOKEN: &str = "xoxe-1-secret-refresh-token";
const STATE_MAX_AGE: Duration = Duration::from_secs(600);

async fn database() -> TestDatabase {
    let database = TestDatabase::create().await;
    let migrations = PostgresStore::connect(database.url()).await.unwrap();
    migrations.migrate().await.unwrap();
    database
}

async fn store(database: &TestDatabase, current: &str, previous: Option<&str>) -> InstallationStore {
    let previous = previous.map(SecretString::from);
    let keys = SealingKeys::new(&SecretString::from(current), previous.as_ref()).unwrap();
    InstallationStore::new(pool(database).await, keys)
}

async fn pool(database: &TestDatabase) -> PgPool {
    PgPool::connect(database.url()).await.unwrap()
}

fn team(team_id: &str) -> InstallationIdentity {
    InstallationIdentity::new(None, Some(team_id), APP).unwrap()
}

fn expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 21, 0, 0).unwrap()
}

fn installation(identity: InstallationIdentity, bot_token: &str) -> Installation {
    Installation {
        identity,
        is_enterprise_install: false,
        bot_user_id: "U0BOT".to_string(),
        bot_token: Some(SecretString::from(bot_token)),
        bot_scopes: vec!["app_mentions:read".to_string(), "chat:write".to_string()],
        bot_refresh_token: Some(SecretString::from(REFRESH_TOKEN)),
        bot_token_expires_at: Some(expiry()),
        installer_user_id: "U0INSTALLER".to_string(),
        team_name: "Acme".to_string(),
        active: true,
        inactive_reason: None,
    }
}

fn exposed(token: Option<&SecretString>) -> Option<&str> {
    token.map(|token| token.expose_secret())
}

/// The sealed tokens of the installation of `team_id`, as stored.
async fn stored_tokens(pool: &PgPool, team_id: &str) -> (Option<String>, Option<String>) {
    sqlx::query_as("SELECT bot_token_sealed, bot_refresh_token_sealed FROM slack_installations WHERE team_id = $1")
        .bind(team_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_team_install_is_found_by_its_team_with_its_tokens_sealed_at_rest() {
    // Arrange
    let database = database().await;
    let store = store(&database, KEY, None).await;
    store.save(&installation(team("T1"), BOT_TOKEN)).await.unwrap();

    // Act
    let found = store.find(None, Some("T1"), false).await.unwrap().unwrap();
    let other_team = store.find(None, Some("T2"), false).await.unwrap();

    // Assert
    assert_eq!(found.identity, team("T1"));
    assert_eq!(exposed(found.bot_token.as_ref()), Some(BOT_TOKEN));
    assert_eq!(exposed(found.bot_refresh_token.as_ref()), Some(REFRESH_TOKEN));
    assert_eq!(found.bot_token_expires_at, Some(expiry()));
    assert_eq!(found.bot_scopes, ["app_mentions:read", "chat:write"]);
    assert!(found.active);
    assert!(other_team.is_none());
    let (bot, refresh) = stored_tokens(&pool(&database).await, "T1").await;
    for sealed in [bot.unwrap(), refresh.unwrap()] {
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(
            !sealed.contains(BOT_TOKEN) && !sealed.contains(REFRESH_TOKEN),
            "{sealed}"
        );
    }
    let printed = format!("{found:?}");
    assert!(
        !printed.contains(BOT_TOKEN) && !printed.contains(REFRESH_TOKEN),
        "{printed}"
    );
}

#[tokio::test]
async fn an_org_wide_install_answers_for_every_team_of_its_enterprise() {
    // Arrange
    let database = database().await;
    let store = store(&database, KEY, None).await;
    let org = InstallationIdentity::new(Some("E1"), None, APP).unwrap();
    store
        .save(&Installation {
            is_enterprise_install: true,
            ..installation(org.clone(), "xoxb-org-token")
        })
        .await
        .unwrap();
    // A team of the same org with an install of its own keeps using it.
    let own = InstallationIdentity::new(Some("E1"), Some("T7"), APP).unwrap();
    store.save(&installation(own.clone(), "xoxb-own-token")).await.unwrap();

    // Act
    let flagged = store.find(Some("E1"), Some("T5"), true).await.unwrap();
    let unflagged = store.find(Some("E1"), Some("T6"), false).await.unwrap();
    let team_of_its_own = store.find(Some("E1"), Some("T7"), false).await.unwrap();
    let other_org = store.find(Some("E2"), Some("T5"), true).await.unwrap();
    let same_team_outside_the_org = store.find(None, Some("T5"), false).await.unwrap();

    // Assert
    for (description, found) in [("flagged org-wide", flagged), ("not flagged", unflagged)] {
        let found = found.unwrap_or_else(|| panic!("{description}: not found"));
        assert_eq!(found.identity, org, "{description}");
        assert!(found.is_enterprise_install, "{description}");
        assert_eq!(
            exposed(found.bot_token.as_ref()),
            Some("xoxb-org-token"),
            "{description}"
        );
    }
    let team_of_its_own = team_of_its_own.unwrap();
    assert_eq!(team_of_its_own.identity, own);
    assert_eq!(exposed(team_of_its_own.bot_token.as_ref()), Some("xoxb-own-token"));
    assert!(other_org.is_none());
    assert!(same_team_outside_the_org.is_none());
}

#[tokio::test]
async fn a_row_moved_to_another_team_does_not_open_there() {
    // Arrange
    let database = database().await;
    let store = store(&database, KEY, None).await;
    store.save(&installation(team("T1"), BOT_TOKEN)).await.unwrap();
    database
        .execute("UPDATE slack_installations SET team_id = 'T2' WHERE team_id = 'T1'")
        .await;

    // Act
    let error = store.find(None, Some("T2"), false).await.unwrap_err();

    // Assert
    let StoreError::Unexpected(cause) = &error else {
        panic!("expected an unexpected error, got {error:?}");
    };
    assert_eq!(cause.downcast_ref::<SealError>(), Some(&SealError::Unauthentic));
    let message = format!("{error:#}");
    assert!(
        message.contains("Failed to open the bot token of installation -/T2"),
        "{message}"
    );
    assert!(message.contains("does not open"), "{message}");
    assert!(!message.contains(BOT_TOKEN), "{message}");
}

#[tokio::test]
async fn rekey_reseals_with_the_new_key_so_the_previous_one_can_go() {
    // Arrange: two installs sealed with the old key, one of them without a refresh token.
    let database = database().await;
    store(&database, KEY, None)
        .await
        .save(&installation(team("T1"), BOT_TOKEN))
        .await
        .unwrap();
    store(&database, KEY, None)
        .await
        .save(&Installation {
            bot_refresh_token: None,
            bot_token_expires_at: None,
            ..installation(team("T2"), "xoxb-second-token")
        })
        .await
        .unwrap();
    let rotated = store(&database, NEW_KEY, Some(KEY)).await;
    let new_key_only = store(&database, NEW_KEY, None).await;
    assert!(new_key_only.find(None, Some("T1"), false).await.is_err());

    // Act
    let resealed = rotated.rekey().await.unwrap();
    let resealed_again = rotated.rekey().await.unwrap();

    // Assert
    assert_eq!(resealed, 2);
    assert_eq!(resealed_again, 0, "rows sealed with the current key are left alone");
    let first = new_key_only.find(None, Some("T1"), false).await.unwrap().unwrap();
    let second = new_key_only.find(None, Some("T2"), false).await.unwrap().unwrap();
    assert_eq!(exposed(first.bot_token.as_ref()), Some(BOT_TOKEN));
    assert_eq!(exposed(first.bot_refresh_token.as_ref()), Some(REFRESH_TOKEN));
    assert_eq!(exposed(second.bot_token.as_ref()), Some("xoxb-second-token"));
    assert!(second.bot_refresh_token.is_none());
    let new_key_id = SealingKeys::new(&SecretString::from(NEW_KEY), None)
        .unwrap()
        .current_key_id()
        .to_string();
    let (bot, refresh) = stored_tokens(&pool(&database).await, "T1").await;
    for sealed in [bot.unwrap(), refresh.unwrap()] {
        assert!(sealed.starts_with(&format!("v1:{new_key_id}:")), "{sealed}");
    }
}

#[tokio::test]
async fn a_state_is_accepted_once_and_then_refused_as_used() {
    let database = database().await;
    let store = store(&database, KEY, None).await;
    store.create_state("state-1").await.unwrap();

    let first = store.consume_state("state-1", STATE_MAX_AGE).await;
    let replayed = store.consume_state("state-1", STATE_MAX_AGE).await;

    assert!(first.is_ok(), "{first:?}");
    assert!(matches!(replayed, Err(StateError::Used)), "{replayed:?}");
}

#[tokio::test]
async fn a_forged_or_expired_state_is_refused_with_its_reason() {
    let database = database().await;
    let store = store(&database, KEY, None).await;
    store.create_state("old-state").await.unwrap();
    database
        .execute("UPDATE slack_oauth_states SET created_at = now() - interval '11 minutes' WHERE state = 'old-state'")
        .await;

    let forged = store.consume_state("never-issued", STATE_MAX_AGE).await;
    let expired = store.consume_state("old-state", STATE_MAX_AGE).await;
    let expired_again = store.consume_state("old-state", STATE_MAX_AGE).await;

    assert!(matches!(forged, Err(StateError::Unknown)), "{forged:?}");
    assert!(matches!(expired, Err(StateError::Expired)), "{expired:?}");
    // An expired state is consumed all the same.
    assert!(matches!(expired_again, Err(StateError::Used)), "{expired_again:?}");
}

#[tokio::test]
async fn a_deactivated_installation_keeps_its_row_and_tokens_and_says_why() {
    let database = database().await;
    let store = store(&database, KEY, None).await;
    store.save(&installation(team("T1"), BOT_TOKEN)).await.unwrap();

    let deactivated = store.deactivate(&team("T1"), "invalid_grant").await.unwrap();
    let unknown = store.deactivate(&team("T9"), "invalid_grant").await.unwrap();

    assert!(deactivated);
    assert!(!unknown);
    let found = store.find(None, Some("T1"), false).await.unwrap().unwrap();
    assert!(!found.active);
    assert_eq!(found.inactive_reason.as_deref(), Some("invalid_grant"));
    assert_eq!(exposed(found.bot_token.as_ref()), Some(BOT_TOKEN));
}

#[tokio::test]
async fn revoked_tokens_are_deleted_and_an_uninstalled_installation_is_gone() {
    let database = database().await;
    let store = store(&database, KEY, None).await;
    store.save(&installation(team("T1"), BOT_TOKEN)).await.unwrap();
    store
        .save(&installation(team("T2"), "xoxb-second-token"))
        .await
        .unwrap();

    let revoked = store.delete_tokens(&team("T1")).await.unwrap();
    let uninstalled = store.delete(&team("T2")).await.unwrap();

    assert!(revoked && uninstalled);
    let found = store.find(None, Some("T1"), false).await.unwrap().unwrap();
    assert!(found.bot_token.is_none() && found.bot_refresh_token.is_none());
    assert!(found.bot_token_expires_at.is_none());
    assert!(!found.active);
    assert_eq!(stored_tokens(&pool(&database).await, "T1").await, (None, None));
    assert!(store.find(None, Some("T2"), false).await.unwrap().is_none());
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].identity, team("T1"));
    assert!(!listed[0].has_bot_token && !listed[0].active);
    assert_eq!(listed[0].inactive_reason.as_deref(), Some("tokens revoked"));
}

#[tokio::test]
async fn the_list_shows_each_installation_and_its_state_and_never_a_token() {
    let database = database().await;
    let store = store(&database, KEY, None).await;
    store
        .save(&installation(team("T2"), "xoxb-second-token"))
        .await
        .unwrap();
    store.save(&installation(team("T1"), BOT_TOKEN)).await.unwrap();
    store.deactivate(&team("T2"), "token_revoked").await.unwrap();

    let listed = store.list().await.unwrap();

    let summary: Vec<_> = listed
        .iter()
        .map(|listing| {
            (
                listing.identity.to_string(),
                listing.active,
                listing.inactive_reason.clone(),
                listing.has_bot_token,
                listing.bot_token_expires_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("-/T1".to_string(), true, None, true, Some(expiry())),
            (
                "-/T2".to_string(),
                false,
                Some("token_revoked".to_string()),
                true,
                Some(expiry())
            ),
        ]
    );
    assert_eq!(listed[0].bot_scopes, ["app_mentions:read", "chat:write"]);
    let printed = format!("{listed:?}");
    assert!(
        !printed.contains(BOT_TOKEN) && !printed.contains("xoxb-second-token"),
        "{printed}"
    );
}

#[tokio::test]
async fn a_refresh_waits_for_one_in_progress_and_sees_the_token_it_stored() {
    // Arrange
    let database = database().await;
    let store = Arc::new(store(&database, KEY, None).await);
    store.save(&installation(team("T1"), BOT_TOKEN)).await.unwrap();
    let (entered, first_is_inside) = tokio::sync::oneshot::channel();
    let (let_first_finish, finish) = tokio::sync::oneshot::channel::<()>();

    // Act: the first refresh holds the lock until told to finish, storing a new token then.
    let first = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            let writer = Arc::clone(&store);
            store
                .with_refresh_lock(&team("T1"), |current| async move {
                    entered.send(()).unwrap();
                    finish.await.unwrap();
                    writer
                        .rotate_tokens(
                            &team("T1"),
                            &SecretString::from("xoxb-refreshed"),
                            &SecretString::from("xoxe-1-refreshed"),
                            expiry() + chrono::Duration::hours(12),
                        )
                        .await?;
                    Ok::<_, StoreError>(current.unwrap().bot_token.unwrap().expose_secret().to_string())
                })
                .await
        }
    });
    first_is_inside.await.unwrap();
    let second = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            store
                .with_refresh_lock(&team("T1"), |current| async move {
                    let current = current.unwrap();
                    Ok::<_, StoreError>((
                        current.bot_token.unwrap().expose_secret().to_string(),
                        current.bot_token_expires_at,
                    ))
                })
                .await
        }
    });
    let observer = pool(&database).await;
    eventually(
        "the second refresh waits for the first's lock",
        Duration::from_secs(10),
        || {
            let observer = observer.clone();
            async move {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
                )
                .fetch_one(&observer)
                .await
                .unwrap();
                waiting == 1
            }
        },
    )
    .await;
    assert!(!second.is_finished());
    let_first_finish.send(()).unwrap();

    // Assert
    assert_eq!(first.await.unwrap().unwrap(), BOT_TOKEN);
    let (token_seen_by_second, expiry_seen_by_second) = second.await.unwrap().unwrap();
    assert_eq!(token_seen_by_second, "xoxb-refreshed");
    assert_eq!(expiry_seen_by_second, Some(expiry() + chrono::Duration::hours(12)));
}

#[tokio::test]
async fn refreshes_of_different_installations_do_not_wait_for_each_other() {
    let database = database().await;
    let store = Arc::new(store(&database, KEY, None).await);
    store.save(&installation(team("T1"), BOT_TOKEN)).await.unwrap();
    store
        .save(&installation(team("T2"), "xoxb-second-token"))
        .await
        .unwrap();
    let (entered, first_is_inside) = tokio::sync::oneshot::channel();
    let (let_first_finish, finish) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            store
                .with_refresh_lock(&team("T1"), |_| async move {
                    entered.send(()).unwrap();
                    finish.await.unwrap();
                    Ok::<_, StoreError>(())
                })
                .await
        }
    });
    first_is_inside.await.unwrap();

    let other = tokio::time::timeout(
        Duration::from_secs(10),
        store.with_refresh_lock(&team("T2"), |current| async move {
            Ok::<_, StoreError>(current.unwrap().bot_token.unwrap().expose_secret().to_string())
        }),
    )
    .await
    .expect("a refresh of another installation was kept waiting");

    assert_eq!(other.unwrap(), "xoxb-second-token");
    let_first_finish.send(()).unwrap();
    first.await.unwrap().unwrap();
}
