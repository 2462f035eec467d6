//! `threadql model --check`: the configured model (threadql.toml and/or a dbt project) checked
//! against the warehouse, each problem named with the file and line it is written at, so a
//! config is fixed before a question in Slack finds the mistake.
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::{StructuredQuery, TableSchema};
use crate::interpret::load::{configured_sources, ConfiguredModel};
use crate::interpret::SemanticModel;
use crate::sql::SqlGuard;
use crate::warehouse::Warehouse;

/// One thing wrong with the model, and where it is written when that could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelProblem {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ModelProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: {}", file.display(), self.message),
            (Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// Checks the configured model, prints each problem, and says whether there were none.
pub async fn run(config: &Config) -> anyhow::Result<bool> {
    let warehouse = crate::startup::connect_warehouse(config).await?;
    let problems = check(config, warehouse.as_ref()).await?;
    if problems.is_empty() {
        println!("The model has no problems.");
    } else {
        for problem in &problems {
            println!("{problem}");
        }
        println!("{} problem(s) found.", problems.len());
    }
    Ok(problems.is_empty())
}

/// Every problem of the configured model: dbt constructs left out, tables and columns the
/// warehouse lacks, joins reachable by two paths, metrics whose SQL fails.
pub async fn check(config: &Config, warehouse: &dyn Warehouse) -> anyhow::Result<Vec<ModelProblem>> {
    let configured = configured_sources(config)?;
    let sources = Sources::read(&configured);
    let mut problems: Vec<ModelProblem> = configured
        .dbt_problems
        .iter()
        .map(|problem| ModelProblem {
            file: Some(problem.file.clone()),
            line: problem.line,
            message: problem.message.clone(),
        })
        .collect();
    let schema = warehouse
        .schema()
        .await
        .map_err(anyhow::Error::from)
        .map_err(|error| error.context("Failed to read the warehouse schema (WAREHOUSE_URL)"))?;
    let schema_problems = unknown_names(&configured.model, &schema);
    let missing_tables: Vec<String> = schema_problems
        .iter()
        .filter(|(_, column, _)| column.is_none())
        .map(|(table, _, _)| table.clone())
        .collect();
    for (table, column, message) in schema_problems {
        let (file, line) = sources.locate(&table, column.as_deref());
        problems.push(ModelProblem { file, line, message });
    }
    for (from, to, count) in ambiguous_joins(&configured.model) {
        let (file, line) = sources.locate(&from, None);
        problems.push(ModelProblem {
            file,
            line,
            message: format!("'{from}' reaches '{to}' through {count} join paths; keep one"),
        });
    }
    let guard = SqlGuard::new(warehouse.dialect(), None);
    for metric in &configured.model.metrics {
        // A metric over a table that is not there fails for that reason, already reported.
        if missing_tables.contains(&metric.table) {
            continue;
        }
        if let Some(message) = run_metric(&configured.model, &metric.name, warehouse, &guard, config).await {
            let (file, line) = sources.locate_name(&metric.name);
            problems.push(ModelProblem {
                file,
                line,
                message: format!("metric '{}': {message}", metric.name),
            });
        }
    }
    Ok(problems)
}

/// The metric's compiled query, one row of it, through the guard: the error when it fails.
async fn run_metric(
    model: &SemanticModel,
    name: &str,
    warehouse: &dyn Warehouse,
    guard: &SqlGuard,
    config: &Config,
) -> Option<String> {
    let query = StructuredQuery {
        metrics: vec![name.to_string()],
        ..StructuredQuery::default()
    };
    let sql = match crate::interpret::compile(&query, model, warehouse.dialect()) {
        Ok(sql) => sql,
        Err(error) => return Some(format!("does not compile: {error}")),
    };
    let guarded = match guard.check(&sql, 1) {
        Ok(guarded) => guarded,
        Err(error) => return Some(format!("the SQL guard refuses its SQL ({error}): {sql}")),
    };
    match warehouse
        .execute(&guarded, config.query_timeout, &CancellationToken::new())
        .await
    {
        Ok(_) => None,
        Err(error) => Some(format!("its SQL fails ({error}): {sql}")),
    }
}

/// (table, column, message) for each described table or column the warehouse does not have.
fn unknown_names(model: &SemanticModel, schema: &[TableSchema]) -> Vec<(String, Option<String>, String)> {
    let mut problems = Vec::new();
    for table in &model.tables {
        let Some(found) = schema.iter().find(|t| t.name.eq_ignore_ascii_case(&table.name)) else {
            problems.push((
                table.name.clone(),
                None,
                format!("table '{}' is not in the warehouse", table.name),
            ));
            continue;
        };
        for column in &table.columns {
            if !found.columns.iter().any(|c| c.name.eq_ignore_ascii_case(column)) {
                problems.push((
                    table.name.clone(),
                    Some(column.clone()),
                    format!("column '{column}' is not in warehouse table '{}'", table.name),
                ));
            }
        }
    }
    problems
}

/// (from, to, paths) for each pair of tables joined by more than one path: the compiler takes
/// the shortest, which may not be the one meant.
fn ambiguous_joins(model: &SemanticModel) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    for table in &model.tables {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        count_paths(model, &table.name, &mut vec![table.name.clone()], &mut counts);
        for (to, count) in counts {
            if count > 1 {
                found.push((table.name.clone(), to, count));
            }
        }
    }
    found
}

fn count_paths(model: &SemanticModel, from: &str, visited: &mut Vec<String>, counts: &mut BTreeMap<String, usize>) {
    for join in model.joins.iter().filter(|join| join.from.table == from) {
        if visited.contains(&join.to.table) {
            continue;
        }
        *counts.entry(join.to.table.clone()).or_default() += 1;
        visited.push(join.to.table.clone());
        count_paths(model, &join.to.table, visited, counts);
        visited.pop();
    }
}

/// The texts the model was read from, to find where a name is written. Names are found by
/// searching the text (threadql.toml's quoted values, the dbt YAML's `name:` keys): the model
/// is built from several files and this keeps the parsers unchanged.
struct Sources {
    files: Vec<(PathBuf, String, Kind)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Toml,
    Yaml,
}

impl Sources {
    fn read(configured: &ConfiguredModel) -> Self {
        let mut files = Vec::new();
        if let Some((path, text)) = &configured.toml {
            files.push((path.clone(), text.clone(), Kind::Toml));
        }
        for path in &configured.dbt_files {
            // A file that cannot be read again only costs its problems their line numbers.
            if let Ok(text) = std::fs::read_to_string(path) {
                files.push((path.clone(), text, Kind::Yaml));
            }
        }
        Self { files }
    }

    /// Where a table (or a column of it) is written: the first file naming the table, then the
    /// column's first mention after it.
    fn locate(&self, table: &str, column: Option<&str>) -> (Option<PathBuf>, Option<usize>) {
        for (path, text, kind) in &self.files {
            let table_needles = match kind {
                Kind::Toml => vec![format!("\"{table}\""), format!("\"{table}.")],
                Kind::Yaml => vec![
                    format!("ref('{table}')"),
                    format!("ref(\"{table}\")"),
                    format!("name: {table}"),
                ],
            };
            let Some(table_line) = find_line(text, 0, |line| table_needles.iter().any(|n| line.contains(n))) else {
                continue;
            };
            let Some(column) = column else {
                return (Some(path.clone()), Some(table_line));
            };
            let column_line = find_line(text, table_line - 1, |line| has_word(line, column));
            return (Some(path.clone()), column_line.or(Some(table_line)));
        }
        (None, None)
    }

    /// Where a metric or dimension named `name` ("order total", or `order_total` in dbt) is
    /// written.
    fn locate_name(&self, name: &str) -> (Option<PathBuf>, Option<usize>) {
        let snake = name.replace(' ', "_");
        for (path, text, kind) in &self.files {
            let line = match kind {
                Kind::Toml => find_line(text, 0, |line| {
                    line.trim().starts_with("name") && line.contains(&format!("\"{name}\""))
                }),
                Kind::Yaml => find_line(text, 0, |line| {
                    let value = line.trim().trim_start_matches("- ").trim();
                    value
                        .strip_prefix("name:")
                        .is_some_and(|value| value.trim().trim_matches(|c| c == '"' || c == '\'') == snake)
                }),
            };
            if line.is_some() {
                return (Some(path.clone()), line);
            }
        }
        (None, None)
    }
}

/// The 1-based number of the first line from index `skip` on that `matches`.
fn find_line(text: &str, skip: usize, matches: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(skip)
        .find(|(_, line)| matches(line))
        .map(|(index, _)| index + 1)
}

fn has_word(line: &str, word: &str) -> bool {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|part| part == word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_paths_between_tables_are_ambiguous() {
        let model = SemanticModel::from_toml_str(
            r#"
[[tables]]
name = "a"
columns = ["b_id", "c_id"]
[[tables]]
name = "b"
columns = ["id", "c_id"]
[[tables]]
name = "c"
columns = ["id"]
[[joins]]
from = "a.b_id"
to = "b.id"
[[joins]]
from = "b.c_id"
to = "c.id"
[[joins]]
from = "a.c_id"
to = "c.id"
"#,
        )
        .unwrap_or_default();
        assert_eq!(ambiguous_joins(&model), vec![("a".to_string(), "c".to_string(), 2)]);
    }

    #[test]
    fn a_column_is_found_after_its_table() {
        let text =
            "[[tables]]\nname = \"x\"\ncolumns = [\"total\"]\n[[tables]]\nname = \"orders\"\ncolumns = [\"total\"]\n";
        let sources = Sources {
            files: vec![(PathBuf::from("threadql.toml"), text.to_string(), Kind::Toml)],
        };
        assert_eq!(sources.locate("orders", Some("total")).1, Some(6));
    }
}
