//! `threadql roles check` and `threadql roles who <user>`: the roles of threadql.toml checked
//! against the warehouse, and what one Slack user may see under them.
use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::access::{AccessControl, Roles};
use crate::config::Config;
use crate::sql::{AccessPolicy, SqlGuard};

/// How long a row filter's trial query may take.
const FILTER_TRIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Prints every problem of the roles against the warehouse: tables and denied columns it does
/// not have, row filters that do not run. `Ok(false)` when there is one.
pub async fn check(config: &Config) -> anyhow::Result<bool> {
    let warehouse = crate::startup::connect_warehouse(config).await?;
    let dialect = warehouse.dialect();
    let roles = match AccessControl::read_roles(config.model_path.as_ref(), dialect) {
        Ok(roles) => roles,
        Err(error) => {
            println!("✗ {error:#}");
            return Ok(false);
        }
    };
    if !roles.is_configured() {
        println!("No [[roles]] in THREADQL_CONFIG: everyone may read everything the warehouse role reads.");
        return Ok(true);
    }
    let schema = warehouse.schema().await?;
    let access = AccessControl::new(
        Roles::unrestricted(),
        std::sync::Arc::new(crate::access::NoGroups),
        dialect,
    );
    access.set_schema(&schema);
    let columns = access.columns();
    let guard = SqlGuard::new(dialect, None);
    let mut problems = 0;
    for role in roles.roles() {
        let mut notes = Vec::new();
        for table in role.tables.iter().filter(|t| t.trim() != "*") {
            if !columns.contains_key(&table.to_lowercase()) {
                notes.push(format!("table {table} is not in the warehouse"));
            }
        }
        for column in &role.deny_columns {
            let known = column
                .to_lowercase()
                .rsplit_once('.')
                .and_then(|(table, name)| Some(columns.get(table)?.iter().any(|c| c == name)))
                .unwrap_or(false);
            if !known {
                notes.push(format!("denied column {column} is not in the warehouse"));
            }
        }
        for (table, predicate) in &role.row_filters {
            // The filter as the guard applies it, run once: it must name real columns and run.
            let policy = AccessPolicy::unrestricted().filter_rows(table, predicate);
            let columns_of = |name: &str| columns.get(name).cloned();
            let trial = guard.check_with_policy(&format!("SELECT COUNT(*) AS n FROM {table}"), 1, &policy, &columns_of);
            let outcome = match trial {
                Err(error) => Err(error.to_string()),
                Ok((sql, _)) => warehouse
                    .execute(&sql, FILTER_TRIAL_TIMEOUT, &CancellationToken::new())
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string()),
            };
            if let Err(error) = outcome {
                notes.push(format!("row filter on {table} ({predicate}) does not run: {error}"));
            }
        }
        if notes.is_empty() {
            println!("✓ role {}", role.name);
        } else {
            problems += notes.len();
            println!("✗ role {}", role.name);
            for note in notes {
                println!("    {note}");
            }
        }
    }
    Ok(problems == 0)
}

/// What `user` (a Slack user id) may read: roles, tables, denied columns, row filters. `groups`
/// are the user-group handles the user is in; when none are given and some role names a group,
/// Slack is asked (with SLACK_BOT_TOKEN).
pub async fn who(config: &Config, user: &str, mut groups: Vec<String>) -> anyhow::Result<String> {
    // The dialect only matters for checking row filters; the roles read the same in any.
    use crate::sql::Dialect;
    let dialect = match &config.warehouse {
        crate::config::WarehouseSource::Url(url) => match url.expose().split(':').next().unwrap_or_default() {
            "postgres" | "postgresql" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::MySql,
            "bigquery" => Dialect::BigQuery,
            _ => Dialect::Sqlite,
        },
        crate::config::WarehouseSource::Snowflake(_) => Dialect::Snowflake,
        crate::config::WarehouseSource::Demo(_) => Dialect::Sqlite,
    };
    let roles = AccessControl::read_roles(config.model_path.as_ref(), dialect)?;
    if groups.is_empty() && !roles.group_handles().is_empty() {
        if let Some(token) = &config.slack.bot_token {
            let metrics = crate::metrics::Metrics::new()?;
            let api = crate::slack::web_api::SlackWebApi::new(&config.slack.api_url, token, metrics)?;
            let resolver = crate::slack::user_groups::SlackUserGroups::new(api);
            groups = crate::access::UserGroups::groups_of(&resolver, "", user).await;
            groups.push(String::new()); // looked up, even when in none
        }
    }
    groups.retain(|group| !group.is_empty());
    let looked_up = !groups.is_empty() || config.slack.bot_token.is_some();
    Ok(describe(&roles, user, &groups, looked_up))
}

/// The text `threadql roles who` prints.
pub fn describe(roles: &Roles, user: &str, groups: &[String], groups_looked_up: bool) -> String {
    let Some(grant) = roles.grant(user, groups) else {
        return format!("{user} is in no role and there is no default role: threadql reads nothing for them.\n");
    };
    let Some(policy) = grant.policy else {
        return format!("No roles are configured: {user} may read everything the warehouse role reads.\n");
    };
    let mut text = format!("{user} is in: {}\n", grant.roles.join(", "));
    let tables = match &policy.tables {
        None => "all".to_string(),
        Some(tables) => tables
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
    };
    text.push_str(&format!("tables: {tables}\n"));
    let denied: BTreeSet<String> = policy
        .denied_columns
        .iter()
        .map(|(table, column)| format!("{table}.{column}"))
        .collect();
    let denied = if denied.is_empty() {
        "none".to_string()
    } else {
        denied.into_iter().collect::<Vec<_>>().join(", ")
    };
    text.push_str(&format!("denied columns: {denied}\n"));
    if policy.row_filters.is_empty() {
        text.push_str("row filters: none\n");
    } else {
        text.push_str("row filters:\n");
        let filtered: BTreeSet<&String> = policy.row_filters.keys().collect();
        for table in filtered {
            text.push_str(&format!("  {table}: {}\n", policy.row_filters[table].join(" OR ")));
        }
    }
    if !roles.group_handles().is_empty() && !groups_looked_up {
        text.push_str("(user groups were not looked up: give them with --group, or set SLACK_BOT_TOKEN)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Dialect;

    #[test]
    fn who_lists_roles_tables_columns_and_filters() {
        let roles = Roles::from_toml_str(
            r#"
            [[roles]]
            name = "emea-sales"
            members = ["U0123ABCD", "@sales-emea"]
            tables = ["orders", "customers"]
            deny_columns = ["customers.email", "customers.name"]
            row_filters = { customers = "customers.region = 'EMEA'" }
            "#,
            Dialect::Postgres,
        )
        .unwrap();
        assert_eq!(
            describe(&roles, "U0123ABCD", &[], false),
            "U0123ABCD is in: emea-sales\ntables: customers, orders\n\
             denied columns: customers.email, customers.name\nrow filters:\n  customers: customers.region = 'EMEA'\n\
             (user groups were not looked up: give them with --group, or set SLACK_BOT_TOKEN)\n"
        );
        assert!(describe(&roles, "U2", &[], true).contains("in no role"));
        assert!(describe(&roles, "U2", &["sales-emea".into()], true).starts_with("U2 is in: emea-sales"));
    }
}
