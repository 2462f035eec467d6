//! MySQL and MariaDB warehouse. Connections are read-only for the whole session
//! (`SET SESSION TRANSACTION READ ONLY`, which also refuses DDL, whose implicit commit would
//! otherwise step out of a read-only transaction) and each statement runs in its own
//! `START TRANSACTION READ ONLY` with the server's statement timeout in the server's own unit:
//! MariaDB's `max_statement_time` in seconds, MySQL's `max_execution_time` in milliseconds.
//!
//! Cancelling sends `KILL QUERY <connection id>` from a second connection. The statement runs on
//! a task of its own that owns its connection until the statement has ended, so a kill can never
//! reach a connection that already went back to the pool and runs someone else's statement, and
//! dropping the caller's future stops the statement in the server too.
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{Column as _, Connection, Executor, Row, Statement, TypeInfo};
use tokio_util::sync::CancellationToken;

use super::describe::{self, DescribeSettings};
use super::{Estimate, Warehouse, WarehouseError};
use crate::domain::{ColumnFormat, ColumnKind, ColumnSchema, ForeignKey, QueryResult, TableSchema, Value};
use crate::sql::{Dialect, GuardedSql};

const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Connections reserved for `KILL QUERY`, so a cancel never waits behind the very statements it
/// is meant to stop when the main pool is exhausted.
const CONTROL_CONNECTIONS: u32 = 2;
/// Extra time the server-side statement timeout gets before the client stops the statement
/// itself (a server that ignores the timeout, or a statement it does not apply to).
const CLIENT_TIMEOUT_GRACE: Duration = Duration::from_secs(2);
/// How long a killed statement may take to end before its connection is abandoned.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How often `KILL QUERY` is repeated while the statement has not ended (a kill that arrives
/// between the transaction's set-up and the statement finds nothing to interrupt).
const KILL_RETRY: Duration = Duration::from_millis(100);

/// `ER_QUERY_INTERRUPTED`: the statement was stopped by `KILL QUERY`.
const QUERY_INTERRUPTED: u16 = 1317;
/// MariaDB's `ER_STATEMENT_TIMEOUT` (max_statement_time exceeded).
const MARIADB_STATEMENT_TIMEOUT: u16 = 1969;
/// MySQL's `ER_QUERY_TIMEOUT` (max_execution_time exceeded).
const MYSQL_QUERY_TIMEOUT: u16 = 3024;

/// Which server answers: they name and measure the statement timeout differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    MariaDb,
    MySql,
}

impl Server {
    /// From `SELECT VERSION()` (`10.11.19-MariaDB-0+deb12u1`, `8.4.3`).
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Server::MariaDb
        } else {
            Server::MySql
        }
    }

    /// The statement that sets this session's statement timeout: MariaDB counts seconds (with
    /// microseconds), MySQL milliseconds. Never 0, which means no timeout to both.
    pub fn statement_timeout_sql(self, timeout: Duration) -> String {
        match self {
            Server::MariaDb => {
                let micros = timeout.as_micros().clamp(1, u128::from(u32::MAX) * 1_000_000);
                format!(
                    "SET SESSION max_statement_time = {}.{:06}",
                    micros / 1_000_000,
                    micros % 1_000_000
                )
            }
            Server::MySql => {
                let millis = timeout.as_millis().clamp(1, u128::from(u32::MAX));
                format!("SET SESSION max_execution_time = {millis}")
            }
        }
    }

    /// Takes the statement timeout off again, so the catalog queries `describe` runs on the
    /// pool's connections never inherit the last statement's.
    pub fn no_statement_timeout_sql(self) -> &'static str {
        match self {
            Server::MariaDb => "SET SESSION max_statement_time = 0",
            Server::MySql => "SET SESSION max_execution_time = 0",
        }
    }
}

/// A MySQL or MariaDB database read through read-only transactions.
#[derive(Debug, Clone)]
pub struct MySqlWarehouse {
    pool: MySqlPool,
    control: MySqlPool,
    server: Server,
}

/// Who asked the running statement to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancel,
    Timeout,
}

impl MySqlWarehouse {
    /// Connects to `url` (`mysql://user:pass@host/db` or `mariadb://…`), checks the server is
    /// reachable and finds out whether it is MariaDB or MySQL. The URL must name a database:
    /// its tables are the ones described.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with_max_connections(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Like [`MySqlWarehouse::connect`] with a pool of at most `max_connections`.
    pub async fn connect_with_max_connections(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        // sqlx reads `mysql://` only; `mariadb://` is the same protocol.
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let options = MySqlConnectOptions::from_str(&url).context("Failed to parse the MySQL warehouse URL")?;
        if options.get_database().is_none_or(str::is_empty) {
            anyhow::bail!("The MySQL warehouse URL names no database (mysql://user:password@host/database)");
        }
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections.max(1))
            // Read-only for the whole session: a DDL statement commits implicitly, leaving the
            // per-statement read-only transaction, and only the session setting refuses it.
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .context("Failed to connect to the MySQL warehouse")?;
        let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
            .fetch_one(&pool)
            .await
            .context("Failed to read the MySQL warehouse's version")?;
        let server = Server::from_version(&version);
        tracing::debug!(version, ?server, "connected to the MySQL warehouse");
        let control = MySqlPoolOptions::new()
            .max_connections(CONTROL_CONNECTIONS)
            .connect_lazy_with(options);
        Ok(Self { pool, control, server })
    }

    /// MariaDB or MySQL.
    pub fn server(&self) -> Server {
        self.server
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
            server: self.server,
            sql: sql.to_string(),
            timeout,
        };
        super::run_on_own_task(cancel, |stop| statement.run(stop)).await
    }
}

/// One statement and what it needs to run on a task of its own.
struct PendingStatement {
    pool: MySqlPool,
    control: MySqlPool,
    server: Server,
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
        let connection_id = match begin(&mut conn, self.server, timeout).await {
            Ok(id) => id,
            Err(error) => {
                // Whatever failed, the connection may be inside a transaction: do not reuse it.
                conn.close_on_drop();
                return Err(map_error(error));
            }
        };

        let (outcome, stop_reason) = {
            let work = fetch(&mut conn, &self.sql);
            tokio::pin!(work);
            tokio::select! {
                biased;
                result = &mut work => (Some(result), None),
                _ = stop.cancelled() => {
                    (kill_until_stopped(&self.control, connection_id, &mut work).await, Some(StopReason::Cancel))
                }
                // The server's statement timeout normally fires first.
                _ = tokio::time::sleep_until((deadline + CLIENT_TIMEOUT_GRACE).into()) => {
                    (kill_until_stopped(&self.control, connection_id, &mut work).await, Some(StopReason::Timeout))
                }
            }
        };

        if outcome.is_some() {
            // Read-only, so there is nothing to commit.
            if let Err(error) = rollback(&mut conn, self.server).await {
                tracing::warn!(%error, "failed to roll back the warehouse transaction; closing its connection");
                conn.close_on_drop();
            }
        } else {
            tracing::warn!(
                connection_id,
                "the killed statement did not stop in time; closing its connection"
            );
            conn.close_on_drop();
        }

        match (stop_reason, outcome) {
            (Some(StopReason::Cancel), _) => Err(WarehouseError::Cancelled),
            (Some(StopReason::Timeout), Some(Err(_)) | None) | (None, None) => Err(WarehouseError::Timeout(timeout)),
            (_, Some(Err(error))) => match database_code(&error) {
                Some(MARIADB_STATEMENT_TIMEOUT | MYSQL_QUERY_TIMEOUT) => Err(WarehouseError::Timeout(timeout)),
                // Killed by someone else (an administrator): the answer is not coming.
                Some(QUERY_INTERRUPTED) => Err(WarehouseError::Cancelled),
                _ => Err(map_error(error)),
            },
            (_, Some(Ok(result))) => Ok(result),
        }
    }
}

/// Sets the statement timeout, starts the read-only transaction and returns the connection's id
/// (the thread `KILL QUERY` names).
///
/// Boxed, like the other steps on the statement's connection: `tokio::spawn` needs a `Send`
/// future, and a boxed one at a concrete lifetime spares the compiler proving that for sqlx's
/// executors at every lifetime.
fn begin(conn: &mut MySqlConnection, server: Server, timeout: Duration) -> BoxFuture<'_, Result<u64, sqlx::Error>> {
    Box::pin(async move {
        // Plain text (no arguments) goes over the text protocol: not every statement here can be
        // prepared.
        (&mut *conn)
            .execute(server.statement_timeout_sql(timeout).as_str())
            .await?;
        (&mut *conn).execute("START TRANSACTION READ ONLY").await?;
        sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS UNSIGNED)")
            .fetch_one(&mut *conn)
            .await
    })
}

/// Ends the read-only transaction (there is nothing to commit) and the statement timeout.
fn rollback(conn: &mut MySqlConnection, server: Server) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        (&mut *conn).execute("ROLLBACK").await?;
        (&mut *conn).execute(server.no_statement_timeout_sql()).await?;
        Ok(())
    })
}

/// Asks the server to stop the statement of connection `id`. Only called while the statement's
/// task still owns that connection, so the kill cannot reach another caller's statement.
async fn kill_query(control: &MySqlPool, id: u64) {
    match control.execute(format!("KILL QUERY {id}").as_str()).await {
        Ok(_) => tracing::debug!(connection_id = id, "killed the warehouse statement"),
        // ER_NO_SUCH_THREAD: the connection is gone, and its statement with it.
        Err(error) if database_code(&error) == Some(1094) => {
            tracing::debug!(connection_id = id, "the warehouse statement had already ended")
        }
        Err(error) => tracing::warn!(connection_id = id, %error, "failed to kill the warehouse statement"),
    }
}

/// Kills the statement `work` is running until it ends, for at most [`KILL_GRACE`]; `None` when
/// it did not end.
async fn kill_until_stopped<F>(control: &MySqlPool, id: u64, work: &mut F) -> Option<F::Output>
where
    F: std::future::Future + Unpin,
{
    let gave_up_at = tokio::time::Instant::now() + KILL_GRACE;
    loop {
        kill_query(control, id).await;
        let until = (tokio::time::Instant::now() + KILL_RETRY).min(gave_up_at);
        match tokio::time::timeout_at(until, &mut *work).await {
            Ok(output) => return Some(output),
            Err(_) if until >= gave_up_at => return None,
            Err(_) => {}
        }
    }
}

fn database_code(error: &sqlx::Error) -> Option<u16> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|db| db.number()),
        _ => None,
    }
}

/// Prepares the statement (which names its columns even when no row comes back), then runs it
/// and converts the rows.
fn fetch<'a>(conn: &'a mut MySqlConnection, sql: &'a str) -> BoxFuture<'a, Result<QueryResult, sqlx::Error>> {
    Box::pin(async move {
        let statement = conn.prepare(sql).await?;
        let declared: Vec<(String, String)> = statement
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
            .collect();
        let rows = sqlx::query(sql).fetch_all(&mut *conn).await?;
        Ok(convert_rows(&declared, &rows))
    })
}

fn convert_rows(declared: &[(String, String)], rows: &[MySqlRow]) -> QueryResult {
    super::typed_result(declared, rows, convert_value, declared_format)
}

fn convert_value(row: &MySqlRow, index: usize, ty: &str) -> Value {
    let decoded: Result<Option<Value>, sqlx::Error> = match ty {
        "BOOLEAN" => row.try_get::<Option<bool>, _>(index).map(|v| v.map(Value::Bool)),
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" => {
            row.try_get::<Option<i64>, _>(index).map(|v| v.map(Value::Int))
        }
        // YEAR and BIT carry no sign whatever their flags say.
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED" | "BIGINT UNSIGNED"
        | "YEAR" | "BIT" => row
            .try_get_unchecked::<Option<u64>, _>(index)
            .map(|v| v.map(|v| i64::try_from(v).map_or(Value::Decimal(Decimal::from(v)), Value::Int))),
        "FLOAT" => row
            .try_get::<Option<f32>, _>(index)
            .map(|v| v.map(|v| Value::Float(f64::from(v)))),
        "DOUBLE" => row.try_get::<Option<f64>, _>(index).map(|v| v.map(Value::Float)),
        // DECIMAL(65, 30) does not fit rust_decimal: such a value is read as a float instead.
        "DECIMAL" => row
            .try_get::<Option<Decimal>, _>(index)
            .map(|v| v.map(Value::Decimal))
            .or_else(|_| {
                row.try_get_unchecked::<Option<String>, _>(index)
                    .map(|v| v.and_then(|text| text.parse::<f64>().ok()).map(Value::Float))
            }),
        "DATE" => row.try_get::<Option<NaiveDate>, _>(index).map(|v| v.map(Value::Date)),
        "DATETIME" => row
            .try_get::<Option<NaiveDateTime>, _>(index)
            .map(|v| v.map(Value::Timestamp)),
        // The session's time zone is UTC (sqlx sets it), so a TIMESTAMP arrives in UTC.
        "TIMESTAMP" => row
            .try_get::<Option<DateTime<Utc>>, _>(index)
            .map(|v| v.map(|v| Value::Timestamp(v.naive_utc()))),
        "TIME" => row
            .try_get::<Option<NaiveTime>, _>(index)
            .map(|v| v.map(|v| Value::Text(v.to_string()))),
        // Text, and every other type as text (JSON, ENUM, SET, binary strings as UTF-8).
        _ => row
            .try_get::<Option<String>, _>(index)
            .map(|v| v.map(Value::Text))
            .or_else(|_| {
                row.try_get_unchecked::<Option<Vec<u8>>, _>(index)
                    .map(|v| v.map(|bytes| Value::Text(String::from_utf8_lossy(&bytes).into_owned())))
            }),
    };
    match decoded {
        Ok(value) => value.unwrap_or(Value::Null),
        // Zero dates ('0000-00-00'), negative TIMEs: nothing Value can hold.
        Err(error) => {
            tracing::warn!(column = index, ty, %error, "a warehouse value could not be decoded; showing NULL");
            Value::Null
        }
    }
}

/// The format of a column from its MySQL type, used when all its values are NULL.
fn declared_format(ty: &str) -> ColumnFormat {
    match ty.trim_end_matches(" UNSIGNED") {
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => ColumnFormat::Integer,
        "FLOAT" | "DOUBLE" | "DECIMAL" => ColumnFormat::Number,
        "DATE" => ColumnFormat::Date,
        _ => ColumnFormat::Text,
    }
}

/// The broad kind of an `information_schema.COLUMNS` `DATA_TYPE` (`COLUMN_TYPE` tells
/// `tinyint(1)`, MySQL's boolean, apart).
fn column_kind(data_type: &str, column_type: &str) -> ColumnKind {
    let column_type = column_type.to_ascii_lowercase();
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.starts_with("tinyint(1)") => ColumnKind::Boolean,
        "bit" if column_type == "bit(1)" => ColumnKind::Boolean,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => ColumnKind::Integer,
        "decimal" | "numeric" | "float" | "double" | "real" => ColumnKind::Decimal,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => ColumnKind::Text,
        "date" => ColumnKind::Date,
        "datetime" | "timestamp" => ColumnKind::Timestamp,
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

/// The text of column `name` of a raw row, whatever its type.
fn text_at(row: &MySqlRow, name: &str) -> Option<String> {
    let index = row.columns().iter().position(|c| c.name().eq_ignore_ascii_case(name))?;
    match row.try_get_unchecked::<Option<String>, _>(index) {
        Ok(text) => text,
        Err(_) => row
            .try_get::<Option<u64>, _>(index)
            .ok()
            .flatten()
            .map(|n| n.to_string()),
    }
}

#[async_trait]
impl Warehouse for MySqlWarehouse {
    fn dialect(&self) -> Dialect {
        Dialect::MySql
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
        // CAST: MySQL 8 returns some information_schema columns as binary strings.
        let columns: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT CAST(c.TABLE_NAME AS CHAR), CAST(c.COLUMN_NAME AS CHAR), CAST(c.DATA_TYPE AS CHAR), \
                    CAST(c.COLUMN_TYPE AS CHAR) \
             FROM information_schema.COLUMNS c \
             JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED') \
             ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(describe::group_by_table(columns.into_iter().map(
            |(table, column, data_type, column_type)| {
                let column = ColumnSchema {
                    kind: column_kind(&data_type, &column_type),
                    name: column,
                    data_type: column_type,
                    ..Default::default()
                };
                (table, column)
            },
        )))
    }

    async fn describe(&self, settings: &DescribeSettings) -> Result<Vec<TableSchema>, WarehouseError> {
        let mut tables = self.schema().await?;
        if let Err(error) = read_catalog_metadata(&self.pool, &mut tables).await {
            tracing::warn!(?error, "Failed to read keys and comments from the warehouse catalog");
        }
        // MySQL keeps no statistics of distinct values that are cheap to read: every candidate
        // column is sampled.
        describe::sample_values(self, &mut tables, &std::collections::HashSet::new(), settings).await;
        Ok(tables)
    }

    async fn ping(&self) -> Result<(), WarehouseError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        conn.ping()
            .await
            .map_err(|e| WarehouseError::Unavailable(e.to_string()))
    }

    /// The server's estimate of the rows `sql` reads, from `EXPLAIN`: for each `SELECT` of the
    /// plan, the rows read by each table access, multiplied along the join (a nested loop reads
    /// the next table once per row of the ones before). The largest select's figure is the
    /// estimate; MySQL's `EXPLAIN` says nothing of bytes.
    async fn estimate(&self, sql: &GuardedSql) -> Result<Estimate, WarehouseError> {
        // EXPLAIN returns `rows` as an unsigned integer or NULL; read it as text to accept both
        // servers' types.
        let explain = format!("EXPLAIN {}", sql.as_str());
        let rows = sqlx::raw_sql(&explain).fetch_all(&self.pool).await.map_err(map_error)?;
        let mut by_select: Vec<(String, f64)> = Vec::new();
        for row in &rows {
            let id = text_at(row, "id").unwrap_or_default();
            let read = text_at(row, "rows")
                .and_then(|rows| rows.trim().parse::<f64>().ok())
                .unwrap_or(1.0)
                .max(1.0);
            match by_select.iter_mut().find(|(select, _)| *select == id) {
                Some((_, product)) => *product *= read,
                None => by_select.push((id, read)),
            }
        }
        let largest = by_select.iter().map(|(_, rows)| *rows).fold(0.0_f64, f64::max);
        Ok(Estimate {
            rows: Some(largest.min(u64::MAX as f64) as u64),
            bytes: None,
        })
    }
}

fn table_mut<'a>(tables: &'a mut [TableSchema], name: &str) -> Option<&'a mut TableSchema> {
    tables.iter_mut().find(|t| t.name == name)
}

/// Comments and keys from `information_schema`, for the URL's database only.
async fn read_catalog_metadata(pool: &MySqlPool, described: &mut [TableSchema]) -> anyhow::Result<()> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_COMMENT AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE <> 'VIEW' AND TABLE_COMMENT <> ''",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read table comments")?;
    for (table, comment) in tables {
        if let Some(entry) = table_mut(described, &table) {
            entry.comment = Some(comment).filter(|c| !c.trim().is_empty());
        }
    }

    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_COMMENT AS CHAR) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_COMMENT <> ''",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read column comments")?;
    for (table, column, comment) in columns {
        if let Some(entry) = table_mut(described, &table).and_then(|t| t.column_mut(&column)) {
            entry.comment = Some(comment).filter(|c| !c.trim().is_empty());
        }
    }

    // One row per key column, in key order; `REFERENCED_TABLE_NAME` is set for foreign keys.
    type KeyRow = (String, String, String, Option<String>, Option<String>, Option<String>);
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT CAST(k.CONSTRAINT_NAME AS CHAR), CAST(k.TABLE_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR), \
                CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR), CAST(k.REFERENCED_TABLE_NAME AS CHAR), \
                CAST(k.REFERENCED_COLUMN_NAME AS CHAR) \
         FROM information_schema.KEY_COLUMN_USAGE k \
         WHERE k.TABLE_SCHEMA = DATABASE() \
           AND (k.CONSTRAINT_NAME = 'PRIMARY' OR k.REFERENCED_TABLE_NAME IS NOT NULL) \
         ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
    )
    .fetch_all(pool)
    .await
    .context("Failed to read keys")?;
    let database: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
        .fetch_one(pool)
        .await
        .context("Failed to read the database's name")?;
    let mut last_constraint: Option<(String, String)> = None;
    for (constraint, table, column, ref_schema, ref_table, ref_column) in keys {
        let Some(entry) = table_mut(described, &table) else {
            continue;
        };
        let same_constraint = last_constraint.as_ref() == Some(&(table.clone(), constraint.clone()));
        last_constraint = Some((table.clone(), constraint.clone()));
        match (ref_table, ref_column) {
            (None, _) => entry.primary_key.push(column),
            (Some(ref_table), Some(ref_column)) => {
                // Tables of other databases are reached as `database.table`.
                let target = match ref_schema {
                    Some(schema) if Some(&schema) != database.as_ref() => format!("{schema}.{ref_table}"),
                    _ => ref_table,
                };
                match entry.foreign_keys.last_mut() {
                    Some(key) if same_constraint => {
                        key.columns.push(column);
                        key.references.push(ref_column);
                    }
                    _ => entry.foreign_keys.push(ForeignKey {
                        columns: vec![column],
                        table: target,
                        references: vec![ref_column],
                    }),
                }
            }
            (Some(_), None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_is_in_each_servers_unit() {
        assert_eq!(
            Server::MariaDb.statement_timeout_sql(Duration::from_millis(1500)),
            "SET SESSION max_statement_time = 1.500000"
        );
        assert_eq!(
            Server::MySql.statement_timeout_sql(Duration::from_millis(1500)),
            "SET SESSION max_execution_time = 1500"
        );
        // Zero would mean no timeout at all.
        assert_eq!(
            Server::MySql.statement_timeout_sql(Duration::ZERO),
            "SET SESSION max_execution_time = 1"
        );
        assert_eq!(
            Server::MariaDb.statement_timeout_sql(Duration::ZERO),
            "SET SESSION max_statement_time = 0.000001"
        );
    }

    #[test]
    fn the_server_is_told_by_its_version() {
        assert_eq!(Server::from_version("10.11.19-MariaDB-0+deb12u1"), Server::MariaDb);
        assert_eq!(Server::from_version("8.4.3"), Server::MySql);
        assert_eq!(Server::from_version("5.5.5-10.6.12-MariaDB"), Server::MariaDb);
    }

    #[test]
    fn information_schema_types_map_to_kinds() {
        assert_eq!(column_kind("tinyint", "tinyint(1)"), ColumnKind::Boolean);
        assert_eq!(column_kind("tinyint", "tinyint(4)"), ColumnKind::Integer);
        assert_eq!(column_kind("bigint", "bigint(20) unsigned"), ColumnKind::Integer);
        assert_eq!(column_kind("decimal", "decimal(12,2)"), ColumnKind::Decimal);
        assert_eq!(column_kind("double", "double"), ColumnKind::Decimal);
        assert_eq!(column_kind("varchar", "varchar(40)"), ColumnKind::Text);
        assert_eq!(column_kind("enum", "enum('a','b')"), ColumnKind::Text);
        assert_eq!(column_kind("date", "date"), ColumnKind::Date);
        assert_eq!(column_kind("datetime", "datetime"), ColumnKind::Timestamp);
        assert_eq!(column_kind("blob", "blob"), ColumnKind::Other);
    }

    const SERVER: &str = "mysql://root@127.0.0.1:3306";

    /// A throwaway database on the local MariaDB, dropped by [`TestDb::drop_database`].
    struct TestDb {
        name: String,
    }

    impl TestDb {
        async fn create() -> Self {
            let name = format!("threadql_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = MySqlConnection::connect(SERVER).await.unwrap();
            admin
                .execute(format!("CREATE DATABASE `{name}`").as_str())
                .await
                .unwrap();
            admin.close().await.unwrap();
            Self { name }
        }

        fn url(&self) -> String {
            format!("{SERVER}/{}", self.name)
        }

        async fn drop_database(self) {
            let mut admin = MySqlConnection::connect(SERVER).await.unwrap();
            admin
                .execute(format!("DROP DATABASE IF EXISTS `{}`", self.name).as_str())
                .await
                .unwrap();
            admin.close().await.unwrap();
        }
    }

    #[tokio::test]
    async fn the_transaction_refuses_writes_even_without_the_guard() {
        let db = TestDb::create().await;
        let mut setup = MySqlConnection::connect(&db.url()).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INT); CREATE SEQUENCE s")
            .execute(&mut setup)
            .await
            .unwrap();
        setup.close().await.unwrap();
        let warehouse = MySqlWarehouse::connect(&db.url()).await.unwrap();
        let never = CancellationToken::new();

        for write in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET id = 2",
            "DELETE FROM t",
            "CREATE TABLE u (id INT)",
            "DROP TABLE t",
            "SELECT NEXTVAL(s)",
        ] {
            let result = warehouse.run(write, Duration::from_secs(5), &never).await;
            assert!(
                matches!(&result, Err(WarehouseError::Query(m)) if m.contains("READ ONLY")),
                "{write}: {result:?}"
            );
        }
        let count = warehouse
            .run("SELECT COUNT(*) AS n FROM t", Duration::from_secs(5), &never)
            .await
            .unwrap();
        assert_eq!(count.rows, vec![vec![Value::Int(0)]]);
        let tables = warehouse.schema().await.unwrap();
        assert_eq!(
            tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["t"],
            "no table was created or dropped (sequences are not listed)"
        );

        warehouse.pool.close().await;
        warehouse.control.close().await;
        db.drop_database().await;
    }

    #[tokio::test]
    async fn sleep_is_killed_in_the_server_by_the_statement_timeout() {
        let db = TestDb::create().await;
        let warehouse = MySqlWarehouse::connect_with_max_connections(&db.url(), 1)
            .await
            .unwrap();
        let started = Instant::now();

        let result = warehouse
            .run(
                "SELECT SLEEP(30)",
                Duration::from_millis(500),
                &CancellationToken::new(),
            )
            .await;

        assert!(
            matches!(result, Err(WarehouseError::Timeout(d)) if d == Duration::from_millis(500)),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        // The pool's one connection no longer carries the timeout (catalog queries use it).
        let cleared: i64 = sqlx::query_scalar("SELECT CAST(@@session.max_statement_time = 0 AS SIGNED)")
            .fetch_one(&warehouse.pool)
            .await
            .unwrap();
        assert_eq!(cleared, 1);
        warehouse.pool.close().await;
        warehouse.control.close().await;
        db.drop_database().await;
    }
}
