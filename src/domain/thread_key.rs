//! Which Slack thread a message belongs to.
use serde::{Deserialize, Serialize};

use super::ids::{ChannelId, MessageTs, TeamId};

/// A Slack thread: team, channel and the ts of the thread's root message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ThreadKey {
    team: TeamId,
    channel: ChannelId,
    thread_ts: MessageTs,
}

impl ThreadKey {
    /// Builds a key; every part must be non-empty (Slack always sends them).
    pub fn parse(team: &str, channel: &str, thread_ts: &str) -> Option<Self> {
        if team.is_empty() || channel.is_empty() || thread_ts.is_empty() {
            return None;
        }
        Some(Self {
            team: TeamId::new(team),
            channel: ChannelId::new(channel),
            thread_ts: MessageTs::new(thread_ts),
        })
    }

    pub fn team(&self) -> &TeamId {
        &self.team
    }
    pub fn channel(&self) -> &ChannelId {
        &self.channel
    }
    pub fn thread_ts(&self) -> &MessageTs {
        &self.thread_ts
    }
}

impl std::fmt::Display for ThreadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.team, self.channel, self.thread_ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_key_requires_every_part() {
        assert!(ThreadKey::parse("T1", "C1", "").is_none());
        assert_eq!(ThreadKey::parse("T1", "C1", "1.2").unwrap().to_string(), "T1/C1/1.2");
    }
}
