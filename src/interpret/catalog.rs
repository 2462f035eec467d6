//! The warehouse catalog the language model is shown: tables, columns, primary and foreign keys,
//! comments and a few values of low-cardinality text columns.
//!
//! It is introspected once at start (and refreshed on a schedule), then ranked per question so
//! only the relevant tables go into a prompt: a warehouse of hundreds of tables still fits.
//! Values read from the warehouse are data, not instructions: the prompt quotes them as such,
//! and whatever the model writes still goes through the SQL guard.
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio_util::sync::CancellationToken;

use super::model::SemanticModel;
use super::query::quote_ident;
use crate::sql::SqlGuard;
use crate::warehouse::{ColumnKind, Dialect, TableSchema, Value, Warehouse};

/// A column as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogColumn {
    pub name: String,
    pub data_type: String,
    pub kind: ColumnKind,
    pub comment: Option<String>,
    /// Every distinct value, when the column is text with only a few of them.
    pub values: Vec<String>,
}

/// `columns` of a table point at `references` of `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub table: String,
    pub references: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTable {
    /// As queries name it: `orders`, or `sales.orders` outside Postgres' `public` schema.
    pub name: String,
    pub comment: Option<String>,
    pub columns: Vec<CatalogColumn>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
}

impl CatalogTable {
    fn column_mut(&mut self, name: &str) -> Option<&mut CatalogColumn> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    fn foreign_key_of(&self, column: &str) -> Option<&ForeignKey> {
        self.foreign_keys
            .iter()
            .find(|fk| fk.columns.len() == 1 && fk.columns.iter().any(|c| c == column))
    }
}

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
    /// Tables and columns only, as [`Warehouse::schema`] returns them.
    pub fn from_schema(schema: &[TableSchema]) -> Self {
        let tables = schema
            .iter()
            .map(|table| CatalogTable {
                name: table.name.clone(),
                comment: None,
                columns: table
                    .columns
                    .iter()
                    .map(|column| CatalogColumn {
                        name: column.name.clone(),
                        data_type: column.data_type.clone(),
                        kind: column.kind,
                        comment: None,
                        values: Vec::new(),
                    })
                    .collect(),
                primary_key: Vec::new(),
                foreign_keys: Vec::new(),
            })
            .collect();
        Self { tables }
    }

    pub fn table(&self, name: &str) -> Option<&CatalogTable> {
        self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    fn table_mut(&mut self, name: &str) -> Option<&mut CatalogTable> {
        self.tables.iter_mut().find(|t| t.name.eq_ignore_ascii_case(name))
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
}

impl Terms {
    pub fn of(text: &str) -> Self {
        let raw = words(text);
        let flat = format!(" {} ", raw.join(" "));
        let words = raw
            .iter()
            .filter(|w| !STOPWORDS.contains(&w.as_str()))
            .map(|w| stem(w))
            .collect();
        Self { words, flat }
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
        let flat_stemmed: Vec<String> = self.flat.split_whitespace().map(stem).collect();
        format!(" {} ", flat_stemmed.join(" ")).contains(&format!(" {} ", stemmed.join(" ")))
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

/// How the loader reads the catalog and samples values.
#[derive(Debug, Clone, Copy)]
pub struct CatalogSettings {
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

impl Default for CatalogSettings {
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

/// Where keys and comments come from: the warehouse's own catalog, read with a separate small
/// connection pool (the guarded path refuses system catalogs, rightly).
enum Metadata {
    Postgres(PgPool),
    Sqlite(SqlitePool),
    None,
}

/// Reads the catalog from a warehouse.
pub struct CatalogLoader {
    warehouse: Arc<dyn Warehouse>,
    guard: SqlGuard,
    metadata: Metadata,
    settings: CatalogSettings,
}

impl CatalogLoader {
    /// `warehouse_url` (`postgres://…`, `sqlite://…`) enables keys and comments; without it only
    /// the warehouse's tables, columns and sampled values are known.
    pub fn new(
        warehouse: Arc<dyn Warehouse>,
        guard: SqlGuard,
        warehouse_url: Option<&str>,
        settings: CatalogSettings,
    ) -> anyhow::Result<Self> {
        let metadata = match warehouse_url {
            Some(url) if url.starts_with("postgres") => Metadata::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy(url)
                    .context("Failed to parse the warehouse URL for catalog introspection")?,
            ),
            Some(url) if url.starts_with("sqlite:") => Metadata::Sqlite(
                SqlitePoolOptions::new().max_connections(1).connect_lazy_with(
                    SqliteConnectOptions::from_str(url)
                        .context("Failed to parse the warehouse URL for catalog introspection")?
                        .read_only(true),
                ),
            ),
            _ => Metadata::None,
        };
        Ok(Self {
            warehouse,
            guard,
            metadata,
            settings,
        })
    }

    /// Introspects the whole catalog. Keys, comments and values are best effort: a failure
    /// there is logged and the catalog still has every table and column.
    pub async fn load(&self) -> anyhow::Result<Catalog> {
        let schema = self
            .warehouse
            .schema()
            .await
            .context("Failed to read the warehouse schema")?;
        let mut catalog = Catalog::from_schema(&schema);
        let mut known_cardinality: HashSet<(String, String)> = HashSet::new();
        let outcome = match &self.metadata {
            Metadata::Postgres(pool) => {
                postgres_metadata(pool, &mut catalog, &mut known_cardinality, self.settings).await
            }
            Metadata::Sqlite(pool) => sqlite_metadata(pool, &mut catalog).await,
            Metadata::None => Ok(()),
        };
        if let Err(error) = outcome {
            tracing::warn!(?error, "Failed to read keys and comments from the warehouse catalog");
        }
        self.sample_values(&mut catalog, &known_cardinality).await;
        Ok(catalog)
    }

    /// Reads the distinct values of text columns whose cardinality the statistics did not give,
    /// through the guard and the read-only path, each with a short timeout.
    async fn sample_values(&self, catalog: &mut Catalog, known: &HashSet<(String, String)>) {
        let dialect = self.warehouse.dialect();
        let candidates: Vec<(String, String)> = catalog
            .tables
            .iter()
            .flat_map(|table| {
                table
                    .columns
                    .iter()
                    .filter(|column| column.kind == ColumnKind::Text && worth_sampling(&column.name))
                    .filter(|column| !known.contains(&(table.name.clone(), column.name.clone())))
                    .map(|column| (table.name.clone(), column.name.clone()))
            })
            .take(self.settings.max_sampled_columns)
            .collect();
        let settings = self.settings;
        let deadline = std::time::Instant::now() + settings.sampling_budget;
        let sampled: Vec<(String, String, Vec<String>)> = futures::stream::iter(candidates)
            .map(|(table, column)| async move {
                if std::time::Instant::now() >= deadline {
                    return (table, column, Vec::new());
                }
                let values = self.distinct_values(&table, &column, dialect, settings).await;
                (table, column, values)
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
        for (table, column, values) in sampled {
            if let Some(column) = catalog.table_mut(&table).and_then(|t| t.column_mut(&column)) {
                column.values = values;
            }
        }
    }

    async fn distinct_values(
        &self,
        table: &str,
        column: &str,
        dialect: Dialect,
        settings: CatalogSettings,
    ) -> Vec<String> {
        let table_sql = table
            .split('.')
            .map(|part| quote_ident(part, dialect))
            .collect::<Vec<_>>()
            .join(".");
        let column_sql = quote_ident(column, dialect);
        let cap = settings.max_values + 1;
        let sql = format!(
            "SELECT DISTINCT {column_sql} FROM {table_sql} WHERE {column_sql} IS NOT NULL ORDER BY 1 LIMIT {cap}"
        );
        let guarded = match self.guard.check(&sql, cap as u64) {
            Ok(guarded) => guarded,
            Err(error) => {
                tracing::debug!(table, column, %error, "Not sampling a column");
                return Vec::new();
            }
        };
        match self
            .warehouse
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
}

/// Identifiers, contact details and secrets are never sampled.
fn worth_sampling(column: &str) -> bool {
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
        "ip",
    ];
    name != "id" && !name.ends_with("_id") && !SKIP.iter().any(|s| name.contains(s))
}

/// Short single-line values only: a value is shown to the model, never followed by it.
fn is_presentable_value(value: &str) -> bool {
    !value.trim().is_empty() && value.chars().count() <= 60 && !value.contains(['\n', '\r'])
}

/// Comments, keys and statistics from `pg_catalog` / `pg_stats`.
async fn postgres_metadata(
    pool: &PgPool,
    catalog: &mut Catalog,
    known: &mut HashSet<(String, String)>,
    settings: CatalogSettings,
) -> anyhow::Result<()> {
    let display = |schema: &str, table: &str| {
        if schema == "public" {
            table.to_string()
        } else {
            format!("{schema}.{table}")
        }
    };
    let tables: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, obj_description(c.oid, 'pg_class') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
           AND obj_description(c.oid, 'pg_class') IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read table comments")?;
    for (schema, table, comment) in tables {
        if let Some(entry) = catalog.table_mut(&display(&schema, &table)) {
            entry.comment = comment.filter(|c| !c.trim().is_empty());
        }
    }

    let columns: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, a.attname::text, col_description(c.oid, a.attnum) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE a.attnum > 0 AND NOT a.attisdropped \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
           AND col_description(c.oid, a.attnum) IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read column comments")?;
    for (schema, table, column, comment) in columns {
        if let Some(entry) = catalog
            .table_mut(&display(&schema, &table))
            .and_then(|t| t.column_mut(&column))
        {
            entry.comment = comment.filter(|c| !c.trim().is_empty());
        }
    }

    type ConstraintRow = (
        String,
        String,
        String,
        Vec<String>,
        Option<String>,
        Option<String>,
        Vec<String>,
    );
    let constraints: Vec<ConstraintRow> = sqlx::query_as(
        "SELECT con.contype::text, n.nspname::text, c.relname::text, \
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord), \
           fn.nspname::text, fc.relname::text, \
           ARRAY(SELECT a.attname::text FROM unnest(coalesce(con.confkey, '{}'::int2[])) WITH ORDINALITY k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord) \
         FROM pg_constraint con \
         JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_class fc ON fc.oid = con.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE con.contype IN ('p', 'f') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read keys")?;
    for (kind, schema, table, columns, ref_schema, ref_table, references) in constraints {
        let Some(entry) = catalog.table_mut(&display(&schema, &table)) else {
            continue;
        };
        match (kind.as_str(), ref_schema, ref_table) {
            ("p", _, _) => entry.primary_key = columns,
            ("f", Some(ref_schema), Some(ref_table)) => entry.foreign_keys.push(ForeignKey {
                columns,
                table: display(&ref_schema, &ref_table),
                references,
            }),
            _ => {}
        }
    }

    // Statistics give the values of low-cardinality columns without scanning any table.
    type StatsRow = (String, String, String, Option<f32>, Option<String>, Option<f32>);
    let stats: Vec<StatsRow> = sqlx::query_as(
        "SELECT s.schemaname::text, s.tablename::text, s.attname::text, s.n_distinct, s.most_common_vals::text, \
                c.reltuples \
         FROM pg_stats s \
         JOIN pg_namespace n ON n.nspname = s.schemaname \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename \
         WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema') AND s.schemaname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read column statistics")?;
    for (schema, table, column, n_distinct, common, rows) in stats {
        let name = display(&schema, &table);
        let Some(entry) = catalog.table_mut(&name).and_then(|t| t.column_mut(&column)) else {
            continue;
        };
        if entry.kind != ColumnKind::Text || !worth_sampling(&entry.name) {
            continue;
        }
        let Some(n_distinct) = n_distinct else { continue };
        // Positive: the number of distinct values; negative: minus a fraction of the rows.
        let distinct = if n_distinct >= 0.0 {
            f64::from(n_distinct)
        } else {
            -f64::from(n_distinct) * f64::from(rows.unwrap_or(0.0).max(0.0))
        };
        if distinct.round() > settings.max_values as f64 {
            known.insert((name, column));
            continue;
        }
        let common: Vec<String> = common
            .map(|text| parse_pg_array(&text))
            .unwrap_or_default()
            .into_iter()
            .filter(|v| is_presentable_value(v))
            .collect();
        // The most common values are every value only when there are as many as distinct ones;
        // otherwise (all values unique, say) a `SELECT DISTINCT` reads them.
        if !common.is_empty() && common.len() as f64 >= distinct.round() {
            entry.values = common;
            entry.values.sort();
            known.insert((name, column));
        }
    }
    Ok(())
}

/// Primary and foreign keys from SQLite's pragmas (SQLite has no comments).
async fn sqlite_metadata(pool: &SqlitePool, catalog: &mut Catalog) -> anyhow::Result<()> {
    let names: Vec<String> = catalog.tables.iter().map(|t| t.name.clone()).collect();
    for name in names {
        let columns: Vec<(String, i64)> = sqlx::query_as("SELECT name, pk FROM pragma_table_info(?1) ORDER BY pk")
            .bind(&name)
            .fetch_all(pool)
            .await
            .context("Failed to read a SQLite table's primary key")?;
        let keys: Vec<(i64, String, String, Option<String>)> =
            sqlx::query_as("SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
                .bind(&name)
                .fetch_all(pool)
                .await
                .context("Failed to read a SQLite table's foreign keys")?;
        let Some(table) = catalog.table_mut(&name) else {
            continue;
        };
        table.primary_key = columns
            .into_iter()
            .filter(|(_, pk)| *pk > 0)
            .map(|(column, _)| column)
            .collect();
        let mut by_id: HashMap<i64, ForeignKey> = HashMap::new();
        for (id, target, from, to) in keys {
            let key = by_id.entry(id).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                table: target.clone(),
                references: Vec::new(),
            });
            key.columns.push(from);
            key.references.push(to.unwrap_or_else(|| "rowid".into()));
        }
        let mut keys: Vec<(i64, ForeignKey)> = by_id.into_iter().collect();
        keys.sort_by_key(|(id, _)| *id);
        table.foreign_keys = keys.into_iter().map(|(_, key)| key).collect();
    }
    Ok(())
}

/// Parses a Postgres array literal (`{EMEA,"North America","a \"b\""}`) into its elements.
pub fn parse_pg_array(text: &str) -> Vec<String> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            ',' if !quoted => {
                push_element(&mut values, &mut current, was_quoted);
                was_quoted = false;
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() || was_quoted {
        push_element(&mut values, &mut current, was_quoted);
    }
    values
}

fn push_element(values: &mut Vec<String>, current: &mut String, was_quoted: bool) {
    let element = std::mem::take(current);
    // An unquoted NULL is SQL NULL, not the text "NULL".
    if was_quoted || !element.eq_ignore_ascii_case("null") {
        values.push(element);
    }
}

/// The current catalog, shared by every question, refreshed in the background.
pub struct CatalogCache {
    current: RwLock<Arc<Catalog>>,
    loader: CatalogLoader,
}

impl CatalogCache {
    /// Loads the catalog once; when that fails, starts from `fallback` (the bare schema).
    pub async fn load(loader: CatalogLoader, fallback: Catalog) -> Arc<Self> {
        let catalog = match loader.load().await {
            Ok(catalog) => catalog,
            Err(error) => {
                tracing::warn!(
                    ?error,
                    "Failed to introspect the warehouse catalog; using the bare schema"
                );
                fallback
            }
        };
        tracing::info!(tables = catalog.tables.len(), "Warehouse catalog loaded");
        Arc::new(Self {
            current: RwLock::new(Arc::new(catalog)),
            loader,
        })
    }

    /// A cache over a fixed catalog (tests, or warehouses without introspection).
    pub fn fixed(catalog: Catalog, loader: CatalogLoader) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(catalog)),
            loader,
        })
    }

    pub fn get(&self) -> Arc<Catalog> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the catalog again; on failure the previous one stays.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let catalog = self.loader.load().await?;
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(catalog),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(catalog),
        }
        Ok(())
    }

    /// Refreshes every `every` until the cache is dropped.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                if let Err(error) = cache.refresh().await {
                    tracing::warn!(?error, "Failed to refresh the warehouse catalog");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn postgres_array_literals_are_split_with_quotes_and_escapes() {
        assert_eq!(
            parse_pg_array(r#"{APAC,EMEA,"North America","say \"hi\"",NULL}"#),
            vec!["APAC", "EMEA", "North America", "say \"hi\""]
        );
        assert!(parse_pg_array("{}").is_empty());
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
