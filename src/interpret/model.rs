//! The semantic model: the tables, joins, metrics and dimensions questions are asked in.
//!
//! It is read from TOML (the `[model]` of threadql.toml, or the built-in demo model), validated
//! once so that every later step can trust its references, and can be completed from the
//! warehouse schema for tables nobody described.
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::derive::{
    self, accept_joins, Containment, DerivedNames, DerivedTable, JoinCandidate, JoinEvidence, Vocabulary,
};
use crate::domain::{Cardinality, ColumnFormat, TableSchema};
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
    /// How names are derived for tables the model does not describe.
    #[serde(default, skip_serializing_if = "Naming::is_empty")]
    pub naming: Naming,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joins: Vec<Join>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<Dimension>,
    /// The team's words for things that are not a column: given to the LLM interpreter when
    /// a question uses them ("active customer", "churned").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub glossary: Vec<GlossaryEntry>,
    /// `[dbt] project = "…"`: a dbt project whose semantic models complete this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbt: Option<DbtSettings>,
    /// `[[roles]]` and `[access]` share threadql.toml; `crate::access` reads them.
    #[serde(default, skip_serializing)]
    pub roles: Option<serde::de::IgnoredAny>,
    #[serde(default, skip_serializing)]
    pub access: Option<serde::de::IgnoredAny>,
    /// The joins by the table they start from, built on the first walk (not model content).
    #[serde(skip)]
    pub join_index: JoinIndex,
}

/// A cache of the model's lookups: the joins by the table they start from, and tables,
/// metrics and dimensions by name. A question walks the joins from several tables and looks
/// names up dozens of times; building the join map on every walk was 40% of a question's time
/// on a 500-table model, and then checking that the cached map still matched (comparing every
/// join's table) and the linear scans by name were a third (perf, `threadql-bench model`).
///
/// The model's lists are public and edited while a model is built (joins are pushed or the
/// list replaced, never edited in place), so the index remembers the lists it was built from
/// by address, length and end names, and is rebuilt when they differ. A name found through it
/// is checked against the list, and a name not found is looked for in the list, so a stale
/// index can cost time but never give a wrong answer.
#[derive(Default)]
pub struct JoinIndex(std::sync::Mutex<Option<std::sync::Arc<ModelIndex>>>);

struct ModelIndex {
    built_from: [ListPrint; 4],
    /// Starting table → positions in the model's joins.
    joins_by_table: FxHashMap<String, Vec<usize>>,
    tables: FxHashMap<String, usize>,
    metrics: FxHashMap<String, usize>,
    dimensions: FxHashMap<String, usize>,
    /// Walks of the joins by starting table, made when first asked for.
    walks: std::sync::Mutex<FxHashMap<String, std::sync::Arc<Walk>>>,
}

/// What identifies a list cheaply: where it is, how long, and its first and last names.
#[derive(PartialEq)]
struct ListPrint {
    address: usize,
    len: usize,
    ends: Option<(String, String)>,
}

impl ListPrint {
    fn of<T>(list: &[T], name: impl Fn(&T) -> &str) -> Self {
        Self {
            address: list.as_ptr() as usize,
            len: list.len(),
            ends: list
                .first()
                .zip(list.last())
                .map(|(a, b)| (name(a).to_string(), name(b).to_string())),
        }
    }

    fn matches<T>(&self, list: &[T], name: impl Fn(&T) -> &str) -> bool {
        self.address == list.as_ptr() as usize
            && self.len == list.len()
            && match (&self.ends, list.first().zip(list.last())) {
                (Some((first, last)), Some((a, b))) => first == name(a) && last == name(b),
                (None, None) => true,
                _ => false,
            }
    }
}

fn positions<T>(list: &[T], name: impl Fn(&T) -> &str) -> FxHashMap<String, usize> {
    let mut positions = FxHashMap::default();
    for (position, item) in list.iter().enumerate() {
        // The first of two equal names wins, as a linear search would find it.
        positions.entry(name(item).to_string()).or_insert(position);
    }
    positions
}

impl JoinIndex {
    fn of(&self, model: &SemanticModel) -> std::sync::Arc<ModelIndex> {
        let mut cached = match self.0.lock() {
            Ok(cached) => cached,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = cached.as_ref().filter(|index| {
            let [joins, tables, metrics, dimensions] = &index.built_from;
            joins.matches(&model.joins, |j| &j.from.table)
                && tables.matches(&model.tables, |t| &t.name)
                && metrics.matches(&model.metrics, |m| &m.name)
                && dimensions.matches(&model.dimensions, |d| &d.name)
        });
        if let Some(index) = current {
            return index.clone();
        }
        let mut joins_by_table: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        for (position, join) in model.joins.iter().enumerate() {
            joins_by_table
                .entry(join.from.table.clone())
                .or_default()
                .push(position);
        }
        let index = std::sync::Arc::new(ModelIndex {
            built_from: [
                ListPrint::of(&model.joins, |j| &j.from.table),
                ListPrint::of(&model.tables, |t| &t.name),
                ListPrint::of(&model.metrics, |m| &m.name),
                ListPrint::of(&model.dimensions, |d| &d.name),
            ],
            joins_by_table,
            tables: positions(&model.tables, |t| &t.name),
            metrics: positions(&model.metrics, |m| &m.name),
            dimensions: positions(&model.dimensions, |d| &d.name),
            walks: std::sync::Mutex::default(),
        });
        *cached = Some(index.clone());
        index
    }
}

/// `list[position]` when it is named `name`, else the first item so named (a stale index).
fn find_named<'m, T>(list: &'m [T], position: Option<usize>, name: &str, named: impl Fn(&T) -> &str) -> Option<&'m T> {
    position
        .and_then(|at| list.get(at))
        .filter(|item| named(item) == name)
        .or_else(|| list.iter().find(|item| named(item) == name))
}

impl Clone for JoinIndex {
    /// A copy of a model builds its own index (it may be edited).
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for JoinIndex {
    /// A cache: never part of what makes two models equal.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl fmt::Debug for JoinIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinIndex")
    }
}

/// Where a dbt project's MetricFlow YAML is read from (see [`super::dbt`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbtSettings {
    /// The directory holding dbt_project.yml, relative to threadql.toml's directory.
    pub project: std::path::PathBuf,
}

/// `[naming]`: the team's abbreviations (`abbreviations = { "xyz" = "widget" }`), added to the
/// built-in ones when names are derived from column names (`xyz_cnt` -> "widget count").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Naming {
    #[serde(default)]
    pub abbreviations: BTreeMap<String, String>,
}

impl Naming {
    pub fn is_empty(&self) -> bool {
        self.abbreviations.is_empty()
    }
}

/// A term of the team's vocabulary and what it means in data terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlossaryEntry {
    pub term: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    /// Every date column a question may mean ("shipped" -> `ship_date`), the default one
    /// included; empty when `time_column` is the only one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_columns: Vec<String>,
}

impl Table {
    /// The table's date columns: `time_columns`, else the time column alone.
    pub fn date_columns(&self) -> Vec<&str> {
        if self.time_columns.is_empty() {
            self.time_column.iter().map(String::as_str).collect()
        } else {
            self.time_columns.iter().map(String::as_str).collect()
        }
    }
}

/// Which date a table's rows happen at (see [`SemanticModel::time_choice_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeChoice {
    One(ColumnRef),
    /// Several dates and none the default: the phrases of each, to ask which one is meant.
    Ask(Vec<String>),
    None,
}

/// A many-to-one join: each `from` row points at one `to` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    pub from: ColumnRef,
    pub to: ColumnRef,
    /// Guessed from column names (no foreign key declares it): where two paths of the same
    /// length reach a table, the one made of declared joins is taken.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

/// The tables reachable from one table and how: the join that reaches each along the shortest
/// path, and the tables reached by two paths of that length that the model cannot choose
/// between (neither is made of declared joins only). Walks are kept per starting table (see
/// [`JoinIndex`]): planning one question walks from the same tables dozens of times.
#[derive(Debug, Clone)]
pub struct JoinTree<'m> {
    walk: std::sync::Arc<Walk>,
    joins: &'m [Join],
}

/// One walk of the joins, by position in the model's joins.
#[derive(Debug, Default)]
struct Walk {
    /// Breadth first from the table itself (`None`), so each join's left side comes earlier.
    reached: Vec<(String, Option<usize>)>,
    /// Table → its place in `reached`.
    places: FxHashMap<String, usize>,
    /// Tables with two or more equally short paths, with the joins that reach each of them.
    ambiguous: FxHashMap<String, Vec<usize>>,
}

impl<'m> JoinTree<'m> {
    /// The tables reached, breadth first from the table itself (`None`), so each join's left
    /// side comes earlier.
    pub fn reached(&self) -> impl Iterator<Item = (&str, Option<&'m Join>)> + '_ {
        let joins = self.joins;
        self.walk
            .reached
            .iter()
            .map(move |(name, join)| (name.as_str(), join.and_then(|at| joins.get(at))))
    }

    /// Whether `table` is reached (the starting table included).
    pub fn reaches(&self, table: &str) -> bool {
        self.walk.places.contains_key(table)
    }

    /// The join reaching `table` on its shortest path (`None` for the root or an unreachable table).
    pub fn join_to(&self, table: &str) -> Option<&'m Join> {
        let place = *self.walk.places.get(table)?;
        let at = self.walk.reached.get(place)?.1?;
        self.joins.get(at)
    }

    /// The joins of equal length that reach `table`, when the model cannot choose between them.
    pub fn alternatives(&self, table: &str) -> Option<Vec<&'m Join>> {
        let positions = self.walk.ambiguous.get(table)?;
        Some(positions.iter().filter_map(|&at| self.joins.get(at)).collect())
    }
}

/// A column named like a date: `signup_date`, `created_at`, `shipped_on`.
fn is_date_name(column: &str) -> bool {
    let column = column.to_ascii_lowercase();
    column.ends_with("date") || column.ends_with("_at") || column.ends_with("_on") || column == "day"
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub table: String,
    pub column: String,
    /// `high` for names, phones, comments: a label for `top N` and an exact filter, not a
    /// breakdown to offer in help.
    #[serde(default, skip_serializing_if = "Cardinality::is_low")]
    pub cardinality: Cardinality,
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

    /// The model as threadql.toml text, which [`Self::from_toml_str`] reads back to the same
    /// model.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// The model of the embedded demo data set.
    pub fn demo() -> Result<Self, ModelError> {
        Self::from_toml_str(DEMO_MODEL)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        let at = self.join_index.of(self).tables.get(name).copied();
        find_named(&self.tables, at, name, |t| &t.name)
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        let at = self.join_index.of(self).metrics.get(name).copied();
        find_named(&self.metrics, at, name, |m| &m.name)
    }

    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        let at = self.join_index.of(self).dimensions.get(name).copied();
        find_named(&self.dimensions, at, name, |d| &d.name)
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
            for time in table.time_column.iter().chain(&table.time_columns) {
                if !table.columns.contains(time) {
                    problems.push(format!(
                        "time column '{}.{time}' is not a column of table '{}'",
                        table.name, table.name
                    ));
                }
            }
        }
        for (short, long) in &self.naming.abbreviations {
            if short.is_empty() || !short.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
                problems.push(format!(
                    "naming: abbreviation '{short}' must be lower-case letters and digits"
                ));
            }
            if long.trim().is_empty() {
                problems.push(format!("naming: abbreviation '{short}' expands to nothing"));
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
    /// with the join that reached each (breadth first, so paths are shortest). The table itself
    /// maps to `None`.
    pub fn join_tree(&self, table: &str) -> Vec<(String, Option<&Join>)> {
        self.join_paths(table)
            .reached()
            .map(|(name, join)| (name.to_string(), join))
            .collect()
    }

    /// [`Self::join_tree`] with the tables two equally short paths reach. Of two such paths,
    /// one made only of declared joins wins over one with a join guessed from names; otherwise
    /// the table is ambiguous (and so is every table reached through it).
    pub fn join_paths(&self, table: &str) -> JoinTree<'_> {
        let lookup = self.join_index.of(self);
        let known = {
            let walks = match lookup.walks.lock() {
                Ok(walks) => walks,
                Err(poisoned) => poisoned.into_inner(),
            };
            walks.get(table).cloned()
        };
        let walk = known.unwrap_or_else(|| {
            let walk = std::sync::Arc::new(self.walk_joins(table, &lookup.joins_by_table));
            let mut walks = match lookup.walks.lock() {
                Ok(walks) => walks,
                Err(poisoned) => poisoned.into_inner(),
            };
            walks.insert(table.to_string(), walk.clone());
            walk
        });
        JoinTree {
            walk,
            joins: &self.joins,
        }
    }

    /// Breadth first from `table` over the joins (`outgoing`: positions by starting table).
    fn walk_joins(&self, table: &str, outgoing: &FxHashMap<String, Vec<usize>>) -> Walk {
        struct Reached {
            table: String,
            join: Option<usize>,
            depth: usize,
            declared: bool,
            rivals: Vec<usize>,
        }
        let mut found: Vec<Reached> = vec![Reached {
            table: table.to_string(),
            join: None,
            depth: 0,
            declared: true,
            rivals: Vec::new(),
        }];
        let mut places: FxHashMap<String, usize> = FxHashMap::default();
        places.insert(table.to_string(), 0);
        let mut queue = VecDeque::from([0usize]);
        while let Some(index) = queue.pop_front() {
            let (current, depth, declared) = match found.get(index) {
                Some(entry) => (entry.table.clone(), entry.depth, entry.declared),
                None => continue,
            };
            for &position in outgoing.get(current.as_str()).into_iter().flatten() {
                let Some(join) = self.joins.get(position) else { continue };
                let path_declared = declared && !join.inferred;
                let place = places.get(join.to.table.as_str()).copied();
                match place.and_then(|at| found.get_mut(at)) {
                    None => {
                        places.insert(join.to.table.clone(), found.len());
                        found.push(Reached {
                            table: join.to.table.clone(),
                            join: Some(position),
                            depth: depth + 1,
                            declared: path_declared,
                            rivals: Vec::new(),
                        });
                        queue.push_back(found.len() - 1);
                    }
                    Some(entry) if entry.depth == depth + 1 && entry.join != Some(position) => {
                        if path_declared && !entry.declared {
                            // Not expanded yet (same depth, later in the queue): safe to swap.
                            entry.join = Some(position);
                            entry.declared = true;
                            entry.rivals.clear();
                        } else if path_declared == entry.declared {
                            entry.rivals.push(position);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        let ambiguous = found
            .iter()
            .filter(|entry| !entry.rivals.is_empty())
            .map(|entry| {
                let mut joins: Vec<usize> = entry.join.into_iter().collect();
                joins.extend(entry.rivals.iter().copied());
                (entry.table.clone(), joins)
            })
            .collect();
        Walk {
            reached: found.into_iter().map(|entry| (entry.table, entry.join)).collect(),
            places,
            ambiguous,
        }
    }

    /// Names of the tables reachable from `table`, itself included.
    pub fn reachable_from(&self, table: &str) -> HashSet<String> {
        self.join_tree(table).into_iter().map(|(name, _)| name).collect()
    }

    /// The time column for rows of `table`: its own, else that of the nearest table it joins to.
    pub fn time_column_for(&self, table: &str) -> Option<ColumnRef> {
        match self.time_choice_for(table) {
            TimeChoice::One(column) => Some(column),
            TimeChoice::Ask(_) | TimeChoice::None => None,
        }
    }

    /// The date rows of `table` happen at: its own time column, else those of the nearest table
    /// it joins to. A table with several dates and no default one (a line item shipped,
    /// committed and received) stops the search: its phrases are the ones to ask about.
    pub fn time_choice_for(&self, table: &str) -> TimeChoice {
        for (name, _) in self.join_tree(table) {
            let Some(described) = self.table(&name) else { continue };
            if let Some(time) = &described.time_column {
                return TimeChoice::One(ColumnRef {
                    table: name,
                    column: time.clone(),
                });
            }
            let dates = described.date_columns();
            if dates.len() > 1 {
                let vocabulary = Vocabulary::with_abbreviations(&self.naming.abbreviations);
                let columns: Vec<&str> = described.columns.iter().map(String::as_str).collect();
                let names = vocabulary.table_names(&name, &columns);
                let phrases = dates
                    .iter()
                    .map(|column| {
                        names
                            .words_of(column)
                            .map_or(column.to_string(), |words| words.phrase())
                    })
                    .collect();
                return TimeChoice::Ask(phrases);
            }
        }
        TimeChoice::None
    }

    /// Makes the tables other tables join to countable ("how many products", "new customers
    /// by region"): each such configured table without a metric of its own gets a count of its
    /// rows, named as people say it, and its one date column (by name, as the configuration
    /// lists no types) becomes its time column. A name that is already a dimension's ("products"
    /// is the product breakdown) is only used after "number of", "how many" and the like.
    pub fn with_entity_counts(mut self) -> Self {
        let joined: HashSet<&str> = self.joins.iter().map(|j| j.to.table.as_str()).collect();
        let measured: HashSet<String> = self
            .metrics
            .iter()
            .flat_map(|m| m.definitions().into_iter().map(|d| d.table))
            .collect();
        let targets: Vec<String> = self
            .tables
            .iter()
            .filter(|t| joined.contains(t.name.as_str()) && !measured.contains(&t.name))
            .map(|t| t.name.clone())
            .collect();
        for name in targets {
            let plural = name.replace('_', " ");
            let singular = plural.strip_suffix('s').unwrap_or(&plural).to_string();
            let taken = self.dimensions.iter().any(|d| {
                std::iter::once(&d.name)
                    .chain(&d.synonyms)
                    .any(|phrase| *phrase == plural || *phrase == singular || format!("{phrase}s") == plural)
            });
            let mut synonyms = vec![
                format!("how many {plural}"),
                format!("{singular} count"),
                format!("count of {plural}"),
            ];
            let date_columns: Vec<String> = self
                .table(&name)
                .map(|t| t.columns.iter().filter(|c| is_date_name(c)).cloned().collect())
                .unwrap_or_default();
            if let (Some(table), [column]) = (self.tables.iter_mut().find(|t| t.name == name), date_columns.as_slice())
            {
                if table.time_column.is_none() {
                    table.time_column = Some(column.clone());
                    synonyms.push(format!("new {plural}"));
                }
            }
            let metric_name = if taken {
                format!("number of {plural}")
            } else {
                synonyms.push(format!("number of {plural}"));
                plural.clone()
            };
            self.metrics.push(Metric {
                name: metric_name,
                synonyms,
                description: Some(format!("Rows of {name}, one per {singular}")),
                table: name.clone(),
                expression: "COUNT(*)".to_string(),
                filter: None,
                format: ColumnFormat::Integer,
                alternatives: Vec::new(),
            });
        }
        self
    }

    /// A plain count of a table other tables join to, as [`Self::with_entity_counts`] adds:
    /// next to another metric over a table that reaches it, its name only says whose rows are
    /// filtered ("orders from customers in Canada").
    pub fn is_entity_count(&self, metric: &Metric) -> bool {
        metric.expression == "COUNT(*)"
            && metric.filter.is_none()
            && metric.alternatives.is_empty()
            && self.joins.iter().any(|j| j.to.table == metric.table)
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

    /// Adds the tables the model does not describe, as a data engineer would model them by
    /// hand (see [`derive`]): a row count, a sum and an average per measure, low-cardinality
    /// text and booleans as breakdowns, names and comments as labels, all date columns, and
    /// joins from foreign keys (declared, else inferred from names and trusted unchecked).
    /// A name already taken falls back to one with the table's noun, else is left out.
    pub fn extend_from_schema(&mut self, schema: &[TableSchema]) {
        self.extend_from_schema_checked(schema, |_| Containment::Unchecked);
    }

    /// [`Self::extend_from_schema`], keeping only the joins inferred from names that
    /// `containment` does not contradict: it answers for each of
    /// [`Self::inferred_join_candidates`] whether a sample of the data agrees.
    pub fn extend_from_schema_checked(
        &mut self,
        schema: &[TableSchema],
        containment: impl Fn(&JoinCandidate) -> Containment,
    ) {
        let schema = plain_schema(schema);
        let described: HashSet<String> = self.tables.iter().map(|t| t.name.to_lowercase()).collect();
        let vocabulary = Vocabulary::with_abbreviations(&self.naming.abbreviations);
        let derived = derive::derive_model(&schema, |name| !described.contains(&name.to_lowercase()), &vocabulary);
        let mut taken = TakenNames::of(self);
        for table in derived.tables {
            self.add_derived_table(table, &mut taken);
        }
        for candidate in accept_joins(derived.joins, containment) {
            // A described table's joins are the ones its description declares.
            if described.contains(&candidate.from_table.to_lowercase()) {
                continue;
            }
            let join = Join {
                inferred: candidate.evidence == JoinEvidence::Named,
                from: ColumnRef {
                    table: candidate.from_table,
                    column: candidate.from_column,
                },
                to: ColumnRef {
                    table: candidate.to_table,
                    column: candidate.to_column,
                },
            };
            let valid = self.check_column(&join.from).is_none() && self.check_column(&join.to).is_none();
            if valid && !self.joins.contains(&join) {
                self.joins.push(join);
            }
        }
    }

    /// The joins [`Self::extend_from_schema`] would infer from names alone, for the caller to
    /// check against the data before trusting them.
    pub fn inferred_join_candidates(&self, schema: &[TableSchema]) -> Vec<JoinCandidate> {
        let schema = plain_schema(schema);
        let described: HashSet<String> = self.tables.iter().map(|t| t.name.to_lowercase()).collect();
        let vocabulary = Vocabulary::with_abbreviations(&self.naming.abbreviations);
        derive::derive_model(&schema, |_| false, &vocabulary)
            .joins
            .into_iter()
            .filter(|j| j.evidence == JoinEvidence::Named && !described.contains(&j.from_table.to_lowercase()))
            .collect()
    }

    fn add_derived_table(&mut self, table: DerivedTable, taken: &mut TakenNames) {
        self.tables.push(Table {
            name: table.name.clone(),
            columns: table.columns,
            time_column: table.time_column,
            time_columns: if table.time_columns.len() > 1 {
                table.time_columns
            } else {
                Vec::new()
            },
        });
        for metric in table.metrics {
            let Some(name) = taken.free_name(&metric.names) else {
                continue;
            };
            let synonyms = taken.free_synonyms(&metric.names, &name);
            taken.take(&name, &synonyms);
            self.metrics.push(Metric {
                name,
                synonyms,
                description: Some(metric.description),
                table: table.name.clone(),
                expression: metric.expression,
                filter: None,
                format: metric.format,
                alternatives: vec![],
            });
        }
        for dimension in table.dimensions {
            let Some(name) = taken.free_name(&dimension.names) else {
                continue;
            };
            let synonyms = taken.free_synonyms(&dimension.names, &name);
            taken.take(&name, &synonyms);
            self.dimensions.push(Dimension {
                name,
                synonyms,
                description: dimension.description,
                table: table.name.clone(),
                column: dimension.column,
                cardinality: dimension.cardinality,
            });
        }
    }
}

/// The names, synonyms and output columns metrics and dimensions already have, kept as the
/// derived ones are added (a scan of the model per name was quadratic on 500 tables).
struct TakenNames {
    /// Names and synonyms.
    phrases: HashSet<String>,
    /// Output column names of the names.
    aliases: HashSet<String>,
}

impl TakenNames {
    fn of(model: &SemanticModel) -> Self {
        let mut taken = TakenNames {
            phrases: HashSet::new(),
            aliases: HashSet::new(),
        };
        for metric in &model.metrics {
            taken.take(&metric.name, &metric.synonyms);
        }
        for dimension in &model.dimensions {
            taken.take(&dimension.name, &dimension.synonyms);
        }
        taken
    }

    fn take(&mut self, name: &str, synonyms: &[String]) {
        self.aliases.insert(output_alias(name));
        self.phrases.insert(name.to_string());
        self.phrases.extend(synonyms.iter().cloned());
    }

    /// The derived name, else its qualified form, whichever no metric or dimension has yet.
    fn free_name(&self, names: &DerivedNames) -> Option<String> {
        [&names.name, &names.qualified]
            .into_iter()
            .find(|name| !self.is_taken(name))
            .cloned()
    }

    /// The synonyms nothing else answers to, without `name` (which may be one of them when the
    /// derived name was taken).
    fn free_synonyms(&self, names: &DerivedNames, name: &str) -> Vec<String> {
        std::iter::once(&names.name)
            .chain(&names.synonyms)
            .filter(|synonym| *synonym != name && !self.is_taken(synonym))
            .cloned()
            .collect()
    }

    fn is_taken(&self, name: &str) -> bool {
        let alias = output_alias(name);
        GRAIN_ALIASES.contains(&alias.as_str()) || self.phrases.contains(name) || self.aliases.contains(&alias)
    }
}

/// The tables and columns whose names can be written into model SQL without quoting rules of
/// their own; a table named `sales.orders` or a column named `odd name` is better described by
/// hand.
fn plain_schema(schema: &[TableSchema]) -> Vec<TableSchema> {
    schema
        .iter()
        .filter(|table| is_plain_identifier(&table.name))
        .map(|table| {
            let mut table = table.clone();
            table.columns.retain(|column| is_plain_identifier(&column.name));
            table
        })
        .collect()
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

    #[test]
    fn the_join_index_follows_joins_edited_after_a_walk() {
        let mut model = SemanticModel::demo().unwrap();
        let reached = |model: &SemanticModel| -> Vec<String> {
            let mut names: Vec<String> = model.reachable_from("app_metrics").into_iter().collect();
            names.sort();
            names
        };
        assert_eq!(reached(&model), ["app_metrics"]);
        // A join added after the first walk (as a schema-derived table's are) is followed.
        model.joins.push(Join {
            from: ColumnRef {
                table: "app_metrics".into(),
                column: "platform".into(),
            },
            to: ColumnRef {
                table: "products".into(),
                column: "id".into(),
            },
            inferred: false,
        });
        assert_eq!(reached(&model), ["app_metrics", "products"]);
        // And one removed is no longer followed.
        model.joins.pop();
        assert_eq!(reached(&model), ["app_metrics"]);
    }

    #[test]
    fn lookups_by_name_follow_names_edited_in_place_after_the_index_was_built() {
        let mut model = SemanticModel::demo().unwrap();
        assert!(model.table("orders").is_some() && model.metric("revenue").is_some());
        // Same list, same length, same ends: only the name in the middle changed.
        let middle = model.tables.len() / 2;
        let old = model.tables[middle].name.clone();
        model.tables[middle].name = "renamed".into();
        assert_eq!(model.table("renamed").map(|t| t.name.as_str()), Some("renamed"));
        assert!(model.table(&old).is_none(), "{old} was renamed");
        let metric = model.metrics.len() / 2;
        let old = model.metrics[metric].name.clone();
        model.metrics[metric].name = "renamed metric".into();
        assert!(model.metric("renamed metric").is_some());
        assert!(model.metric(&old).is_none());
    }

    #[test]
    fn roles_and_access_in_threadql_toml_are_left_to_the_access_control() {
        let text = "[[roles]]\nname = \"a\"\nmembers = [\"U1\"]\n\n[access]\ndefault_role = \"none\"\n";
        let model = SemanticModel::from_toml_str(text).unwrap();
        assert!(model.tables.is_empty());
        assert!(SemanticModel::from_toml_str("[[rolez]]\nname = \"a\"\n").is_err());
    }
    use crate::domain::{ColumnKind, ColumnSchema};

    fn demo() -> SemanticModel {
        match SemanticModel::demo() {
            Ok(model) => model,
            Err(error) => panic!("the demo model should be valid: {error}"),
        }
    }

    /// Invoices created by one user and approved by another, both users of a department; and
    /// lines reaching the department through their invoice or (guessed) through their owner.
    fn role_playing(owner_join_inferred: bool) -> SemanticModel {
        let text = format!(
            r#"
[[tables]]
name = "departments"
columns = ["id", "name"]
[[tables]]
name = "users"
columns = ["id", "department_id", "name"]
[[tables]]
name = "invoices"
columns = ["id", "created_by", "approved_by", "department_id", "amount"]
[[tables]]
name = "lines"
columns = ["id", "invoice_id", "owner_id", "price"]
[[joins]]
from = "invoices.created_by"
to = "users.id"
[[joins]]
from = "invoices.approved_by"
to = "users.id"
[[joins]]
from = "users.department_id"
to = "departments.id"
[[joins]]
from = "invoices.department_id"
to = "departments.id"
[[joins]]
from = "lines.invoice_id"
to = "invoices.id"
[[joins]]
from = "lines.owner_id"
to = "users.id"
inferred = {owner_join_inferred}
[[metrics]]
name = "invoices"
table = "invoices"
expression = "COUNT(*)"
format = "integer"
[[metrics]]
name = "line price"
table = "lines"
expression = "SUM(lines.price)"
format = "money"
[[dimensions]]
name = "user"
table = "users"
column = "name"
[[dimensions]]
name = "department"
table = "departments"
column = "name"
"#
        );
        SemanticModel::from_toml_str(&text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn query(metric: &str, dimension: &str) -> crate::interpret::query::StructuredQuery {
        crate::interpret::query::StructuredQuery {
            metrics: vec![metric.into()],
            dimensions: vec![dimension.into()],
            ..Default::default()
        }
    }

    #[test]
    fn two_equally_short_join_paths_are_not_guessed_between() {
        let model = role_playing(true);
        let error = crate::interpret::query::plan(&query("invoices", "user"), &model).map(|plan| plan.fact);
        match error {
            Err(crate::interpret::query::CompileError::AmbiguousJoin {
                table, count, paths, ..
            }) => {
                assert_eq!((table.as_str(), count), ("users", 2));
                assert!(paths.contains("invoices.created_by = users.id"), "{paths}");
                assert!(paths.contains("invoices.approved_by = users.id"), "{paths}");
            }
            other => panic!("expected an ambiguous join, got {other:?}"),
        }
        // The department has one shortest path (its own key), however many longer ones.
        let plan = crate::interpret::query::plan(&query("invoices", "department"), &model)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(plan.joins.len(), 1);
        assert_eq!(
            plan.joins.first().map(|j| j.from.column.as_str()),
            Some("department_id")
        );
    }

    #[test]
    fn a_declared_path_wins_over_a_guessed_one_of_the_same_length() {
        // lines -> invoices -> departments (declared) vs lines -> users -> departments (guessed).
        let guessed = role_playing(true);
        let plan = crate::interpret::query::plan(&query("line price", "department"), &guessed)
            .unwrap_or_else(|error| panic!("{error}"));
        let path: Vec<String> = plan.joins.iter().map(|j| j.from.to_string()).collect();
        assert_eq!(path, ["lines.invoice_id", "invoices.department_id"]);
        // Both declared: neither is taken.
        let declared = role_playing(false);
        let both = crate::interpret::query::plan(&query("line price", "department"), &declared);
        assert!(
            matches!(both, Err(crate::interpret::query::CompileError::AmbiguousJoin { .. })),
            "{both:?}"
        );
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
    fn uncovered_tables_get_counts_sums_averages_dimensions_time_columns_and_joins() {
        // Arrange: `orders` and `customers` are described by the demo model, `support_tickets`
        // is not; nothing was sampled, so text columns are judged by their names.
        let mut model = demo();
        let schema = vec![
            TableSchema {
                name: "orders".into(),
                columns: vec![column("id", ColumnKind::Integer)],
                ..Default::default()
            },
            TableSchema {
                name: "customers".into(),
                columns: vec![column("id", ColumnKind::Integer), column("region", ColumnKind::Text)],
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

        // Act
        model.extend_from_schema(&schema);

        // Assert
        assert!(model.validate().is_ok(), "{:?}", model.validate());
        let table = model.table("support_tickets");
        assert_eq!(table.and_then(|t| t.time_column.clone()).as_deref(), Some("opened_on"));
        assert_eq!(table.map(|t| t.date_columns()), Some(vec!["opened_at", "opened_on"]));
        let count = model.metric("support tickets");
        assert_eq!(count.map(|m| m.expression.as_str()), Some("COUNT(*)"));
        assert_eq!(
            count.map(|m| m.synonyms.clone()),
            Some(vec![
                "number of support tickets".to_string(),
                "support ticket count".to_string()
            ])
        );
        for (name, expression, format) in [
            (
                "minutes spent",
                "SUM(support_tickets.minutes_spent)",
                ColumnFormat::Number,
            ),
            (
                "average minutes spent",
                "AVG(support_tickets.minutes_spent)",
                ColumnFormat::Number,
            ),
            ("replies", "SUM(support_tickets.replies)", ColumnFormat::Integer),
            ("average replies", "AVG(support_tickets.replies)", ColumnFormat::Number),
        ] {
            let metric = model.metric(name);
            assert_eq!(
                metric.map(|m| (m.expression.as_str(), m.format)),
                Some((expression, format)),
                "{name}"
            );
        }
        assert!(
            !model
                .metrics
                .iter()
                .any(|m| m.expression.contains("support_tickets.id") || m.expression.contains("customer_id")),
            "keys are not summed"
        );
        let priority = model.dimension("support ticket priority");
        assert_eq!(priority.map(|d| d.synonyms.clone()), Some(vec!["priority".to_string()]));
        // "status" is already the orders' dimension, so the ticket status keeps the table's noun
        // and does not answer to "status".
        let status = model.dimension("support ticket status");
        assert_eq!(status.map(|d| d.column.as_str()), Some("status"));
        assert_eq!(status.map(|d| d.synonyms.is_empty()), Some(true));
        assert!(model.dimensions.iter().all(|d| d.column != "odd name"));
        assert!(model.joins.contains(&Join {
            from: ColumnRef {
                table: "support_tickets".into(),
                column: "customer_id".into()
            },
            to: ColumnRef {
                table: "customers".into(),
                column: "id".into()
            },
            inferred: true,
        }));
        // Described tables are left alone.
        assert_eq!(model.table("orders").map(|t| t.columns.len()), Some(6));
        assert_eq!(model.table("customers").map(|t| t.columns.len()), Some(6));
    }

    fn derived(schema: &[TableSchema]) -> SemanticModel {
        let mut model = SemanticModel::default();
        model.extend_from_schema(schema);
        model
    }

    #[test]
    fn derived_models_are_valid_and_round_trip_through_toml() {
        for (style, schema) in [
            ("tpch", derive::fixtures::tpch()),
            ("snake", derive::fixtures::snake()),
            ("camel", derive::fixtures::camel()),
        ] {
            // Arrange
            let model = derived(&schema);
            assert!(model.validate().is_ok(), "{style}: {:?}", model.validate());

            // Act
            let printed = match model.to_toml() {
                Ok(text) => text,
                Err(error) => panic!("{style}: {error}"),
            };
            let parsed = SemanticModel::from_toml_str(&printed);

            // Assert
            assert_eq!(parsed.as_ref().ok(), Some(&model), "{style}:\n{printed}\n{parsed:?}");
            // Loaded as a config over the same warehouse, nothing more is derived.
            let mut again = parsed.unwrap_or_default();
            again.extend_from_schema(&schema);
            assert_eq!(again, model, "{style}");
        }
    }

    #[test]
    fn the_demo_model_round_trips_through_toml() {
        let model = demo();
        let printed = model.to_toml().unwrap_or_default();
        assert_eq!(SemanticModel::from_toml_str(&printed).ok(), Some(model), "{printed}");
    }

    #[test]
    fn a_tpch_schema_derives_joins_labels_and_high_cardinality_marks() {
        let model = derived(&derive::fixtures::tpch());
        let joins: Vec<String> = model.joins.iter().map(|j| format!("{} -> {}", j.from, j.to)).collect();
        assert_eq!(
            joins,
            [
                "nation.n_regionkey -> region.r_regionkey",
                "customer.c_nationkey -> nation.n_nationkey",
                "orders.o_custkey -> customer.c_custkey",
                "lineitem.l_orderkey -> orders.o_orderkey",
            ]
        );
        // Line items reach the region through four joins.
        assert!(model.reachable_from("lineitem").contains("region"));
        assert_eq!(
            model.dimension("region").map(|d| (d.column.as_str(), d.cardinality)),
            Some(("r_name", Cardinality::Low))
        );
        assert_eq!(
            model.dimension("customer").map(|d| (d.column.as_str(), d.cardinality)),
            Some(("c_name", Cardinality::High))
        );
        assert_eq!(
            model.table("lineitem").map(|t| t.date_columns()),
            Some(vec!["l_shipdate", "l_commitdate", "l_receiptdate"])
        );
        // Shipped, committed and received: no default, the question is asked.
        assert_eq!(model.time_column_for("lineitem"), None);
        assert_eq!(
            model.time_choice_for("lineitem"),
            TimeChoice::Ask(vec!["ship date".into(), "commit date".into(), "receipt date".into()])
        );
        assert_eq!(
            model.time_column_for("customer").map(|c| c.to_string()),
            None,
            "customers happen at no time"
        );
    }

    #[test]
    fn team_abbreviations_from_the_naming_section_name_derived_entries() {
        let mut model = match SemanticModel::from_toml_str("[naming]\nabbreviations = { \"wdg\" = \"widget\" }\n") {
            Ok(model) => model,
            Err(error) => panic!("{error}"),
        };
        model.extend_from_schema(&[TableSchema {
            name: "stock".into(),
            columns: vec![column("wdg_cnt", ColumnKind::Integer)],
            ..Default::default()
        }]);
        assert_eq!(
            model.metric("widget count").map(|m| m.expression.as_str()),
            Some("SUM(stock.wdg_cnt)")
        );
        let message = problems_of("[naming]\nabbreviations = { \"Bad Key\" = \"x\" }\n");
        assert!(message.contains("abbreviation 'Bad Key'"), "{message}");
    }

    #[test]
    fn inferred_joins_the_data_contradicts_are_not_added() {
        let schema = derive::fixtures::snake();
        let candidates = SemanticModel::default().inferred_join_candidates(&schema);
        assert_eq!(candidates.len(), 1);

        let mut model = SemanticModel::default();
        model.extend_from_schema_checked(&schema, |_| Containment::NotContained);
        assert!(model.joins.is_empty());

        let mut model = SemanticModel::default();
        model.extend_from_schema_checked(&schema, |_| Containment::Contained);
        assert_eq!(model.joins.len(), 1);
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
