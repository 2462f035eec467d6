//! Newtypes for the ids Slack and threadql hand around, so a user id cannot be passed where a
//! message ts is expected. Each serialises as its bare string, so snapshots keep their shape.
use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_string())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// A Slack user (`U…`/`W…`).
    UserId
);
string_id!(
    /// A Slack workspace (`T…`).
    TeamId
);
string_id!(
    /// A Slack conversation: channel, group or DM (`C…`/`G…`/`D…`).
    ChannelId
);
string_id!(
    /// A Slack message timestamp (`1700000000.000100`), unique within its channel.
    MessageTs
);
string_id!(
    /// The id threadql gives one query version, shown in answers and kept in `query_history`.
    QueryId
);

impl QueryId {
    /// A fresh, short id (`q-` and eight hex characters): it reads well in a context line.
    pub fn random() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("q-{}", &id[..8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_bare_strings() {
        let user = UserId::new("U123");
        assert_eq!(serde_json::to_string(&user).unwrap(), "\"U123\"");
        assert_eq!(serde_json::from_str::<UserId>("\"U123\"").unwrap(), user);
        assert_eq!(user, "U123");
    }

    #[test]
    fn random_query_ids_are_short_and_distinct() {
        let (a, b) = (QueryId::random(), QueryId::random());
        assert_eq!(a.len(), 10);
        assert!(a.starts_with("q-"));
        assert_ne!(a, b);
    }
}
