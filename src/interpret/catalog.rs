//! The warehouse catalog the language model is shown: tables, columns, primary and foreign keys,
//! comments and a few values of low-cardinality text columns.
//!
//! It is described with the model at start (and again when the model is reloaded, see
//! [`super::load::ModelRefresh`]), then ranked per question so
//! only the relevant tables go into a prompt: a warehouse of hundreds of tables still fits.
//! Values read from the warehouse are data, not instructions: the prompt quotes them as such,
//! and whatever the model writes still goes through the SQL guard.
use std::collections::HashSet;

use super::model::SemanticModel;
use crate::domain::{ColumnSchema, TableSchema};

/// A table of the catalog, as the warehouse describes it.
pub type CatalogTable = TableSchema;
/// A column of the catalog, as the warehouse describes it.
pub type CatalogColumn = ColumnSchema;

/// Every table threadql may read, with what is known about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    pub tables: Vec<CatalogTable>,
}

/// How much of the catalog one prompt may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextLimits {
    pub max_tables: usize,
    pub max_columns_per_table: usize,
}

impl Default for ContextLimits {
    fn default() -> Self {
        Self {
            max_tables: 8,
            max_columns_per_table: 40,
        }
    }
}

/// A table chosen for a prompt, with the columns that fit.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedTable<'a> {
    pub table: &'a CatalogTable,
    pub columns: Vec<&'a CatalogColumn>,
    /// Columns left out to respect [`ContextLimits::max_columns_per_table`].
    pub omitted_columns: usize,
    pub score: f64,
}

impl Catalog {
    /// The tables as the warehouse described them ([`Warehouse::schema`] or
    /// [`Warehouse::describe`]).
    pub fn from_schema(schema: &[TableSchema]) -> Self {
        Self {
            tables: schema.to_vec(),
        }
    }

    pub fn table(&self, name: &str) -> Option<&CatalogTable> {
        self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Names of the catalog's tables that `sql` mentions (the tables a refinement keeps using).
    pub fn tables_in_sql(&self, sql: &str) -> Vec<String> {
        let words: HashSet<String> = sql
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .flat_map(|word| {
                let word = word.to_lowercase();
                // `sales.orders` and `o.total` both split into parts too.
                let parts: Vec<String> = word.split('.').map(str::to_string).collect();
                std::iter::once(word).chain(parts)
            })
            .collect();
        self.tables
            .iter()
            .filter(|t| words.contains(&t.name.to_lowercase()))
            .map(|t| t.name.clone())
            .collect()
    }

    /// The tables most relevant to `question`, best first, within `limits`.
    ///
    /// A table scores by the overlap of the question's words with its name, its columns' names,
    /// comments and values, and with the semantic model's metric and dimension names and
    /// synonyms. `pinned` tables (those of the thread's current query) always come first. The
    /// tables the chosen ones join to (foreign keys, model joins) fill the remaining room, so
    /// the model can write the joins.
    pub fn relevant_tables(
        &self,
        question: &str,
        model: &SemanticModel,
        pinned: &[String],
        limits: ContextLimits,
    ) -> Vec<SelectedTable<'_>> {
        let question = Terms::of(question);
        let mut scores: Vec<(usize, f64, HashSet<&str>)> = self
            .tables
            .iter()
            .enumerate()
            .map(|(index, table)| {
                let (score, matched) = score_table(table, &question);
                (index, score, matched)
            })
            .collect();
        for (table, boost) in model_boosts(model, &question) {
            if let Some(entry) = scores.iter_mut().find(|(index, _, _)| {
                self.tables
                    .get(*index)
                    .is_some_and(|t| t.name.eq_ignore_ascii_case(&table))
            }) {
                entry.1 += boost;
            }
        }
        for name in pinned {
            if let Some(entry) = scores.iter_mut().find(|(index, _, _)| {
                self.tables
                    .get(*index)
                    .is_some_and(|t| t.name.eq_ignore_ascii_case(name))
            }) {
                entry.1 += 100.0;
            }
        }
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        let mut chosen: Vec<(usize, f64, HashSet<&str>)> = scores
            .iter()
            .filter(|(_, score, _)| *score > 0.0)
            .take(limits.max_tables)
            .cloned()
            .collect();
        // Join partners of the best tables, so the model can reach the columns it needs.
        let mut partners: Vec<String> = Vec::new();
        for (index, _, _) in chosen.iter().take(3) {
            if let Some(table) = self.tables.get(*index) {
                partners.extend(table.foreign_keys.iter().map(|fk| fk.table.clone()));
                for join in &model.joins {
                    if join.from.table.eq_ignore_ascii_case(&table.name) {
                        partners.push(join.to.table.clone());
                    }
                }
            }
        }
        for partner in partners {
            if chosen.len() >= limits.max_tables {
                break;
            }
            let Some(position) = self.tables.iter().position(|t| t.name.eq_ignore_ascii_case(&partner)) else {
                continue;
            };
            if chosen.iter().any(|(index, _, _)| *index == position) {
                continue;
            }
            chosen.push((position, 0.0, HashSet::new()));
        }

        chosen
            .into_iter()
            .filter_map(|(index, score, matched)| {
                let table = self.tables.get(index)?;
                Some(select_columns(table, &matched, score, limits.max_columns_per_table))
            })
            .collect()
    }
}

/// Keys first, then the columns the question matched, then the rest, up to `max`; shown in the
/// table's own order.
fn select_columns<'a>(table: &'a CatalogTable, matched: &HashSet<&str>, score: f64, max: usize) -> SelectedTable<'a> {
    let priority = |column: &CatalogColumn| -> u8 {
        if table.primary_key.contains(&column.name) || table.foreign_key_of(&column.name).is_some() {
            0
        } else if matched.contains(column.name.as_str()) {
            1
        } else {
            2
        }
    };
    let mut order: Vec<(usize, u8)> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (i, priority(c)))
        .collect();
    order.sort_by_key(|(i, p)| (*p, *i));
    let mut keep: Vec<usize> = order.iter().take(max).map(|(i, _)| *i).collect();
    keep.sort_unstable();
    SelectedTable {
        table,
        columns: keep.iter().filter_map(|i| table.columns.get(*i)).collect(),
        omitted_columns: table.columns.len().saturating_sub(keep.len()),
        score,
    }
}

fn score_table<'a>(table: &'a CatalogTable, question: &Terms) -> (f64, HashSet<&'a str>) {
    let mut score = 0.0;
    let mut matched = HashSet::new();
    score += 3.0 * question.overlap(&table.name) as f64;
    if let Some(comment) = &table.comment {
        score += (question.overlap(comment) as f64).min(3.0);
    }
    let mut column_score = 0.0;
    for column in &table.columns {
        let mut hit = 0.0;
        if question.overlap(&column.name) > 0 {
            hit += 1.0;
        }
        if let Some(comment) = &column.comment {
            hit += 0.5 * (question.overlap(comment) as f64).min(2.0);
        }
        if column.values.iter().any(|value| question.contains_phrase(value)) {
            hit += 3.0;
        }
        if hit > 0.0 {
            matched.insert(column.name.as_str());
            column_score += hit;
        }
    }
    score += column_score.min(8.0);
    (score, matched)
}

/// Boosts for the tables behind the metrics and dimensions the question names.
fn model_boosts(model: &SemanticModel, question: &Terms) -> Vec<(String, f64)> {
    let mut boosts = Vec::new();
    for metric in &model.metrics {
        let named = std::iter::once(&metric.name)
            .chain(&metric.synonyms)
            .any(|name| question.contains_phrase(name));
        if !named {
            continue;
        }
        boosts.push((metric.table.clone(), 5.0));
        for definition in metric.definitions() {
            boosts.push((definition.table.clone(), 1.0));
            for text in std::iter::once(&definition.expression).chain(definition.filter.as_ref()) {
                for table in qualified_tables(text) {
                    boosts.push((table, 1.0));
                }
            }
        }
    }
    for dimension in &model.dimensions {
        let named = std::iter::once(&dimension.name)
            .chain(&dimension.synonyms)
            .any(|name| question.contains_phrase(name));
        if named {
            boosts.push((dimension.table.clone(), 4.0));
        }
    }
    boosts
}

/// Table names of the `table.column` references in a model expression.
fn qualified_tables(expression: &str) -> Vec<String> {
    expression
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.split_once('.').map(|(table, _)| table.to_string()))
        .filter(|table| !table.is_empty())
        .collect()
}

/// Words that say nothing about which table is meant.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "does", "each", "for", "from", "give", "had",
    "has", "have", "how", "i", "in", "is", "it", "its", "list", "me", "much", "my", "of", "on", "or", "our", "per",
    "please", "show", "tell", "than", "that", "the", "their", "them", "there", "these", "this", "those", "to", "us",
    "was", "we", "were", "what", "when", "where", "which", "who", "why", "with", "you", "your",
];

/// The normalised words of a text, for overlap counting.
#[derive(Debug, Clone, Default)]
pub struct Terms {
    words: HashSet<String>,
    /// The text's words joined by single spaces, for phrase matching.
    flat: String,
    /// The same with every word stemmed. Built once: a prompt matches every catalog value and
    /// model phrase against a question that may run to 40,000 characters.
    flat_stemmed: String,
}

impl Terms {
    pub fn of(text: &str) -> Self {
        let raw = words(text);
        let flat = format!(" {} ", raw.join(" "));
        let flat_stemmed = format!(" {} ", raw.iter().map(|w| stem(w)).collect::<Vec<_>>().join(" "));
        let words = raw
            .iter()
            .filter(|w| !STOPWORDS.contains(&w.as_str()))
            .map(|w| stem(w))
            .collect();
        Self {
            words,
            flat,
            flat_stemmed,
        }
    }

    /// How many distinct normalised words of `text` occur in these terms.
    pub fn overlap(&self, text: &str) -> usize {
        let theirs: HashSet<String> = words(text)
            .iter()
            .filter(|w| !STOPWORDS.contains(&w.as_str()))
            .map(|w| stem(w))
            .collect();
        theirs.iter().filter(|w| self.words.contains(*w)).count()
    }

    /// Whether `phrase` occurs as whole words (`North America` in `revenue in north america`).
    pub fn contains_phrase(&self, phrase: &str) -> bool {
        let phrase = words(phrase).join(" ");
        if phrase.chars().count() < 2 {
            return false;
        }
        if self.flat.contains(&format!(" {phrase} ")) {
            return true;
        }
        // A plural in the question (`refunds`) still names a singular value (`refund`).
        let stemmed: Vec<String> = words(&phrase).iter().map(|w| stem(w)).collect();
        self.flat_stemmed.contains(&format!(" {} ", stemmed.join(" ")))
    }

    pub fn words(&self) -> &HashSet<String> {
        &self.words
    }
}

/// Lower-case alphanumeric words; `snake_case` and `schema.table` split into their parts.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// A crude English stem: enough to match `customers` with `customer` and `categories` with
/// `category`.
fn stem(word: &str) -> String {
    let len = word.chars().count();
    if len > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if len > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ColumnKind;

    fn table(name: &str, columns: &[&str]) -> CatalogTable {
        CatalogTable {
            name: name.into(),
            comment: None,
            columns: columns
                .iter()
                .map(|c| CatalogColumn {
                    name: (*c).into(),
                    data_type: "text".into(),
                    kind: ColumnKind::Text,
                    comment: None,
                    values: Vec::new(),
                })
                .collect(),
            primary_key: vec![],
            foreign_keys: vec![],
        }
    }

    #[test]
    fn tables_are_ranked_by_their_names_columns_and_values() {
        let mut shipments = table("shipments", &["id", "carrier", "status"]);
        if let Some(carrier) = shipments.column_mut("carrier") {
            carrier.values = vec!["DHL".into(), "UPS".into()];
        }
        let catalog = Catalog {
            tables: vec![
                table("invoices", &["id", "amount"]),
                shipments,
                table("employees", &["id", "department"]),
            ],
        };
        let model = SemanticModel::default();
        let chosen = catalog.relevant_tables("how many parcels went with DHL", &model, &[], ContextLimits::default());
        assert_eq!(chosen.len(), 1, "{chosen:#?}");
        assert_eq!(chosen[0].table.name, "shipments");

        let chosen = catalog.relevant_tables("employees per department", &model, &[], ContextLimits::default());
        assert_eq!(chosen[0].table.name, "employees");
    }

    #[test]
    fn metric_synonyms_pull_in_their_tables_and_pinned_tables_come_first() {
        let model = SemanticModel::demo().unwrap();
        let catalog = Catalog {
            tables: vec![
                table("orders", &["id", "customer_id", "total", "status"]),
                table("customers", &["id", "region"]),
                table("app_metrics", &["day", "platform"]),
            ],
        };
        let chosen = catalog.relevant_tables("sales by region", &model, &[], ContextLimits::default());
        let names: Vec<&str> = chosen.iter().map(|t| t.table.name.as_str()).collect();
        assert!(names.contains(&"orders") && names.contains(&"customers"), "{names:?}");
        assert!(!names.contains(&"app_metrics"), "{names:?}");

        let chosen = catalog.relevant_tables(
            "only ios",
            &model,
            &["app_metrics".to_string()],
            ContextLimits::default(),
        );
        assert_eq!(chosen[0].table.name, "app_metrics");
    }

    #[test]
    fn columns_beyond_the_cap_are_left_out_keys_and_matches_first() {
        let columns: Vec<String> = (0..60).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
        let mut wide = table("wide", &refs);
        wide.primary_key = vec!["c59".into()];
        let catalog = Catalog { tables: vec![wide] };
        let chosen = catalog.relevant_tables(
            "wide c42",
            &SemanticModel::default(),
            &[],
            ContextLimits {
                max_tables: 8,
                max_columns_per_table: 10,
            },
        );
        let names: Vec<&str> = chosen[0].columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), 10);
        assert!(names.contains(&"c59") && names.contains(&"c42"), "{names:?}");
        assert_eq!(chosen[0].omitted_columns, 50);
    }

    #[test]
    fn tables_in_sql_finds_plain_qualified_and_aliased_references() {
        let catalog = Catalog {
            tables: vec![
                table("orders", &["id"]),
                table("sales.targets", &["id"]),
                table("other", &["id"]),
            ],
        };
        let found = catalog.tables_in_sql("SELECT o.id FROM orders o JOIN sales.targets t ON t.id = o.id");
        assert_eq!(found, vec!["orders".to_string(), "sales.targets".to_string()]);
    }
}
