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
}

impl GuardedSql {
    pub(in crate::sql) fn new(sql: String) -> Self {
        Self { sql }
    }

    pub fn as_str(&self) -> &str {
        &self.sql
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
