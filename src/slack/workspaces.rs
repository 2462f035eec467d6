//! Whose token a Web API call uses, when threadql is installed into several workspaces through
//! OAuth (issue 15): each thread's replies go out with its own workspace's bot token, read from
//! the installation store and kept in memory for a while (a token changes only when it rotates,
//! is revoked or the app is uninstalled, and those paths drop it here).
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use secrecy::SecretString;

use super::install::InstallationStore;

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

/// [`WorkspaceTokens`] over the Postgres installation store, cached per team.
pub struct InstalledWorkspaces {
    store: Arc<InstallationStore>,
    tokens: DashMap<String, (Instant, Result<SecretString, NoToken>)>,
    enterprises: DashMap<String, String>,
}

impl InstalledWorkspaces {
    pub fn new(store: Arc<InstallationStore>) -> Self {
        Self {
            store,
            tokens: DashMap::new(),
            enterprises: DashMap::new(),
        }
    }

    async fn read(&self, team: &str) -> Result<SecretString, NoToken> {
        let enterprise = self.enterprises.get(team).map(|entry| entry.value().clone());
        let found = self.store.find(enterprise.as_deref(), Some(team), false).await;
        let installation = match found {
            Ok(Some(installation)) => installation,
            Ok(None) => return Err(NoToken::NotInstalled { team: team.to_string() }),
            Err(error) => {
                tracing::warn!(team, ?error, "Failed to read a workspace's installation");
                return Err(NoToken::Unavailable { team: team.to_string() });
            }
        };
        match (installation.active, installation.bot_token) {
            (true, Some(token)) => Ok(token),
            (_, _) => Err(NoToken::Inactive {
                team: team.to_string(),
                reason: installation
                    .inactive_reason
                    .unwrap_or_else(|| "its tokens were revoked".to_string()),
            }),
        }
    }
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
