//! The guarded SQL path: every statement from any interpreter is checked here before a
//! warehouse sees it.
pub mod dialect;
pub mod guard;
pub mod policy;

pub use dialect::Dialect;
pub use guard::{GuardError, SqlGuard};
pub use policy::{AccessPolicy, Disclosure};

/// A statement that passed [`SqlGuard`]: one read-only query over allowed relations with a
/// capped LIMIT. Only the guard can build one, so a warehouse never receives unchecked SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedSql {
    sql: String,
    tag: Option<QueryTag>,
}

impl GuardedSql {
    pub(in crate::sql) fn new(sql: String) -> Self {
        Self { sql, tag: None }
    }

    /// The statement as the guard checked it, without its tag.
    pub fn as_str(&self) -> &str {
        &self.sql
    }

    /// A short fingerprint of the statement (without its tag): "Why this result?" shows it and
    /// audit rows carry it, so an answer can be matched with what ran.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(self.sql.as_bytes()));
        format!("sha256:{}", digest.get(..16).unwrap_or(&digest))
    }

    /// The same statement, attributed to a thread's version: each engine shows the tag where
    /// its administrators look (see [`QueryTag`]).
    pub fn tagged(mut self, tag: QueryTag) -> Self {
        self.tag = Some(tag);
        self
    }

    pub fn tag(&self) -> Option<&QueryTag> {
        self.tag.as_ref()
    }

    /// The text to send to an engine whose only place for a tag is the statement itself
    /// (Postgres, MySQL, SQLite): the tag as a leading comment, which `pg_stat_activity`,
    /// `SHOW PROCESSLIST` and slow-query logs keep. A comment cannot change what runs: the tag's
    /// characters are restricted so that it can neither close the comment nor become a MySQL
    /// executable comment (`/*!`) or optimizer hint (`/*+`).
    pub fn commented(&self) -> std::borrow::Cow<'_, str> {
        match &self.tag {
            Some(tag) => format!("/* {tag} */ {}", self.sql).into(),
            None => self.sql.as_str().into(),
        }
    }
}

/// Who a statement runs for, so that warehouse administrators can attribute load:
/// `threadql:<thread key>:<version>`. Snowflake gets it as the statement's `QUERY_TAG`, BigQuery
/// as job labels, the SQL engines as a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTag {
    thread: String,
    version: usize,
}

impl QueryTag {
    /// `thread` keeps letters, digits and `/ . _ -` (a thread key is `team/channel/ts`); anything
    /// else becomes `_`.
    pub fn new(thread: &impl std::fmt::Display, version: usize) -> Self {
        let thread = thread
            .to_string()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self { thread, version }
    }

    /// BigQuery labels: keys and values of at most 63 lower-case letters, digits, `_` and `-`.
    pub fn labels(&self) -> [(String, String); 2] {
        let thread: String = self
            .thread
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(63)
            .collect();
        [
            ("threadql_thread".to_string(), thread),
            ("threadql_version".to_string(), self.version.to_string()),
        ]
    }
}

impl std::fmt::Display for QueryTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "threadql:{}:{}", self.thread, self.version)
    }
}

impl AsRef<str> for GuardedSql {
    fn as_ref(&self) -> &str {
        &self.sql
    }
}

impl std::fmt::Display for GuardedSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_cannot_close_its_comment_or_become_a_hint() {
        let guarded = GuardedSql::new("SELECT 1".into()).tagged(QueryTag::new(&"T1/C1/1.2*/ DROP", 3));
        assert_eq!(guarded.commented(), "/* threadql:T1/C1/1.2_/_DROP:3 */ SELECT 1");
        assert_eq!(guarded.as_str(), "SELECT 1");
    }

    #[test]
    fn labels_follow_bigquerys_rules() {
        let [thread, version] = QueryTag::new(&"T01ABC/C02/1712345678.000100", 12).labels();
        assert_eq!(thread.1, "t01abc-c02-1712345678-000100");
        assert_eq!(version.1, "12");
    }
}
