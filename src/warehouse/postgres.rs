//! PostgreSQL warehouse. Each statement runs in its own `BEGIN READ ONLY` transaction with a
//! local `statement_timeout`; cancelling calls `pg_cancel_backend` for the backend running it,
//! so the work stops in the server, not only in this process.
use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Column as _, Connection, Executor, Row, Statement, TypeInfo};
use tokio_util::sync::CancellationToken;

use super::describe::{self, is_presentable_value, worth_sampling, DescribeSettings};
use super::{Estimate, Warehouse, WarehouseError};
use crate::domain::{ColumnFormat, ColumnKind, ColumnSchema, ForeignKey, QueryResult, TableSchema, Value};
use crate::sql::dialect::quote_ident;
use crate::sql::{Dialect, GuardedSql};

const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Connections reserved for `pg_cancel_backend`, so a cancel never waits behind the very
/// queries it is meant to stop when the main pool is exhausted.
const CONTROL_CONNECTIONS: u32 = 2;
/// Extra time the server-side statement timeout gets before the client gives up on it too.
const CLIENT_TIMEOUT_GRACE: Duration = Duration::from_secs(2);
/// How long a cancelled statement may take to end before the connection is abandoned.
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// How often a cancel is repeated while the statement has not ended (see `cancel_until_stopped`).
const CANCEL_RETRY: Duration = Duration::from_millis(100);
/// SQLSTATE `query_canceled`: raised both by `statement_timeout` and by `pg_cancel_backend`.
const QUERY_CANCELED: &str = "57014";

/// Postgres types decoded natively; every other type is cast to text by the server.
const NATIVE_TYPES: [&str; 14] = [
    "INT2",
    "INT4",
    "INT8",
    "FLOAT4",
    "FLOAT8",
    "NUMERIC",
    "TEXT",
    "VARCHAR",
    "CHAR",
    "NAME",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "BOOL",
];

/// A PostgreSQL database read through read-only transactions.
#[derive(Debug, Clone)]
pub struct PostgresWarehouse {
    pool: PgPool,
    control: PgPool,
}

/// Who asked the running statement to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancel,
    Timeout,
}

impl PostgresWarehouse {
    /// Connects to `url` (`postgres://…`) and checks the server is reachable.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with_max_connections(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Like [`PostgresWarehouse::connect`] with a pool of at most `max_connections`.
    pub async fn connect_with_max_connections(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("Failed to parse the Postgres warehouse URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options.clone())
            .await
            .context("Failed to connect to the Postgres warehouse")?;
        let control = PgPoolOptions::new()
            .max_connections(CONTROL_CONNECTIONS)
            .connect_lazy_with(options);
        Ok(Self { pool, control })
    }

    /// Runs `sql` with the guarantees of [`Warehouse::execute`]. Takes any text so unit tests
    /// can show that the transaction refuses writes even without the guard.
    async fn run(
        &self,
        sql: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, WarehouseError> {
        let statement = PendingStatement {
            pool: self.pool.clone(),
            control: self.control.clone(),
            sql: sql.to_string(),
            timeout,
        };
        super::run_on_own_task(cancel, |stop| statement.run(stop)).await
    }
}

/// One statement and what it needs to run on a task of its own.
struct PendingStatement {
    pool: PgPool,
    control: PgPool,
    sql: String,
    timeout: Duration,
}

impl PendingStatement {
    async fn run(self, stop: CancellationToken) -> Result<QueryResult, WarehouseError> {
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        let mut conn = tokio::select! {
            biased;
            _ = stop.cancelled() => return Err(WarehouseError::Cancelled),
            acquired = tokio::time::timeout_at(deadline.into(), self.pool.acquire()) => match acquired {
                Err(_) => return Err(WarehouseError::Timeout(timeout)),
                Ok(Err(error)) => return Err(map_error(error)),
                Ok(Ok(conn)) => conn,
            },
        };

        // Dropping a `Transaction` rolls it back before the connection is used again, so an
        // abandoned future never leaves the connection inside this transaction.
        let mut tx = conn.begin_with("BEGIN READ ONLY").await.map_err(map_error)?;
        let timeout_ms = timeout.as_millis().clamp(1, i64::MAX as u128).to_string();
        // The pid names the backend to cancel; the transaction start tells this statement apart
        // from whatever the backend runs later for someone else.
        let (_, pid, started): (String, i32, DateTime<Utc>) =
            sqlx::query_as("SELECT set_config('statement_timeout', $1, true), pg_backend_pid(), now()")
                .bind(&timeout_ms)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_error)?;
        let backend = Backend {
            pid,
            transaction_started: started,
        };

        let (outcome, stop_reason) = {
            let work = fetch(&mut tx, &self.sql);
            tokio::pin!(work);
            tokio::select! {
                biased;
                result = &mut work => (Some(result), None),
                _ = stop.cancelled() => {
                    (cancel_until_stopped(&self.control, backend, &mut work).await, Some(StopReason::Cancel))
                }
                // The server's statement_timeout normally fires first; this covers a server or
                // network that stopped answering.
                _ = tokio::time::sleep_until((deadline + CLIENT_TIMEOUT_GRACE).into()) => {
                    (cancel_until_stopped(&self.control, backend, &mut work).await, Some(StopReason::Timeout))
                }
            }
        };

        if outcome.is_some() {
            // Read-only, so there is nothing to commit; an aborted transaction needs this too.
            if let Err(error) = tx.rollback().await {
                tracing::warn!(%error, "failed to roll back the warehouse transaction");
            }
        } else {
            tracing::warn!(
                pid,
                "the cancelled statement did not stop in time; closing its connection"
            );
            drop(tx);
            conn.close_on_drop();
        }

        match (stop_reason, outcome) {
            (Some(StopReason::Cancel), _) => Err(WarehouseError::Cancelled),
            (Some(StopReason::Timeout), Some(Err(_)) | None) => Err(WarehouseError::Timeout(timeout)),
            (None, None) => Err(WarehouseError::Timeout(timeout)),
            (_, Some(Err(error))) => {
                // Only the server's statement_timeout raises query_canceled without our asking.
                match &error {
                    sqlx::Error::Database(db) if db.code().as_deref() == Some(QUERY_CANCELED) => {
                        Err(WarehouseError::Timeout(timeout))
                    }
                    _ => Err(map_error(error)),
                }
            }
            (_, Some(Ok(result))) => Ok(result),
        }
    }
}

/// The server process running one of our transactions.
#[derive(Debug, Clone, Copy)]
struct Backend {
    pid: i32,
    transaction_started: DateTime<Utc>,
}

/// Asks the server to cancel the statement `backend` is running, but only while that backend is
/// still inside our transaction: once the connection has gone back to the pool the backend may
/// be running someone else's statement.
async fn cancel_backend(control: &PgPool, backend: Backend) {
    let cancelled: Result<Option<bool>, sqlx::Error> =
        sqlx::query_scalar("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND xact_start = $2")
            .bind(backend.pid)
            .bind(backend.transaction_started)
            .fetch_optional(control)
            .await;
    match cancelled {
        Ok(Some(true)) => tracing::debug!(pid = backend.pid, "cancelled the warehouse statement"),
        Ok(Some(false) | None) => tracing::debug!(pid = backend.pid, "the warehouse statement had already ended"),
        Err(error) => tracing::warn!(pid = backend.pid, %error, "failed to cancel the warehouse statement"),
    }
}

/// Cancels the statement `work` is running until it ends, for at most [`CANCEL_GRACE`]; `None`
/// when it did not end. One request is not always enough: a cancel that reaches the backend
/// between two protocol messages (the statement parsed and described, not yet executing) is
/// dropped by the server, and the statement then runs as if never cancelled.
async fn cancel_until_stopped<F>(control: &PgPool, backend: Backend, work: &mut F) -> Option<F::Output>
where
    F: Future + Unpin,
{
    let gave_up_at = tokio::time::Instant::now() + CANCEL_GRACE;
    loop {
        cancel_backend(control, backend).await;
        let until = (tokio::time::Instant::now() + CANCEL_RETRY).min(gave_up_at);
        match tokio::time::timeout_at(until, &mut *work).await {
            Ok(output) => return Some(output),
            Err(_) if until >= gave_up_at => return None,
            Err(_) => {}
        }
    }
}

/// Describes the statement, has the server cast every column we do not decode natively to
/// text, and converts the rows.
async fn fetch(conn: &mut sqlx::PgConnection, sql: &str) -> Result<QueryResult, sqlx::Error> {
    let statement = conn.prepare(sql).await?;
    let declared: Vec<(String, String)> = statement
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
        .collect();
    let needs_cast = declared.iter().any(|(_, ty)| !NATIVE_TYPES.contains(&ty.as_str()));
    let rows = if needs_cast {
        sqlx::query(&cast_to_text(sql, &declared)).fetch_all(&mut *conn).await?
    } else {
        sqlx::query(sql).fetch_all(&mut *conn).await?
    };
    Ok(convert_rows(&declared, &rows))
}

/// Wraps `sql` so the server casts non-native columns to text. Columns are renamed
/// positionally (`q(c1, c2, …)`), which also copes with duplicate or unnamed columns; a plain
/// projection of a subquery keeps its order.
fn cast_to_text(sql: &str, declared: &[(String, String)]) -> String {
    let aliases: Vec<String> = (1..=declared.len()).map(|i| format!("c{i}")).collect();
    let projection: Vec<String> = declared
        .iter()
        .zip(&aliases)
        .map(|((_, ty), alias)| {
            if NATIVE_TYPES.contains(&ty.as_str()) {
                format!("q.{alias}")
            } else {
                format!("q.{alias}::text AS {alias}")
            }
        })
        .collect();
    format!(
        "SELECT {} FROM ({sql}) AS q({})",
        projection.join(", "),
        aliases.join(", ")
    )
}

fn convert_rows(declared: &[(String, String)], rows: &[PgRow]) -> QueryResult {
    super::typed_result(declared, rows, convert_value, declared_format)
}

fn convert_value(row: &PgRow, index: usize, ty: &str) -> Value {
    let decoded = match ty {
        "INT2" => row
            .try_get::<Option<i16>, _>(index)
            .map(|v| v.map(|v| Value::Int(i64::from(v)))),
        "INT4" => row
            .try_get::<Option<i32>, _>(index)
            .map(|v| v.map(|v| Value::Int(i64::from(v)))),
        "INT8" => row.try_get::<Option<i64>, _>(index).map(|v| v.map(Value::Int)),
        "FLOAT4" => row
            .try_get::<Option<f32>, _>(index)
            .map(|v| v.map(|v| Value::Float(f64::from(v)))),
        "FLOAT8" => row.try_get::<Option<f64>, _>(index).map(|v| v.map(Value::Float)),
        "NUMERIC" => row.try_get::<Option<Decimal>, _>(index).map(|v| v.map(Value::Decimal)),
        "DATE" => row.try_get::<Option<NaiveDate>, _>(index).map(|v| v.map(Value::Date)),
        "TIMESTAMP" => row
            .try_get::<Option<NaiveDateTime>, _>(index)
            .map(|v| v.map(Value::Timestamp)),
        "TIMESTAMPTZ" => row
            .try_get::<Option<DateTime<Utc>>, _>(index)
            .map(|v| v.map(|v| Value::Timestamp(v.naive_utc()))),
        "BOOL" => row.try_get::<Option<bool>, _>(index).map(|v| v.map(Value::Bool)),
        // Text types, and every other type (cast to text by the server, see `cast_to_text`).
        _ => row.try_get::<Option<String>, _>(index).map(|v| v.map(Value::Text)),
    };
    match decoded {
        Ok(value) => value.unwrap_or(Value::Null),
        // NaN or out-of-range numerics, infinite dates: nothing Value can hold.
        Err(error) => {
            tracing::warn!(column = index, ty, %error, "a warehouse value could not be decoded; showing NULL");
            Value::Null
        }
    }
}

/// The format of a column from its Postgres type, used when all its values are NULL.
fn declared_format(ty: &str) -> ColumnFormat {
    match ty {
        "INT2" | "INT4" | "INT8" => ColumnFormat::Integer,
        "FLOAT4" | "FLOAT8" | "NUMERIC" => ColumnFormat::Number,
        "DATE" => ColumnFormat::Date,
        _ => ColumnFormat::Text,
    }
}

/// The broad kind of an `information_schema.columns.data_type`.
fn column_kind(data_type: &str) -> ColumnKind {
    match data_type {
        "smallint" | "integer" | "bigint" => ColumnKind::Integer,
        "numeric" | "real" | "double precision" | "money" => ColumnKind::Decimal,
        "text" | "character varying" | "character" | "name" | "\"char\"" | "citext" => ColumnKind::Text,
        "date" => ColumnKind::Date,
        "timestamp without time zone" | "timestamp with time zone" => ColumnKind::Timestamp,
        "boolean" => ColumnKind::Boolean,
        _ => ColumnKind::Other,
    }
}

fn map_error(error: sqlx::Error) -> WarehouseError {
    match error {
        sqlx::Error::Database(db) => WarehouseError::Query(db.message().to_owned()),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Configuration(_) => WarehouseError::Unavailable(error.to_string()),
        other => WarehouseError::Query(other.to_string()),
    }
}

#[async_trait]
impl Warehouse for PostgresWarehouse {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(
        &self,
        sql: &GuardedSql,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, WarehouseError> {
        self.run(&sql.commented(), timeout, cancel).await
    }

    async fn schema(&self) -> Result<Vec<TableSchema>, WarehouseError> {
        let columns: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, c.data_type::text \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') \
               AND c.table_schema NOT LIKE 'pg\\_%' \
             ORDER BY c.table_schema, c.table_name, c.ordinal_position",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(describe::group_by_table(columns.into_iter().map(
            |(schema, table, column, data_type)| {
                // Tables in `public` are reached without a schema, as users write them.
                let name = if schema == "public" {
                    table
                } else {
                    format!("{schema}.{table}")
                };
                let column = ColumnSchema {
                    kind: column_kind(&data_type),
                    name: column,
                    data_type,
                    ..Default::default()
                };
                (name, column)
            },
        )))
    }

    async fn describe(&self, settings: &DescribeSettings) -> Result<Vec<TableSchema>, WarehouseError> {
        let mut tables = self.schema().await?;
        let mut known = HashSet::new();
        if let Err(error) = read_catalog_metadata(&self.pool, &mut tables, &mut known, settings).await {
            tracing::warn!(?error, "Failed to read keys and comments from the warehouse catalog");
        }
        describe::sample_values(self, &mut tables, &known, settings).await;
        Ok(tables)
    }

    async fn ping(&self) -> Result<(), WarehouseError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        conn.ping()
            .await
            .map_err(|e| WarehouseError::Unavailable(e.to_string()))
    }

    /// The planner's estimate from `EXPLAIN (FORMAT JSON)`: the most rows any step of the plan
    /// handles, and the bytes its scans read: the whole table for a sequential scan (a
    /// `count(*)` reads every page though it returns no column), rows times row width otherwise.
    async fn estimate(&self, sql: &GuardedSql) -> Result<Estimate, WarehouseError> {
        let explain = format!("EXPLAIN (FORMAT JSON) {}", sql.as_str());
        let (plan,): (sqlx::types::Json<serde_json::Value>,) = sqlx::query_as(&explain)
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?;
        let mut cost = PlanCost::default();
        if let Some(root) = plan.0.get(0).and_then(|p| p.get("Plan")) {
            cost.add(root);
        }
        let table_bytes: i64 = if cost.sequential_scans.is_empty() {
            0
        } else {
            sqlx::query_scalar(
                "SELECT coalesce(sum(pg_relation_size(to_regclass(name))), 0)::bigint FROM unnest($1::text[]) AS name",
            )
            .bind(&cost.sequential_scans)
            .fetch_one(&self.pool)
            .await
            .map_err(map_error)?
        };
        Ok(Estimate {
            rows: Some(cost.rows),
            bytes: Some(cost.index_bytes.saturating_add(table_bytes.max(0) as u64)),
        })
    }
}

/// What a Postgres plan tree says it will handle.
#[derive(Debug, Default)]
struct PlanCost {
    rows: u64,
    /// Tables read whole, as the plan names them (resolved through the search path).
    sequential_scans: Vec<String>,
    /// Rows times width of the other scans.
    index_bytes: u64,
}

impl PlanCost {
    fn add(&mut self, node: &serde_json::Value) {
        let number = |key: &str| {
            node.get(key)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0)
                .max(0.0)
        };
        let rows = number("Plan Rows");
        self.rows = self.rows.max(rows as u64);
        if let Some(relation) = node.get("Relation Name").and_then(serde_json::Value::as_str) {
            let qualified = match node.get("Schema").and_then(serde_json::Value::as_str) {
                Some(schema) => format!(
                    "{}.{}",
                    quote_ident(schema, Dialect::Postgres),
                    quote_ident(relation, Dialect::Postgres)
                ),
                None => quote_ident(relation, Dialect::Postgres),
            };
            if node.get("Node Type").and_then(serde_json::Value::as_str) == Some("Seq Scan") {
                self.sequential_scans.push(qualified);
            } else {
                self.index_bytes = self.index_bytes.saturating_add((rows * number("Plan Width")) as u64);
            }
        }
        for child in node
            .get("Plans")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            self.add(child);
        }
    }
}

fn table_mut<'a>(tables: &'a mut [TableSchema], name: &str) -> Option<&'a mut TableSchema> {
    tables.iter_mut().find(|t| t.name == name)
}

/// Comments, keys and statistics from `pg_catalog` / `pg_stats`.
async fn read_catalog_metadata(
    pool: &PgPool,
    described: &mut [TableSchema],
    known: &mut HashSet<(String, String)>,
    settings: &DescribeSettings,
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
        if let Some(entry) = table_mut(described, &display(&schema, &table)) {
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
        if let Some(entry) = table_mut(described, &display(&schema, &table)).and_then(|t| t.column_mut(&column)) {
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
        let Some(entry) = table_mut(described, &display(&schema, &table)) else {
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
        let Some(entry) = table_mut(described, &name).and_then(|t| t.column_mut(&column)) else {
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

/// Parses a Postgres array literal (`{EMEA,"North America","a \"b\""}`) into its elements.
fn parse_pg_array(text: &str) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_array_literals_are_split_with_quotes_and_escapes() {
        assert_eq!(
            parse_pg_array(r#"{APAC,EMEA,"North America","say \"hi\"",NULL}"#),
            vec!["APAC", "EMEA", "North America", "say \"hi\""]
        );
        assert!(parse_pg_array("{}").is_empty());
    }

    /// A throwaway database on the local server, dropped by [`TestDb::drop_database`].
    struct TestDb {
        name: String,
        admin: PgPool,
    }

    const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    impl TestDb {
        async fn create() -> Self {
            let admin = PgPool::connect(ADMIN_URL).await.unwrap();
            let name = format!("threadql_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&admin)
                .await
                .unwrap();
            Self { name, admin }
        }

        fn url(&self) -> String {
            format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
        }

        async fn drop_database(self) {
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
                .execute(&self.admin)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn the_transaction_refuses_writes_even_without_the_guard() {
        let db = TestDb::create().await;
        let setup = PgPool::connect(&db.url()).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id int); CREATE SEQUENCE s")
            .execute(&setup)
            .await
            .unwrap();
        setup.close().await;
        let warehouse = PostgresWarehouse::connect(&db.url()).await.unwrap();
        let never = CancellationToken::new();

        for write in [
            "INSERT INTO t VALUES (1)",
            "WITH w AS (INSERT INTO t VALUES (2) RETURNING id) SELECT id FROM w",
            "CREATE TABLE u (id int)",
            "SELECT nextval('s')",
        ] {
            let result = warehouse.run(write, Duration::from_secs(5), &never).await;
            assert!(matches!(result, Err(WarehouseError::Query(_))), "{write}: {result:?}");
        }
        let inserted = warehouse
            .run("INSERT INTO t VALUES (3)", Duration::from_secs(5), &never)
            .await;
        assert!(
            matches!(&inserted, Err(WarehouseError::Query(m)) if m.contains("read-only transaction")),
            "{inserted:?}"
        );
        let count = warehouse
            .run("SELECT count(*) AS n FROM t", Duration::from_secs(5), &never)
            .await
            .unwrap();
        assert_eq!(count.rows, vec![vec![Value::Int(0)]]);

        warehouse.pool.close().await;
        warehouse.control.close().await;
        db.drop_database().await;
    }

    #[test]
    fn non_native_columns_are_cast_to_text_by_position() {
        let declared = vec![
            ("a".to_owned(), "INT4".to_owned()),
            ("a".to_owned(), "JSONB".to_owned()),
        ];
        assert_eq!(
            cast_to_text("SELECT 1, '{}'::jsonb", &declared),
            "SELECT q.c1, q.c2::text AS c2 FROM (SELECT 1, '{}'::jsonb) AS q(c1, c2)"
        );
    }
}
