//! Slack user groups (`@sales-emea`) as the roles name them: every group's members, read with
//! `usergroups.list` and kept for a few minutes, so a role change in Slack applies without a
//! restart and a question does not cost a Web API call.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;

use super::web_api::SlackWebApi;
use crate::access::UserGroups;

/// How long a read of every group's members is used before it is read again.
const GROUPS_TTL: Duration = Duration::from_secs(300);

/// User id → the handles of its groups, as last read.
struct Membership {
    read_at: Instant,
    groups_of: HashMap<String, Vec<String>>,
}

/// A workspace's last read of its groups. One read at a time: concurrent askers wait for it
/// instead of each calling Slack.
type WorkspaceGroups = Arc<tokio::sync::Mutex<Option<Arc<Membership>>>>;

pub struct SlackUserGroups {
    api: SlackWebApi,
    /// By workspace: installed into several, each has its own groups (read with its own token).
    cache: DashMap<String, WorkspaceGroups>,
}

impl SlackUserGroups {
    pub fn new(api: SlackWebApi) -> Self {
        Self {
            api,
            cache: DashMap::new(),
        }
    }

    async fn membership(&self, team: &str) -> Option<Arc<Membership>> {
        let workspace = self.cache.entry(team.to_string()).or_default().clone();
        let mut cache = workspace.lock().await;
        if let Some(membership) = cache.as_ref().filter(|m| m.read_at.elapsed() < GROUPS_TTL) {
            return Some(membership.clone());
        }
        let read = match self.api.for_team(team).await {
            Ok(api) => api.user_groups().await,
            Err(error) => Err(error),
        };
        match read {
            Ok(groups) => {
                let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
                for (handle, members) in groups {
                    for member in members {
                        groups_of.entry(member).or_default().push(handle.to_lowercase());
                    }
                }
                let membership = Arc::new(Membership {
                    read_at: Instant::now(),
                    groups_of,
                });
                *cache = Some(membership.clone());
                Some(membership)
            }
            Err(error) => {
                // The last read, however old, beats none: a user keeps the groups they had.
                tracing::warn!(%error, "Failed to read Slack user groups");
                cache.clone()
            }
        }
    }
}

#[async_trait]
impl UserGroups for SlackUserGroups {
    async fn groups_of(&self, team: &str, user: &str) -> Vec<String> {
        self.membership(team)
            .await
            .and_then(|membership| membership.groups_of.get(user).cloned())
            .unwrap_or_default()
    }

    async fn forget(&self) {
        self.cache.clear();
    }
}
