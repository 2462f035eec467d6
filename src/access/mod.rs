//! Who may see what. Roles from threadql.toml ([`roles`]) become one asker's access policy, which
//! the guard enforces on the parsed SQL as the last word ([`crate::sql::SqlGuard::check_with_policy`]).
//! [`AccessControl`] holds the roles in force (reloaded when threadql.toml changes, no restart),
//! the warehouse's columns (to resolve `*` and unqualified names) and the user groups' members.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::domain::TableSchema;
use crate::sql::Dialect;

pub mod roles;

pub use roles::{Grant, Role, Roles};

/// How often threadql.toml is looked at for changed roles.
const ROLES_POLL: Duration = Duration::from_secs(2);

/// The user groups a Slack user is in (handles, without `@`).
#[async_trait]
pub trait UserGroups: Send + Sync {
    async fn groups_of(&self, team: &str, user: &str) -> Vec<String>;
}

/// No user groups: roles list user ids only (tests, the demo, no Slack token).
pub struct NoGroups;

#[async_trait]
impl UserGroups for NoGroups {
    async fn groups_of(&self, _team: &str, _user: &str) -> Vec<String> {
        Vec::new()
    }
}

/// The roles in force, shared by every thread.
pub struct AccessControl {
    roles: RwLock<Arc<Roles>>,
    /// Lower-cased table name (bare and schema-qualified) → its lower-cased columns.
    columns: RwLock<Arc<HashMap<String, Vec<String>>>>,
    groups: RwLock<Arc<dyn UserGroups>>,
    dialect: Dialect,
}

impl AccessControl {
    pub fn new(roles: Roles, groups: Arc<dyn UserGroups>, dialect: Dialect) -> Self {
        Self {
            roles: RwLock::new(Arc::new(roles)),
            columns: RwLock::default(),
            groups: RwLock::new(groups),
            dialect,
        }
    }

    /// Everyone reads everything (no roles).
    pub fn unrestricted(dialect: Dialect) -> Self {
        Self::new(Roles::unrestricted(), Arc::new(NoGroups), dialect)
    }

    /// The roles of threadql.toml at `path` (none when there is no file).
    pub fn read_roles(path: Option<&PathBuf>, dialect: Dialect) -> anyhow::Result<Roles> {
        let Some(path) = path else {
            return Ok(Roles::unrestricted());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("Failed to read THREADQL_CONFIG file {}: {error}", path.display()))?;
        Roles::from_toml_str(&text, dialect)
            .map_err(|problems| anyhow::anyhow!("The roles in {} are not valid: {problems}", path.display()))
    }

    /// Where user groups' members come from (Slack, once its client exists).
    pub fn set_groups(&self, groups: Arc<dyn UserGroups>) {
        match self.groups.write() {
            Ok(mut current) => *current = groups,
            Err(poisoned) => *poisoned.into_inner() = groups,
        }
    }

    pub fn roles(&self) -> Arc<Roles> {
        match self.roles.read() {
            Ok(roles) => roles.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_roles(&self, roles: Roles) {
        let roles = Arc::new(roles);
        match self.roles.write() {
            Ok(mut current) => *current = roles,
            Err(poisoned) => *poisoned.into_inner() = roles,
        }
    }

    /// The warehouse's tables and columns as last described (on every model load).
    pub fn set_schema(&self, schema: &[TableSchema]) {
        let mut columns = HashMap::new();
        for table in schema {
            let names: Vec<String> = table.columns.iter().map(|c| c.name.to_lowercase()).collect();
            let name = table.name.to_lowercase();
            if let Some((_, bare)) = name.rsplit_once('.') {
                columns.entry(bare.to_string()).or_insert_with(|| names.clone());
            }
            columns.insert(name, names);
        }
        let columns = Arc::new(columns);
        match self.columns.write() {
            Ok(mut current) => *current = columns,
            Err(poisoned) => *poisoned.into_inner() = columns,
        }
    }

    pub fn columns(&self) -> Arc<HashMap<String, Vec<String>>> {
        match self.columns.read() {
            Ok(columns) => columns.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// What `user` of `team` may read now; `None`: nothing. User groups are asked only when
    /// some role names one.
    pub async fn grant(&self, team: &str, user: &str) -> Option<Grant> {
        let roles = self.roles();
        let groups = if roles.group_handles().is_empty() {
            Vec::new()
        } else {
            let groups = match self.groups.read() {
                Ok(groups) => groups.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            groups.groups_of(team, user).await
        };
        roles.grant(user, &groups)
    }

    /// Watches threadql.toml at `path` (every two seconds): when its text changes, its roles replace the ones in force
    /// (invalid roles are logged and the previous ones stay) until `stop`.
    pub fn watch(self: &Arc<Self>, path: PathBuf, stop: CancellationToken) {
        let access = self.clone();
        // The text, not the modification time: two saves within the file system's clock tick
        // (milliseconds) would look unchanged. The file is small; reading it is cheap. Read now,
        // so that a change made before the task first runs is seen as one.
        let read = |path: &PathBuf| std::fs::read(path).ok();
        let mut seen = read(&path);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(ROLES_POLL);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                let now = read(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match Self::read_roles(Some(&path), access.dialect) {
                    Ok(roles) => {
                        tracing::info!(roles = roles.roles().len(), "Reloaded the roles from threadql.toml");
                        access.set_roles(roles);
                    }
                    Err(error) => {
                        tracing::error!(%error, "The changed roles are not valid; keeping the previous ones");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn roles_changed_in_the_file_replace_the_ones_in_force() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("threadql.toml");
        std::fs::write(&path, "[[roles]]\nname = \"a\"\nmembers = [\"U1\"]\n").unwrap();
        let roles = AccessControl::read_roles(Some(&path), Dialect::Postgres).unwrap();
        let access = Arc::new(AccessControl::new(roles, Arc::new(NoGroups), Dialect::Postgres));
        let stop = CancellationToken::new();
        access.watch(path.clone(), stop.clone());
        assert_eq!(access.grant("T1", "U2").await, None);

        // A broken edit keeps the previous roles; a valid one replaces them.
        std::fs::write(&path, "[[roles]]\nname = \"a\"\ndeny_columns = [\"email\"]\n").unwrap();
        std::fs::write(&path, "[[roles]]\nname = \"b\"\nmembers = [\"U2\"]\n").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while access.grant("T1", "U2").await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the changed roles were never read"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(access.grant("T1", "U2").await.unwrap().roles, ["b"]);
        assert_eq!(access.grant("T1", "U1").await, None);
        stop.cancel();
    }
}
