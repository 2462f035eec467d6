//! What an interpreter may show of the warehouse to one asker: the catalog and the semantic model
//! without the tables their roles do not read and without denied columns, so that neither the
//! language model nor `help` ever sees them. The guard still has the last word on the SQL.
use super::catalog::Catalog;
use super::model::SemanticModel;
use crate::sql::AccessPolicy;

/// The catalog without unreadable tables and denied columns (their comments and values go with
/// them).
pub fn catalog(catalog: &Catalog, policy: &AccessPolicy) -> Catalog {
    Catalog {
        tables: catalog
            .tables
            .iter()
            .filter(|table| policy.allows_table(&table.name))
            .map(|table| {
                let mut table = table.clone();
                let name = table.name.clone();
                table
                    .columns
                    .retain(|column| !policy.denies_column(&name, &column.name));
                table
            })
            .collect(),
    }
}

/// The model without unreadable tables, denied columns, and the joins, metrics and dimensions
/// built on them.
pub fn model(model: &SemanticModel, policy: &AccessPolicy) -> SemanticModel {
    let mut visible = model.clone();
    visible.tables.retain(|table| policy.allows_table(&table.name));
    for table in &mut visible.tables {
        let name = table.name.clone();
        table.columns.retain(|column| !policy.denies_column(&name, column));
    }
    let readable = |table: &str, column: &str| policy.allows_table(table) && !policy.denies_column(table, column);
    visible
        .joins
        .retain(|join| readable(&join.from.table, &join.from.column) && readable(&join.to.table, &join.to.column));
    visible
        .dimensions
        .retain(|dimension| readable(&dimension.table, &dimension.column));
    visible.metrics.retain(|metric| {
        metric.definitions().iter().all(|definition| {
            policy.allows_table(&definition.table)
                && !mentions_denied(&definition.expression, policy)
                && !definition
                    .filter
                    .as_deref()
                    .is_some_and(|filter| mentions_denied(filter, policy))
        })
    });
    visible
}

/// Whether SQL text (an expression, a past answer's query) names a denied column, bare or
/// qualified by any table or alias (a past query's aliases are not resolved here, so a column of
/// the same name elsewhere counts too: an example left out costs little).
pub fn mentions_denied(sql: &str, policy: &AccessPolicy) -> bool {
    let words: Vec<String> = sql
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect();
    policy.denied_columns.iter().any(|(_, column)| {
        let column = column.to_lowercase();
        words
            .iter()
            .any(|word| *word == column || word.rsplit('.').next() == Some(column.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy::only_tables(["orders", "customers"]).deny_column("customers", "email")
    }

    #[test]
    fn denied_columns_and_unreadable_tables_leave_the_model() {
        let demo = SemanticModel::demo().unwrap();
        let visible = model(
            &demo,
            &AccessPolicy::only_tables(["orders", "customers"]).deny_column("customers", "region"),
        );
        assert!(visible
            .tables
            .iter()
            .all(|t| t.name == "orders" || t.name == "customers"));
        assert!(visible
            .tables
            .iter()
            .all(|t| !t.columns.contains(&"region".to_string()) || t.name != "customers"));
        assert!(visible
            .dimensions
            .iter()
            .all(|d| !(d.table == "customers" && d.column == "region")));
        assert!(visible.metrics.iter().all(|m| m.table != "order_items"));
        assert!(!visible.metrics.is_empty(), "metrics over readable columns stay");
    }

    #[test]
    fn sql_naming_a_denied_column_is_recognised() {
        assert!(mentions_denied("SELECT c.email FROM customers c", &policy()));
        assert!(mentions_denied("SELECT lower(email) FROM customers", &policy()));
        assert!(!mentions_denied("SELECT emails_sent FROM campaigns", &policy()));
        assert!(!mentions_denied("SELECT region FROM customers", &policy()));
    }
}
