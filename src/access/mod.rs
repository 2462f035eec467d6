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
use crate::sql::{Dialect, Disclosure};

pub mod audience;
pub mod roles;

pub use audience::{unreadable_part, Audience, AudienceCheck, Channel, ChannelDirectory, NoDirectory};
pub use roles::{Grant, Role, Roles};

/// How often threadql.toml is looked at for changed roles.
const ROLES_POLL: Duration = Duration::from_secs(2);

/// The user groups a Slack user is in (handles, without `@`).
#[async_trait]
pub trait UserGroups: Send + Sync {
    async fn groups_of(&self, team: &str, user: &str) -> Vec<String>;

    /// Forgets the members read so far (a group was created, renamed or changed members).
    async fn forget(&self) {}
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
    /// Who is in a channel, for the audience check.
    directory: RwLock<Arc<dyn ChannelDirectory>>,
    audience_check: AudienceCheck,
    dialect: Dialect,
}

impl AccessControl {
    pub fn new(roles: Roles, groups: Arc<dyn UserGroups>, dialect: Dialect) -> Self {
        Self {
            roles: RwLock::new(Arc::new(roles)),
            columns: RwLock::default(),
            groups: RwLock::new(groups),
            directory: RwLock::new(Arc::new(NoDirectory)),
            audience_check: AudienceCheck::default(),
            dialect,
        }
    }

    /// With `THREADQL_AUDIENCE_CHECK`.
    pub fn with_audience_check(mut self, check: AudienceCheck) -> Self {
        self.audience_check = check;
        self
    }

    pub fn audience_check(&self) -> AudienceCheck {
        self.audience_check
    }

    /// Where channels' members come from (Slack, once its client exists).
    pub fn set_directory(&self, directory: Arc<dyn ChannelDirectory>) {
        match self.directory.write() {
            Ok(mut current) => *current = directory,
            Err(poisoned) => *poisoned.into_inner() = directory,
        }
    }

    fn directory(&self) -> Arc<dyn ChannelDirectory> {
        match self.directory.read() {
            Ok(directory) => directory.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether the user has left the workspace (deactivated).
    pub async fn has_left(&self, team: &str, user: &str) -> bool {
        self.directory().has_left(team, user).await
    }

    /// The user's own time zone, when the workspace says.
    pub async fn user_timezone(&self, team: &str, user: &str) -> Option<String> {
        self.directory().timezone(team, user).await
    }

    /// A user group changed (a `subteam_*` event): the next question reads the groups again.
    pub async fn groups_changed(&self) {
        let groups = match self.groups.read() {
            Ok(groups) => groups.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        groups.forget().await;
    }

    /// Someone joined or left `channel`: the next answer reads its members again.
    pub async fn channel_changed(&self, team: &str, channel: &str) {
        self.directory().forget(team, channel).await;
    }

    /// Whether everyone in `channel` may see an answer built from `disclosure` that `asker`
    /// asked for. Each member counts with their own roles; guests and members of other
    /// organisations count as `[access] external`. Without roles everyone reads everything.
    pub async fn audience(&self, team: &str, channel: &str, asker: &str, disclosure: &Disclosure) -> Audience {
        let roles = self.roles();
        if !roles.is_configured() {
            return Audience::Everyone;
        }
        let directory = self.directory();
        let found = match directory.channel(team, channel).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, channel, "Failed to read a channel's members");
                return Audience::Unknown;
            }
        };
        if found.direct {
            return Audience::Everyone;
        }
        let external = roles.external_grant();
        let external_blocks = match &external {
            Some(grant) => unreadable_part(grant.policy.as_ref(), disclosure),
            None => Some(describe_everything(disclosure)),
        };
        let bot = directory.bot_user();
        let mut first_part = None;
        let mut blocked = 0;
        for member in &found.members {
            if member == asker || Some(member) == bot.as_ref() {
                continue;
            }
            let own_blocks = match self.grant(team, member).await {
                Some(grant) => unreadable_part(grant.policy.as_ref(), disclosure),
                None => Some(describe_everything(disclosure)),
            };
            // A guest or a member of another organisation counts as `external`, whatever roles
            // name them; asking Slack is needed only when the two answers differ.
            let blocks = match (&own_blocks, &external_blocks) {
                (None, None) => None,
                (Some(_), Some(_)) => own_blocks,
                _ => {
                    if directory.is_external(team, member).await {
                        external_blocks.clone()
                    } else {
                        own_blocks
                    }
                }
            };
            if let Some(part) = blocks {
                blocked += 1;
                first_part.get_or_insert(part);
            }
        }
        match first_part {
            None => Audience::Everyone,
            Some(part) => Audience::NotEveryone {
                part,
                members: blocked,
                shared: found.shared,
            },
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

/// What a reader who may read nothing would miss: the answer's first column, else its first
/// table.
fn describe_everything(disclosure: &Disclosure) -> String {
    match (disclosure.columns.iter().next(), disclosure.relations.iter().next()) {
        (Some(column), _) => column.clone(),
        (None, Some(relation)) => format!("the {relation} table"),
        (None, None) => "the warehouse".to_string(),
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
