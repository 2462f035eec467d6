//! Who is in a channel, as the audience check needs it: members and sharing read from Slack
//! (`conversations.info`, `conversations.members`) and kept for a minute (forgotten at once
//! when Slack says someone joined or left), and whether a member is a guest or from another
//! organisation (`users.info`, kept for an hour).
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;

use super::web_api::SlackWebApi;
use crate::access::{Channel, ChannelDirectory};

/// How long a channel's members are used before they are read again. Short: a member added
/// between two answers must count, even if the join event was missed.
const CHANNEL_TTL: Duration = Duration::from_secs(60);
/// How long a user's guest / other-organisation flags are kept (they rarely change).
const USER_TTL: Duration = Duration::from_secs(3600);

pub struct SlackChannelDirectory {
    api: SlackWebApi,
    bot_user: Option<String>,
    /// "team:channel" → when read, and what.
    channels: DashMap<String, (Instant, Arc<Channel>)>,
    /// "team:user" → when read, and whether external.
    users: DashMap<String, (Instant, bool)>,
}

impl SlackChannelDirectory {
    pub fn new(api: SlackWebApi, bot_user: Option<String>) -> Self {
        Self {
            api,
            bot_user,
            channels: DashMap::new(),
            users: DashMap::new(),
        }
    }
}

#[async_trait]
impl ChannelDirectory for SlackChannelDirectory {
    async fn channel(&self, team: &str, channel: &str) -> Result<Channel, String> {
        let key = format!("{team}:{channel}");
        if let Some(entry) = self.channels.get(&key) {
            if entry.0.elapsed() < CHANNEL_TTL {
                return Ok(entry.1.as_ref().clone());
            }
        }
        let api = self.api.for_team(team).await.map_err(|error| error.to_string())?;
        let found = api.channel(channel).await.map_err(|error| error.to_string())?;
        self.channels.insert(key, (Instant::now(), Arc::new(found.clone())));
        Ok(found)
    }

    async fn is_external(&self, team: &str, user: &str) -> bool {
        let key = format!("{team}:{user}");
        if let Some(entry) = self.users.get(&key) {
            if entry.0.elapsed() < USER_TTL {
                return entry.1;
            }
        }
        let answer = match self.api.for_team(team).await {
            Ok(api) => api.is_external_user(team, user).await,
            Err(error) => Err(error),
        };
        match answer {
            Ok(external) => {
                self.users.insert(key, (Instant::now(), external));
                external
            }
            Err(error) => {
                // Unknown counts as external: the stricter reading keeps the answer private.
                tracing::warn!(%error, user, "Failed to read a user's profile for the audience check");
                true
            }
        }
    }

    async fn has_left(&self, team: &str, user: &str) -> bool {
        let answer = match self.api.for_team(team).await {
            Ok(api) => api.user_deactivated(user).await,
            Err(error) => Err(error),
        };
        match answer {
            Ok(left) => left,
            Err(error) => {
                tracing::warn!(%error, user, "Failed to read whether a user was deactivated");
                false
            }
        }
    }

    async fn timezone(&self, team: &str, user: &str) -> Option<String> {
        let answer = match self.api.for_team(team).await {
            Ok(api) => api.user_timezone(user).await,
            Err(error) => Err(error),
        };
        match answer {
            Ok(timezone) => timezone,
            Err(error) => {
                tracing::warn!(%error, user, "Failed to read a user's time zone");
                None
            }
        }
    }

    async fn forget(&self, team: &str, channel: &str) {
        self.channels.remove(&format!("{team}:{channel}"));
    }

    fn bot_user(&self) -> Option<String> {
        self.bot_user.clone()
    }
}
