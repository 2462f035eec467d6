//! Warehouses: where the data users ask about lives. Read-only, reached only with [`GuardedSql`].
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::domain::{infer_column_format, Column, ColumnFormat, QueryResult, TableSchema, Value};
use crate::sql::Dialect;
use crate::sql::GuardedSql;
pub use describe::DescribeSettings;

pub mod bigquery;
pub mod demo;
pub mod describe;
pub mod mysql;
pub mod postgres;
pub mod snowflake;
pub mod sqlite;

/// Runs one statement on a task of its own. A caller that drops the call (a timeout, the other
/// branch of a `select!`) cancels `stop` instead of abandoning a connection in mid-statement: the
/// statement's own task then stops it in the server and cleans up its connection, the path an
/// explicit cancel takes. sqlx does not always recover a connection whose query future was
/// dropped (it was seen waiting forever on a connection the server had already rolled back).
pub(crate) async fn run_on_own_task<F, T>(
    cancel: &CancellationToken,
    statement: impl FnOnce(CancellationToken) -> F,
) -> Result<T, WarehouseError>
where
    F: std::future::Future<Output = Result<T, WarehouseError>> + Send + 'static,
    T: Send + 'static,
{
    use tracing::Instrument;

    if cancel.is_cancelled() {
        return Err(WarehouseError::Cancelled);
    }
    // Fires when the caller cancels, and when the caller drops this future.
    let stop = cancel.child_token();
    let _stop_when_dropped = stop.clone().drop_guard();
    let task = tokio::spawn(statement(stop).instrument(tracing::Span::current()));
    match task.await {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::error!(%error, "the warehouse statement's task failed");
            Err(WarehouseError::Unavailable("the statement's task failed".into()))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The database rejected or failed the statement; the message is the database's own.
    #[error("{0}")]
    Query(String),
    #[error("the query took longer than {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the query was cancelled")]
    Cancelled,
    #[error("the warehouse cannot be reached: {0}")]
    Unavailable(String),
}

/// Where [`Warehouse::execute_pages`] hands a result over, page by page, in order.
pub type PageSender = tokio::sync::mpsc::Sender<QueryResult>;

/// What running a statement would cost, as the engine estimates it without running it.
pub use crate::domain::CostEstimate as Estimate;

/// A read-only SQL warehouse.
#[async_trait]
pub trait Warehouse: Send + Sync {
    fn dialect(&self) -> Dialect;
    /// Runs a guarded statement in a read-only transaction with a statement timeout. When
    /// `cancel` fires, the statement is stopped in the warehouse itself (not merely dropped) and
    /// the call returns [`WarehouseError::Cancelled`].
    async fn execute(
        &self,
        sql: &GuardedSql,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, WarehouseError>;
    /// Runs a guarded statement like [`Warehouse::execute`], but hands its rows to `pages` as they
    /// arrive (a Snowflake partition, a BigQuery page) instead of assembling the whole result:
    /// an export of 100,000 rows is written out while the rest is fetched, and never held both
    /// as rows and as the file. Answers the number of rows. Each page's column formats are
    /// inferred from that page. A receiver that goes away stops the statement (as a cancel).
    /// Engines that read a result in one piece keep the default: one page.
    async fn execute_pages(
        &self,
        sql: &GuardedSql,
        timeout: Duration,
        cancel: &CancellationToken,
        pages: PageSender,
    ) -> Result<usize, WarehouseError> {
        let result = self.execute(sql, timeout, cancel).await?;
        let rows = result.rows.len();
        pages.send(result).await.map_err(|_| WarehouseError::Cancelled)?;
        Ok(rows)
    }
    /// Tables and columns visible to threadql, with their types (cheap: no keys, comments or
    /// values).
    async fn schema(&self) -> Result<Vec<TableSchema>, WarehouseError>;
    /// Everything known about the tables threadql may read: columns and types, keys, comments
    /// and the distinct values of low-cardinality text columns. Keys, comments and values are
    /// best effort: a failure there is logged and every table and column is still described.
    async fn describe(&self, settings: &DescribeSettings) -> Result<Vec<TableSchema>, WarehouseError>;
    /// Reaches the warehouse (for `/readyz` and `threadql check`).
    async fn ping(&self) -> Result<(), WarehouseError>;
    /// The engine's estimate of what `sql` would read, without running it (the cost guard).
    /// Engines without an estimate keep the default: nothing known.
    async fn estimate(&self, _sql: &GuardedSql) -> Result<Estimate, WarehouseError> {
        Ok(Estimate::default())
    }
}

/// A result from rows whose columns carry a declared type (Postgres, MySQL, Snowflake): each cell
/// converted by `convert(row, index, type)`, each column's format inferred from its values and its
/// type.
fn typed_result<R>(
    declared: &[(String, String)],
    rows: &[R],
    convert: impl Fn(&R, usize, &str) -> Value,
    declared_format: impl Fn(&str) -> ColumnFormat,
) -> QueryResult {
    let converted: Vec<Vec<Value>> = rows
        .iter()
        .map(|row| {
            declared
                .iter()
                .enumerate()
                .map(|(index, (_, ty))| convert(row, index, ty))
                .collect()
        })
        .collect();
    let columns = declared
        .iter()
        .enumerate()
        .map(|(index, (name, ty))| Column {
            name: name.clone(),
            format: infer_column_format(converted.iter().filter_map(|row| row.get(index)), declared_format(ty)),
        })
        .collect();
    QueryResult {
        columns,
        rows: converted,
    }
}
