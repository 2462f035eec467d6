//! SQLite warehouse: the embedded demo data set or any SQLite file, opened read-only.
//!
//! SQLite runs statements on sqlx's worker thread, so dropping a future does not stop one. A
//! progress handler, installed for each statement, makes SQLite itself abort the statement when
//! the deadline passes, the caller cancels, or the caller drops the future.
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteColumn, SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Column as _, Executor, Row, Sqlite, Statement, TypeInfo, ValueRef};
use tokio_util::sync::CancellationToken;

use super::demo::DEMO_META_TABLE;
use super::describe::{self, DescribeSettings};
use super::{Warehouse, WarehouseError};
use crate::domain::{
    infer_column_format, Column, ColumnFormat, ColumnKind, ColumnSchema, ForeignKey, QueryResult, TableSchema, Value,
};
use crate::sql::{Dialect, GuardedSql};

/// Connections in the pool by default; SQLite readers do not block each other.
const DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// SQLite virtual machine instructions between two checks of the stop flag: frequent enough to
/// stop within milliseconds, rare enough to cost nothing measurable.
const PROGRESS_INTERVAL_OPS: i32 = 10_000;
/// How long a statement that was told to stop may take to notice before we give up waiting
/// (it can be blocked outside the virtual machine, e.g. waiting on a lock).
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why a statement was stopped; the first reason recorded wins.
const RUNNING: u8 = 0;
const STOP_TIMEOUT: u8 = 1;
const STOP_CANCEL: u8 = 2;
const STOP_DROPPED: u8 = 3;

/// A SQLite database opened read-only.
#[derive(Debug, Clone)]
pub struct SqliteWarehouse {
    pool: SqlitePool,
}

impl SqliteWarehouse {
    /// Opens `url_or_path` (`sqlite://file.db`, `sqlite:file.db` or a plain path) read-only;
    /// the file must exist.
    pub async fn connect(url_or_path: &str) -> anyhow::Result<Self> {
        Self::connect_with_max_connections(url_or_path, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Like [`SqliteWarehouse::connect`] with a pool of at most `max_connections`.
    pub async fn connect_with_max_connections(url_or_path: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path)
                .with_context(|| format!("Failed to parse the SQLite warehouse URL {url_or_path:?}"))?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        }
        // Writes are refused by SQLite itself, whatever statement reaches the connection.
        .read_only(true)
        .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            // A future dropped mid-statement leaves its (already tripped) progress handler on
            // the connection; clear it before anyone else uses the connection.
            .before_acquire(|conn, _meta| {
                Box::pin(async move {
                    conn.lock_handle().await?.remove_progress_handler();
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("Failed to open the SQLite warehouse {url_or_path:?}"))?;
        Ok(Self { pool })
    }

    /// Runs `sql` with the timeout and cancellation of [`Warehouse::execute`]. Takes any text so
    /// unit tests can show that the connection refuses writes even without the guard.
    async fn run(
        &self,
        sql: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, WarehouseError> {
        if cancel.is_cancelled() {
            return Err(WarehouseError::Cancelled);
        }
        let deadline = Instant::now() + timeout;
        let mut conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(WarehouseError::Cancelled),
            acquired = tokio::time::timeout_at(deadline.into(), self.pool.acquire()) => match acquired {
                Err(_) => return Err(WarehouseError::Timeout(timeout)),
                Ok(Err(error)) => return Err(unavailable(error)),
                Ok(Ok(conn)) => conn,
            },
        };

        let stop = Arc::new(AtomicU8::new(RUNNING));
        install_stop_handler(&mut conn, Arc::clone(&stop), deadline).await?;
        // Stops the statement inside SQLite if this future is dropped before it finishes.
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));

        let outcome = {
            let fetch = sqlx::query(sql).fetch_all(&mut *conn);
            tokio::pin!(fetch);
            tokio::select! {
                biased;
                rows = &mut fetch => Some(rows),
                _ = cancel.cancelled() => {
                    request_stop(&stop, STOP_CANCEL);
                    tokio::time::timeout(STOP_GRACE, &mut fetch).await.ok()
                }
                // The progress handler enforces the deadline itself; this only covers a
                // statement stuck where the handler is not called.
                _ = tokio::time::sleep_until((deadline + STOP_GRACE).into()) => {
                    request_stop(&stop, STOP_TIMEOUT);
                    tokio::time::timeout(STOP_GRACE, &mut fetch).await.ok()
                }
            }
        };

        let reason = stop.load(Ordering::SeqCst);
        match outcome {
            // The statement ignored the stop request: do not hand this connection to anyone.
            None => conn.close_on_drop(),
            Some(_) => clear_stop_handler(&mut conn).await,
        }
        match (reason, outcome) {
            (STOP_CANCEL, _) => Err(WarehouseError::Cancelled),
            (STOP_TIMEOUT, Some(Err(_)) | None) => Err(WarehouseError::Timeout(timeout)),
            (_, None) => Err(WarehouseError::Timeout(timeout)),
            (_, Some(Err(error))) => Err(query_error(error)),
            (_, Some(Ok(rows))) => {
                let columns = match rows.first() {
                    Some(first) => declared_columns(first.columns()),
                    // No row carries the column names; the prepared statement does (it is in
                    // the connection's statement cache, so this does not parse again).
                    None => match (&mut *conn).prepare(sql).await {
                        Ok(statement) => declared_columns(statement.columns()),
                        Err(error) => return Err(query_error(error)),
                    },
                };
                Ok(convert_rows(columns, &rows))
            }
        }
    }
}

/// Installs a progress handler that aborts the running statement once a stop is requested or
/// the deadline passes. It runs on SQLite's thread, so it checks the clock itself and keeps
/// working even when the async runtime is busy.
async fn install_stop_handler(
    conn: &mut PoolConnection<Sqlite>,
    stop: Arc<AtomicU8>,
    deadline: Instant,
) -> Result<(), WarehouseError> {
    let mut handle = conn.lock_handle().await.map_err(unavailable)?;
    handle.set_progress_handler(PROGRESS_INTERVAL_OPS, move || {
        if stop.load(Ordering::Relaxed) != RUNNING {
            return false;
        }
        if Instant::now() >= deadline {
            request_stop(&stop, STOP_TIMEOUT);
            return false;
        }
        true
    });
    Ok(())
}

async fn clear_stop_handler(conn: &mut PoolConnection<Sqlite>) {
    match conn.lock_handle().await {
        Ok(mut handle) => handle.remove_progress_handler(),
        // The pool's before_acquire hook tries again; a broken worker fails there and the
        // connection is replaced.
        Err(error) => tracing::warn!(%error, "failed to clear the SQLite progress handler"),
    }
}

fn request_stop(stop: &AtomicU8, reason: u8) {
    let _ = stop.compare_exchange(RUNNING, reason, Ordering::SeqCst, Ordering::SeqCst);
}

struct StopOnDrop(Arc<AtomicU8>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        request_stop(&self.0, STOP_DROPPED);
    }
}

fn unavailable(error: sqlx::Error) -> WarehouseError {
    WarehouseError::Unavailable(error.to_string())
}

fn query_error(error: sqlx::Error) -> WarehouseError {
    match error {
        sqlx::Error::Database(db) => WarehouseError::Query(db.message().to_owned()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
            unavailable(error)
        }
        other => WarehouseError::Query(other.to_string()),
    }
}

fn declared_columns(columns: &[SqliteColumn]) -> Vec<(String, ColumnFormat)> {
    columns
        .iter()
        .map(|c| (c.name().to_owned(), declared_format(c.type_info().name())))
        .collect()
}

/// Converts rows by each value's storage class (SQLite types values, not columns).
fn convert_rows(declared: Vec<(String, ColumnFormat)>, rows: &[SqliteRow]) -> QueryResult {
    let mut converted: Vec<Vec<Value>> = rows
        .iter()
        .map(|row| (0..declared.len()).map(|index| convert_value(row, index)).collect())
        .collect();
    let columns = declared
        .into_iter()
        .enumerate()
        .map(|(index, (name, declared))| {
            // An expression can yield integers on some rows and reals on others
            // (`CASE WHEN .. THEN 0 ELSE total END`); show them all as numbers.
            let has_float = converted
                .iter()
                .any(|row| matches!(row.get(index), Some(Value::Float(_))));
            let has_int = converted
                .iter()
                .any(|row| matches!(row.get(index), Some(Value::Int(_))));
            if has_float && has_int {
                for row in &mut converted {
                    if let Some(cell) = row.get_mut(index) {
                        if let Value::Int(i) = *cell {
                            *cell = Value::Float(i as f64);
                        }
                    }
                }
            }
            let format = infer_column_format(converted.iter().filter_map(|row| row.get(index)), declared);
            Column { name, format }
        })
        .collect();
    QueryResult {
        columns,
        rows: converted,
    }
}

fn convert_value(row: &SqliteRow, index: usize) -> Value {
    let Ok(raw) = row.try_get_raw(index) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let storage = raw.type_info().name().to_owned();
    // The storage class was just read from the value, so the unchecked decodes match it.
    match storage.as_str() {
        "INTEGER" => row
            .try_get_unchecked::<i64, _>(index)
            .map(Value::Int)
            .unwrap_or(Value::Null),
        "REAL" => row
            .try_get_unchecked::<f64, _>(index)
            .map(Value::Float)
            .unwrap_or(Value::Null),
        "BLOB" => row
            .try_get_unchecked::<Vec<u8>, _>(index)
            .map(|bytes| match String::from_utf8(bytes) {
                Ok(text) => Value::Text(text),
                Err(error) => Value::Text(error.into_bytes().iter().map(|b| format!("{b:02x}")).collect()),
            })
            .unwrap_or(Value::Null),
        _ => row
            .try_get_unchecked::<String, _>(index)
            .map(Value::Text)
            .unwrap_or(Value::Null),
    }
}

/// The format of a column from its declared type, used when all its values are NULL.
fn declared_format(declared: &str) -> ColumnFormat {
    match declared {
        "INTEGER" => ColumnFormat::Integer,
        "REAL" | "NUMERIC" => ColumnFormat::Number,
        "DATE" => ColumnFormat::Date,
        _ => ColumnFormat::Text,
    }
}

/// The broad kind of a declared SQLite column type, following SQLite's affinity rules plus the
/// conventional date names.
fn column_kind(declared: &str) -> ColumnKind {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") {
        ColumnKind::Integer
    } else if t.contains("bool") {
        ColumnKind::Boolean
    } else if t == "date" {
        ColumnKind::Date
    } else if t.contains("datetime") || t.contains("timestamp") {
        ColumnKind::Timestamp
    } else if t.contains("char") || t.contains("clob") || t.contains("text") {
        ColumnKind::Text
    } else if t.contains("real")
        || t.contains("floa")
        || t.contains("doub")
        || t.contains("numeric")
        || t.contains("decimal")
    {
        ColumnKind::Decimal
    } else {
        ColumnKind::Other
    }
}

#[async_trait]
impl Warehouse for SqliteWarehouse {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
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
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master \
             WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ?1 \
             ORDER BY name",
        )
        .bind(DEMO_META_TABLE)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error)?;
        let mut schema = Vec::with_capacity(tables.len());
        for table in tables {
            let columns: Vec<(String, String)> =
                sqlx::query_as("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
                    .bind(&table)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(query_error)?;
            let columns = columns
                .into_iter()
                .map(|(name, data_type)| ColumnSchema {
                    kind: column_kind(&data_type),
                    name,
                    data_type,
                    ..Default::default()
                })
                .collect();
            schema.push(TableSchema {
                name: table,
                columns,
                ..Default::default()
            });
        }
        Ok(schema)
    }

    async fn describe(&self, settings: &DescribeSettings) -> Result<Vec<TableSchema>, WarehouseError> {
        let mut tables = self.schema().await?;
        if let Err(error) = read_keys(&self.pool, &mut tables).await {
            tracing::warn!(?error, "Failed to read keys from the SQLite catalog");
        }
        // SQLite keeps no statistics of distinct values: every candidate column is sampled.
        describe::sample_values(self, &mut tables, &HashSet::new(), settings).await;
        Ok(tables)
    }

    async fn ping(&self) -> Result<(), WarehouseError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable)?;
        Ok(())
    }
}

/// Primary and foreign keys from SQLite's pragmas (SQLite has no comments).
async fn read_keys(pool: &SqlitePool, tables: &mut [TableSchema]) -> anyhow::Result<()> {
    for table in tables.iter_mut() {
        let name = table.name.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn writable_database() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (name) VALUES ('a')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let path = path.to_string_lossy().into_owned();
        (dir, path)
    }

    #[tokio::test]
    async fn the_connection_refuses_writes_even_without_the_guard() {
        let (_dir, path) = writable_database().await;
        let warehouse = SqliteWarehouse::connect(&path).await.unwrap();
        let never = CancellationToken::new();

        for write in [
            "INSERT INTO t (name) VALUES ('b')",
            "UPDATE t SET name = 'x'",
            "DELETE FROM t",
            "CREATE TABLE u (id INTEGER)",
            "DROP TABLE t",
        ] {
            let result = warehouse.run(write, Duration::from_secs(5), &never).await;
            assert!(
                matches!(&result, Err(WarehouseError::Query(message)) if message.contains("readonly")),
                "{write}: {result:?}"
            );
        }
        let rows = warehouse
            .run("SELECT COUNT(*) AS n FROM t", Duration::from_secs(5), &never)
            .await
            .unwrap();
        assert_eq!(rows.rows, vec![vec![Value::Int(1)]]);
    }

    #[tokio::test]
    async fn connecting_to_a_missing_file_fails_instead_of_creating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        assert!(SqliteWarehouse::connect(&path.to_string_lossy()).await.is_err());
        assert!(!path.exists());
    }

    #[test]
    fn declared_types_map_to_kinds() {
        assert_eq!(column_kind("INTEGER"), ColumnKind::Integer);
        assert_eq!(column_kind("REAL"), ColumnKind::Decimal);
        assert_eq!(column_kind("TEXT"), ColumnKind::Text);
        assert_eq!(column_kind("VARCHAR(20)"), ColumnKind::Text);
        assert_eq!(column_kind("DATE"), ColumnKind::Date);
        assert_eq!(column_kind("DATETIME"), ColumnKind::Timestamp);
        assert_eq!(column_kind("BLOB"), ColumnKind::Other);
    }
}
