//! Warehouses: where the data users ask about lives. Read-only, reached only with [`GuardedSql`].
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::domain::{infer_column_format, Column, ColumnFormat, QueryResult, TableSchema, Value};
use crate::sql::Dialect;
use crate::sql::GuardedSql;
pub use describe::DescribeSettings;

pub mod demo;
pub mod describe;
pub mod mysql;
pub mod postgres;
pub mod sqlite;

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
    /// Tables and columns visible to threadql, with their types (cheap: no keys, comments or
    /// values).
    async fn schema(&self) -> Result<Vec<TableSchema>, WarehouseError>;
    /// Everything known about the tables threadql may read: columns and types, keys, comments
    /// and the distinct values of low-cardinality text columns. Keys, comments and values are
    /// best effort: a failure there is logged and every table and column is still described.
    async fn describe(&self, settings: &DescribeSettings) -> Result<Vec<TableSchema>, WarehouseError>;
    /// Reaches the warehouse (for `/readyz` and `threadql check`).
    async fn ping(&self) -> Result<(), WarehouseError>;
}

/// A result from rows whose columns carry a declared type (Postgres, MySQL): each cell converted
/// by `convert(row, index, type)`, each column's format inferred from its values and its type.
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
