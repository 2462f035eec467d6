//! What `Warehouse::describe` shares across engines: its settings, and sampling the distinct
//! values of text columns through the guard and the read-only path.
use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Warehouse;
use crate::domain::{ColumnKind, ColumnSchema, TableSchema, Value};
use crate::sql::dialect::quote_ident;
use crate::sql::SqlGuard;

/// How `describe` samples values.
#[derive(Debug, Clone, Copy)]
pub struct DescribeSettings {
    /// A text column with more distinct values than this is not sampled.
    pub max_values: usize,
    /// At most this many columns are sampled with `SELECT DISTINCT` (statistics are used first).
    pub max_sampled_columns: usize,
    pub sample_timeout: Duration,
    /// No sampling query starts after this much time: a slow warehouse delays start-up by at
    /// most about this long (plus one `sample_timeout`); later refreshes try again.
    pub sampling_budget: Duration,
    pub concurrency: usize,
}

impl Default for DescribeSettings {
    fn default() -> Self {
        Self {
            max_values: 12,
            max_sampled_columns: 400,
            sample_timeout: Duration::from_secs(3),
            sampling_budget: Duration::from_secs(15),
            concurrency: 4,
        }
    }
}

/// Reads the distinct values of text columns whose cardinality the engine's statistics did not
/// give (`known`), through the guard and the read-only path, each with a short timeout.
/// Tables from a catalog's columns listed table by table (`ORDER BY table, position`), each
/// with its columns in that order.
pub fn group_by_table(columns: impl IntoIterator<Item = (String, ColumnSchema)>) -> Vec<TableSchema> {
    let mut tables: Vec<TableSchema> = Vec::new();
    for (table, column) in columns {
        match tables.last_mut() {
            Some(last) if last.name == table => last.columns.push(column),
            _ => tables.push(TableSchema {
                name: table,
                columns: vec![column],
                ..Default::default()
            }),
        }
    }
    tables
}

pub async fn sample_values(
    warehouse: &dyn Warehouse,
    tables: &mut [TableSchema],
    known: &HashSet<(String, String)>,
    settings: &DescribeSettings,
) {
    let guard = SqlGuard::new(warehouse.dialect(), None);
    let candidates: Vec<(String, String)> = tables
        .iter()
        .flat_map(|table| {
            table
                .columns
                .iter()
                .filter(|column| column.kind == ColumnKind::Text && worth_sampling(&column.name))
                .filter(|column| !known.contains(&(table.name.clone(), column.name.clone())))
                .map(|column| (table.name.clone(), column.name.clone()))
        })
        .take(settings.max_sampled_columns)
        .collect();
    let deadline = std::time::Instant::now() + settings.sampling_budget;
    let guard = &guard;
    let sampled: Vec<(String, String, Vec<String>)> = futures::stream::iter(candidates)
        .map(|(table, column)| async move {
            if std::time::Instant::now() >= deadline {
                return (table, column, Vec::new());
            }
            let values = distinct_values(warehouse, guard, &table, &column, settings).await;
            (table, column, values)
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    for (table, column, values) in sampled {
        if let Some(column) = tables
            .iter_mut()
            .find(|t| t.name == table)
            .and_then(|t| t.column_mut(&column))
        {
            column.values = values;
        }
    }
}

async fn distinct_values(
    warehouse: &dyn Warehouse,
    guard: &SqlGuard,
    table: &str,
    column: &str,
    settings: &DescribeSettings,
) -> Vec<String> {
    let dialect = warehouse.dialect();
    let table_sql = table
        .split('.')
        .map(|part| quote_ident(part, dialect))
        .collect::<Vec<_>>()
        .join(".");
    let column_sql = quote_ident(column, dialect);
    let cap = settings.max_values + 1;
    let sql =
        format!("SELECT DISTINCT {column_sql} FROM {table_sql} WHERE {column_sql} IS NOT NULL ORDER BY 1 LIMIT {cap}");
    let guarded = match guard.check(&sql, cap as u64) {
        Ok(guarded) => guarded,
        Err(error) => {
            tracing::debug!(table, column, %error, "Not sampling a column");
            return Vec::new();
        }
    };
    match warehouse
        .execute(&guarded, settings.sample_timeout, &CancellationToken::new())
        .await
    {
        Ok(result) if result.rows.len() <= settings.max_values => result
            .rows
            .into_iter()
            .filter_map(|row| match row.into_iter().next() {
                Some(Value::Text(text)) => Some(text),
                _ => None,
            })
            .filter(|text| is_presentable_value(text))
            .collect(),
        Ok(_) => Vec::new(),
        Err(error) => {
            tracing::debug!(table, column, %error, "Failed to sample a column");
            Vec::new()
        }
    }
}

/// Identifiers, contact details and secrets are never sampled.
pub(super) fn worth_sampling(column: &str) -> bool {
    let name = column.to_lowercase();
    const SKIP: &[&str] = &[
        "uuid",
        "email",
        "phone",
        "password",
        "secret",
        "token",
        "hash",
        "address",
        "description",
        "comment",
        "note",
        "body",
        "url",
    ];
    // Too short to look for inside other words: "ip" is in "shipmode" and "zip".
    const SKIP_WORDS: &[&str] = &["ip"];
    let is_skipped_word = identifier_words(column)
        .iter()
        .any(|word| SKIP_WORDS.contains(&word.as_str()));
    name != "id" && !name.ends_with("_id") && !SKIP.iter().any(|s| name.contains(s)) && !is_skipped_word
}

/// The lower-case words of `client_ip` or `ClientIP`.
fn identifier_words(column: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut previous_lower = false;
    for c in column.chars() {
        if !c.is_alphanumeric() {
            words.push(String::new());
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            words.push(String::new());
        }
        match words.last_mut() {
            Some(word) => word.extend(c.to_lowercase()),
            None => words.push(c.to_lowercase().collect()),
        }
        previous_lower = c.is_lowercase();
    }
    words.retain(|word| !word.is_empty());
    words
}

/// Short single-line values only: a value is shown to the model, never followed by it.
pub(super) fn is_presentable_value(value: &str) -> bool {
    !value.trim().is_empty() && value.chars().count() <= 60 && !value.contains(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_sampled_unless_their_names_say_identifier_contact_or_secret() {
        for (column, sampled) in [
            ("l_shipmode", true),
            ("l_shipinstruct", true),
            ("zip_code", true),
            ("status", true),
            ("client_ip", false),
            ("ClientIP", false),
            ("ip", false),
            ("c_phone", false),
            ("customer_id", false),
            ("description", false),
        ] {
            assert_eq!(worth_sampling(column), sampled, "{column}");
        }
    }
}
