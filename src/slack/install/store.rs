//! The Postgres store of Slack installations and of the `state`s of installs in progress.
//!
//! Tokens are sealed before they reach a query and opened after a row is read (see
//! [`super::seal`]), so neither statements nor rows carry a token in clear. A row that does not
//! open (sealed for another installation, altered, or by a key no longer configured) is an
//! error, never a panic and never a token for the wrong workspace; the error's chain holds the
//! [`SealError`] for callers that want to tell it apart from Postgres failing.
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgExecutor, Row};

use super::seal::{InstallationIdentity, SealError, Sealed, SealingKeys};
use crate::store::StoreError;

/// One workspace's (or one Grid org's) install of the app, tokens included.
#[derive(Debug, Clone)]
pub struct Installation {
    pub identity: InstallationIdentity,
    /// Installed for the whole Grid org: one row serves every team of the enterprise.
    pub is_enterprise_install: bool,
    pub bot_user_id: String,
    /// `None` once Slack revoked it (`tokens_revoked`).
    pub bot_token: Option<SecretString>,
    pub bot_scopes: Vec<String>,
    /// With token rotation on: what renews the bot token, and when the bot token expires.
    pub bot_refresh_token: Option<SecretString>,
    pub bot_token_expires_at: Option<DateTime<Utc>>,
    /// Who installed it (told about trouble with the installation).
    pub installer_user_id: String,
    /// The workspace's name, or the org's for an org-wide install.
    pub team_name: String,
    /// `false` once its tokens stopped working; its schedules wait meanwhile.
    pub active: bool,
    pub inactive_reason: Option<String>,
}

/// An installation as `threadql installations list` shows it: everything but the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationListing {
    pub identity: InstallationIdentity,
    pub is_enterprise_install: bool,
    pub team_name: String,
    pub bot_user_id: String,
    pub bot_scopes: Vec<String>,
    /// Whether a bot token is kept (not after `tokens_revoked`).
    pub has_bot_token: bool,
    pub bot_token_expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub inactive_reason: Option<String>,
    pub installed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why an OAuth `state` was not accepted. Each of the first three means the redirect is refused
/// and nothing is stored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Never issued here (forged), or issued so long ago that it was pruned.
    #[error("the install link is not one this server issued")]
    Unknown,
    /// Consumed already: a replayed redirect.
    #[error("the install link was used already")]
    Used,
    /// Issued longer ago than allowed (consumed now all the same).
    #[error("the install link has expired")]
    Expired,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// States older than this are deleted when a new one is created: they were refused as expired
/// long before, and install pages anyone can open must not grow the table without end.
const STATE_RETENTION_HOURS: i32 = 24;

/// The first key of the advisory locks taken around a token refresh (the second is the hash of
/// the installation's key), so they never collide with another use of advisory locks. Its
/// bytes are ASCII "SLKR".
const REFRESH_LOCK_CLASS: i32 = 0x534C_4B52;

const COLUMNS: &str = "enterprise_id, team_id, app_id, is_enterprise_install, bot_user_id, bot_token_sealed, \
                       bot_scopes, bot_refresh_token_sealed, bot_token_expires_at, installer_user_id, team_name, \
                       active, inactive_reason";

/// Installations and OAuth states in Postgres (`slack_installations`, `slack_oauth_states`),
/// with the keys that seal and open the tokens.
pub struct InstallationStore {
    pool: PgPool,
    keys: SealingKeys,
}

impl std::fmt::Debug for InstallationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl InstallationStore {
    /// The store on `pool`, whose database has the Postgres migrations applied.
    pub fn new(pool: PgPool, keys: SealingKeys) -> Self {
        Self { pool, keys }
    }

    /// Stores `installation`, replacing the one with the same enterprise and team (a re-install
    /// brings new tokens and scopes; the first install's time is kept).
    #[tracing::instrument(name = "Save a Slack installation", skip_all, fields(installation = %installation.identity))]
    pub async fn save(&self, installation: &Installation) -> Result<(), StoreError> {
        let identity = &installation.identity;
        let bot_token = self.seal_optional(installation.bot_token.as_ref(), identity, "bot token")?;
        let refresh_token = self.seal_optional(installation.bot_refresh_token.as_ref(), identity, "refresh token")?;
        let (enterprise_id, team_id) = key_of(identity);
        sqlx::query(
            "INSERT INTO slack_installations (enterprise_id, team_id, app_id, is_enterprise_install, bot_user_id, \
                 bot_token_sealed, bot_scopes, bot_refresh_token_sealed, bot_token_expires_at, installer_user_id, \
                 team_name, active, inactive_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (enterprise_id, team_id) DO UPDATE SET \
                 app_id = EXCLUDED.app_id, is_enterprise_install = EXCLUDED.is_enterprise_install, \
                 bot_user_id = EXCLUDED.bot_user_id, bot_token_sealed = EXCLUDED.bot_token_sealed, \
                 bot_scopes = EXCLUDED.bot_scopes, bot_refresh_token_sealed = EXCLUDED.bot_refresh_token_sealed, \
                 bot_token_expires_at = EXCLUDED.bot_token_expires_at, \
                 installer_user_id = EXCLUDED.installer_user_id, team_name = EXCLUDED.team_name, \
                 active = EXCLUDED.active, inactive_reason = EXCLUDED.inactive_reason, updated_at = now()",
        )
        .bind(enterprise_id)
        .bind(team_id)
        .bind(identity.app_id())
        .bind(installation.is_enterprise_install)
        .bind(&installation.bot_user_id)
        .bind(bot_token)
        .bind(installation.bot_scopes.join(","))
        .bind(refresh_token)
        .bind(installation.bot_token_expires_at)
        .bind(&installation.installer_user_id)
        .bind(&installation.team_name)
        .bind(installation.active)
        .bind(&installation.inactive_reason)
        .execute(&self.pool)
        .await
        .context("Failed to save a Slack installation")?;
        Ok(())
    }

    /// The installation that answers for a request from `team_id` of `enterprise_id`, as Bolt
    /// looks it up: when Slack says the app is installed org-wide (`is_enterprise_install`),
    /// the enterprise's org-wide install; otherwise the team's own install, and failing that an
    /// org-wide install of its enterprise (which covers every team of the org).
    #[tracing::instrument(name = "Find a Slack installation", skip(self))]
    pub async fn find(
        &self,
        enterprise_id: Option<&str>,
        team_id: Option<&str>,
        is_enterprise_install: bool,
    ) -> Result<Option<Installation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM slack_installations \
             WHERE enterprise_id = $1 AND ( \
                 (NOT $3 AND team_id = $2) \
                 OR ($1 <> '' AND team_id = '' AND is_enterprise_install)) \
             ORDER BY team_id = $2 DESC LIMIT 1"
        ))
        .bind(enterprise_id.unwrap_or_default())
        .bind(team_id.unwrap_or_default())
        .bind(is_enterprise_install)
        .fetch_optional(&self.pool)
        .await
        .context("Failed to find a Slack installation")?;
        row.map(|row| self.installation_from_row(&row)).transpose()
    }

    /// Every installation, by enterprise and team, without tokens.
    pub async fn list(&self) -> Result<Vec<InstallationListing>, StoreError> {
        let rows = sqlx::query(
            "SELECT enterprise_id, team_id, app_id, is_enterprise_install, team_name, bot_user_id, bot_scopes, \
                 bot_token_sealed IS NOT NULL AS has_bot_token, bot_token_expires_at, active, inactive_reason, \
                 installed_at, updated_at \
             FROM slack_installations ORDER BY enterprise_id, team_id",
        )
        .fetch_all(&self.pool)
        .await
        .context("Failed to list Slack installations")?;
        rows.iter()
            .map(|row| {
                Ok(InstallationListing {
                    identity: identity_from_row(row)?,
                    is_enterprise_install: column(row, "is_enterprise_install")?,
                    team_name: column(row, "team_name")?,
                    bot_user_id: column(row, "bot_user_id")?,
                    bot_scopes: scopes_from(&column::<String>(row, "bot_scopes")?),
                    has_bot_token: column(row, "has_bot_token")?,
                    bot_token_expires_at: column(row, "bot_token_expires_at")?,
                    active: column(row, "active")?,
                    inactive_reason: column(row, "inactive_reason")?,
                    installed_at: column(row, "installed_at")?,
                    updated_at: column(row, "updated_at")?,
                })
            })
            .collect()
    }

    /// Marks the installation inactive (its tokens stopped working: `invalid_grant`,
    /// `token_revoked`), keeping the row and its tokens for the operator. `false` when there is
    /// no such installation.
    pub async fn deactivate(&self, identity: &InstallationIdentity, reason: &str) -> Result<bool, StoreError> {
        let (enterprise_id, team_id) = key_of(identity);
        let updated = sqlx::query(
            "UPDATE slack_installations SET active = false, inactive_reason = $4, updated_at = now() \
             WHERE enterprise_id = $1 AND team_id = $2 AND app_id = $3",
        )
        .bind(enterprise_id)
        .bind(team_id)
        .bind(identity.app_id())
        .bind(reason)
        .execute(&self.pool)
        .await
        .context("Failed to deactivate a Slack installation")?;
        Ok(updated.rows_affected() > 0)
    }

    /// Forgets the tokens Slack revoked (`tokens_revoked`) and marks the installation inactive,
    /// since nothing can be answered without them; the row stays until `app_uninstalled`.
    pub async fn delete_tokens(&self, identity: &InstallationIdentity) -> Result<bool, StoreError> {
        let (enterprise_id, team_id) = key_of(identity);
        let updated = sqlx::query(
            "UPDATE slack_installations SET bot_token_sealed = NULL, bot_refresh_token_sealed = NULL, \
                 bot_token_expires_at = NULL, active = false, inactive_reason = 'tokens revoked', updated_at = now() \
             WHERE enterprise_id = $1 AND team_id = $2 AND app_id = $3",
        )
        .bind(enterprise_id)
        .bind(team_id)
        .bind(identity.app_id())
        .execute(&self.pool)
        .await
        .context("Failed to delete a Slack installation's tokens")?;
        Ok(updated.rows_affected() > 0)
    }

    /// Deletes the installation (`app_uninstalled`). Its audit rows live elsewhere and stay.
    pub async fn delete(&self, identity: &InstallationIdentity) -> Result<bool, StoreError> {
        let (enterprise_id, team_id) = key_of(identity);
        let deleted =
            sqlx::query("DELETE FROM slack_installations WHERE enterprise_id = $1 AND team_id = $2 AND app_id = $3")
                .bind(enterprise_id)
                .bind(team_id)
                .bind(identity.app_id())
                .execute(&self.pool)
                .await
                .context("Failed to delete a Slack installation")?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Stores the tokens a refresh returned (Slack may rotate the refresh token too). Call it
    /// inside [`Self::with_refresh_lock`], so no other replica refreshes meanwhile. `false` when
    /// the installation is gone (uninstalled while refreshing).
    pub async fn rotate_tokens(
        &self,
        identity: &InstallationIdentity,
        bot_token: &SecretString,
        refresh_token: &SecretString,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let bot_token = self.seal(bot_token, identity, "bot token")?;
        let refresh_token = self.seal(refresh_token, identity, "refresh token")?;
        let (enterprise_id, team_id) = key_of(identity);
        let updated = sqlx::query(
            "UPDATE slack_installations SET bot_token_sealed = $4, bot_refresh_token_sealed = $5, \
                 bot_token_expires_at = $6, updated_at = now() \
             WHERE enterprise_id = $1 AND team_id = $2 AND app_id = $3",
        )
        .bind(enterprise_id)
        .bind(team_id)
        .bind(identity.app_id())
        .bind(bot_token)
        .bind(refresh_token)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .context("Failed to store a Slack installation's refreshed tokens")?;
        Ok(updated.rows_affected() > 0)
    }

    /// Runs `refresh` while no other caller (on any replica) refreshes the same installation,
    /// so two refreshes never race into `invalid_grant` with the same refresh token.
    ///
    /// The lock is a Postgres advisory lock held by a transaction that `refresh` runs inside
    /// of (released when it ends, also if the replica dies). `refresh` is given the
    /// installation as read *after* the lock was taken: a caller that waited behind another's
    /// refresh finds the new token there and can skip its own. `refresh` stores what it gets
    /// with [`Self::rotate_tokens`], which commits on its own connection before the lock goes.
    /// The transaction holds a pooled connection for as long as `refresh` runs (one Slack call).
    pub async fn with_refresh_lock<T, E, F, Fut>(&self, identity: &InstallationIdentity, refresh: F) -> Result<T, E>
    where
        F: FnOnce(Option<Installation>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<StoreError>,
    {
        let (enterprise_id, team_id) = key_of(identity);
        let mut transaction = self
            .pool
            .begin()
            .await
            .context("Failed to begin a token refresh")
            .map_err(StoreError::from)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(REFRESH_LOCK_CLASS)
            .bind(format!("{enterprise_id}/{team_id}"))
            .execute(&mut *transaction)
            .await
            .context("Failed to lock an installation for a token refresh")
            .map_err(StoreError::from)?;
        let current = select_installation(&mut *transaction, identity)
            .await?
            .map(|row| self.installation_from_row(&row))
            .transpose()?;
        // Either way the lock goes with the transaction, which wrote nothing itself.
        match refresh(current).await {
            Ok(value) => {
                transaction
                    .commit()
                    .await
                    .context("Failed to end a token refresh")
                    .map_err(StoreError::from)?;
                Ok(value)
            }
            Err(error) => {
                // The refresh's error is the one to report; a lock whose rollback failed goes
                // with its connection.
                if let Err(rollback) = transaction.rollback().await {
                    tracing::warn!(error = %rollback, "Failed to end a failed token refresh");
                }
                Err(error)
            }
        }
    }

    /// Re-seals with the current key every token sealed with another (the previous key), in
    /// one transaction, and answers how many installations were re-sealed: once it is done,
    /// `THREADQL_ENCRYPTION_KEY_PREVIOUS` can go. A token that does not open stops it, changing
    /// nothing, since dropping the previous key would then lose it for good.
    #[tracing::instrument(name = "Re-seal Slack installations", skip_all, fields(key_id = self.keys.current_key_id()))]
    pub async fn rekey(&self) -> Result<u64, StoreError> {
        let mut transaction = self.pool.begin().await.context("Failed to begin re-sealing")?;
        let rows = sqlx::query(
            "SELECT enterprise_id, team_id, app_id, bot_token_sealed, bot_refresh_token_sealed \
             FROM slack_installations ORDER BY enterprise_id, team_id FOR UPDATE",
        )
        .fetch_all(&mut *transaction)
        .await
        .context("Failed to read installations to re-seal")?;
        let mut resealed = 0;
        for row in &rows {
            let identity = identity_from_row(row)?;
            let bot_token = self.resealed(column(row, "bot_token_sealed")?, &identity, "bot token")?;
            let refresh_token = self.resealed(column(row, "bot_refresh_token_sealed")?, &identity, "refresh token")?;
            if bot_token.is_none() && refresh_token.is_none() {
                continue;
            }
            let (enterprise_id, team_id) = key_of(&identity);
            sqlx::query(
                "UPDATE slack_installations SET bot_token_sealed = COALESCE($3, bot_token_sealed), \
                     bot_refresh_token_sealed = COALESCE($4, bot_refresh_token_sealed), updated_at = now() \
                 WHERE enterprise_id = $1 AND team_id = $2",
            )
            .bind(enterprise_id)
            .bind(team_id)
            .bind(bot_token)
            .bind(refresh_token)
            .execute(&mut *transaction)
            .await
            .context("Failed to re-seal an installation")?;
            resealed += 1;
        }
        transaction
            .commit()
            .await
            .context("Failed to commit re-sealed tokens")?;
        Ok(resealed)
    }

    /// Remembers that workspace `team` is in Enterprise Grid org `enterprise` (an event said
    /// so): its org-wide install answers for it, after a restart too.
    pub async fn remember_enterprise(&self, team: &str, enterprise: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO slack_enterprise_teams (team_id, enterprise_id) VALUES ($1, $2) \
             ON CONFLICT (team_id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id, seen_at = now() \
             WHERE slack_enterprise_teams.enterprise_id <> EXCLUDED.enterprise_id",
        )
        .bind(team)
        .bind(enterprise)
        .execute(&self.pool)
        .await
        .context("Failed to remember a workspace's enterprise")?;
        Ok(())
    }

    /// The Enterprise Grid org workspace `team` was last seen in, if any.
    pub async fn enterprise_of(&self, team: &str) -> Result<Option<String>, StoreError> {
        let enterprise = sqlx::query_scalar("SELECT enterprise_id FROM slack_enterprise_teams WHERE team_id = $1")
            .bind(team)
            .fetch_optional(&self.pool)
            .await
            .context("Failed to read a workspace's enterprise")?;
        Ok(enterprise)
    }

    /// Records `state`, a random value the install page put in its link to Slack, for
    /// [`Self::consume_state`] to accept once.
    pub async fn create_state(&self, state: &str) -> Result<(), StoreError> {
        sqlx::query(
            "WITH pruned AS (DELETE FROM slack_oauth_states WHERE created_at < now() - $2 * interval '1 hour') \
             INSERT INTO slack_oauth_states (state) VALUES ($1)",
        )
        .bind(state)
        .bind(STATE_RETENTION_HOURS)
        .execute(&self.pool)
        .await
        .context("Failed to record an OAuth state")?;
        Ok(())
    }

    /// Accepts `state` once, if it was issued here less than `max_age` ago. Marking it used is
    /// one statement, so of two redirects racing with the same state exactly one gets past it.
    pub async fn consume_state(&self, state: &str, max_age: Duration) -> Result<(), StateError> {
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let expired: Option<bool> = sqlx::query_scalar(
            "UPDATE slack_oauth_states SET used_at = now() WHERE state = $1 AND used_at IS NULL \
             RETURNING created_at < now() - $2 * interval '1 millisecond'",
        )
        .bind(state)
        .bind(max_age_ms)
        .fetch_optional(&self.pool)
        .await
        .context("Failed to consume an OAuth state")?;
        match expired {
            Some(false) => Ok(()),
            Some(true) => Err(StateError::Expired),
            None => {
                let issued: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM slack_oauth_states WHERE state = $1)")
                        .bind(state)
                        .fetch_one(&self.pool)
                        .await
                        .context("Failed to look up an OAuth state")?;
                Err(if issued { StateError::Used } else { StateError::Unknown })
            }
        }
    }

    fn installation_from_row(&self, row: &PgRow) -> Result<Installation, StoreError> {
        let identity = identity_from_row(row)?;
        let bot_token = self.open_optional(column(row, "bot_token_sealed")?, &identity, "bot token")?;
        let bot_refresh_token =
            self.open_optional(column(row, "bot_refresh_token_sealed")?, &identity, "refresh token")?;
        Ok(Installation {
            is_enterprise_install: column(row, "is_enterprise_install")?,
            bot_user_id: column(row, "bot_user_id")?,
            bot_token,
            bot_scopes: scopes_from(&column::<String>(row, "bot_scopes")?),
            bot_refresh_token,
            bot_token_expires_at: column(row, "bot_token_expires_at")?,
            installer_user_id: column(row, "installer_user_id")?,
            team_name: column(row, "team_name")?,
            active: column(row, "active")?,
            inactive_reason: column(row, "inactive_reason")?,
            identity,
        })
    }

    fn seal(&self, token: &SecretString, identity: &InstallationIdentity, what: &str) -> Result<String, StoreError> {
        self.keys
            .seal(token, identity)
            .map(|sealed| sealed.encode())
            .map_err(|error| seal_failure(error, format!("Failed to seal the {what} of installation {identity}")))
    }

    fn seal_optional(
        &self,
        token: Option<&SecretString>,
        identity: &InstallationIdentity,
        what: &str,
    ) -> Result<Option<String>, StoreError> {
        token.map(|token| self.seal(token, identity, what)).transpose()
    }

    fn open_optional(
        &self,
        stored: Option<String>,
        identity: &InstallationIdentity,
        what: &str,
    ) -> Result<Option<SecretString>, StoreError> {
        stored
            .map(|stored| {
                Sealed::parse(&stored)
                    .and_then(|sealed| self.keys.open(&sealed, identity))
                    .map_err(|error| {
                        seal_failure(error, format!("Failed to open the {what} of installation {identity}"))
                    })
            })
            .transpose()
    }

    /// `stored` sealed anew with the current key, or `None` when there is nothing to do (no
    /// token, or sealed with the current key already).
    fn resealed(
        &self,
        stored: Option<String>,
        identity: &InstallationIdentity,
        what: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(stored) = stored else {
            return Ok(None);
        };
        let sealed = Sealed::parse(&stored)
            .map_err(|error| seal_failure(error, format!("Failed to read the {what} of installation {identity}")))?;
        if !self.keys.is_stale(&sealed) {
            return Ok(None);
        }
        let token = self
            .keys
            .open(&sealed, identity)
            .map_err(|error| seal_failure(error, format!("Failed to open the {what} of installation {identity}")))?;
        self.seal(&token, identity, what).map(Some)
    }
}

/// The row of `identity` (the columns of [`COLUMNS`]).
async fn select_installation<'e>(
    executor: impl PgExecutor<'e>,
    identity: &InstallationIdentity,
) -> Result<Option<PgRow>, StoreError> {
    let (enterprise_id, team_id) = key_of(identity);
    Ok(sqlx::query(&format!(
        "SELECT {COLUMNS} FROM slack_installations WHERE enterprise_id = $1 AND team_id = $2"
    ))
    .bind(enterprise_id)
    .bind(team_id)
    .fetch_optional(executor)
    .await
    .context("Failed to read a Slack installation")?)
}

/// The key columns of `identity`: an absent id is stored as `''`, so the primary key has no NULLs.
fn key_of(identity: &InstallationIdentity) -> (&str, &str) {
    (
        identity.enterprise_id().unwrap_or_default(),
        identity.team_id().unwrap_or_default(),
    )
}

fn identity_from_row(row: &PgRow) -> Result<InstallationIdentity, StoreError> {
    let enterprise_id: String = column(row, "enterprise_id")?;
    let team_id: String = column(row, "team_id")?;
    let app_id: String = column(row, "app_id")?;
    // The table's check keeps one of the two ids non-empty.
    InstallationIdentity::new(Some(&enterprise_id), Some(&team_id), &app_id).ok_or_else(|| {
        StoreError::Unexpected(anyhow::anyhow!(
            "a Slack installation is stored with neither an enterprise nor a team"
        ))
    })
}

fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    Ok(row
        .try_get(name)
        .with_context(|| format!("Failed to read {name} of a Slack installation"))?)
}

/// Scopes as Slack lists them: `chat:write,channels:history`.
fn scopes_from(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|scope| !scope.is_empty())
        .map(str::to_string)
        .collect()
}

fn seal_failure(error: SealError, context: String) -> StoreError {
    StoreError::Unexpected(anyhow::Error::new(error).context(context))
}
