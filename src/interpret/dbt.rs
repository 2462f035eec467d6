//! dbt semantic models: a project's MetricFlow YAML (`semantic_models:` and `metrics:`) turned
//! into the same [`SemanticModel`] threadql.toml describes, so a team that already defines its
//! metrics in dbt asks questions in them without writing them twice.
//!
//! What the model cannot express (cumulative and conversion metrics, offsets, ratios across
//! tables, measures with non-additive dimensions, …) is left out and listed as a
//! [`DbtProblem`], which `threadql model --check` reports with its file and line.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::model::{is_plain_identifier, tokenize, ColumnRef, Dimension, Join, Metric, SemanticModel, SqlToken, Table};
use crate::domain::ColumnFormat;

/// A construct of the project left out of the model, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbtProblem {
    pub file: PathBuf,
    /// 1-based, when the construct's name could be found in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for DbtProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// The model read from a dbt project and what could not be read into it.
#[derive(Debug, Clone, Default)]
pub struct DbtImport {
    pub model: SemanticModel,
    pub problems: Vec<DbtProblem>,
    /// The YAML files read, in order.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct ProjectFile {
    name: String,
    #[serde(default, rename = "model-paths")]
    model_paths: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct YamlFile {
    #[serde(default)]
    semantic_models: Vec<YamlSemanticModel>,
    #[serde(default)]
    metrics: Vec<YamlMetric>,
}

#[derive(Debug, Deserialize)]
struct YamlSemanticModel {
    name: String,
    model: String,
    #[serde(default)]
    defaults: Option<YamlDefaults>,
    #[serde(default)]
    entities: Vec<YamlEntity>,
    #[serde(default)]
    dimensions: Vec<YamlDimension>,
    #[serde(default)]
    measures: Vec<YamlMeasure>,
}

#[derive(Debug, Deserialize)]
struct YamlDefaults {
    #[serde(default)]
    agg_time_dimension: Option<String>,
}

#[derive(Debug, Deserialize)]
struct YamlEntity {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    expr: Option<String>,
}

#[derive(Debug, Deserialize)]
struct YamlDimension {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct YamlMeasure {
    name: String,
    agg: String,
    /// A column, a SQL expression, or a number (`expr: 1` for counts).
    #[serde(default)]
    expr: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    agg_time_dimension: Option<String>,
    #[serde(default)]
    non_additive_dimension: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    agg_params: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
struct YamlMetric {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    filter: Option<YamlFilter>,
    #[serde(default)]
    type_params: YamlMetricParams,
}

#[derive(Debug, Default, Deserialize)]
struct YamlMetricParams {
    #[serde(default)]
    measure: Option<YamlInput>,
    #[serde(default)]
    numerator: Option<YamlInput>,
    #[serde(default)]
    denominator: Option<YamlInput>,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default)]
    metrics: Vec<YamlInput>,
}

/// A measure or metric input: its name alone, or with a filter, an alias, an offset, ….
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum YamlInput {
    Name(String),
    Detailed {
        name: String,
        #[serde(default)]
        filter: Option<YamlFilter>,
        #[serde(default)]
        alias: Option<String>,
        #[serde(flatten)]
        other: BTreeMap<String, serde_yaml_ng::Value>,
    },
}

impl YamlInput {
    fn name(&self) -> &str {
        match self {
            YamlInput::Name(name) | YamlInput::Detailed { name, .. } => name,
        }
    }
}

/// One `{{ Dimension(...) }} = '…'` condition, or a list of them that all hold.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum YamlFilter {
    One(String),
    All(Vec<String>),
}

impl YamlFilter {
    fn conditions(&self) -> Vec<&str> {
        match self {
            YamlFilter::One(one) => vec![one.as_str()],
            YamlFilter::All(all) => all.iter().map(String::as_str).collect(),
        }
    }
}

/// A dbt model's warehouse relation by model name, from `target/manifest.json`.
type Relations = HashMap<String, String>;

/// An aggregate over one table with the rows it counts: the form every supported dbt metric
/// is brought to, so ratios and derived metrics can put each side's filter inside its
/// aggregate.
#[derive(Debug, Clone)]
struct Aggregate {
    table: String,
    /// `SUM`, `COUNT`, `AVG`, `MIN`, `MAX`.
    function: &'static str,
    distinct: bool,
    /// The aggregated SQL over qualified columns.
    argument: String,
    filter: Vec<String>,
    format: ColumnFormat,
}

impl Aggregate {
    /// The aggregate with its filter inside (`SUM(CASE WHEN f THEN x END)`), for combining
    /// with others in one expression.
    fn filtered_sql(&self) -> String {
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        if self.filter.is_empty() {
            format!("{}({distinct}{})", self.function, self.argument)
        } else {
            format!(
                "{}({distinct}CASE WHEN {} THEN {} END)",
                self.function,
                self.filter.join(" AND "),
                self.argument
            )
        }
    }

    /// The aggregate alone, its filter kept apart for a metric's `filter`.
    fn bare_sql(&self) -> String {
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        format!("{}({distinct}{})", self.function, self.argument)
    }
}

/// Where each semantic model's names live, for resolving `entity__dimension` in filters.
#[derive(Debug, Default)]
struct Names {
    /// Entity name -> (table, column) of the semantic model it is primary (or unique) in.
    primary: HashMap<String, ColumnRef>,
    /// (table, entity name) -> column, for every entity.
    entity_columns: HashMap<(String, String), String>,
    /// (table, dimension name) -> column.
    dimensions: HashMap<(String, String), String>,
    /// Semantic model name -> table.
    tables: HashMap<String, String>,
    /// Table -> its default time column.
    time: HashMap<String, String>,
}

/// Reads the project at `dir` into a model. Fails only when the project cannot be read at all
/// (no dbt_project.yml, YAML that does not parse); anything it cannot express is a problem.
pub fn load_project(dir: &Path) -> anyhow::Result<DbtImport> {
    let project_path = dir.join("dbt_project.yml");
    let text =
        std::fs::read_to_string(&project_path).with_context(|| format!("Failed to read {}", project_path.display()))?;
    let project: ProjectFile = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not a dbt project file", project_path.display()))?;
    tracing::debug!(project = project.name, "Reading a dbt project");
    let relations = read_manifest(dir)?;
    let mut files = Vec::new();
    for model_path in project.model_paths.unwrap_or_else(|| vec!["models".to_string()]) {
        collect_yaml_files(&dir.join(model_path), &mut files)?;
    }
    files.sort();
    let mut sources = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))?;
        let parsed: YamlFile =
            serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not valid dbt YAML", path.display()))?;
        sources.push((path, text, parsed));
    }
    let mut import = convert(&sources, &relations);
    import.files = sources.into_iter().map(|(path, _, _)| path).collect();
    Ok(import)
}

/// `nodes` of a compiled project's manifest: each model's relation (its alias, which is the
/// table name the warehouse knows).
fn read_manifest(dir: &Path) -> anyhow::Result<Relations> {
    let path = dir.join("target").join("manifest.json");
    if !path.is_file() {
        return Ok(Relations::new());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let mut relations = Relations::new();
    if let Some(nodes) = manifest.get("nodes").and_then(|nodes| nodes.as_object()) {
        for node in nodes.values() {
            if node.get("resource_type").and_then(|t| t.as_str()) != Some("model") {
                continue;
            }
            let name = node.get("name").and_then(|n| n.as_str());
            let alias = node.get("alias").and_then(|a| a.as_str()).or(name);
            if let (Some(name), Some(alias)) = (name, alias) {
                relations.insert(name.to_string(), alias.to_string());
            }
        }
    }
    Ok(relations)
}

fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("Failed to list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("Failed to list {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_yaml_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "yml" || ext == "yaml") {
            files.push(path);
        }
    }
    Ok(())
}

/// The 1-based line where `name: <name>` (or `- <name>`) is first written after `after`, so a
/// problem points at the construct rather than the file.
fn line_of(text: &str, name: &str, after: usize) -> Option<usize> {
    text.lines().enumerate().skip(after).find_map(|(index, line)| {
        let trimmed = line.trim().trim_start_matches("- ").trim();
        let value = trimmed
            .strip_prefix("name:")?
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        (value == name).then_some(index + 1)
    })
}

/// `ref('orders')` -> the table the warehouse knows it as.
fn resolve_ref(reference: &str, relations: &Relations) -> Option<String> {
    let inner = reference
        .trim()
        .strip_prefix("ref(")?
        .strip_suffix(')')?
        .split(',')
        .next_back()?
        .trim()
        .trim_matches(|c| c == '\'' || c == '"');
    let table = relations.get(inner).cloned().unwrap_or_else(|| inner.to_string());
    is_plain_identifier(&table).then_some(table)
}

/// `order_total` -> "order total": the words people say.
fn words(name: &str) -> String {
    name.replace('_', " ").trim().to_lowercase()
}

const SQL_WORDS: [&str; 24] = [
    "case", "when", "then", "else", "end", "and", "or", "not", "null", "is", "in", "like", "between", "as", "true",
    "false", "distinct", "cast", "integer", "int", "numeric", "decimal", "float", "real",
];

/// Qualifies the bare column names of a dbt `expr` with `table`, which the model's snippets
/// require (`amount * 2` -> `orders.amount * 2`). `None` when it cannot be read.
fn qualify(expr: &str, table: &str, columns: &mut Vec<String>) -> Option<String> {
    let tokens = tokenize(expr).ok()?;
    let mut out = String::new();
    for (index, token) in tokens.iter().enumerate() {
        match token {
            SqlToken::Identifier(word) => {
                let next = tokens.get(index + 1..).and_then(|rest| {
                    rest.iter()
                        .find(|t| !matches!(t, SqlToken::Other(c) if c.is_whitespace()))
                });
                let previous = index.checked_sub(1).and_then(|i| tokens.get(i));
                let is_call = matches!(next, Some(SqlToken::Other('(')));
                let is_qualified =
                    matches!(previous, Some(SqlToken::Other('.'))) || matches!(next, Some(SqlToken::Other('.')));
                if is_call || is_qualified || SQL_WORDS.contains(&word.to_lowercase().as_str()) {
                    out.push_str(word);
                } else {
                    if !columns.contains(word) {
                        columns.push(word.clone());
                    }
                    out.push_str(&format!("{table}.{word}"));
                }
            }
            SqlToken::Quoted(text) => out.push_str(text),
            SqlToken::Other(c) => out.push(*c),
        }
    }
    Some(out)
}

/// A plain column name from an `expr`, or the construct's own name when there is none.
fn plain_column(expr: Option<&str>, name: &str) -> Option<String> {
    let column = expr.unwrap_or(name).trim();
    is_plain_identifier(column).then(|| column.to_string())
}

struct Converter<'a> {
    relations: &'a Relations,
    model: SemanticModel,
    problems: Vec<DbtProblem>,
    names: Names,
    taken: HashSet<String>,
    /// Measure name -> its aggregate.
    measures: HashMap<String, Aggregate>,
    /// Measure name -> (description, label).
    measure_texts: HashMap<String, (Option<String>, Option<String>)>,
    /// Metric name -> its aggregate, when it is one.
    aggregates: HashMap<String, Aggregate>,
}

fn convert(sources: &[(PathBuf, String, YamlFile)], relations: &Relations) -> DbtImport {
    let mut converter = Converter {
        relations,
        model: SemanticModel::default(),
        problems: Vec::new(),
        names: Names::default(),
        taken: HashSet::new(),
        measures: HashMap::new(),
        measure_texts: HashMap::new(),
        aggregates: HashMap::new(),
    };
    for (path, text, file) in sources {
        for semantic_model in &file.semantic_models {
            converter.add_semantic_model(path, text, semantic_model);
        }
    }
    converter.add_joins();
    let mut metric_sources: Vec<(&PathBuf, &String, &YamlMetric)> = sources
        .iter()
        .flat_map(|(path, text, file)| file.metrics.iter().map(move |metric| (path, text, metric)))
        .collect();
    // Inputs first: ratio and derived metrics are built from metrics that may be defined later.
    metric_sources.sort_by_key(|(_, _, metric)| !matches!(metric.kind.as_str(), "simple"));
    let metric_names: HashSet<&str> = metric_sources.iter().map(|(_, _, m)| m.name.as_str()).collect();
    for (path, text, metric) in &metric_sources {
        converter.add_metric(path, text, metric);
    }
    // A measure nobody wraps in a metric is still something people ask about.
    let mut measures: Vec<(String, Aggregate)> = converter
        .measures
        .iter()
        .filter(|(name, _)| !metric_names.contains(name.as_str()))
        .map(|(name, aggregate)| (name.clone(), aggregate.clone()))
        .collect();
    measures.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, aggregate) in measures {
        let (description, label) = converter.measure_texts.get(&name).cloned().unwrap_or_default();
        let labels: Vec<&str> = label.iter().map(String::as_str).collect();
        converter.push_metric(&name, &labels, description, &aggregate, false);
    }
    DbtImport {
        model: converter.model,
        problems: converter.problems,
        files: Vec::new(),
    }
}

impl Converter<'_> {
    fn problem(&mut self, path: &Path, text: &str, name: &str, message: String) {
        self.problems.push(DbtProblem {
            file: path.to_path_buf(),
            line: line_of(text, name, 0),
            message,
        });
    }

    /// Claims a name and returns it, or `None` when another metric or dimension has it.
    fn claim(&mut self, name: &str) -> bool {
        self.taken.insert(name.to_lowercase())
    }

    fn add_semantic_model(&mut self, path: &Path, text: &str, semantic: &YamlSemanticModel) {
        let what = format!("semantic model '{}'", semantic.name);
        let Some(table) = resolve_ref(&semantic.model, self.relations) else {
            self.problem(
                path,
                text,
                &semantic.name,
                format!(
                    "{what}: model '{}' is not a ref('…') to a plain table name",
                    semantic.model
                ),
            );
            return;
        };
        self.names.tables.insert(semantic.name.clone(), table.clone());
        let mut columns: Vec<String> = Vec::new();
        for entity in &semantic.entities {
            let Some(column) = plain_column(entity.expr.as_deref(), &entity.name) else {
                self.problem(
                    path,
                    text,
                    &entity.name,
                    format!(
                        "{what}: entity '{}' has an expression, not a column; left out",
                        entity.name
                    ),
                );
                continue;
            };
            match entity.kind.as_str() {
                "primary" | "unique" => {
                    self.names.primary.entry(entity.name.clone()).or_insert(ColumnRef {
                        table: table.clone(),
                        column: column.clone(),
                    });
                }
                "foreign" => {}
                other => {
                    self.problem(
                        path,
                        text,
                        &entity.name,
                        format!(
                            "{what}: entity '{}' of type '{other}' is not supported; left out",
                            entity.name
                        ),
                    );
                    continue;
                }
            }
            self.names
                .entity_columns
                .insert((table.clone(), entity.name.clone()), column.clone());
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        let mut time_columns = Vec::new();
        for dimension in &semantic.dimensions {
            let Some(column) = plain_column(dimension.expr.as_deref(), &dimension.name) else {
                self.problem(
                    path,
                    text,
                    &dimension.name,
                    format!(
                        "{what}: dimension '{}' has an expression, not a column; left out",
                        dimension.name
                    ),
                );
                continue;
            };
            if !columns.contains(&column) {
                columns.push(column.clone());
            }
            self.names
                .dimensions
                .insert((table.clone(), dimension.name.clone()), column.clone());
            match dimension.kind.as_str() {
                "time" => time_columns.push((dimension.name.clone(), column)),
                "categorical" => {
                    let name = if self.claim(&words(&dimension.name)) {
                        words(&dimension.name)
                    } else if self.claim(&format!("{} {}", words(&semantic.name), words(&dimension.name))) {
                        format!("{} {}", words(&semantic.name), words(&dimension.name))
                    } else {
                        self.problem(
                            path,
                            text,
                            &dimension.name,
                            format!("{what}: dimension '{}' has a name already taken", dimension.name),
                        );
                        continue;
                    };
                    let synonyms = self.synonyms(dimension.label.as_deref(), &name);
                    self.model.dimensions.push(Dimension {
                        name,
                        synonyms,
                        description: dimension.description.clone(),
                        table: table.clone(),
                        column,
                        cardinality: Default::default(),
                    });
                }
                other => self.problem(
                    path,
                    text,
                    &dimension.name,
                    format!(
                        "{what}: dimension '{}' of type '{other}' is not supported",
                        dimension.name
                    ),
                ),
            }
        }
        let default_time = semantic
            .defaults
            .as_ref()
            .and_then(|defaults| defaults.agg_time_dimension.as_deref())
            .and_then(|name| time_columns.iter().find(|(dimension, _)| dimension == name))
            .or_else(|| time_columns.first())
            .map(|(_, column)| column.clone());
        if let Some(column) = &default_time {
            self.names.time.insert(table.clone(), column.clone());
        }
        for measure in &semantic.measures {
            if let Some(agg_time) = &measure.agg_time_dimension {
                let column = time_columns.iter().find(|(name, _)| name == agg_time).map(|(_, c)| c);
                if column != default_time.as_ref() {
                    self.problem(
                        path,
                        text,
                        &measure.name,
                        format!(
                            "{what}: measure '{}' is aggregated over time dimension '{agg_time}', but each \
                             table has one default time column here; '{}' is used",
                            measure.name,
                            default_time.as_deref().unwrap_or("none")
                        ),
                    );
                }
            }
            match self.measure(&table, measure, &mut columns) {
                Ok(aggregate) => {
                    self.measures.insert(measure.name.clone(), aggregate);
                    self.measure_texts.insert(
                        measure.name.clone(),
                        (measure.description.clone(), measure.label.clone()),
                    );
                }
                Err(reason) => self.problem(
                    path,
                    text,
                    &measure.name,
                    format!("{what}: measure '{}' {reason}; left out", measure.name),
                ),
            }
        }
        let time_list: Vec<String> = time_columns.into_iter().map(|(_, column)| column).collect();
        self.model.tables.push(Table {
            name: table,
            columns,
            time_column: default_time,
            time_columns: if time_list.len() > 1 { time_list } else { Vec::new() },
        });
    }

    fn measure(&self, table: &str, measure: &YamlMeasure, columns: &mut Vec<String>) -> Result<Aggregate, String> {
        if measure.non_additive_dimension.is_some() {
            return Err("has a non_additive_dimension, which is not supported".to_string());
        }
        if measure.agg_params.is_some() {
            return Err("has agg_params (percentiles), which are not supported".to_string());
        }
        let expr = match &measure.expr {
            None => measure.name.clone(),
            Some(serde_yaml_ng::Value::String(text)) => text.clone(),
            Some(serde_yaml_ng::Value::Number(number)) => number.to_string(),
            Some(serde_yaml_ng::Value::Bool(value)) => value.to_string(),
            Some(_) => return Err("has an expr that is not text".to_string()),
        };
        let argument =
            qualify(&expr, table, columns).ok_or_else(|| format!("has an expr '{expr}' that cannot be read"))?;
        let (function, distinct, argument, format) = match measure.agg.as_str() {
            "sum" => ("SUM", false, argument, ColumnFormat::Number),
            "count" => ("COUNT", false, argument, ColumnFormat::Integer),
            "count_distinct" => ("COUNT", true, argument, ColumnFormat::Integer),
            "average" => ("AVG", false, argument, ColumnFormat::Number),
            "min" => ("MIN", false, argument, ColumnFormat::Number),
            "max" => ("MAX", false, argument, ColumnFormat::Number),
            "sum_boolean" => (
                "SUM",
                false,
                format!("CASE WHEN {argument} THEN 1 ELSE 0 END"),
                ColumnFormat::Integer,
            ),
            other => return Err(format!("has agg '{other}', which is not supported")),
        };
        Ok(Aggregate {
            table: table.to_string(),
            function,
            distinct,
            argument,
            filter: Vec::new(),
            format,
        })
    }

    /// Foreign entities join to the semantic model where the same entity is primary.
    fn add_joins(&mut self) {
        let mut joins: Vec<Join> = self
            .names
            .entity_columns
            .iter()
            .filter_map(|((table, entity), column)| {
                let target = self.names.primary.get(entity)?;
                (target.table != *table).then(|| Join {
                    from: ColumnRef {
                        table: table.clone(),
                        column: column.clone(),
                    },
                    to: target.clone(),
                    inferred: false,
                })
            })
            .collect();
        joins.sort_by_key(|join| (join.from.to_string(), join.to.to_string()));
        self.model.joins = joins;
    }

    fn add_metric(&mut self, path: &Path, text: &str, metric: &YamlMetric) {
        match self.metric_aggregate(metric) {
            Ok(Built::Aggregate(aggregate)) => {
                self.aggregates.insert(metric.name.clone(), aggregate.clone());
                // A simple metric without its own words takes its measure's.
                let measure = metric.type_params.measure.as_ref().map(|m| m.name().to_string());
                let (measure_description, measure_label) = measure
                    .and_then(|m| self.measure_texts.get(&m).cloned())
                    .unwrap_or_default();
                let labels: Vec<&str> = metric.label.iter().chain(&measure_label).map(String::as_str).collect();
                let description = metric.description.clone().or(measure_description);
                self.push_metric(&metric.name, &labels, description, &aggregate, false);
            }
            Ok(Built::Expression { table, expression }) => {
                let aggregate = Aggregate {
                    table,
                    function: "",
                    distinct: false,
                    argument: expression,
                    filter: Vec::new(),
                    format: ColumnFormat::Number,
                };
                let labels: Vec<&str> = metric.label.iter().map(String::as_str).collect();
                self.push_metric(&metric.name, &labels, metric.description.clone(), &aggregate, true);
            }
            Err(reason) => self.problem(
                path,
                text,
                &metric.name,
                format!("metric '{}' ({}) {reason}; left out", metric.name, metric.kind),
            ),
        }
    }

    fn push_metric(
        &mut self,
        name: &str,
        labels: &[&str],
        description: Option<String>,
        aggregate: &Aggregate,
        combined: bool,
    ) {
        let words = words(name);
        if !self.claim(&words) {
            tracing::warn!(metric = name, "A dbt metric's name is already taken; left out");
            return;
        }
        let synonyms = labels
            .iter()
            .flat_map(|label| self.synonyms(Some(label), &words))
            .collect();
        let (expression, filter) = if combined {
            (aggregate.argument.clone(), None)
        } else if aggregate.filter.is_empty() {
            (aggregate.bare_sql(), None)
        } else {
            (aggregate.bare_sql(), Some(aggregate.filter.join(" AND ")))
        };
        self.model.metrics.push(Metric {
            name: words,
            synonyms,
            description,
            table: aggregate.table.clone(),
            expression,
            filter,
            format: aggregate.format,
            alternatives: Vec::new(),
        });
    }

    fn synonyms(&mut self, label: Option<&str>, name: &str) -> Vec<String> {
        label
            .map(|label| label.trim().to_lowercase())
            .filter(|label| !label.is_empty() && label != name)
            .filter(|label| self.claim(label))
            .into_iter()
            .collect()
    }

    fn metric_aggregate(&self, metric: &YamlMetric) -> Result<Built, String> {
        let params = &metric.type_params;
        match metric.kind.as_str() {
            "simple" => {
                let input = params.measure.as_ref().ok_or("has no type_params.measure")?;
                let mut aggregate =
                    self.measures.get(input.name()).cloned().ok_or_else(|| {
                        format!("uses measure '{}', which is not defined or not supported", input.name())
                    })?;
                self.check_input(input)?;
                aggregate.filter.extend(self.input_filter(input, &aggregate.table)?);
                if let Some(filter) = &metric.filter {
                    aggregate.filter.extend(self.filter(filter, &aggregate.table)?);
                }
                Ok(Built::Aggregate(aggregate))
            }
            "ratio" => {
                let numerator = params.numerator.as_ref().ok_or("has no numerator")?;
                let denominator = params.denominator.as_ref().ok_or("has no denominator")?;
                let top = self.input_aggregate(numerator, metric)?;
                let bottom = self.input_aggregate(denominator, metric)?;
                if top.table != bottom.table {
                    return Err(format!(
                        "divides a metric over '{}' by one over '{}': ratios across tables are not supported yet",
                        top.table, bottom.table
                    ));
                }
                Ok(Built::Expression {
                    table: top.table.clone(),
                    expression: format!("{} * 1.0 / NULLIF({}, 0)", top.filtered_sql(), bottom.filtered_sql()),
                })
            }
            "derived" => {
                let expr = params.expr.as_deref().ok_or("has no type_params.expr")?;
                let mut inputs: HashMap<String, Aggregate> = HashMap::new();
                for input in &params.metrics {
                    let aggregate = self.input_aggregate(input, metric)?;
                    let alias = match input {
                        YamlInput::Detailed { alias: Some(alias), .. } => alias.clone(),
                        _ => input.name().to_string(),
                    };
                    inputs.insert(alias, aggregate);
                }
                let tables: HashSet<&str> = inputs.values().map(|a| a.table.as_str()).collect();
                let table = match tables.into_iter().collect::<Vec<_>>().as_slice() {
                    [table] => table.to_string(),
                    [] => return Err("has no input metrics".to_string()),
                    _ => return Err("combines metrics over different tables, which is not supported yet".to_string()),
                };
                let expression = derived_sql(expr, &inputs)?;
                Ok(Built::Expression { table, expression })
            }
            "cumulative" => Err("is cumulative, which is not supported yet (a running window per period)".to_string()),
            "conversion" => Err("is a conversion metric, which is not supported".to_string()),
            other => Err(format!("has type '{other}', which is not supported")),
        }
    }

    /// An input of a ratio or derived metric: the simple metric it names with the input's own
    /// filter and the outer metric's filter added.
    fn input_aggregate(&self, input: &YamlInput, outer: &YamlMetric) -> Result<Aggregate, String> {
        let mut aggregate = self.aggregates.get(input.name()).cloned().ok_or_else(|| {
            format!(
                "uses metric '{}', which is not a simple metric threadql could read",
                input.name()
            )
        })?;
        self.check_input(input)?;
        aggregate.filter.extend(self.input_filter(input, &aggregate.table)?);
        if let Some(filter) = &outer.filter {
            aggregate.filter.extend(self.filter(filter, &aggregate.table)?);
        }
        Ok(aggregate)
    }

    /// Options of an input the model cannot express.
    fn check_input(&self, input: &YamlInput) -> Result<(), String> {
        if let YamlInput::Detailed { name, other, .. } = input {
            if let Some(key) = other.keys().next() {
                return Err(format!("gives input '{name}' option '{key}', which is not supported"));
            }
        }
        Ok(())
    }

    fn input_filter(&self, input: &YamlInput, table: &str) -> Result<Vec<String>, String> {
        match input {
            YamlInput::Detailed {
                filter: Some(filter), ..
            } => self.filter(filter, table),
            _ => Ok(Vec::new()),
        }
    }

    /// `{{ Dimension('customer__region') }} = 'EU'` -> `customers.region = 'EU'`.
    fn filter(&self, filter: &YamlFilter, table: &str) -> Result<Vec<String>, String> {
        filter
            .conditions()
            .into_iter()
            .map(|condition| self.condition(condition, table))
            .collect()
    }

    fn condition(&self, condition: &str, table: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = condition;
        while let Some(start) = rest.find("{{") {
            let end = rest
                .get(start..)
                .and_then(|tail| tail.find("}}"))
                .map(|end| start + end)
                .ok_or_else(|| format!("has an unterminated '{{{{' in filter '{condition}'"))?;
            out.push_str(rest.get(..start).unwrap_or_default());
            let call = rest.get(start + 2..end).unwrap_or_default().trim();
            out.push_str(&self.placeholder(call, table)?);
            rest = rest.get(end + 2..).unwrap_or_default();
        }
        out.push_str(rest);
        Ok(format!("({})", out.trim()))
    }

    /// One `Dimension('e__d')`, `TimeDimension('e__d', 'grain')` or `Entity('e')` as a column.
    fn placeholder(&self, call: &str, table: &str) -> Result<String, String> {
        let (function, arguments) = call
            .split_once('(')
            .ok_or_else(|| format!("has a filter placeholder '{call}' threadql cannot read"))?;
        let first = arguments
            .trim_end_matches(')')
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches(|c| c == '\'' || c == '"');
        let column = match function.trim() {
            "Entity" => self.entity_column(first),
            "Dimension" | "TimeDimension" if first == "metric_time" => {
                self.names.time.get(table).map(|column| ColumnRef {
                    table: table.to_string(),
                    column: column.clone(),
                })
            }
            "Dimension" | "TimeDimension" => {
                let (entity, dimension) = first
                    .rsplit_once("__")
                    .ok_or_else(|| format!("has a filter on '{first}', which names no entity"))?;
                let target = self.entity_column(entity.rsplit("__").next().unwrap_or(entity));
                target.and_then(|target| {
                    let column = self
                        .names
                        .dimensions
                        .get(&(target.table.clone(), dimension.to_string()))?;
                    Some(ColumnRef {
                        table: target.table,
                        column: column.clone(),
                    })
                })
            }
            other => return Err(format!("has a filter with '{other}(…)', which is not supported")),
        };
        column
            .map(|column| column.to_string())
            .ok_or_else(|| format!("has a filter on '{first}', which threadql cannot find"))
    }

    /// Where entity `entity` is: its primary key column. A foreign key holds the same values,
    /// and the primary's table is the one holding the entity's dimensions.
    fn entity_column(&self, entity: &str) -> Option<ColumnRef> {
        self.names.primary.get(entity).cloned()
    }
}

/// What a dbt metric becomes: one aggregate with a filter, or an expression of aggregates.
enum Built {
    Aggregate(Aggregate),
    Expression { table: String, expression: String },
}

/// A derived metric's `expr` with each input replaced by its aggregate, in decimal
/// arithmetic (`* 1.0`) so integer counts do not divide to zero, and each divisor wrapped in
/// `NULLIF(…, 0)` so a zero gives NULL rather than an error.
fn derived_sql(expr: &str, inputs: &HashMap<String, Aggregate>) -> Result<String, String> {
    let tokens = tokenize(expr).map_err(|problem| format!("has expr '{expr}' that cannot be read: {problem}"))?;
    // Each token as SQL, inputs replaced.
    let mut parts: Vec<String> = Vec::new();
    for token in &tokens {
        match token {
            SqlToken::Identifier(word) => match inputs.get(word) {
                Some(aggregate) => parts.push(format!("({} * 1.0)", aggregate.filtered_sql())),
                None if SQL_WORDS.contains(&word.to_lowercase().as_str()) => parts.push(word.clone()),
                None => return Err(format!("uses '{word}' in its expr, which is not one of its metrics")),
            },
            SqlToken::Quoted(text) => parts.push(text.clone()),
            SqlToken::Other(c) if c.is_whitespace() => {}
            SqlToken::Other(c) => parts.push(c.to_string()),
        }
    }
    // Wrap the operand after each '/' (one input, a number, or a parenthesised group).
    let mut out: Vec<String> = Vec::new();
    let mut index = 0;
    while let Some(part) = parts.get(index) {
        out.push(part.clone());
        index += 1;
        if part == "/" {
            let start = index;
            let mut depth = 0usize;
            while let Some(next) = parts.get(index) {
                index += 1;
                match next.as_str() {
                    "(" => depth += 1,
                    ")" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
            let operand = parts.get(start..index).map(|p| p.join(" ")).unwrap_or_default();
            if operand.is_empty() {
                return Err(format!("has expr '{expr}' ending in '/'"));
            }
            out.push(format!("NULLIF({operand}, 0)"));
        }
    }
    Ok(out.join(" "))
}

/// threadql.toml's model completed with a dbt project's: the toml wins per name (tables,
/// metrics, dimensions, and any synonym it already uses), so a team can override one dbt
/// metric without forking the project. A table both describe keeps the toml's time column and
/// gains the dbt columns it lacks, so dbt metrics over it still find their columns.
pub fn merge(configured: SemanticModel, dbt: SemanticModel) -> SemanticModel {
    let mut model = configured;
    let mut taken: HashSet<String> = model
        .metrics
        .iter()
        .flat_map(|m| std::iter::once(&m.name).chain(&m.synonyms))
        .chain(
            model
                .dimensions
                .iter()
                .flat_map(|d| std::iter::once(&d.name).chain(&d.synonyms)),
        )
        .map(|name| name.to_lowercase())
        .collect();
    for table in dbt.tables {
        match model.tables.iter_mut().find(|t| t.name == table.name) {
            Some(existing) => {
                for column in table.columns {
                    if !existing.columns.contains(&column) {
                        existing.columns.push(column);
                    }
                }
            }
            None => model.tables.push(table),
        }
    }
    for join in dbt.joins {
        if !model.joins.contains(&join) {
            model.joins.push(join);
        }
    }
    for mut metric in dbt.metrics {
        if !taken.insert(metric.name.to_lowercase()) {
            continue;
        }
        metric.synonyms.retain(|synonym| taken.insert(synonym.to_lowercase()));
        model.metrics.push(metric);
    }
    for mut dimension in dbt.dimensions {
        if !taken.insert(dimension.name.to_lowercase()) {
            continue;
        }
        dimension
            .synonyms
            .retain(|synonym| taken.insert(synonym.to_lowercase()));
        model.dimensions.push(dimension);
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = "name: shop\nversion: '1.0'\n";

    const MODELS: &str = r#"
semantic_models:
  - name: orders
    model: ref('orders')
    defaults:
      agg_time_dimension: ordered_at
    entities:
      - name: order
        type: primary
        expr: order_id
      - name: customer
        type: foreign
        expr: customer_id
    dimensions:
      - name: ordered_at
        type: time
        type_params:
          time_granularity: day
      - name: status
        type: categorical
        label: Order status
    measures:
      - name: order_total
        agg: sum
        expr: amount
        label: Revenue
      - name: order_count
        agg: count
        expr: 1
      - name: refunded_orders
        agg: sum_boolean
        expr: is_refunded
  - name: customers
    model: ref('stg_customers')
    entities:
      - name: customer
        type: primary
        expr: id
    dimensions:
      - name: region
        type: categorical
metrics:
  - name: eu_revenue
    type: simple
    label: EU revenue
    type_params:
      measure: order_total
    filter: "{{ Dimension('customer__region') }} = 'EU'"
  - name: order_total
    type: simple
    type_params:
      measure: order_total
  - name: order_count
    type: simple
    type_params:
      measure: order_count
  - name: refund_rate
    type: ratio
    type_params:
      numerator: refunded_orders_metric
      denominator: order_count
  - name: refunded_orders_metric
    type: simple
    type_params:
      measure: refunded_orders
  - name: average_order_value
    type: derived
    type_params:
      expr: revenue / orders
      metrics:
        - name: order_total
          alias: revenue
        - name: order_count
          alias: orders
  - name: weekly_revenue
    type: cumulative
    type_params:
      measure: order_total
      window: 7 days
"#;

    fn import() -> DbtImport {
        let relations = Relations::from([("stg_customers".to_string(), "customers".to_string())]);
        let file: YamlFile = serde_yaml_ng::from_str(MODELS).unwrap_or_default();
        let _: ProjectFile = serde_yaml_ng::from_str(PROJECT).unwrap_or(ProjectFile {
            name: String::new(),
            model_paths: None,
        });
        convert(
            &[(PathBuf::from("models/shop.yml"), MODELS.to_string(), file)],
            &relations,
        )
    }

    fn metric<'a>(model: &'a SemanticModel, name: &str) -> &'a Metric {
        match model.metric(name) {
            Some(metric) => metric,
            None => panic!("no metric '{name}' in {:?}", model.metrics),
        }
    }

    #[test]
    fn semantic_models_become_tables_joins_and_dimensions() {
        let model = import().model;
        let orders = model.table("orders");
        assert_eq!(
            orders.map(|t| (t.columns.clone(), t.time_column.clone())),
            Some((
                vec![
                    "order_id".into(),
                    "customer_id".into(),
                    "ordered_at".into(),
                    "status".into(),
                    "amount".into(),
                    "is_refunded".into()
                ],
                Some("ordered_at".into())
            ))
        );
        assert!(
            model.table("customers").is_some(),
            "ref('stg_customers') resolves through the manifest"
        );
        assert_eq!(model.joins.len(), 1);
        assert_eq!(
            model.joins.first().map(|j| (j.from.to_string(), j.to.to_string())),
            Some(("orders.customer_id".into(), "customers.id".into()))
        );
        let status = model.dimension("status");
        assert_eq!(
            status.map(|d| d.synonyms.clone()),
            Some(vec!["order status".to_string()])
        );
        assert!(model.dimension("region").is_some());
        assert!(model.validate().is_ok(), "{:?}", model.validate());
    }

    #[test]
    fn simple_metrics_carry_their_measure_label_and_filter() {
        let model = import().model;
        let eu = metric(&model, "eu revenue");
        assert_eq!(eu.expression, "SUM(orders.amount)");
        assert_eq!(eu.filter.as_deref(), Some("(customers.region = 'EU')"));
        assert_eq!(metric(&model, "order count").expression, "COUNT(1)");
        assert_eq!(
            metric(&model, "refunded orders metric").expression,
            "SUM(CASE WHEN orders.is_refunded THEN 1 ELSE 0 END)"
        );
    }

    #[test]
    fn ratio_and_derived_metrics_aggregate_each_side_and_divide_safely() {
        let model = import().model;
        assert_eq!(
            metric(&model, "refund rate").expression,
            "SUM(CASE WHEN orders.is_refunded THEN 1 ELSE 0 END) * 1.0 / NULLIF(COUNT(1), 0)"
        );
        assert_eq!(
            metric(&model, "average order value").expression,
            "(SUM(orders.amount) * 1.0) / NULLIF((COUNT(1) * 1.0), 0)"
        );
    }

    #[test]
    fn unsupported_constructs_are_reported_with_their_line() {
        let problems = import().problems;
        let cumulative = problems.iter().find(|p| p.message.contains("weekly_revenue"));
        let line = MODELS
            .lines()
            .position(|l| l.contains("name: weekly_revenue"))
            .map(|i| i + 1);
        assert_eq!(cumulative.map(|p| p.line), Some(line), "{problems:?}");
        assert!(cumulative.is_some_and(|p| p.message.contains("cumulative")));
    }

    #[test]
    fn the_toml_wins_over_dbt_per_name() {
        let dbt = import().model;
        let toml = SemanticModel::from_toml_str(
            r#"
[[tables]]
name = "orders"
columns = ["order_id", "amount"]

[[metrics]]
name = "order total"
synonyms = ["revenue"]
table = "orders"
expression = "SUM(orders.amount) * 2"
format = "money"
"#,
        )
        .unwrap_or_default();
        let merged = merge(toml, dbt);
        assert_eq!(metric(&merged, "order total").expression, "SUM(orders.amount) * 2");
        assert_eq!(merged.metrics.iter().filter(|m| m.name == "order total").count(), 1);
        assert!(merged
            .table("orders")
            .is_some_and(|t| t.columns.contains(&"status".to_string())));
        assert!(merged.validate().is_ok(), "{:?}", merged.validate());
    }

    #[test]
    fn expressions_are_qualified_with_their_table() {
        let mut columns = Vec::new();
        assert_eq!(
            qualify(
                "case when status = 'done' then amount else 0 end",
                "orders",
                &mut columns
            )
            .as_deref(),
            Some("case when orders.status = 'done' then orders.amount else 0 end")
        );
        assert_eq!(columns, vec!["status".to_string(), "amount".to_string()]);
    }
}
