//! Google BigQuery, through its REST API v2 with a service account. BigQuery has no sessions or
//! transactions to make read-only: the guard lets through only one SELECT, the token asks for
//! the read-only scope, and every job carries `maximumBytesBilled`, so a query that would scan
//! more than allowed fails instead of costing money.
//!
//! A statement runs as a job: jobs.query starts it and waits a little, jobs.getQueryResults
//! polls until it completes and then reads the result page by page. Cancelling (or the client's
//! deadline, or dropping the call) sends jobs.cancel, which stops the job in BigQuery.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde_json::{json, Value as Json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::describe::{self, DescribeSettings};
use super::{Estimate, Warehouse, WarehouseError};
use crate::domain::{ColumnFormat, ColumnKind, ColumnSchema, ForeignKey, QueryResult, TableSchema, Value};
use crate::sql::{Dialect, GuardedSql, QueryTag};

pub mod api;
pub mod auth;

pub use crate::config::BigQuerySettings;
use api::{Api, ApiError, Field, Method, QueryResponse, RetrySettings};
use auth::{ServiceAccountKey, TokenSource};

/// Longest wait of one jobs.query or getQueryResults call for the job to complete (Google's
/// default is 10 s); short, so a cancel never waits long for a call in flight to return.
const POLL_WAIT: Duration = Duration::from_secs(2);
/// Rows asked for per page.
const PAGE_ROWS: u32 = 10_000;
/// How long a stopped statement's first call (whose job id is not known yet) is awaited so its
/// job can be cancelled.
const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// Time allowed for the catalog queries of `schema` and `describe`.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(60);

/// A BigQuery data set read through jobs.
#[derive(Debug, Clone)]
pub struct BigQueryWarehouse {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: Api,
    project: String,
    dataset: String,
    location: Option<String>,
    maximum_bytes_billed: u64,
}

/// The labels a job carries (BigQuery's billing reports and INFORMATION_SCHEMA.JOBS group by
/// them): `app: threadql`, and the thread and version of a tagged statement.
fn job_labels(tag: Option<&QueryTag>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([("app".to_string(), "threadql".to_string())]);
    labels.extend(tag.map(QueryTag::labels).into_iter().flatten());
    labels
}

impl BigQueryWarehouse {
    /// Reads the key file and builds the client; nothing is sent until the first call.
    pub fn connect(settings: &BigQuerySettings) -> anyhow::Result<Self> {
        Self::connect_with_retry(settings, RetrySettings::default())
    }

    /// Like [`BigQueryWarehouse::connect`] with its own retry policy (tests use short delays).
    pub fn connect_with_retry(settings: &BigQuerySettings, retry: RetrySettings) -> anyhow::Result<Self> {
        let key = ServiceAccountKey::from_file(&settings.credentials)?;
        let http = http_client()?;
        let tokens = TokenSource::new(key, http.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                api: Api::new(http, &settings.api_url, tokens, retry),
                project: settings.project.clone(),
                dataset: settings.dataset.clone(),
                location: settings.location.clone(),
                maximum_bytes_billed: settings.maximum_bytes_billed,
            }),
        })
    }

    /// Runs `sql` as a job, stopped in BigQuery when `cancel` fires or `timeout` passes.
    async fn run(
        &self,
        sql: &str,
        tag: Option<&QueryTag>,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, WarehouseError> {
        let inner = self.inner.clone();
        let sql = sql.to_string();
        let labels = job_labels(tag);
        super::run_on_own_task(cancel, move |stop| async move {
            let mut rows = Vec::new();
            let fields = inner
                .run_job(&sql, labels, timeout, stop, Delivery::Collect(&mut rows))
                .await?;
            Ok(convert_rows(&fields, &rows))
        })
        .await
    }
}

/// Where a job's pages go: kept until the last one (then converted together), or converted and
/// handed over one by one (counting the rows sent).
enum Delivery<'a> {
    Collect(&'a mut Vec<api::Row>),
    Pages(super::PageSender, &'a mut usize),
}

/// Who stopped the job.
enum Stop {
    Cancel,
    Timeout,
}

impl Inner {
    fn location_param(&self) -> Vec<(&'static str, String)> {
        self.location.iter().map(|l| ("location", l.clone())).collect()
    }

    fn query_request(&self, sql: &str, labels: &BTreeMap<String, String>, wait: Duration, timeout: Duration) -> Json {
        let mut body = json!({
            "query": sql,
            "useLegacySql": false,
            "timeoutMs": wait.as_millis(),
            // Also stopped by BigQuery itself if the client's cancel never arrives.
            "jobTimeoutMs": timeout.as_millis().max(1).to_string(),
            "maximumBytesBilled": self.maximum_bytes_billed.to_string(),
            "labels": labels,
            "requestId": uuid::Uuid::new_v4().to_string(),
            "defaultDataset": {"projectId": self.project, "datasetId": self.dataset},
            "maxResults": PAGE_ROWS,
        });
        if let (Some(location), Some(object)) = (&self.location, body.as_object_mut()) {
            object.insert("location".into(), json!(location));
        }
        body
    }

    /// Runs `sql` as a job and delivers its rows; answers the result's fields.
    async fn run_job(
        &self,
        sql: &str,
        labels: BTreeMap<String, String>,
        timeout: Duration,
        stop: CancellationToken,
        delivery: Delivery<'_>,
    ) -> Result<Vec<Field>, WarehouseError> {
        let deadline = Instant::now() + timeout;
        let wait = |now: Instant| deadline.saturating_duration_since(now).min(POLL_WAIT);
        let body = self.query_request(sql, &labels, wait(Instant::now()), timeout);
        let path = format!("projects/{}/queries", self.project);
        let first = self.inner_call(Method::Post, &path, &[], Some(&body));
        tokio::pin!(first);
        let stopped = tokio::select! {
            biased;
            response = &mut first => {
                let response = parse(response?)?;
                return self.finish(response, deadline, timeout, &stop, delivery).await;
            }
            _ = stop.cancelled() => Stop::Cancel,
            _ = tokio::time::sleep_until(deadline) => Stop::Timeout,
        };
        // The job's id comes with the answer: wait for it, then cancel the job.
        if let Ok(Ok(response)) = tokio::time::timeout(CANCEL_GRACE, first).await {
            if let Some(job) = parse(response).ok().and_then(|r| r.job_reference) {
                self.cancel_job(&job.job_id, job.location.as_deref()).await;
            }
        }
        Err(stopped.into_error(timeout))
    }

    async fn inner_call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, WarehouseError> {
        self.api
            .call(method, path, query, body)
            .await
            .map_err(ApiError::into_warehouse_error)
    }

    /// Polls until the job completes, then reads every page, in order.
    async fn finish(
        &self,
        mut response: QueryResponse,
        deadline: Instant,
        timeout: Duration,
        stop: &CancellationToken,
        mut delivery: Delivery<'_>,
    ) -> Result<Vec<Field>, WarehouseError> {
        let job = response
            .job_reference
            .clone()
            .ok_or_else(|| WarehouseError::Unavailable("BigQuery's answer names no job".into()))?;
        let location = job.location.clone().or_else(|| self.location.clone());
        let path = format!("projects/{}/queries/{}", self.project, job.job_id);
        let mut fields = None;
        loop {
            if let Some(error) = failure(&response) {
                return Err(error);
            }
            if response.job_complete {
                let fields = fields.get_or_insert_with(|| response.schema.take().map(|s| s.fields).unwrap_or_default());
                match &mut delivery {
                    Delivery::Collect(rows) => rows.append(&mut response.rows),
                    Delivery::Pages(pages, sent) => {
                        let page = convert_rows(fields, &std::mem::take(&mut response.rows));
                        **sent += page.rows.len();
                        pages.send(page).await.map_err(|_| WarehouseError::Cancelled)?;
                    }
                }
                if response.page_token.is_none() {
                    break;
                }
            }
            let mut query: Vec<(&str, String)> = location.iter().map(|l| ("location", l.clone())).collect();
            let wait = deadline.saturating_duration_since(Instant::now()).min(POLL_WAIT);
            query.push(("timeoutMs", wait.as_millis().to_string()));
            query.push(("maxResults", PAGE_ROWS.to_string()));
            if let Some(token) = response.page_token.take().filter(|_| response.job_complete) {
                query.push(("pageToken", token));
            }
            let next = self.inner_call(Method::Get, &path, &query, None);
            let stopped = tokio::select! {
                biased;
                _ = stop.cancelled() => Stop::Cancel,
                _ = tokio::time::sleep_until(deadline) => Stop::Timeout,
                next = next => {
                    response = parse(next?)?;
                    continue;
                }
            };
            self.cancel_job(&job.job_id, location.as_deref()).await;
            return Err(stopped.into_error(timeout));
        }
        Ok(fields.unwrap_or_default())
    }

    /// Asks BigQuery to stop the job; a failure is logged (the job's own timeout still ends it).
    async fn cancel_job(&self, job_id: &str, location: Option<&str>) {
        let path = format!("projects/{}/jobs/{job_id}/cancel", self.project);
        let query: Vec<(&str, String)> = location
            .map(|l| vec![("location", l.to_string())])
            .unwrap_or_else(|| self.location_param());
        match self.api.call(Method::Post, &path, &query, None).await {
            Ok(_) => tracing::debug!(job_id, "cancelled the BigQuery job"),
            Err(error) => tracing::warn!(job_id, %error, "failed to cancel the BigQuery job"),
        }
    }

    /// The dry run's bytes and statement type (jobs.insert with `dryRun`: its statistics say
    /// what kind of statement BigQuery read, which jobs.query's answer does not).
    async fn dry_run(&self, sql: &str, labels: &BTreeMap<String, String>) -> Result<(u64, String), WarehouseError> {
        let mut job = json!({
            "configuration": {
                "dryRun": true,
                "labels": labels,
                "query": {
                    "query": sql,
                    "useLegacySql": false,
                    "defaultDataset": {"projectId": self.project, "datasetId": self.dataset},
                    "maximumBytesBilled": self.maximum_bytes_billed.to_string(),
                },
            },
            "jobReference": {"projectId": self.project},
        });
        if let Some(location) = &self.location {
            job["jobReference"]["location"] = json!(location);
        }
        let path = format!("projects/{}/jobs", self.project);
        let answer = self.inner_call(Method::Post, &path, &[], Some(&job)).await?;
        let statistics = &answer["statistics"];
        let bytes = statistics["query"]["totalBytesProcessed"]
            .as_str()
            .or_else(|| statistics["totalBytesProcessed"].as_str())
            .and_then(|b| b.parse::<u64>().ok())
            .ok_or_else(|| WarehouseError::Unavailable("BigQuery's dry run gave no totalBytesProcessed".into()))?;
        let statement_type = statistics["query"]["statementType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((bytes, statement_type))
    }
}

impl Stop {
    fn into_error(self, timeout: Duration) -> WarehouseError {
        match self {
            Stop::Cancel => WarehouseError::Cancelled,
            Stop::Timeout => WarehouseError::Timeout(timeout),
        }
    }
}

fn parse(json: Json) -> Result<QueryResponse, WarehouseError> {
    serde_json::from_value(json)
        .map_err(|e| WarehouseError::Unavailable(format!("BigQuery's answer was not understood: {e}")))
}

/// A failed job's first error (an answer with `errors` and no rows is the job's failure; with
/// rows they are warnings).
fn failure(response: &QueryResponse) -> Option<WarehouseError> {
    let first = response.errors.first()?;
    if !response.job_complete || !response.rows.is_empty() || response.schema.is_some() {
        return None;
    }
    Some(WarehouseError::Query(
        first
            .message
            .clone()
            .unwrap_or_else(|| first.reason.clone().unwrap_or_default()),
    ))
}

/// A call waits at most POLL_WAIT on the server, plus the network.
fn http_client() -> anyhow::Result<reqwest_openai::Client> {
    crate::outbound::http_client("BigQuery client", Duration::from_secs(60), Duration::from_secs(10))
}

fn convert_rows(fields: &[Field], rows: &[api::Row]) -> QueryResult {
    let declared: Vec<(String, String)> = fields
        .iter()
        .map(|f| {
            let ty = if f.mode.as_deref() == Some("REPEATED") {
                "REPEATED".to_string()
            } else {
                f.ty.to_ascii_uppercase()
            };
            (f.name.clone(), ty)
        })
        .collect();
    super::typed_result(
        &declared,
        rows,
        |row, index, ty| row.f.get(index).map_or(Value::Null, |cell| convert_value(&cell.v, ty)),
        declared_format,
    )
}

/// One cell from its JSON (`v` is a string for every scalar type) and its field's type.
pub fn convert_value(v: &Json, ty: &str) -> Value {
    let text = match v {
        Json::Null => return Value::Null,
        Json::String(text) => text.as_str(),
        // REPEATED and RECORD values are arrays and objects: shown as their JSON.
        other => return Value::Text(plain_json(other).to_string()),
    };
    let converted = match ty {
        "INTEGER" | "INT64" => text.parse::<i64>().ok().map(Value::Int),
        "FLOAT" | "FLOAT64" => text.parse::<f64>().ok().map(Value::Float),
        // BIGNUMERIC has more digits than rust_decimal holds: such a value is read as a float.
        "NUMERIC" | "BIGNUMERIC" => text
            .parse::<Decimal>()
            .ok()
            .map(Value::Decimal)
            .or_else(|| text.parse::<f64>().ok().map(Value::Float)),
        "BOOLEAN" | "BOOL" => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        "DATE" => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(Value::Date),
        "DATETIME" => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
            .ok()
            .map(Value::Timestamp),
        "TIMESTAMP" => timestamp_from_seconds(text).map(Value::Timestamp),
        _ => Some(Value::Text(text.to_string())),
    };
    converted.unwrap_or_else(|| {
        tracing::warn!(ty, "a BigQuery value could not be read as its type; showing it as text");
        Value::Text(text.to_string())
    })
}

/// TIMESTAMP values come as seconds since the epoch in a float's notation (`1.7040672E9`,
/// `1704067200.123456`), in UTC; read exactly, to the microsecond.
fn timestamp_from_seconds(text: &str) -> Option<NaiveDateTime> {
    let seconds = text
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text))
        .ok()?;
    let micros = (seconds * Decimal::from(1_000_000)).round();
    let micros = i64::try_from(micros).ok()?;
    DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

/// A REPEATED or RECORD value without the `{"v": …}` and `{"f": […]}` wrappers.
fn plain_json(value: &Json) -> Json {
    match value {
        Json::Array(items) => Json::Array(items.iter().map(plain_json).collect()),
        Json::Object(object) => match (object.get("v"), object.get("f")) {
            (Some(v), _) if object.len() == 1 => plain_json(v),
            (_, Some(f)) if object.len() == 1 => plain_json(f),
            _ => Json::Object(object.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect()),
        },
        other => other.clone(),
    }
}

/// The format of a column from its BigQuery type, used when all its values are NULL.
fn declared_format(ty: &str) -> ColumnFormat {
    match ty {
        "INTEGER" | "INT64" => ColumnFormat::Integer,
        "FLOAT" | "FLOAT64" | "NUMERIC" | "BIGNUMERIC" => ColumnFormat::Number,
        "DATE" => ColumnFormat::Date,
        _ => ColumnFormat::Text,
    }
}

/// The broad kind of an `INFORMATION_SCHEMA.COLUMNS.data_type` (`INT64`, `NUMERIC(12, 2)`,
/// `ARRAY<STRING>`, `STRUCT<…>`).
pub fn column_kind(data_type: &str) -> ColumnKind {
    let base = data_type
        .split(['(', '<'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    if data_type.contains('<') {
        return ColumnKind::Other;
    }
    match base.as_str() {
        "INT64" | "INTEGER" | "INT" | "SMALLINT" | "BIGINT" | "TINYINT" | "BYTEINT" => ColumnKind::Integer,
        "NUMERIC" | "BIGNUMERIC" | "DECIMAL" | "BIGDECIMAL" | "FLOAT64" | "FLOAT" => ColumnKind::Decimal,
        "STRING" => ColumnKind::Text,
        "DATE" => ColumnKind::Date,
        "DATETIME" | "TIMESTAMP" => ColumnKind::Timestamp,
        "BOOL" | "BOOLEAN" => ColumnKind::Boolean,
        _ => ColumnKind::Other,
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Text(text) => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait]
impl Warehouse for BigQueryWarehouse {
    fn dialect(&self) -> Dialect {
        Dialect::BigQuery
    }

    async fn execute(
        &self,
        sql: &GuardedSql,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, WarehouseError> {
        self.run(sql.as_str(), sql.tag(), timeout, cancel).await
    }

    async fn execute_pages(
        &self,
        sql: &GuardedSql,
        timeout: Duration,
        cancel: &CancellationToken,
        pages: super::PageSender,
    ) -> Result<usize, WarehouseError> {
        let inner = self.inner.clone();
        let text = sql.as_str().to_string();
        let labels = job_labels(sql.tag());
        super::run_on_own_task(cancel, move |stop| async move {
            let mut rows = 0;
            inner
                .run_job(&text, labels, timeout, stop, Delivery::Pages(pages, &mut rows))
                .await?;
            Ok(rows)
        })
        .await
    }

    async fn schema(&self) -> Result<Vec<TableSchema>, WarehouseError> {
        let dataset = &self.inner.dataset;
        let sql = format!(
            "SELECT c.table_name, c.column_name, c.data_type \
             FROM `{dataset}`.INFORMATION_SCHEMA.COLUMNS AS c \
             JOIN `{dataset}`.INFORMATION_SCHEMA.TABLES AS t ON t.table_name = c.table_name \
             WHERE t.table_type IN ('BASE TABLE', 'VIEW', 'MATERIALIZED VIEW', 'EXTERNAL', 'SNAPSHOT') \
             ORDER BY c.table_name, c.ordinal_position"
        );
        let result = self.run(&sql, None, CATALOG_TIMEOUT, &CancellationToken::new()).await?;
        Ok(describe::group_by_table(result.rows.iter().filter_map(|row| {
            let (table, column, data_type) = (text(row.first())?, text(row.get(1))?, text(row.get(2))?);
            let column = ColumnSchema {
                kind: column_kind(&data_type),
                name: column,
                data_type,
                ..Default::default()
            };
            Some((table, column))
        })))
    }

    async fn describe(&self, settings: &DescribeSettings) -> Result<Vec<TableSchema>, WarehouseError> {
        let mut tables = self.schema().await?;
        if let Err(error) = self.read_keys(&mut tables).await {
            tracing::warn!(%error, "Failed to read keys from BigQuery's INFORMATION_SCHEMA");
        }
        if let Err(error) = self.read_descriptions(&mut tables).await {
            tracing::warn!(%error, "Failed to read column descriptions from BigQuery's INFORMATION_SCHEMA");
        }
        // BigQuery keeps no statistics of distinct values: every candidate column is sampled
        // (each sample is billed, within maximumBytesBilled).
        describe::sample_values(self, &mut tables, &std::collections::HashSet::new(), settings).await;
        Ok(tables)
    }

    async fn ping(&self) -> Result<(), WarehouseError> {
        let result = self
            .run("SELECT 1", None, Duration::from_secs(30), &CancellationToken::new())
            .await?;
        match result.rows.first().and_then(|row| row.first()) {
            Some(Value::Int(1)) => Ok(()),
            other => Err(WarehouseError::Unavailable(format!(
                "BigQuery answered SELECT 1 with {other:?}"
            ))),
        }
    }

    /// BigQuery's own figure from a dry run: the bytes the query would read (and bill). A
    /// statement that is not a SELECT is refused.
    async fn estimate(&self, sql: &GuardedSql) -> Result<Estimate, WarehouseError> {
        let (bytes, statement_type) = self.inner.dry_run(sql.as_str(), &job_labels(sql.tag())).await?;
        if statement_type != "SELECT" {
            return Err(WarehouseError::Query(format!(
                "BigQuery reads this as a {} statement; only SELECT queries are run",
                if statement_type.is_empty() {
                    "non-query"
                } else {
                    &statement_type
                }
            )));
        }
        Ok(Estimate {
            rows: None,
            bytes: Some(bytes),
        })
    }
}

impl BigQueryWarehouse {
    /// Primary and foreign keys (BigQuery's are declared, not enforced).
    async fn read_keys(&self, tables: &mut [TableSchema]) -> Result<(), WarehouseError> {
        let dataset = &self.inner.dataset;
        let sql = format!(
            "SELECT k.table_name, k.column_name, tc.constraint_type, k.constraint_name, \
                    u.table_name AS referenced_table, u.column_name AS referenced_column \
             FROM `{dataset}`.INFORMATION_SCHEMA.KEY_COLUMN_USAGE AS k \
             JOIN `{dataset}`.INFORMATION_SCHEMA.TABLE_CONSTRAINTS AS tc \
               ON tc.constraint_name = k.constraint_name AND tc.table_name = k.table_name \
             LEFT JOIN `{dataset}`.INFORMATION_SCHEMA.CONSTRAINT_COLUMN_USAGE AS u \
               ON tc.constraint_type = 'FOREIGN KEY' AND u.constraint_name = k.constraint_name \
             WHERE tc.constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') \
             ORDER BY k.table_name, k.constraint_name, k.ordinal_position"
        );
        let result = self.run(&sql, None, CATALOG_TIMEOUT, &CancellationToken::new()).await?;
        let mut last_constraint: Option<(String, String)> = None;
        for row in &result.rows {
            let (Some(table), Some(column), Some(kind), Some(constraint)) =
                (text(row.first()), text(row.get(1)), text(row.get(2)), text(row.get(3)))
            else {
                continue;
            };
            let Some(entry) = tables.iter_mut().find(|t| t.name == table) else {
                continue;
            };
            let same = last_constraint.as_ref() == Some(&(table.clone(), constraint.clone()));
            last_constraint = Some((table, constraint));
            match (kind.as_str(), text(row.get(4)), text(row.get(5))) {
                ("PRIMARY KEY", _, _) => entry.primary_key.push(column),
                ("FOREIGN KEY", Some(target), Some(reference)) => match entry.foreign_keys.last_mut() {
                    Some(key) if same => {
                        key.columns.push(column);
                        key.references.push(reference);
                    }
                    _ => entry.foreign_keys.push(ForeignKey {
                        columns: vec![column],
                        table: target,
                        references: vec![reference],
                    }),
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// Column descriptions (top-level columns only, not the fields of records).
    async fn read_descriptions(&self, tables: &mut [TableSchema]) -> Result<(), WarehouseError> {
        let dataset = &self.inner.dataset;
        let sql = format!(
            "SELECT table_name, column_name, description \
             FROM `{dataset}`.INFORMATION_SCHEMA.COLUMN_FIELD_PATHS \
             WHERE description IS NOT NULL AND column_name = field_path"
        );
        let result = self.run(&sql, None, CATALOG_TIMEOUT, &CancellationToken::new()).await?;
        for row in &result.rows {
            let (Some(table), Some(column), Some(description)) =
                (text(row.first()), text(row.get(1)), text(row.get(2)))
            else {
                continue;
            };
            if let Some(entry) = tables
                .iter_mut()
                .find(|t| t.name == table)
                .and_then(|t| t.column_mut(&column))
            {
                entry.comment = Some(description).filter(|d| !d.trim().is_empty());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_project_a_data_set_and_maybe_a_location() {
        assert_eq!(
            BigQuerySettings::parse_url("bigquery://my-project/analytics?location=EU"),
            Ok(("my-project".into(), "analytics".into(), Some("EU".into())))
        );
        assert_eq!(
            BigQuerySettings::parse_url("bigquery://example.com:proj/shop_2024"),
            Ok(("example.com:proj".into(), "shop_2024".into(), None))
        );
        for bad in [
            "bigquery://my-project",
            "bigquery://my-project/",
            "bigquery:///analytics",
            "bigquery://My Project/analytics",
            "bigquery://p/ana`lytics",
            "bigquery://p/a?location=eu%20west",
            "bigquery://p/a?region=EU",
            "postgres://p/a",
        ] {
            assert!(BigQuerySettings::parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_read_by_their_type() {
        let cases = [
            (json!("42"), "INTEGER", Value::Int(42)),
            (json!("-7"), "INT64", Value::Int(-7)),
            (json!("2.5"), "FLOAT", Value::Float(2.5)),
            (json!("12.30"), "NUMERIC", Value::Decimal(Decimal::new(1230, 2))),
            (json!("true"), "BOOLEAN", Value::Bool(true)),
            (json!("false"), "BOOL", Value::Bool(false)),
            (json!("EMEA"), "STRING", Value::Text("EMEA".into())),
            (
                json!("2026-03-01"),
                "DATE",
                Value::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default()),
            ),
            (json!(null), "STRING", Value::Null),
        ];
        for (v, ty, expected) in cases {
            assert_eq!(convert_value(&v, ty), expected, "{v} as {ty}");
        }
        let at = |text: &str| match convert_value(&json!(text), "TIMESTAMP") {
            Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(at("1.7040672E9"), "2024-01-01 00:00:00.000000");
        assert_eq!(at("1704067200.123456"), "2024-01-01 00:00:00.123456");
        assert_eq!(
            convert_value(&json!("2024-01-01T10:30:00.5"), "DATETIME"),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 1, 1)
                    .and_then(|d| d.and_hms_milli_opt(10, 30, 0, 500))
                    .unwrap_or_default()
            )
        );
        assert_eq!(
            convert_value(&json!([{"v": "a"}, {"v": "b"}]), "REPEATED"),
            Value::Text(r#"["a","b"]"#.into())
        );
    }

    #[test]
    fn information_schema_types_map_to_kinds() {
        assert_eq!(column_kind("INT64"), ColumnKind::Integer);
        assert_eq!(column_kind("NUMERIC(12, 2)"), ColumnKind::Decimal);
        assert_eq!(column_kind("FLOAT64"), ColumnKind::Decimal);
        assert_eq!(column_kind("STRING(40)"), ColumnKind::Text);
        assert_eq!(column_kind("DATE"), ColumnKind::Date);
        assert_eq!(column_kind("TIMESTAMP"), ColumnKind::Timestamp);
        assert_eq!(column_kind("BOOL"), ColumnKind::Boolean);
        assert_eq!(column_kind("ARRAY<STRING>"), ColumnKind::Other);
        assert_eq!(column_kind("BYTES"), ColumnKind::Other);
    }
}
