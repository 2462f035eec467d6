//! Roles as threadql.toml declares them (`[[roles]]`, `[access]`), and the access policy they
//! give one asker. Pure: no I/O; the file is read and user groups are resolved elsewhere.
use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::sql::{AccessPolicy, Dialect};

/// One `[[roles]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    /// Slack user ids (`U0123ABCD`) and user-group handles (`@sales-emea`).
    #[serde(default)]
    pub members: Vec<String>,
    /// Relations the role may read; `"*"` (or no list) for all.
    #[serde(default)]
    pub tables: Vec<String>,
    /// `table.column` pairs the role may not read.
    #[serde(default)]
    pub deny_columns: Vec<String>,
    /// Table → SQL predicate every reference of the table is filtered by.
    #[serde(default)]
    pub row_filters: BTreeMap<String, String>,
}

/// The `[access]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessSection {
    default_role: Option<String>,
    external: Option<String>,
}

/// The parts of threadql.toml this module reads; the semantic model reads the rest.
#[derive(Debug, Default, Deserialize)]
struct AccessFile {
    #[serde(default)]
    roles: Vec<Role>,
    #[serde(default)]
    access: AccessSection,
}

/// What someone who is in no role gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// No roles are configured: everyone reads what the warehouse role reads.
    Everything,
    /// `default_role = "<name>"`.
    Role(String),
    /// `default_role = "none"`, or roles without a default: refused.
    Nothing,
}

/// Every role and the fallback for everyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    roles: Vec<Role>,
    fallback: Fallback,
    /// Guests and members of other organisations (Slack Connect) count as this when the
    /// audience of a channel is checked.
    pub external: Fallback,
}

/// What one asker may read and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The roles it comes from ("(default) viewer" for the default role); empty when no roles are
    /// configured.
    pub roles: Vec<String>,
    /// `None` when no roles are configured: the guard's plain check applies.
    pub policy: Option<AccessPolicy>,
}

impl Roles {
    /// No roles configured: everyone may read everything the warehouse role reads.
    pub fn unrestricted() -> Self {
        Self {
            roles: Vec::new(),
            fallback: Fallback::Everything,
            external: Fallback::Everything,
        }
    }

    /// Reads `[[roles]]` and `[access]` from threadql.toml's text and checks them: names unique,
    /// the default role known, columns written `table.column`, row filters valid SQL expressions
    /// in the warehouse's dialect. With roles and no `default_role`, everyone else is refused:
    /// a team that writes roles wants them to be the only way in.
    pub fn from_toml_str(text: &str, dialect: Dialect) -> Result<Self, String> {
        let file: AccessFile =
            toml::from_str(text).map_err(|error| format!("the roles are not valid TOML: {error}"))?;
        if file.roles.is_empty() {
            if file.access != AccessSection::default() {
                return Err("[access] is set but no [[roles]] are declared".into());
            }
            return Ok(Self::unrestricted());
        }
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for role in &file.roles {
            if role.name.trim().is_empty() {
                problems.push("a role has no name".to_string());
            } else if !names.insert(role.name.to_lowercase()) {
                problems.push(format!("the role {:?} is declared twice", role.name));
            }
            for column in &role.deny_columns {
                if column.split('.').filter(|part| !part.trim().is_empty()).count() < 2 {
                    problems.push(format!(
                        "role {:?}: deny_columns entry {column:?} is not written table.column",
                        role.name
                    ));
                }
            }
            for member in &role.members {
                let bare = member.trim_start_matches('@');
                if bare.is_empty() || bare.contains(char::is_whitespace) {
                    problems.push(format!(
                        "role {:?}: member {member:?} is neither a user id nor @group",
                        role.name
                    ));
                }
            }
            if let Err(problem) = policy_of(role).validate(dialect) {
                problems.push(format!("role {:?}: {problem}", role.name));
            }
        }
        let fallback = |setting: &Option<String>, key: &str, problems: &mut Vec<String>| match setting.as_deref() {
            None | Some("none") => Fallback::Nothing,
            Some(name) if names.contains(&name.to_lowercase()) => Fallback::Role(name.to_string()),
            Some(name) => {
                problems.push(format!(
                    "[access] {key} = {name:?} names no declared role (or \"none\")"
                ));
                Fallback::Nothing
            }
        };
        let default = fallback(&file.access.default_role, "default_role", &mut problems);
        // External members and guests count as the default role unless told otherwise.
        let external = match &file.access.external {
            None => default.clone(),
            setting => fallback(setting, "external", &mut problems),
        };
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Self {
            roles: file.roles,
            fallback: default,
            external,
        })
    }

    pub fn is_configured(&self) -> bool {
        !self.roles.is_empty()
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The user-group handles (without `@`) any role names: the groups worth resolving.
    pub fn group_handles(&self) -> Vec<String> {
        let mut handles: Vec<String> = self
            .roles
            .iter()
            .flat_map(|role| role.members.iter())
            .filter_map(|member| member.strip_prefix('@'))
            .map(str::to_lowercase)
            .collect();
        handles.sort();
        handles.dedup();
        handles
    }

    /// What `user`, member of the user groups `groups` (handles, without `@`), may read. A user
    /// in several roles gets their union ([`AccessPolicy::union`]): every table any of them
    /// reads, a column denied only when each role that reads its table denies it, and the OR
    /// of row filters. `None`: the user may read nothing.
    pub fn grant(&self, user: &str, groups: &[String]) -> Option<Grant> {
        if !self.is_configured() {
            return Some(Grant {
                roles: Vec::new(),
                policy: None,
            });
        }
        let member = |role: &&Role| {
            role.members.iter().any(|member| match member.strip_prefix('@') {
                Some(handle) => groups.iter().any(|group| group.eq_ignore_ascii_case(handle)),
                None => member.eq_ignore_ascii_case(user),
            })
        };
        let mine: Vec<&Role> = self.roles.iter().filter(member).collect();
        if !mine.is_empty() {
            return Some(Grant {
                roles: mine.iter().map(|role| role.name.clone()).collect(),
                policy: Some(AccessPolicy::union(mine.iter().map(|role| policy_of(role)))),
            });
        }
        self.fallback_grant(&self.fallback)
    }

    /// What a guest or a member of another organisation may read (`[access] external`, the
    /// default role unless set).
    pub fn external_grant(&self) -> Option<Grant> {
        self.fallback_grant(&self.external)
    }

    fn fallback_grant(&self, fallback: &Fallback) -> Option<Grant> {
        match fallback {
            Fallback::Everything => Some(Grant {
                roles: Vec::new(),
                policy: None,
            }),
            Fallback::Nothing => None,
            Fallback::Role(name) => {
                let role = self.roles.iter().find(|role| role.name.eq_ignore_ascii_case(name))?;
                Some(Grant {
                    roles: vec![format!("{} (default)", role.name)],
                    policy: Some(policy_of(role)),
                })
            }
        }
    }
}

/// One role's policy: `"*"` or no list reads every table.
fn policy_of(role: &Role) -> AccessPolicy {
    let every_table = role.tables.is_empty() || role.tables.iter().any(|table| table.trim() == "*");
    let mut policy = if every_table {
        AccessPolicy::unrestricted()
    } else {
        AccessPolicy::only_tables(&role.tables)
    };
    for column in &role.deny_columns {
        if let Some((table, name)) = column.rsplit_once('.') {
            policy = policy.deny_column(table.trim(), name.trim());
        }
    }
    for (table, predicate) in &role.row_filters {
        policy = policy.filter_rows(table, predicate);
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &str = r#"
        [[roles]]
        name = "emea-sales"
        members = ["U0123ABCD", "@sales-emea"]
        tables = ["orders", "customers"]
        deny_columns = ["customers.email"]
        row_filters = { customers = "customers.region = 'EMEA'" }

        [[roles]]
        name = "viewer"
        tables = ["orders"]

        [access]
        default_role = "viewer"
    "#;

    fn roles() -> Roles {
        Roles::from_toml_str(ROLES, Dialect::Postgres).unwrap()
    }

    #[test]
    fn a_member_by_id_or_group_gets_the_roles_policy() {
        let by_id = roles().grant("U0123ABCD", &[]).unwrap();
        let by_group = roles().grant("U999", &["Sales-EMEA".to_string()]).unwrap();
        assert_eq!(by_id.roles, ["emea-sales"]);
        assert_eq!(by_id, by_group);
        let policy = by_id.policy.unwrap();
        assert!(policy
            .denied_columns
            .contains(&("customers".to_string(), "email".to_string())));
        assert_eq!(policy.row_filters["customers"], ["customers.region = 'EMEA'"]);
    }

    #[test]
    fn everyone_else_gets_the_default_role_and_without_one_nothing() {
        let other = roles().grant("U777", &[]).unwrap();
        assert_eq!(other.roles, ["viewer (default)"]);
        let tables = other.policy.unwrap().tables.unwrap();
        assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["orders"]);

        let strict = Roles::from_toml_str(&ROLES.replace("default_role = \"viewer\"", ""), Dialect::Postgres).unwrap();
        assert_eq!(strict.grant("U777", &[]), None);
        assert!(strict.grant("U0123ABCD", &[]).is_some());
    }

    #[test]
    fn without_roles_everyone_reads_everything() {
        // The semantic model's own tables are not the roles' business.
        let open = Roles::from_toml_str("[[metrics]]\nname = \"x\"", Dialect::Postgres).unwrap();
        let grant = open.grant("U1", &[]).unwrap();
        assert_eq!(grant.policy, None);
        assert!(!Roles::from_toml_str("", Dialect::Postgres).unwrap().is_configured());
    }

    #[test]
    fn mistakes_in_roles_are_named() {
        let bad = r#"
            [[roles]]
            name = "a"
            deny_columns = ["email"]
            row_filters = { customers = "region = (SELECT 1)" }
            [[roles]]
            name = "A"
            [access]
            default_role = "ghost"
        "#;
        let error = Roles::from_toml_str(bad, Dialect::Postgres).unwrap_err();
        for expected in [
            "\"email\" is not written table.column",
            "declared twice",
            "\"ghost\" names no declared role",
            "role \"a\"",
        ] {
            assert!(error.contains(expected), "{expected} in {error}");
        }
    }

    #[test]
    fn groups_worth_resolving_are_listed_once() {
        assert_eq!(roles().group_handles(), ["sales-emea"]);
    }
}
