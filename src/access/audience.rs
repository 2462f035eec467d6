//! Who will read an answer: before an answer is posted in a channel, what it was built from
//! (its [`Disclosure`]) is compared with what every member of the channel may see. Peers check
//! who is asking; a channel shows the answer to everyone in it, guests and members of other
//! organisations (Slack Connect) included.
use async_trait::async_trait;

use crate::sql::{AccessPolicy, Disclosure};

/// `THREADQL_AUDIENCE_CHECK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudienceCheck {
    /// Answers are posted where they were asked, whoever is in the channel.
    Off,
    /// Answers are posted where they were asked; a member who may not see one is logged and
    /// audited (to try roles out before enforcing them).
    Warn,
    /// An answer some member may not see goes to the asker alone, with a note in the thread.
    #[default]
    Enforce,
}

impl AudienceCheck {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "warn" => Ok(Self::Warn),
            "enforce" | "" => Ok(Self::Enforce),
            other => Err(format!(
                "THREADQL_AUDIENCE_CHECK must be off, warn or enforce, not {other:?}"
            )),
        }
    }
}

/// A channel as the audience check reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channel {
    /// Every member's user id (the bot's own included).
    pub members: Vec<String>,
    /// Shared with other organisations (`is_ext_shared`) or across an Enterprise Grid org
    /// (`is_org_shared`).
    pub shared: bool,
    /// A direct message with the bot: nobody but the asker reads it.
    pub direct: bool,
}

/// Where the members of channels come from (Slack's `conversations.members` and
/// `conversations.info`, kept for a while).
#[async_trait]
pub trait ChannelDirectory: Send + Sync {
    /// The channel's members; an error when they cannot be read (the answer is then kept from
    /// the channel under `enforce`).
    async fn channel(&self, team: &str, channel: &str) -> Result<Channel, String>;

    /// Whether `user` is a guest or a member of another organisation: such members count as
    /// `[access] external`.
    async fn is_external(&self, team: &str, user: &str) -> bool;

    /// Forgets what is known of `channel` (someone joined or left it).
    async fn forget(&self, _team: &str, _channel: &str) {}

    /// Whether `user` has left the workspace (deactivated). Unknown counts as still there: a
    /// schedule is not paused for an outage of Slack's directory.
    async fn has_left(&self, _team: &str, _user: &str) -> bool {
        false
    }

    /// The user's own time zone (`Europe/Berlin`), where the workspace says: schedules made by
    /// them are read in it.
    async fn timezone(&self, _team: &str, _user: &str) -> Option<String> {
        None
    }

    /// The bot's own user id: a member of every channel it answers in, never a reader to check.
    fn bot_user(&self) -> Option<String> {
        None
    }
}

/// No directory (the terminal demo, tests without Slack): every channel is the asker alone.
pub struct NoDirectory;

#[async_trait]
impl ChannelDirectory for NoDirectory {
    async fn channel(&self, _team: &str, _channel: &str) -> Result<Channel, String> {
        Ok(Channel {
            direct: true,
            ..Channel::default()
        })
    }

    async fn is_external(&self, _team: &str, _user: &str) -> bool {
        false
    }
}

/// Whether an answer may be posted in its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Everyone who reads the channel may see the answer.
    Everyone,
    /// Someone in the channel may not: `part` names the first thing they may not see
    /// (`customers.email`, `the customers table`, `rows of customers beyond …`).
    NotEveryone { part: String, members: usize, shared: bool },
    /// The channel's members could not be read.
    Unknown,
}

impl Audience {
    /// The decision as the audit trail and "Why this result?" say it.
    pub fn describe(&self) -> String {
        match self {
            Self::Everyone => "everyone in the channel may see it".into(),
            Self::NotEveryone { part, members, shared } => format!(
                "{members} member{} of the channel may not see {part}{}",
                if *members == 1 { "" } else { "s" },
                if *shared {
                    " (a channel shared with another organisation)"
                } else {
                    ""
                }
            ),
            Self::Unknown => "the channel's members could not be read".into(),
        }
    }

    /// The note left in the thread when the answer went to the asker alone (without the data).
    pub fn note(&self) -> Option<String> {
        match self {
            Self::Everyone => None,
            Self::NotEveryone { part, shared, .. } => Some(format!(
                ":lock: The answer uses {part}, which not everyone in this {} may see; I sent it to you directly.",
                if *shared { "shared channel" } else { "channel" }
            )),
            Self::Unknown => {
                Some(":lock: I couldn't check who is in this channel, so I sent the answer to you directly.".into())
            }
        }
    }
}

/// The first part of what `disclosure` shows that a reader with `policy` may not see (`None`:
/// they may see all of it; a policy of `None` reads everything).
///
/// Rows count too: a reader whose rows of a table are filtered may see an answer only when it
/// was filtered by some of the reader's own predicates, so it holds no row they could not read.
pub fn unreadable_part(policy: Option<&AccessPolicy>, disclosure: &Disclosure) -> Option<String> {
    let policy = policy?;
    for relation in &disclosure.relations {
        if !policy.allows_table(relation) {
            return Some(format!("the {relation} table"));
        }
    }
    for column in &disclosure.columns {
        let Some((table, name)) = column.rsplit_once('.') else {
            continue;
        };
        let denied = if name == "*" {
            // A table whose columns were unknown: any denied column of it may be in the answer.
            policy.denies_any_column_of(table)
        } else {
            policy.denies_column(table, name)
        };
        if denied {
            return Some(column.clone());
        }
    }
    for relation in &disclosure.relations {
        for (table, theirs) in policy.row_filters_of(relation) {
            let applied = disclosure.row_filters.get(&table);
            let within = applied.is_some_and(|applied| applied.iter().all(|predicate| theirs.contains(predicate)));
            if !within {
                return Some(format!("rows of {table} beyond {}", theirs.join(" OR ")));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn disclosure(relations: &[&str], columns: &[&str], filters: &[(&str, &str)]) -> Disclosure {
        Disclosure {
            relations: relations.iter().map(|r| r.to_string()).collect(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            row_filters: filters
                .iter()
                .map(|(table, predicate)| (table.to_string(), vec![predicate.to_string()]))
                .collect(),
        }
    }

    #[test]
    fn a_reader_without_a_policy_sees_everything() {
        let shown = disclosure(&["customers"], &["customers.email"], &[]);
        assert_eq!(unreadable_part(None, &shown), None);
    }

    #[test]
    fn a_table_or_a_column_outside_the_readers_role_is_named() {
        let viewer = AccessPolicy::only_tables(["orders", "customers"]).deny_column("customers", "email");
        let by_region = disclosure(&["orders"], &["orders.region", "orders.amount"], &[]);
        assert_eq!(unreadable_part(Some(&viewer), &by_region), None);
        let emails = disclosure(&["customers"], &["customers.email"], &[]);
        assert_eq!(
            unreadable_part(Some(&viewer), &emails),
            Some("customers.email".to_string())
        );
        let products = disclosure(&["products"], &["products.name"], &[]);
        assert_eq!(
            unreadable_part(Some(&viewer), &products),
            Some("the products table".to_string())
        );
    }

    #[test]
    fn rows_filtered_for_the_reader_must_be_filtered_in_the_answer() {
        let emea = AccessPolicy::unrestricted().filter_rows("customers", "customers.region = 'EMEA'");
        let everyone = disclosure(&["customers"], &["customers.region"], &[]);
        assert_eq!(
            unreadable_part(Some(&emea), &everyone),
            Some("rows of customers beyond customers.region = 'EMEA'".to_string())
        );
        let emea_only = disclosure(
            &["customers"],
            &["customers.region"],
            &[("customers", "customers.region = 'EMEA'")],
        );
        assert_eq!(unreadable_part(Some(&emea), &emea_only), None);
        let apac = disclosure(
            &["customers"],
            &["customers.region"],
            &[("customers", "customers.region = 'APAC'")],
        );
        assert!(unreadable_part(Some(&emea), &apac).is_some());
    }

    #[test]
    fn the_setting_reads_off_warn_and_enforce() {
        assert_eq!(AudienceCheck::parse("off"), Ok(AudienceCheck::Off));
        assert_eq!(AudienceCheck::parse(" WARN "), Ok(AudienceCheck::Warn));
        assert_eq!(AudienceCheck::parse("enforce"), Ok(AudienceCheck::Enforce));
        assert!(AudienceCheck::parse("strict").is_err());
    }
}
