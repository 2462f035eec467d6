//! The semantic model in use: threadql.toml (or the demo model over the demo data set),
//! completed from the described warehouse for the tables it does not describe, with joins
//! inferred from names checked against a sample of the data before they are trusted.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::dbt::{self, DbtProblem};
use super::derive::{Containment, JoinCandidate};
use super::model::{SemanticModel, DISTINCT_VALUES_LIMIT};
use super::Interpreter;
use crate::config::{Config, WarehouseSource};
use crate::domain::{TableSchema, Value};
use crate::sql::dialect::quote_ident;
use crate::sql::SqlGuard;
use crate::warehouse::{DescribeSettings, Warehouse};

/// Values of a key read to check that its target holds them: enough to catch a wrong guess
/// (keys that merely share a name rarely agree on a thousand values), cheap on any table.
const CONTAINMENT_SAMPLE: usize = 1000;
const CONTAINMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one dimension's distinct values may take to read: a slow view must not hold the
/// server back (its values are then simply not matched in filters).
const VALUES_TIMEOUT: Duration = Duration::from_secs(5);

/// What the interpreters need from the warehouse, read once per load: the model, the schema it
/// was completed from (the guard's relations) and each dimension's distinct values.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub model: SemanticModel,
    pub schema: Vec<TableSchema>,
    /// Each dimension's distinct values, for matching words like "EMEA" against them.
    pub values: Vec<(String, Vec<String>)>,
}

impl LoadedModel {
    /// The relations queries may read: every table and view of the schema, lower-cased.
    pub fn relations(&self) -> std::collections::HashSet<String> {
        self.schema.iter().map(|table| table.name.to_lowercase()).collect()
    }
}

/// Rebuilds the model from the warehouse in the background and hands it to the interpreter and
/// the guard: a table created after start is answered within one period.
pub struct ModelRefresh {
    config: Config,
    warehouse: Arc<dyn Warehouse>,
    interpreter: Arc<dyn Interpreter>,
    guard: SqlGuard,
    access: Option<Arc<crate::access::AccessControl>>,
}

impl ModelRefresh {
    pub fn new(
        config: Config,
        warehouse: Arc<dyn Warehouse>,
        interpreter: Arc<dyn Interpreter>,
        guard: SqlGuard,
    ) -> Self {
        Self {
            config,
            warehouse,
            interpreter,
            guard,
            access: None,
        }
    }

    /// Also hands each load's columns to the access control (to resolve `*` against roles).
    pub fn with_access(mut self, access: Arc<crate::access::AccessControl>) -> Self {
        self.access = Some(access);
        self
    }

    /// Loads the model once and hands it over; on failure the previous model stays.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let loaded = load_model(&self.config, self.warehouse.as_ref(), self.config.query_timeout).await?;
        self.guard.set_allowed_relations(loaded.relations());
        if let Some(access) = &self.access {
            access.set_schema(&loaded.schema);
        }
        self.interpreter.reload(&loaded);
        tracing::info!(
            tables = loaded.model.tables.len(),
            metrics = loaded.model.metrics.len(),
            dimensions = loaded.model.dimensions.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Reloaded the semantic model from the warehouse"
        );
        Ok(())
    }

    /// Refreshes every `config.model_refresh` until `stop` is cancelled.
    pub fn spawn(self, stop: CancellationToken) {
        let every = self.config.model_refresh;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                if let Err(error) = self.refresh().await {
                    tracing::warn!(?error, "Failed to reload the semantic model; keeping the previous one");
                }
            }
        });
    }
}

/// The model threadql answers with: the configured one completed from the warehouse, with a
/// count of every table others join to (so both interpreters can count customers), and the
/// dimensions' values. `query_timeout` caps each read of values.
pub async fn load_model(
    config: &Config,
    warehouse: &dyn Warehouse,
    query_timeout: Duration,
) -> anyhow::Result<LoadedModel> {
    let mut model = configured_model(config)?;
    let schema = describe_or_list(warehouse).await?;
    let candidates = model.inferred_join_candidates(&schema);
    let verdicts = check_containment(warehouse, &candidates).await;
    model.extend_from_schema_checked(&schema, |candidate| {
        verdicts.get(candidate).copied().unwrap_or(Containment::Unchecked)
    });
    let model = model.with_entity_counts();
    let values = load_dimension_values(&model, &schema, warehouse, query_timeout).await;
    Ok(LoadedModel { model, schema, values })
}

/// Each dimension's distinct values: those the description already holds (every value of a
/// low-cardinality column), else read through the guard. A dimension whose values cannot be
/// read still works in `by` clauses; it only cannot be filtered by value.
async fn load_dimension_values(
    model: &SemanticModel,
    schema: &[TableSchema],
    warehouse: &dyn Warehouse,
    query_timeout: Duration,
) -> Vec<(String, Vec<String>)> {
    let guard = SqlGuard::new(warehouse.dialect(), None);
    let mut values = Vec::new();
    for dimension in &model.dimensions {
        let described = schema
            .iter()
            .find(|table| table.name == dimension.table)
            .and_then(|table| table.column(&dimension.column))
            .filter(|column| !column.values.is_empty());
        if let Some(column) = described {
            values.push((dimension.name.clone(), column.values.clone()));
            continue;
        }
        let Some(sql) = model.distinct_values_sql(&dimension.name, warehouse.dialect()) else {
            continue;
        };
        let outcome = match guard.check(&sql, DISTINCT_VALUES_LIMIT as u64) {
            Ok(guarded) => warehouse
                .execute(&guarded, VALUES_TIMEOUT.min(query_timeout), &CancellationToken::new())
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(result) => {
                let list = result
                    .rows
                    .into_iter()
                    .filter_map(|row| match row.into_iter().next() {
                        Some(Value::Text(text)) => Some(text),
                        Some(Value::Int(n)) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect();
                values.push((dimension.name.clone(), list));
            }
            Err(error) => tracing::warn!(dimension = dimension.name, %error, "Failed to read a dimension's values"),
        }
    }
    values
}

/// THREADQL_CONFIG (or ./threadql.toml) completed with the dbt project's semantic models
/// (THREADQL_DBT_PROJECT or `[dbt] project`); else the demo model over the demo data set; else
/// an empty model, which the warehouse's schema then fills.
pub fn configured_model(config: &Config) -> anyhow::Result<SemanticModel> {
    let configured = configured_sources(config)?;
    for problem in &configured.dbt_problems {
        tracing::warn!(%problem, "Left a dbt construct out of the model (see threadql model --check)");
    }
    Ok(configured.model)
}

/// The configured model and what of the dbt project could not be read into it.
#[derive(Debug, Clone)]
pub struct ConfiguredModel {
    pub model: SemanticModel,
    /// The threadql.toml text the model was read from, for pointing at lines.
    pub toml: Option<(std::path::PathBuf, String)>,
    pub dbt_problems: Vec<DbtProblem>,
    /// The dbt YAML files read, in order.
    pub dbt_files: Vec<std::path::PathBuf>,
}

/// [`configured_model`] with the sources kept, for `threadql model --check`.
pub fn configured_sources(config: &Config) -> anyhow::Result<ConfiguredModel> {
    let (toml_model, toml) = match &config.model_path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read THREADQL_CONFIG file {}", path.display()))?;
            let model = SemanticModel::from_toml_str(&text)
                .with_context(|| format!("THREADQL_CONFIG file {} is not valid", path.display()))?;
            (Some(model), Some((path.clone(), text)))
        }
        None => (None, None),
    };
    let dbt_project = config.dbt_project.clone().or_else(|| {
        let settings = toml_model.as_ref()?.dbt.as_ref()?;
        // Relative to threadql.toml, so the file means the same from any working directory.
        let base = config.model_path.as_ref()?.parent()?;
        Some(base.join(&settings.project))
    });
    let base = match toml_model {
        Some(model) => model,
        None if dbt_project.is_none() && matches!(config.warehouse, WarehouseSource::Demo(_)) => {
            SemanticModel::demo().context("The built-in demo model is invalid")?
        }
        None => SemanticModel::default(),
    };
    let Some(project) = dbt_project else {
        return Ok(ConfiguredModel {
            model: base,
            toml,
            dbt_problems: Vec::new(),
            dbt_files: Vec::new(),
        });
    };
    let import =
        dbt::load_project(&project).with_context(|| format!("Failed to read the dbt project {}", project.display()))?;
    let model = dbt::merge(base, import.model);
    model
        .validate()
        .with_context(|| format!("The model from the dbt project {} is not valid", project.display()))?;
    Ok(ConfiguredModel {
        model,
        toml,
        dbt_problems: import.problems,
        dbt_files: import.files,
    })
}

/// Keys, comments and sampled values make a far better model, but a warehouse that cannot
/// describe itself still gets one from its bare tables and columns.
async fn describe_or_list(warehouse: &dyn Warehouse) -> anyhow::Result<Vec<TableSchema>> {
    match warehouse.describe(&DescribeSettings::default()).await {
        Ok(schema) => Ok(schema),
        Err(error) => {
            tracing::warn!(%error, "Failed to describe the warehouse; deriving the model from its bare schema");
            warehouse
                .schema()
                .await
                .context("Failed to read the warehouse schema (WAREHOUSE_URL)")
        }
    }
}

/// Asks the warehouse, for each candidate, whether a sample of its key's values is found in
/// the target column. A check that cannot run leaves the candidate unchecked.
pub async fn check_containment(
    warehouse: &dyn Warehouse,
    candidates: &[JoinCandidate],
) -> HashMap<JoinCandidate, Containment> {
    let guard = SqlGuard::new(warehouse.dialect(), None);
    let mut verdicts = HashMap::new();
    for candidate in candidates {
        let verdict = containment_of(warehouse, &guard, candidate).await;
        tracing::debug!(?candidate, ?verdict, "Checked an inferred join");
        verdicts.insert(candidate.clone(), verdict);
    }
    verdicts
}

async fn containment_of(warehouse: &dyn Warehouse, guard: &SqlGuard, candidate: &JoinCandidate) -> Containment {
    let sql = containment_sql(candidate, guard.dialect());
    let guarded = match guard.check(&sql, 1) {
        Ok(guarded) => guarded,
        Err(error) => {
            tracing::debug!(%error, sql, "Not checking an inferred join");
            return Containment::Unchecked;
        }
    };
    let result = warehouse
        .execute(&guarded, CONTAINMENT_TIMEOUT, &CancellationToken::new())
        .await;
    let missing = match result {
        Ok(result) => result.rows.into_iter().next().and_then(|row| row.into_iter().next()),
        Err(error) => {
            tracing::debug!(%error, "Failed to check an inferred join");
            return Containment::Unchecked;
        }
    };
    match missing {
        Some(Value::Int(0)) => Containment::Contained,
        Some(Value::Int(_)) => Containment::NotContained,
        Some(Value::Decimal(count)) if count.is_zero() => Containment::Contained,
        Some(Value::Decimal(_)) => Containment::NotContained,
        _ => Containment::Unchecked,
    }
}

/// How many of a sample of the key's values the target column lacks.
fn containment_sql(candidate: &JoinCandidate, dialect: crate::sql::Dialect) -> String {
    let from_table = quote_ident(&candidate.from_table, dialect);
    let from_column = quote_ident(&candidate.from_column, dialect);
    let to_table = quote_ident(&candidate.to_table, dialect);
    let to_column = quote_ident(&candidate.to_column, dialect);
    format!(
        "SELECT COUNT(*) AS missing FROM \
         (SELECT {from_column} AS v FROM {from_table} WHERE {from_column} IS NOT NULL LIMIT {CONTAINMENT_SAMPLE}) s \
         WHERE NOT EXISTS (SELECT 1 FROM {to_table} t WHERE t.{to_column} = s.v)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interpret::derive::JoinEvidence;
    use crate::sql::Dialect;

    #[test]
    fn the_containment_check_counts_sampled_keys_missing_from_the_target() {
        let candidate = JoinCandidate {
            from_table: "JournalEntry".into(),
            from_column: "AccountId".into(),
            to_table: "Account".into(),
            to_column: "AccountId".into(),
            evidence: JoinEvidence::Named,
        };
        let sql = containment_sql(&candidate, Dialect::Postgres);
        assert_eq!(
            sql,
            "SELECT COUNT(*) AS missing FROM (SELECT \"AccountId\" AS v FROM \"JournalEntry\" \
             WHERE \"AccountId\" IS NOT NULL LIMIT 1000) s WHERE NOT EXISTS \
             (SELECT 1 FROM \"Account\" t WHERE t.\"AccountId\" = s.v)"
        );
        assert!(SqlGuard::new(Dialect::Postgres, None).check(&sql, 1).is_ok());
        assert!(SqlGuard::new(Dialect::Sqlite, None)
            .check(&containment_sql(&candidate, Dialect::Sqlite), 1)
            .is_ok());
    }

    #[test]
    fn a_dbt_project_named_in_threadql_toml_completes_it_and_the_toml_wins() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt/jaffle");
        let path = dir.path().join("threadql.toml");
        let toml = format!(
            "[dbt]\nproject = {:?}\n\n[[tables]]\nname = \"orders\"\ncolumns = [\"amount\"]\n\n\
             [[metrics]]\nname = \"order total\"\ntable = \"orders\"\nexpression = \"SUM(orders.amount) * 2\"\n\
             format = \"money\"\n",
            project.display().to_string()
        );
        std::fs::write(&path, toml).unwrap_or_else(|error| panic!("{error}"));
        let config =
            Config::from_lookup(|name| (name == crate::config::THREADQL_CONFIG).then(|| path.display().to_string()))
                .unwrap_or_else(|error| panic!("{error}"));
        let configured = configured_sources(&config).unwrap_or_else(|error| panic!("{error:#}"));
        let total = configured.model.metric("order total").map(|m| m.expression.clone());
        assert_eq!(total.as_deref(), Some("SUM(orders.amount) * 2"));
        assert!(configured.model.metric("refund rate").is_some());
        assert!(configured.model.joins.iter().any(|j| j.to.table == "customers"));
        assert_eq!(configured.dbt_problems.len(), 1, "{:?}", configured.dbt_problems);
    }
}
