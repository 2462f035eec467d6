//! The semantic model: the tables, joins, metrics and dimensions questions are asked in.
//!
//! It is read from TOML (the `[model]` of threadql.toml, or the built-in demo model), validated
//! once so that every later step can trust its references, and can be completed from the
//! warehouse schema for tables nobody described.
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{ColumnFormat, ColumnKind, TableSchema};
use crate::sql::dialect::quote_ident;
use crate::sql::Dialect;

const DEMO_MODEL: &str = include_str!("demo_model.toml");

/// How many distinct values of a dimension are loaded for matching words against them.
pub const DISTINCT_VALUES_LIMIT: usize = 500;

/// Tables, joins, metrics and dimensions. Build it with [`SemanticModel::from_toml_str`] or
/// [`SemanticModel::demo`]: both validate references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SemanticModel {
    #[serde(default)]
    pub tables: Vec<Table>,
    #[serde(default)]
    pub joins: Vec<Join>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// The team's words for things that are not a column: given to the LLM interpreter when
    /// a question uses them ("active customer", "churned").
    #[serde(default)]
    pub glossary: Vec<GlossaryEntry>,
}

/// A term of the team's vocabulary and what it means in data terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlossaryEntry {
    pub term: String,
    #[serde(default)]
    pub synonyms: Vec<String>,
    pub meaning: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub name: String,
    /// Every column a metric, dimension or join may reference.
    pub columns: Vec<String>,
    /// The date column time ranges and grains apply to, when rows happen at a time.
    #[serde(default)]
    pub time_column: Option<String>,
}

/// A many-to-one join: each `from` row points at one `to` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    pub from: ColumnRef,
    pub to: ColumnRef,
}

/// `table.column`, written that way in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ColumnRef {
    pub table: String,
    pub column: String,
}

impl TryFrom<String> for ColumnRef {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.split_once('.') {
            Some((table, column)) if is_plain_identifier(table) && is_plain_identifier(column) => Ok(ColumnRef {
                table: table.to_string(),
                column: column.to_string(),
            }),
            _ => Err(format!("'{value}' is not a qualified column like 'orders.customer_id'")),
        }
    }
}

impl From<ColumnRef> for String {
    fn from(value: ColumnRef) -> Self {
        value.to_string()
    }
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// Something measured: an aggregate over a fact table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    #[serde(default)]
    pub synonyms: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The fact table: one row per thing being aggregated.
    pub table: String,
    /// SQL aggregate over qualified columns, e.g. `SUM(orders.total)`.
    pub expression: String,
    /// SQL condition over qualified columns selecting the rows that count.
    #[serde(default)]
    pub filter: Option<String>,
    /// money, integer or number.
    pub format: ColumnFormat,
    /// The same metric over a finer fact table, used when a dimension is only reachable from it.
    #[serde(default)]
    pub alternatives: Vec<MetricDefinition>,
}

/// One way of computing a metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDefinition {
    pub table: String,
    pub expression: String,
    #[serde(default)]
    pub filter: Option<String>,
}

impl Metric {
    /// The main definition first, then the alternatives, in preference order.
    pub fn definitions(&self) -> Vec<MetricDefinition> {
        let main = MetricDefinition {
            table: self.table.clone(),
            expression: self.expression.clone(),
            filter: self.filter.clone(),
        };
        std::iter::once(main).chain(self.alternatives.iter().cloned()).collect()
    }

    /// The definition over `table`, if the metric has one there.
    pub fn definition_at(&self, table: &str) -> Option<MetricDefinition> {
        self.definitions()
            .into_iter()
            .find(|definition| definition.table == table)
    }
}

/// Something to break down or filter by: a column reachable from a metric's fact table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    #[serde(default)]
    pub synonyms: Vec<String>,
    pub table: String,
    pub column: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the semantic model is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("the semantic model has {} problem(s): {}", .0.len(), .0.join("; "))]
    Invalid(Vec<String>),
}

impl SemanticModel {
    /// Parses and validates a model.
    pub fn from_toml_str(text: &str) -> Result<Self, ModelError> {
        let model: SemanticModel = toml::from_str(text)?;
        model.validate()?;
        Ok(model)
    }

    /// The model of the embedded demo data set.
    pub fn demo() -> Result<Self, ModelError> {
        Self::from_toml_str(DEMO_MODEL)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|table| table.name == name)
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|metric| metric.name == name)
    }

    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dimensions.iter().find(|dimension| dimension.name == name)
    }

    /// Checks every reference: tables, columns, joins, expressions, unique names. All problems
    /// are reported at once so a config can be fixed in one go.
    pub fn validate(&self) -> Result<(), ModelError> {
        let mut problems = Vec::new();
        let mut table_names = HashSet::new();
        for table in &self.tables {
            if !is_plain_identifier(&table.name) {
                problems.push(format!("table name '{}' must be a plain SQL identifier", table.name));
            }
            if !table_names.insert(table.name.as_str()) {
                problems.push(format!("table '{}' is declared twice", table.name));
            }
            for column in &table.columns {
                if !is_plain_identifier(column) {
                    problems.push(format!(
                        "column '{}.{column}' must be a plain SQL identifier",
                        table.name
                    ));
                }
            }
            if let Some(time) = &table.time_column {
                if !table.columns.contains(time) {
                    problems.push(format!(
                        "time column '{}.{time}' is not a column of table '{}'",
                        table.name, table.name
                    ));
                }
            }
        }
        for join in &self.joins {
            for side in [&join.from, &join.to] {
                if let Some(problem) = self.check_column(side) {
                    problems.push(format!("join {} -> {}: {problem}", join.from, join.to));
                }
            }
        }
        let mut names: HashMap<String, String> = HashMap::new();
        let mut aliases: HashMap<String, String> = HashMap::new();
        for metric in &self.metrics {
            let what = format!("metric '{}'", metric.name);
            self.check_names(
                &what,
                &metric.name,
                &metric.synonyms,
                &mut names,
                &mut aliases,
                &mut problems,
            );
            if !matches!(
                metric.format,
                ColumnFormat::Money | ColumnFormat::Integer | ColumnFormat::Number
            ) {
                problems.push(format!("{what}: format must be money, integer or number"));
            }
            let mut seen_tables = HashSet::new();
            for definition in metric.definitions() {
                if !seen_tables.insert(definition.table.clone()) {
                    problems.push(format!("{what} has two definitions over table '{}'", definition.table));
                }
                problems.extend(self.check_definition(&what, &definition));
            }
        }
        for dimension in &self.dimensions {
            let what = format!("dimension '{}'", dimension.name);
            self.check_names(
                &what,
                &dimension.name,
                &dimension.synonyms,
                &mut names,
                &mut aliases,
                &mut problems,
            );
            let column = ColumnRef {
                table: dimension.table.clone(),
                column: dimension.column.clone(),
            };
            if let Some(problem) = self.check_column(&column) {
                problems.push(format!("{what}: {problem}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Invalid(problems))
        }
    }

    fn check_names(
        &self,
        what: &str,
        name: &str,
        synonyms: &[String],
        names: &mut HashMap<String, String>,
        aliases: &mut HashMap<String, String>,
        problems: &mut Vec<String>,
    ) {
        if name.trim().is_empty() || name != name.to_lowercase() {
            problems.push(format!("{what}: names must be non-empty lowercase words"));
        }
        let alias = output_alias(name);
        if GRAIN_ALIASES.contains(&alias.as_str()) {
            problems.push(format!("{what}: '{alias}' is reserved for time grains"));
        }
        if let Some(other) = aliases.insert(alias.clone(), what.to_string()) {
            problems.push(format!("{what} and {other} would both be output as column '{alias}'"));
        }
        for word in std::iter::once(name).chain(synonyms.iter().map(String::as_str)) {
            let key = word.trim().to_lowercase();
            if let Some(other) = names.insert(key.clone(), what.to_string()) {
                problems.push(format!("'{key}' names both {other} and {what}"));
            }
        }
    }

    fn check_definition(&self, what: &str, definition: &MetricDefinition) -> Vec<String> {
        let mut problems = Vec::new();
        if self.table(&definition.table).is_none() {
            problems.push(format!("{what}: unknown table '{}'", definition.table));
            return problems;
        }
        let reachable = self.reachable_from(&definition.table);
        let texts = std::iter::once(("expression", definition.expression.as_str()))
            .chain(definition.filter.as_deref().map(|filter| ("filter", filter)));
        for (part, text) in texts {
            let tokens = match tokenize(text) {
                Ok(tokens) => tokens,
                Err(problem) => {
                    problems.push(format!("{what} {part} '{text}': {problem}"));
                    continue;
                }
            };
            if part == "expression" && !tokens.iter().any(|token| token.aggregate_name().is_some()) {
                problems.push(format!(
                    "{what} expression '{text}' has no aggregate (SUM, COUNT, AVG, MIN, MAX)"
                ));
            }
            for column in column_references(&tokens) {
                if let Some(problem) = self.check_column(&column) {
                    problems.push(format!("{what} {part} '{text}': {problem}"));
                } else if !reachable.contains(&column.table) {
                    problems.push(format!(
                        "{what} {part} '{text}': table '{}' is not reachable from '{}' through joins",
                        column.table, definition.table
                    ));
                }
            }
        }
        problems
    }

    fn check_column(&self, column: &ColumnRef) -> Option<String> {
        match self.table(&column.table) {
            None => Some(format!("unknown table '{}'", column.table)),
            Some(table) if !table.columns.contains(&column.column) => Some(format!(
                "unknown column '{}' in table '{}'",
                column.column, column.table
            )),
            Some(_) => None,
        }
    }

    /// Tables reachable from `table` by following joins from the many side to the one side,
    /// with the join that first reached each (breadth first, so paths are shortest). The table
    /// itself maps to `None`.
    pub fn join_tree(&self, table: &str) -> Vec<(String, Option<&Join>)> {
        let mut found: Vec<(String, Option<&Join>)> = vec![(table.to_string(), None)];
        let mut queue = VecDeque::from([table.to_string()]);
        while let Some(current) = queue.pop_front() {
            for join in self.joins.iter().filter(|join| join.from.table == current) {
                if found.iter().all(|(name, _)| *name != join.to.table) {
                    found.push((join.to.table.clone(), Some(join)));
                    queue.push_back(join.to.table.clone());
                }
            }
        }
        found
    }

    /// Names of the tables reachable from `table`, itself included.
    pub fn reachable_from(&self, table: &str) -> HashSet<String> {
        self.join_tree(table).into_iter().map(|(name, _)| name).collect()
    }

    /// The time column for rows of `table`: its own, else that of the nearest table it joins to.
    pub fn time_column_for(&self, table: &str) -> Option<ColumnRef> {
        self.join_tree(table).into_iter().find_map(|(name, _)| {
            let time = self.table(&name)?.time_column.clone()?;
            Some(ColumnRef {
                table: name,
                column: time,
            })
        })
    }

    /// `SELECT DISTINCT` of a dimension's values, for matching words like "EMEA" against them.
    pub fn distinct_values_sql(&self, dimension: &str, dialect: Dialect) -> Option<String> {
        let dimension = self.dimension(dimension)?;
        let column = quote_ident(&dimension.column, dialect);
        let table = quote_ident(&dimension.table, dialect);
        Some(format!(
            "SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY 1 LIMIT {DISTINCT_VALUES_LIMIT}"
        ))
    }

    /// Adds metrics and dimensions for warehouse tables the model does not describe: a
    /// `<table> count`, a SUM for each numeric column, a dimension for each text column, and the
    /// first date column as the time column. Names already taken get the table as a prefix.
    pub fn extend_from_schema(&mut self, schema: &[TableSchema]) {
        for table in schema {
            // Names that need quoting cannot be written into metric expressions portably, and
            // such tables are rare enough that a hand-written model entry is the better answer.
            if !is_plain_identifier(&table.name)
                || self
                    .tables
                    .iter()
                    .any(|known| known.name.eq_ignore_ascii_case(&table.name))
            {
                continue;
            }
            let columns: Vec<_> = table
                .columns
                .iter()
                .filter(|column| is_plain_identifier(&column.name))
                .collect();
            let time_column = columns
                .iter()
                .find(|column| column.kind == ColumnKind::Date)
                .or_else(|| columns.iter().find(|column| column.kind == ColumnKind::Timestamp))
                .map(|column| column.name.clone());
            self.tables.push(Table {
                name: table.name.clone(),
                columns: columns.iter().map(|column| column.name.clone()).collect(),
                time_column,
            });
            let table_words = words_of(&table.name);
            let count_name = format!("{table_words} count");
            if !self.name_taken(&count_name) {
                let synonyms = if self.name_taken(&table_words) {
                    vec![]
                } else {
                    vec![table_words.clone()]
                };
                self.metrics.push(Metric {
                    name: count_name,
                    synonyms,
                    description: Some(format!("Rows of {}", table.name)),
                    table: table.name.clone(),
                    expression: "COUNT(*)".to_string(),
                    filter: None,
                    format: ColumnFormat::Integer,
                    alternatives: vec![],
                });
            }
            for column in &columns {
                // Keys are numbers too, but their sum means nothing.
                let is_key = column.name == "id" || column.name.ends_with("_id");
                let Some(name) = self.free_name(&table_words, &column.name) else {
                    continue;
                };
                match column.kind {
                    ColumnKind::Integer | ColumnKind::Decimal if !is_key => self.metrics.push(Metric {
                        name,
                        synonyms: vec![],
                        description: Some(format!("Sum of {}.{}", table.name, column.name)),
                        table: table.name.clone(),
                        expression: format!("SUM({}.{})", table.name, column.name),
                        filter: None,
                        format: if column.kind == ColumnKind::Integer {
                            ColumnFormat::Integer
                        } else {
                            ColumnFormat::Number
                        },
                        alternatives: vec![],
                    }),
                    ColumnKind::Text if !is_key => self.dimensions.push(Dimension {
                        name,
                        synonyms: vec![],
                        table: table.name.clone(),
                        column: column.name.clone(),
                    }),
                    _ => {}
                }
            }
        }
    }

    /// `column` as words, or `table column` when that is taken, or nothing.
    fn free_name(&self, table_words: &str, column: &str) -> Option<String> {
        let plain = words_of(column);
        if !self.name_taken(&plain) {
            return Some(plain);
        }
        let prefixed = format!("{table_words} {plain}");
        (!self.name_taken(&prefixed)).then_some(prefixed)
    }

    fn name_taken(&self, name: &str) -> bool {
        let alias = output_alias(name);
        GRAIN_ALIASES.contains(&alias.as_str())
            || self
                .metrics
                .iter()
                .any(|m| m.name == name || output_alias(&m.name) == alias || m.synonyms.iter().any(|s| s == name))
            || self
                .dimensions
                .iter()
                .any(|d| d.name == name || output_alias(&d.name) == alias || d.synonyms.iter().any(|s| s == name))
    }
}

/// Output column names of time buckets; metric and dimension names must not clash with them.
pub(crate) const GRAIN_ALIASES: [&str; 5] = ["day", "week", "month", "quarter", "year"];

/// The snake_case column name of a metric or dimension ("average order value" ->
/// "average_order_value").
pub fn output_alias(name: &str) -> String {
    let mut alias = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            alias.push(c.to_ascii_lowercase());
        } else if !alias.ends_with('_') && !alias.is_empty() {
            alias.push('_');
        }
    }
    while alias.ends_with('_') {
        alias.pop();
    }
    if alias.is_empty() || alias.starts_with(|c: char| c.is_ascii_digit()) {
        alias.insert_str(0, "c_");
    }
    alias
}

fn words_of(identifier: &str) -> String {
    identifier.replace('_', " ").to_lowercase()
}

/// `[A-Za-z_][A-Za-z0-9_]*`: safe to write without quotes once keywords are quoted.
pub(crate) fn is_plain_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A lexical piece of a model SQL snippet. Concatenating the pieces gives the text back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlToken {
    Identifier(String),
    /// A string literal or a quoted identifier, verbatim.
    Quoted(String),
    Other(char),
}

impl SqlToken {
    pub(crate) fn text(&self) -> String {
        match self {
            SqlToken::Identifier(text) | SqlToken::Quoted(text) => text.clone(),
            SqlToken::Other(c) => c.to_string(),
        }
    }

    /// The aggregate function this identifier names, upper case.
    pub(crate) fn aggregate_name(&self) -> Option<String> {
        match self {
            SqlToken::Identifier(name) => {
                let upper = name.to_ascii_uppercase();
                matches!(upper.as_str(), "SUM" | "COUNT" | "AVG" | "MIN" | "MAX").then_some(upper)
            }
            _ => None,
        }
    }

    pub(crate) fn is_identifier(&self, word: &str) -> bool {
        matches!(self, SqlToken::Identifier(name) if name.eq_ignore_ascii_case(word))
    }
}

/// Splits a model SQL snippet so table names can be found outside string literals.
pub(crate) fn tokenize(text: &str) -> Result<Vec<SqlToken>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        if c == '\'' || c == '"' || c == '`' {
            let mut end = at + 1;
            loop {
                match chars.get(end) {
                    None => return Err(format!("unterminated quote starting at character {}", at + 1)),
                    // A doubled quote is an escaped quote inside the literal.
                    Some(&q) if q == c && chars.get(end + 1) == Some(&c) => end += 2,
                    Some(&q) if q == c => break,
                    Some(_) => end += 1,
                }
            }
            tokens.push(SqlToken::Quoted(
                chars.get(at..=end).unwrap_or_default().iter().collect(),
            ));
            at = end + 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut end = at;
            while chars
                .get(end)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
            {
                end += 1;
            }
            tokens.push(SqlToken::Identifier(
                chars.get(at..end).unwrap_or_default().iter().collect(),
            ));
            at = end;
        } else if c == ';' {
            return Err("';' is not allowed: a snippet is one expression".to_string());
        } else if c == '-' && chars.get(at + 1) == Some(&'-') || c == '/' && chars.get(at + 1) == Some(&'*') {
            return Err("comments are not allowed".to_string());
        } else {
            tokens.push(SqlToken::Other(c));
            at += 1;
        }
    }
    Ok(tokens)
}

/// Every `table.column` in a snippet.
pub(crate) fn column_references(tokens: &[SqlToken]) -> Vec<ColumnRef> {
    tokens
        .windows(3)
        .filter_map(|window| match window {
            [SqlToken::Identifier(table), SqlToken::Other('.'), SqlToken::Identifier(column)] => Some(ColumnRef {
                table: table.clone(),
                column: column.clone(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ColumnSchema;

    fn demo() -> SemanticModel {
        match SemanticModel::demo() {
            Ok(model) => model,
            Err(error) => panic!("the demo model should be valid: {error}"),
        }
    }

    fn problems_of(text: &str) -> String {
        match SemanticModel::from_toml_str(text) {
            Ok(_) => panic!("the model should be rejected"),
            Err(error) => error.to_string(),
        }
    }

    const SMALL: &str = r#"
        [[tables]]
        name = "orders"
        columns = ["id", "customer_id", "created", "total"]
        time_column = "created"

        [[tables]]
        name = "customers"
        columns = ["id", "region"]

        [[joins]]
        from = "orders.customer_id"
        to = "customers.id"

        [[metrics]]
        name = "revenue"
        table = "orders"
        expression = "SUM(orders.total)"
        format = "money"

        [[dimensions]]
        name = "region"
        table = "customers"
        column = "region"
    "#;

    #[test]
    fn the_demo_model_is_valid_and_describes_the_demo_data_set() {
        let model = demo();
        for metric in [
            "revenue",
            "orders",
            "average order value",
            "refunds",
            "units",
            "active users",
            "sessions",
            "crashes",
        ] {
            assert!(model.metric(metric).is_some(), "metric {metric}");
        }
        for dimension in [
            "region", "country", "segment", "category", "product", "channel", "status", "platform",
        ] {
            assert!(model.dimension(dimension).is_some(), "dimension {dimension}");
        }
        assert_eq!(
            model.time_column_for("orders").map(|c| c.to_string()).as_deref(),
            Some("orders.order_date")
        );
    }

    #[test]
    fn item_level_metrics_use_the_order_date_through_the_join() {
        let time = demo().time_column_for("order_items");
        assert_eq!(time.map(|c| c.to_string()).as_deref(), Some("orders.order_date"));
    }

    #[test]
    fn joins_are_followed_from_the_many_side_only() {
        let model = demo();
        let from_items = model.reachable_from("order_items");
        for table in ["order_items", "orders", "customers", "products"] {
            assert!(from_items.contains(table), "{table} from order_items");
        }
        let from_orders = model.reachable_from("orders");
        assert!(!from_orders.contains("products"));
        assert!(!from_orders.contains("order_items"));
    }

    #[test]
    fn a_small_model_parses() {
        let model = SemanticModel::from_toml_str(SMALL);
        assert!(model.is_ok(), "{model:?}");
    }

    #[test]
    fn unknown_tables_and_columns_are_named_in_the_error() {
        let text = SMALL.replace("SUM(orders.total)", "SUM(orders.amount)").replace(
            "table = \"customers\"\n        column = \"region\"",
            "table = \"clients\"\n        column = \"region\"",
        );
        let message = problems_of(&text);
        assert!(
            message.contains("unknown column 'amount' in table 'orders'"),
            "{message}"
        );
        assert!(message.contains("unknown table 'clients'"), "{message}");
    }

    #[test]
    fn a_join_to_an_unknown_column_is_rejected() {
        let message = problems_of(&SMALL.replace("to = \"customers.id\"", "to = \"customers.key\""));
        assert!(
            message.contains("join orders.customer_id -> customers.key"),
            "{message}"
        );
        assert!(message.contains("unknown column 'key'"), "{message}");
    }

    #[test]
    fn a_metric_over_an_unreachable_table_is_rejected() {
        let text = format!(
            "{SMALL}\n[[metrics]]\nname = \"regions\"\ntable = \"customers\"\nexpression = \"COUNT(orders.id)\"\nformat = \"integer\"\n"
        );
        let message = problems_of(&text);
        assert!(
            message.contains("table 'orders' is not reachable from 'customers'"),
            "{message}"
        );
    }

    #[test]
    fn a_name_used_twice_is_rejected() {
        let text = format!("{SMALL}\n[[dimensions]]\nname = \"revenue\"\ntable = \"customers\"\ncolumn = \"region\"\n");
        let message = problems_of(&text);
        assert!(
            message.contains("'revenue' names both metric 'revenue' and dimension 'revenue'"),
            "{message}"
        );
    }

    #[test]
    fn a_time_column_must_be_a_column_of_its_table() {
        let message = problems_of(&SMALL.replace("time_column = \"created\"", "time_column = \"day\""));
        assert!(message.contains("time column 'orders.day'"), "{message}");
    }

    #[test]
    fn distinct_values_are_read_without_nulls_and_capped() {
        let sql = demo().distinct_values_sql("region", Dialect::Sqlite);
        assert_eq!(
            sql.as_deref(),
            Some("SELECT DISTINCT region FROM customers WHERE region IS NOT NULL ORDER BY 1 LIMIT 500")
        );
        let product = demo().distinct_values_sql("product", Dialect::Postgres);
        assert_eq!(
            product.as_deref(),
            Some("SELECT DISTINCT name FROM products WHERE name IS NOT NULL ORDER BY 1 LIMIT 500")
        );
        assert_eq!(demo().distinct_values_sql("planet", Dialect::Sqlite), None);
    }

    fn column(name: &str, kind: ColumnKind) -> ColumnSchema {
        ColumnSchema {
            name: name.to_string(),
            data_type: format!("{kind:?}"),
            kind,
            ..Default::default()
        }
    }

    #[test]
    fn uncovered_tables_get_count_sum_metrics_text_dimensions_and_a_time_column() {
        let mut model = demo();
        let schema = vec![
            TableSchema {
                name: "orders".into(),
                columns: vec![column("id", ColumnKind::Integer)],
                ..Default::default()
            },
            TableSchema {
                name: "support_tickets".into(),
                columns: vec![
                    column("id", ColumnKind::Integer),
                    column("customer_id", ColumnKind::Integer),
                    column("opened_at", ColumnKind::Timestamp),
                    column("opened_on", ColumnKind::Date),
                    column("priority", ColumnKind::Text),
                    column("status", ColumnKind::Text),
                    column("minutes_spent", ColumnKind::Decimal),
                    column("replies", ColumnKind::Integer),
                    column("odd name", ColumnKind::Text),
                ],
                ..Default::default()
            },
        ];
        model.extend_from_schema(&schema);
        assert!(model.validate().is_ok(), "{:?}", model.validate());
        let table = model.table("support_tickets");
        assert_eq!(table.and_then(|t| t.time_column.clone()).as_deref(), Some("opened_on"));
        let count = model.metric("support tickets count");
        assert_eq!(count.map(|m| m.expression.as_str()), Some("COUNT(*)"));
        assert_eq!(
            count.map(|m| m.synonyms.clone()),
            Some(vec!["support tickets".to_string()])
        );
        assert_eq!(
            model.metric("minutes spent").map(|m| m.format),
            Some(ColumnFormat::Number)
        );
        assert_eq!(
            model.metric("replies").map(|m| m.expression.as_str()),
            Some("SUM(support_tickets.replies)")
        );
        assert!(model.metric("customer id").is_none(), "keys are not summed");
        assert!(model.dimension("priority").is_some());
        // "status" is already the orders' dimension, so the ticket status gets the table prefix.
        assert_eq!(
            model.dimension("support tickets status").map(|d| d.table.as_str()),
            Some("support_tickets")
        );
        assert!(model.dimension("odd name").is_none());
        // Described tables are left alone.
        assert_eq!(model.table("orders").map(|t| t.columns.len()), Some(6));
    }

    #[test]
    fn output_aliases_are_snake_case() {
        assert_eq!(output_alias("average order value"), "average_order_value");
        assert_eq!(output_alias("active users"), "active_users");
        assert_eq!(output_alias("revenue"), "revenue");
    }

    #[test]
    fn snippets_keep_string_literals_whole() {
        let tokens = tokenize("orders.status = 'it''s orders.x'").unwrap_or_default();
        assert_eq!(
            column_references(&tokens),
            vec![ColumnRef {
                table: "orders".into(),
                column: "status".into()
            }]
        );
        let text: String = tokens.iter().map(SqlToken::text).collect();
        assert_eq!(text, "orders.status = 'it''s orders.x'");
        assert!(tokenize("SUM(x); DROP TABLE y").is_err());
    }
}
