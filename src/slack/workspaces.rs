//! Whose token a Web API call uses, when threadql is installed into several workspaces through
//! OAuth (issue 15): each thread's replies go out with its own workspace's bot token, read from
//! the installation store and kept in memory for a while (a token changes only when it rotates,
//! is revoked or the app is uninstalled, and those paths drop it here).
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use secrecy::SecretString;

use super::install::oauth::{self, InstallSettings, OAuthError};
use super::install::{Installation, InstallationStore};

/// Why a workspace has no token to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoToken {
    #[error("threadql is not installed in workspace {team}")]
    NotInstalled { team: String },
    #[error("the installation of workspace {team} is inactive ({reason})")]
    Inactive { team: String, reason: String },
    #[error("the installation of workspace {team} could not be read")]
    Unavailable { team: String },
}

/// The bot token of each workspace threadql is installed in.
#[async_trait]
pub trait WorkspaceTokens: Send + Sync {
    /// The bot token that answers in `team`.
    async fn bot_token(&self, team: &str) -> Result<SecretString, NoToken>;
    /// An event said `team` belongs to `enterprise` (an Enterprise Grid org): its org-wide
    /// install answers there when the team has none of its own.
    fn remember_enterprise(&self, team: &str, enterprise: &str);
    /// Drops what is cached for `team` (its tokens were revoked, rotated or uninstalled).
    fn forget(&self, team: &str);
}

/// How long a token read from the store is used before it is read again: short enough that a
/// token another replica rotated or lost is noticed soon, long enough that a busy workspace
/// costs one read a minute.
const CACHED_FOR: Duration = Duration::from_secs(60);

/// With token rotation on, a bot token is renewed this long before it expires (Slack's last 12
/// hours), so no call goes out with a token about to lapse.
const REFRESH_BEFORE: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

/// Slack's codes for a refresh token that will never work again: the installation is inactive
/// until someone installs the app again.
const DEAD_GRANT: &[&str] = &[
    "invalid_grant",
    "invalid_refresh_token",
    "token_revoked",
    "token_expired",
];

/// [`WorkspaceTokens`] over the Postgres installation store, cached per team; rotating tokens
/// are renewed with the app's credentials.
pub struct InstalledWorkspaces {
    store: Arc<InstallationStore>,
    app: Arc<InstallSettings>,
    http: reqwest_openai::Client,
    tokens: DashMap<String, (Instant, Result<SecretString, NoToken>)>,
    enterprises: DashMap<String, String>,
}

impl InstalledWorkspaces {
    pub fn new(store: Arc<InstallationStore>, app: InstallSettings) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            app: Arc::new(app),
            http: oauth::http_client()?,
            tokens: DashMap::new(),
            enterprises: DashMap::new(),
        })
    }

    /// Renews an installation's rotating token, once across replicas: under the store's
    /// refresh lock the installation is read again, and a token another replica renewed
    /// meanwhile is used as it is. A refresh Slack refuses for good makes it inactive.
    async fn renew(&self, installation: Installation) -> Result<SecretString, NoToken> {
        let team = installation.identity.team_id().unwrap_or_default().to_string();
        let identity = installation.identity.clone();
        let renewed = self
            .store
            .with_refresh_lock(&identity, |current| async {
                let Some(current) = current else {
                    return Ok(Err(NoToken::NotInstalled { team: team.clone() }));
                };
                if let (Some(token), false) = (&current.bot_token, needs_refresh(&current)) {
                    // Renewed by another replica while this one waited for the lock.
                    return Ok(Ok(token.clone()));
                }
                let Some(refresh_token) = &current.bot_refresh_token else {
                    return Ok(Err(NoToken::Inactive {
                        team: team.clone(),
                        reason: "its token expires and there is no refresh token".into(),
                    }));
                };
                match oauth::refresh(&self.http, &self.app, refresh_token).await {
                    Ok(tokens) => {
                        self.store
                            .rotate_tokens(&identity, &tokens.bot_token, &tokens.refresh_token, tokens.expires_at)
                            .await?;
                        tracing::info!(%identity, "Renewed a workspace's rotating bot token");
                        Ok(Ok(tokens.bot_token))
                    }
                    Err(OAuthError::Refused { code }) if DEAD_GRANT.contains(&code.as_str()) => {
                        let reason = format!("Slack refused to renew its token ({code}); install the app again");
                        self.store.deactivate(&identity, &reason).await?;
                        tracing::warn!(%identity, code, "A workspace's token can no longer be renewed; its installation is inactive");
                        Ok(Err(NoToken::Inactive { team: team.clone(), reason }))
                    }
                    Err(error) => {
                        tracing::warn!(%identity, %error, "Failed to renew a workspace's token; trying again at its next call");
                        Ok(Err(NoToken::Unavailable { team: team.clone() }))
                    }
                }
            })
            .await;
        renewed.unwrap_or_else(|error: crate::store::StoreError| {
            tracing::warn!(?error, "Failed to renew a workspace's token");
            Err(NoToken::Unavailable { team: team.clone() })
        })
    }

    /// The enterprise of `team`: as its events said (then kept in the store for the next
    /// process), or as the store remembers from an earlier one.
    async fn enterprise_of(&self, team: &str) -> Option<String> {
        let known = self.enterprises.get(team).map(|entry| entry.value().clone());
        let stored = match &known {
            Some(enterprise) => self.store.remember_enterprise(team, enterprise).await.map(|()| None),
            None => self.store.enterprise_of(team).await,
        };
        match stored {
            Ok(Some(enterprise)) => {
                self.enterprises.insert(team.to_string(), enterprise.clone());
                Some(enterprise)
            }
            Ok(None) => known,
            Err(error) => {
                tracing::warn!(team, ?error, "Failed to read or keep a workspace's enterprise");
                known
            }
        }
    }

    async fn read(&self, team: &str) -> Result<SecretString, NoToken> {
        let enterprise = self.enterprise_of(team).await;
        let found = self.store.find(enterprise.as_deref(), Some(team), false).await;
        let installation = match found {
            Ok(Some(installation)) => installation,
            Ok(None) => return Err(NoToken::NotInstalled { team: team.to_string() }),
            Err(error) => {
                tracing::warn!(team, ?error, "Failed to read a workspace's installation");
                return Err(NoToken::Unavailable { team: team.to_string() });
            }
        };
        match (installation.active, &installation.bot_token) {
            (true, Some(_)) if needs_refresh(&installation) => self.renew(installation).await,
            (true, Some(token)) => Ok(token.clone()),
            (_, _) => Err(NoToken::Inactive {
                team: team.to_string(),
                reason: installation
                    .inactive_reason
                    .unwrap_or_else(|| "its tokens were revoked".to_string()),
            }),
        }
    }
}

/// Whether an installation's token expires within [`REFRESH_BEFORE`] (never, without rotation).
fn needs_refresh(installation: &Installation) -> bool {
    installation
        .bot_token_expires_at
        .is_some_and(|expires| expires - chrono::Utc::now() < REFRESH_BEFORE)
}

#[async_trait]
impl WorkspaceTokens for InstalledWorkspaces {
    async fn bot_token(&self, team: &str) -> Result<SecretString, NoToken> {
        if let Some(entry) = self.tokens.get(team) {
            let (read_at, token) = entry.value();
            if read_at.elapsed() < CACHED_FOR {
                return token.clone();
            }
        }
        let token = self.read(team).await;
        // A store that could not be read is asked again at the next call, not a minute later.
        if !matches!(token, Err(NoToken::Unavailable { .. })) {
            self.tokens.insert(team.to_string(), (Instant::now(), token.clone()));
        }
        token
    }

    fn remember_enterprise(&self, team: &str, enterprise: &str) {
        if enterprise.is_empty()
            || self
                .enterprises
                .get(team)
                .is_some_and(|known| known.value() == enterprise)
        {
            return;
        }
        self.enterprises.insert(team.to_string(), enterprise.to_string());
        self.tokens.remove(team);
    }

    fn forget(&self, team: &str) {
        self.tokens.remove(team);
    }
}
