//! Snowflake through its SQL API v2 (`/api/v2/statements`), with key-pair (JWT) authentication.
//!
//! Each statement is submitted asynchronously (`async=true`) with the API's own `timeout`, then
//! polled with a growing delay until it ends; a result larger than one partition is fetched
//! partition by partition, in order. Cancelling, the client-side deadline (the API's timeout
//! plus a grace) and dropping the call all post `/cancel`, so the statement stops in Snowflake.
//! Read-only is the guard's job and the role's: give threadql a role that can only read.
//!
//! Snowflake folds unquoted names to upper case: the catalog's all-upper-case names (and result
//! columns) are described in lower case, which the compiler writes bare, so they resolve again.
pub mod auth;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use backon::BackoffBuilder;
use http::StatusCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use self::auth::KeyPairAuth;
pub use self::auth::{Clock, SystemClock};
use self::wire::{QueryStatus, ResultSet, RowType};
use super::describe::{self, DescribeSettings};
use super::{Estimate, Warehouse, WarehouseError};
use crate::config::{SnowflakeConfig, SnowflakeKey};
use crate::domain::{ColumnSchema, ForeignKey, QueryResult, TableSchema};
use crate::sql::dialect::string_literal;
use crate::sql::{Dialect, GuardedSql};

/// Extra time Snowflake's own `timeout` gets before the client cancels the statement itself.
const CLIENT_TIMEOUT_GRACE: Duration = Duration::from_secs(2);
/// How long a catalog statement (`describe`, `ping`, `estimate`) may run.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cancel request may take; the statement's own timeout stops it in any case.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
const USER_AGENT: &str = concat!("threadql/", env!("CARGO_PKG_VERSION"));

/// How the client behaves; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct SnowflakeOptions {
    /// `QUERY_TAG` of every statement, to find threadql's queries in `QUERY_HISTORY`.
    pub query_tag: String,
    /// Lifetime of each JWT (at most an hour); it is renewed shortly before it ends.
    pub token_lifetime: Duration,
    pub clock: Arc<dyn Clock>,
    /// The first wait between two polls of a running statement; it grows up to `max_poll`.
    pub first_poll: Duration,
    pub max_poll: Duration,
    /// The first wait after a `429` or `503`; it grows up to `max_poll`.
    pub first_retry: Duration,
    /// `429`/`503` answers to one request before giving up.
    pub max_retries: usize,
    /// One HTTP request (not the statement) may take this long.
    pub request_timeout: Duration,
}

impl Default for SnowflakeOptions {
    fn default() -> Self {
        Self {
            query_tag: "threadql".into(),
            token_lifetime: Duration::from_secs(59 * 60),
            clock: Arc::new(SystemClock),
            first_poll: Duration::from_millis(100),
            max_poll: Duration::from_secs(2),
            first_retry: Duration::from_millis(250),
            max_retries: 8,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A Snowflake schema read through the SQL API.
#[derive(Debug, Clone)]
pub struct SnowflakeWarehouse {
    client: Arc<Client>,
}

#[derive(Debug)]
struct Client {
    http: reqwest_openai::Client,
    base: Url,
    database: String,
    schema: String,
    warehouse: Option<String>,
    role: Option<String>,
    auth: KeyPairAuth,
    options: SnowflakeOptions,
}

/// Columns and rows as the API returns them (`jsonv2` text).
#[derive(Debug, Default)]
struct RawResult {
    columns: Vec<RowType>,
    /// Empty when the partitions were handed over as they came (`streamed` counts them).
    rows: Vec<Vec<Option<String>>>,
    streamed: usize,
}

/// A statement's text and its `QUERY_TAG` (the default tag when it has none of its own).
struct Statement {
    sql: String,
    tag: Option<String>,
}

impl Statement {
    fn of(sql: &GuardedSql) -> Self {
        Self {
            sql: sql.as_str().to_string(),
            tag: sql.tag().map(ToString::to_string),
        }
    }

    fn untagged(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            tag: None,
        }
    }
}

impl RawResult {
    /// The text of column `name` (case-insensitive) in `row`.
    fn text(&self, row: &[Option<String>], name: &str) -> Option<String> {
        let index = self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name))?;
        row.get(index).cloned().flatten()
    }
}

/// What one answer of the API means.
enum Reply {
    Done(ResultSet),
    Running(String),
}

impl SnowflakeWarehouse {
    /// Reads the private key, then checks that Snowflake accepts it (`SELECT 1`).
    pub async fn connect(config: &SnowflakeConfig) -> anyhow::Result<Self> {
        Self::connect_with(config, SnowflakeOptions::default()).await
    }

    /// Like [`SnowflakeWarehouse::connect`] with other options.
    pub async fn connect_with(config: &SnowflakeConfig, options: SnowflakeOptions) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let pem = match &config.private_key {
            SnowflakeKey::Pem(pem) => pem.expose_secret().to_string(),
            SnowflakeKey::Path(path) => std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read the Snowflake private key at {}", path.display()))?,
        };
        let auth = KeyPairAuth::new(
            &pem,
            &config.account,
            &config.user,
            options.token_lifetime,
            options.clock.clone(),
        )?;
        tracing::debug!(fingerprint = auth.fingerprint(), "Snowflake key pair loaded");
        let warehouse = Self {
            client: Arc::new(Client {
                http: http_client(options.request_timeout)?,
                base: config.api_url.clone(),
                database: object_name(&config.database),
                schema: object_name(&config.schema),
                warehouse: config.warehouse.as_deref().map(object_name),
                role: config.role.as_deref().map(object_name),
                auth,
                options,
            }),
        };
        warehouse.ping().await.context("Snowflake did not answer SELECT 1")?;
        Ok(warehouse)
    }

    /// Runs any text (catalog queries): not cancellable by a caller, bounded by its timeout.
    async fn run_raw(&self, sql: &str, timeout: Duration) -> Result<RawResult, WarehouseError> {
        self.client
            .clone()
            .run(Statement::untagged(sql), timeout, CancellationToken::new(), None)
            .await
    }

    /// Tables and columns of the URL's schema, with column comments when `comments`.
    async fn read_tables(&self, comments: bool) -> Result<Vec<TableSchema>, WarehouseError> {
        let schema = string_literal(&self.client.schema, Dialect::Snowflake);
        let comment = if comments { ", c.COMMENT" } else { "" };
        let sql = format!(
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE{comment} \
             FROM INFORMATION_SCHEMA.COLUMNS c \
             JOIN INFORMATION_SCHEMA.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA = {schema} AND t.TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'MATERIALIZED VIEW') \
             ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
        );
        let result = self.run_raw(&sql, CATALOG_TIMEOUT).await?;
        Ok(describe::group_by_table(result.rows.iter().filter_map(|row| {
            let (table, column) = (result.text(row, "TABLE_NAME")?, result.text(row, "COLUMN_NAME")?);
            let data_type = result.text(row, "DATA_TYPE").unwrap_or_default();
            let precision = result
                .text(row, "NUMERIC_PRECISION")
                .and_then(|p| p.parse::<i64>().ok());
            let scale = result.text(row, "NUMERIC_SCALE").and_then(|s| s.parse::<i64>().ok());
            let column = ColumnSchema {
                kind: wire::column_kind(&data_type, scale),
                name: wire::local_name(&column),
                data_type: match (precision, scale) {
                    (Some(precision), Some(scale)) => format!("{data_type}({precision},{scale})"),
                    _ => data_type,
                },
                comment: result.text(row, "COMMENT").filter(|c| !c.trim().is_empty()),
                ..Default::default()
            };
            Some((wire::local_name(&table), column))
        })))
    }

    /// Table comments (best effort).
    async fn read_table_comments(&self, tables: &mut [TableSchema]) -> Result<(), WarehouseError> {
        let schema = string_literal(&self.client.schema, Dialect::Snowflake);
        let result = self
            .run_raw(
                &format!(
                    "SELECT TABLE_NAME, COMMENT FROM INFORMATION_SCHEMA.TABLES \
                     WHERE TABLE_SCHEMA = {schema} AND COMMENT IS NOT NULL"
                ),
                CATALOG_TIMEOUT,
            )
            .await?;
        for row in &result.rows {
            let (Some(table), Some(comment)) = (result.text(row, "TABLE_NAME"), result.text(row, "COMMENT")) else {
                continue;
            };
            let name = wire::local_name(&table);
            if let Some(entry) = tables.iter_mut().find(|t| t.name == name) {
                entry.comment = Some(comment).filter(|c| !c.trim().is_empty());
            }
        }
        Ok(())
    }

    /// Primary and foreign keys, as declared (Snowflake does not enforce them, but they say how
    /// tables join). `INFORMATION_SCHEMA` does not list their columns; `SHOW … KEYS` does.
    async fn read_keys(&self, tables: &mut [TableSchema]) -> Result<(), WarehouseError> {
        let scope = format!("{}.{}", quoted(&self.client.database), quoted(&self.client.schema));
        let primary = self
            .run_raw(&format!("SHOW PRIMARY KEYS IN SCHEMA {scope}"), CATALOG_TIMEOUT)
            .await?;
        let mut columns: Vec<(String, u32, String)> = primary
            .rows
            .iter()
            .filter_map(|row| {
                Some((
                    wire::local_name(&primary.text(row, "table_name")?),
                    primary.text(row, "key_sequence")?.parse().ok()?,
                    wire::local_name(&primary.text(row, "column_name")?),
                ))
            })
            .collect();
        columns.sort();
        for (table, _, column) in columns {
            if let Some(entry) = tables.iter_mut().find(|t| t.name == table) {
                entry.primary_key.push(column);
            }
        }

        let imported = self
            .run_raw(&format!("SHOW IMPORTED KEYS IN SCHEMA {scope}"), CATALOG_TIMEOUT)
            .await?;
        // (table, key name, position, column, referenced table, referenced column)
        type KeyColumn = (String, String, u32, String, String, String);
        let mut keys: Vec<KeyColumn> = imported
            .rows
            .iter()
            .filter_map(|row| {
                let text = |name: &str| imported.text(row, name);
                let target_table = wire::local_name(&text("pk_table_name")?);
                let target = match text("pk_schema_name") {
                    Some(schema) if schema != self.client.schema => {
                        format!("{}.{target_table}", wire::local_name(&schema))
                    }
                    _ => target_table,
                };
                Some((
                    wire::local_name(&text("fk_table_name")?),
                    text("fk_name").unwrap_or_default(),
                    text("key_sequence")?.parse().ok()?,
                    wire::local_name(&text("fk_column_name")?),
                    target,
                    wire::local_name(&text("pk_column_name")?),
                ))
            })
            .collect();
        keys.sort();
        let mut last: Option<(String, String)> = None;
        for (table, name, _, column, target, reference) in keys {
            let Some(entry) = tables.iter_mut().find(|t| t.name == table) else {
                continue;
            };
            let same_key = last.as_ref() == Some(&(table.clone(), name.clone()));
            last = Some((table, name));
            match entry.foreign_keys.last_mut() {
                Some(key) if same_key => {
                    key.columns.push(column);
                    key.references.push(reference);
                }
                _ => entry.foreign_keys.push(ForeignKey {
                    columns: vec![column],
                    table: target,
                    references: vec![reference],
                }),
            }
        }
        Ok(())
    }
}

/// A name as a quoted identifier (`SHOW … IN SCHEMA "DB"."SCHEMA"`), exactly as the API gets it.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Client {
    /// Submits `statement`, waits for it and fetches every partition (each handed to `pages`
    /// as it arrives, when given). Stopping (`stop`, or the deadline of `timeout` plus a grace)
    /// cancels the statement in Snowflake.
    async fn run(
        self: Arc<Self>,
        statement: Statement,
        timeout: Duration,
        stop: CancellationToken,
        pages: Option<super::PageSender>,
    ) -> Result<RawResult, WarehouseError> {
        let deadline = Instant::now() + timeout + CLIENT_TIMEOUT_GRACE;
        // Not raced with `stop`: the statement's handle, needed to cancel it, comes with the
        // answer (which `async=true` gives at once).
        let handle = match self.submit(&statement, timeout, deadline).await? {
            Reply::Done(result) => return self.fetch_partitions(None, result, pages.as_ref()).await,
            Reply::Running(handle) => handle,
        };
        tracing::debug!(handle, "Snowflake statement submitted");
        if stop.is_cancelled() {
            self.cancel(&handle).await;
            return Err(WarehouseError::Cancelled);
        }
        let work = async {
            let result = self.wait(&handle, timeout).await?;
            self.fetch_partitions(Some(&handle), result, pages.as_ref()).await
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                self.cancel(&handle).await;
                Err(WarehouseError::Cancelled)
            }
            _ = tokio::time::sleep_until(deadline) => {
                self.cancel(&handle).await;
                Err(WarehouseError::Timeout(timeout))
            }
            outcome = work => {
                if let Err(WarehouseError::Unavailable(_)) = &outcome {
                    // Polling failed, not the statement: do not leave it running.
                    self.cancel(&handle).await;
                }
                outcome
            }
        }
    }

    fn statements_url(&self, path: &str) -> Result<Url, WarehouseError> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/api/v2/statements{path}"))
            .map_err(|e| WarehouseError::Unavailable(format!("bad Snowflake API URL: {e}")))
    }

    async fn submit(
        &self,
        statement: &Statement,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Reply, WarehouseError> {
        let mut body = serde_json::json!({
            "statement": statement.sql,
            // Whole seconds, at least one: 0 would mean Snowflake's maximum (7 days).
            "timeout": timeout.as_secs_f64().ceil().max(1.0) as u64,
            "database": self.database,
            "schema": self.schema,
            "parameters": {
                "QUERY_TAG": statement.tag.as_deref().unwrap_or(&self.options.query_tag),
                "MULTI_STATEMENT_COUNT": "1",
            },
        });
        if let Some(warehouse) = &self.warehouse {
            body["warehouse"] = warehouse.clone().into();
        }
        if let Some(role) = &self.role {
            body["role"] = role.clone().into();
        }
        let mut url = self.statements_url("")?;
        url.query_pairs_mut()
            .append_pair("requestId", &uuid::Uuid::new_v4().to_string())
            .append_pair("async", "true");
        let (status, text) = self
            .send(reqwest_openai::Method::POST, url, Some(&body), Some(deadline))
            .await?;
        reply(status, &text, timeout)
    }

    /// Polls the statement until it has ended.
    async fn wait(&self, handle: &str, timeout: Duration) -> Result<ResultSet, WarehouseError> {
        let mut delays = backon::ExponentialBuilder::new()
            .with_min_delay(self.options.first_poll)
            .with_max_delay(self.options.max_poll)
            .with_factor(1.5)
            .without_max_times()
            .build();
        loop {
            let url = self.statements_url(&format!("/{handle}"))?;
            let (status, text) = self.send(reqwest_openai::Method::GET, url, None, None).await?;
            match reply(status, &text, timeout)? {
                Reply::Done(result) => return Ok(result),
                Reply::Running(_) => {
                    tokio::time::sleep(delays.next().unwrap_or(self.options.max_poll)).await;
                }
            }
        }
    }

    /// Partition 0 came with the result; the others are fetched in order.
    async fn fetch_partitions(
        &self,
        handle: Option<&str>,
        first: ResultSet,
        pages: Option<&super::PageSender>,
    ) -> Result<RawResult, WarehouseError> {
        let meta = first
            .result_set_meta_data
            .ok_or_else(|| WarehouseError::Query("Snowflake returned no result set".into()))?;
        let mut raw = RawResult {
            columns: meta.row_type,
            rows: Vec::new(),
            streamed: 0,
        };
        let handle = handle.or(first.statement_handle.as_deref());
        let mut partition_rows = first.data;
        for partition in 0..meta.partition_info.len().max(1) {
            if partition > 0 {
                let Some(handle) = handle else {
                    return Err(WarehouseError::Unavailable(
                        "Snowflake returned several partitions without a statement handle".into(),
                    ));
                };
                let mut url = self.statements_url(&format!("/{handle}"))?;
                url.query_pairs_mut().append_pair("partition", &partition.to_string());
                let (status, text) = self.send(reqwest_openai::Method::GET, url, None, None).await?;
                if status != StatusCode::OK {
                    return Err(unexpected(status, &text));
                }
                partition_rows = parse::<ResultSet>(&text)?.data;
            }
            let rows = std::mem::take(&mut partition_rows);
            match pages {
                Some(pages) => {
                    raw.streamed += rows.len();
                    let page = wire::convert(&raw.columns, &rows);
                    drop(rows);
                    pages.send(page).await.map_err(|_| WarehouseError::Cancelled)?;
                }
                None => raw.rows.extend(rows),
            }
        }
        Ok(raw)
    }
    /// Sends one request with a fresh token: a `401` is retried once with a new token, `429`
    /// and `503` after a growing delay. Answers the status and the body of anything else.
    async fn send(
        &self,
        method: reqwest_openai::Method,
        url: Url,
        body: Option<&serde_json::Value>,
        deadline: Option<Instant>,
    ) -> Result<(StatusCode, String), WarehouseError> {
        let mut delays = backon::ExponentialBuilder::new()
            .with_min_delay(self.options.first_retry)
            .with_max_delay(self.options.max_poll)
            .with_jitter()
            .with_max_times(self.options.max_retries)
            .build();
        let mut renewed = false;
        let mut retried = false;
        loop {
            let token = self
                .auth
                .token()
                .map_err(|e| WarehouseError::Unavailable(format!("cannot sign the Snowflake JWT: {e:#}")))?;
            let mut target = url.clone();
            if retried && body.is_some() {
                // The same requestId with retry=true: Snowflake runs the statement only once.
                target.query_pairs_mut().append_pair("retry", "true");
            }
            let mut request = self
                .http
                .request(method.clone(), target)
                .bearer_auth(token)
                .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
                .header(http::header::ACCEPT, "application/json")
                .header(http::header::USER_AGENT, USER_AGENT);
            if let Some(body) = body {
                request = request
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let response = request
                .send()
                .await
                .map_err(|e| WarehouseError::Unavailable(format!("cannot reach Snowflake at {}: {e}", self.base)))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| WarehouseError::Unavailable(format!("Snowflake's answer was cut short: {e}")))?;
            match status {
                StatusCode::UNAUTHORIZED if !renewed => {
                    // An expired or refused token: sign a new one, once.
                    tracing::debug!(body = %text, "Snowflake refused the JWT; signing a new one");
                    self.auth.forget();
                    renewed = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let failure: QueryStatus = serde_json::from_str(&text).unwrap_or_default();
                    return Err(WarehouseError::Unavailable(format!(
                        "Snowflake refused the key-pair login (HTTP {}: {}); check the user, the private key, \
                         and that the user's RSA_PUBLIC_KEY is its public key (fingerprint {})",
                        status.as_u16(),
                        failure.message.unwrap_or_default(),
                        self.auth.fingerprint()
                    )));
                }
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    let Some(delay) = delays.next() else {
                        return Err(WarehouseError::Unavailable(format!(
                            "Snowflake kept answering HTTP {} (too many requests)",
                            status.as_u16()
                        )));
                    };
                    if deadline.is_some_and(|deadline| Instant::now() + delay >= deadline) {
                        return Err(WarehouseError::Unavailable(format!(
                            "Snowflake answered HTTP {} until the statement's time was up",
                            status.as_u16()
                        )));
                    }
                    tracing::debug!(status = status.as_u16(), ?delay, "Snowflake is throttling; retrying");
                    tokio::time::sleep(delay).await;
                    retried = true;
                }
                _ => return Ok((status, text)),
            }
        }
    }

    /// Asks Snowflake to stop the statement (best effort: its own timeout stops it anyway).
    async fn cancel(&self, handle: &str) {
        let Ok(url) = self.statements_url(&format!("/{handle}/cancel")) else {
            return;
        };
        match tokio::time::timeout(
            CANCEL_TIMEOUT,
            self.send(reqwest_openai::Method::POST, url, Some(&serde_json::json!({})), None),
        )
        .await
        {
            Ok(Ok((StatusCode::OK, _))) => tracing::debug!(handle, "cancelled the Snowflake statement"),
            Ok(Ok((status, text))) => {
                tracing::warn!(handle, status = status.as_u16(), body = %text, "Snowflake did not cancel the statement")
            }
            Ok(Err(error)) => tracing::warn!(handle, %error, "failed to cancel the Snowflake statement"),
            Err(_) => tracing::warn!(handle, "cancelling the Snowflake statement took too long"),
        }
    }
}

/// What a statement's status code and body mean.
fn reply(status: StatusCode, text: &str, timeout: Duration) -> Result<Reply, WarehouseError> {
    match status {
        StatusCode::OK => Ok(Reply::Done(parse(text)?)),
        StatusCode::ACCEPTED => {
            let status: QueryStatus = parse(text)?;
            status
                .statement_handle
                .map(Reply::Running)
                .ok_or_else(|| WarehouseError::Unavailable("Snowflake accepted the statement without a handle".into()))
        }
        StatusCode::REQUEST_TIMEOUT => Err(WarehouseError::Timeout(timeout)),
        StatusCode::UNPROCESSABLE_ENTITY => {
            let failure: QueryStatus = serde_json::from_str(text).unwrap_or_default();
            tracing::debug!(code = ?failure.code, sql_state = ?failure.sql_state, "Snowflake statement failed");
            // 000604: "SQL execution canceled" (someone else cancelled it).
            if failure.code.as_deref() == Some("000604") {
                return Err(WarehouseError::Cancelled);
            }
            Err(WarehouseError::Query(
                failure
                    .message
                    .unwrap_or_else(|| "Snowflake could not run the statement".into()),
            ))
        }
        other => Err(unexpected(other, text)),
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, WarehouseError> {
    serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(200).collect();
        WarehouseError::Unavailable(format!(
            "Snowflake's answer is not what the SQL API returns ({e}): {start}"
        ))
    })
}

fn unexpected(status: StatusCode, text: &str) -> WarehouseError {
    let failure: QueryStatus = serde_json::from_str(text).unwrap_or_default();
    let message = failure.message.unwrap_or_else(|| text.chars().take(200).collect());
    WarehouseError::Unavailable(format!("Snowflake answered HTTP {}: {message}", status.as_u16()))
}

/// A database, schema, warehouse or role name as the API wants it: the API's fields are
/// case-sensitive, so a name written as a plain unquoted identifier is upper-cased the way
/// Snowflake resolves it; anything else (`"My Db"`, mixed case) is kept as written.
fn object_name(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !name.chars().any(|c| c.is_ascii_uppercase());
    if plain {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    }
}

fn http_client(request_timeout: Duration) -> anyhow::Result<reqwest_openai::Client> {
    crate::outbound::http_client("Snowflake client", request_timeout, Duration::from_secs(10))
}

#[async_trait]
impl Warehouse for SnowflakeWarehouse {
    fn dialect(&self) -> Dialect {
        Dialect::Snowflake
    }

    async fn execute(
        &self,
        sql: &GuardedSql,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<QueryResult, WarehouseError> {
        let client = self.client.clone();
        let statement = Statement::of(sql);
        super::run_on_own_task(cancel, move |stop| async move {
            let raw = client.run(statement, timeout, stop, None).await?;
            Ok(wire::convert(&raw.columns, &raw.rows))
        })
        .await
    }

    async fn execute_pages(
        &self,
        sql: &GuardedSql,
        timeout: Duration,
        cancel: &CancellationToken,
        pages: super::PageSender,
    ) -> Result<usize, WarehouseError> {
        let client = self.client.clone();
        let statement = Statement::of(sql);
        super::run_on_own_task(cancel, move |stop| async move {
            let raw = client.run(statement, timeout, stop, Some(pages)).await?;
            Ok(raw.streamed)
        })
        .await
    }

    async fn schema(&self) -> Result<Vec<TableSchema>, WarehouseError> {
        self.read_tables(false).await
    }

    async fn describe(&self, settings: &DescribeSettings) -> Result<Vec<TableSchema>, WarehouseError> {
        let mut tables = match self.read_tables(true).await {
            Ok(tables) => tables,
            Err(error) => {
                tracing::warn!(%error, "Failed to read column comments; describing without them");
                self.read_tables(false).await?
            }
        };
        if let Err(error) = self.read_table_comments(&mut tables).await {
            tracing::warn!(%error, "Failed to read table comments from the Snowflake catalog");
        }
        if let Err(error) = self.read_keys(&mut tables).await {
            tracing::warn!(%error, "Failed to read keys from the Snowflake catalog");
        }
        // Snowflake keeps no statistics of distinct values that are cheap to read: every
        // candidate text column is sampled.
        describe::sample_values(self, &mut tables, &std::collections::HashSet::new(), settings).await;
        Ok(tables)
    }

    async fn ping(&self) -> Result<(), WarehouseError> {
        self.run_raw("SELECT 1", CATALOG_TIMEOUT).await.map(|_| ())
    }

    /// Snowflake's plan (`EXPLAIN USING JSON`): the bytes of the micro-partitions it would scan
    /// after pruning. It gives no row estimate.
    async fn estimate(&self, sql: &GuardedSql) -> Result<Estimate, WarehouseError> {
        let result = self
            .run_raw(&format!("EXPLAIN USING JSON {}", sql.as_str()), CATALOG_TIMEOUT)
            .await?;
        let plan = result
            .rows
            .first()
            .and_then(|row| row.first().cloned().flatten())
            .ok_or_else(|| WarehouseError::Query("EXPLAIN returned no plan".into()))?;
        let plan: serde_json::Value = serde_json::from_str(&plan)
            .map_err(|e| WarehouseError::Query(format!("EXPLAIN's plan is not JSON: {e}")))?;
        let stats = &plan["GlobalStats"];
        tracing::debug!(
            partitions_assigned = ?stats["partitionsAssigned"].as_u64(),
            partitions_total = ?stats["partitionsTotal"].as_u64(),
            "Snowflake's estimate"
        );
        Ok(Estimate {
            rows: None,
            bytes: stats["bytesAssigned"].as_u64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_of_the_api_means_a_result_a_handle_or_an_error() {
        let timeout = Duration::from_secs(5);
        let running = reply(StatusCode::ACCEPTED, r#"{"statementHandle": "01b2-h"}"#, timeout);
        assert!(matches!(running, Ok(Reply::Running(handle)) if handle == "01b2-h"));
        let done = reply(
            StatusCode::OK,
            r#"{"resultSetMetaData": {"numRows": 0, "rowType": [], "partitionInfo": []}, "data": []}"#,
            timeout,
        );
        assert!(matches!(done, Ok(Reply::Done(_))));
        let failed = reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"code": "002003", "sqlState": "42S02", "message": "SQL compilation error: Object 'X' does not exist."}"#,
            timeout,
        );
        assert!(matches!(&failed, Err(WarehouseError::Query(m)) if m.starts_with("SQL compilation error")));
        let cancelled = reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"code": "000604", "sqlState": "57014", "message": "SQL execution canceled"}"#,
            timeout,
        );
        assert!(matches!(cancelled, Err(WarehouseError::Cancelled)));
        let timed_out = reply(StatusCode::REQUEST_TIMEOUT, "{}", timeout);
        assert!(matches!(timed_out, Err(WarehouseError::Timeout(t)) if t == timeout));
        let broken = reply(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>", timeout);
        assert!(matches!(&broken, Err(WarehouseError::Unavailable(m)) if m.contains("502")));
    }

    #[test]
    fn plain_names_are_upper_cased_for_the_api_and_others_kept() {
        assert_eq!(object_name("analytics"), "ANALYTICS");
        assert_eq!(object_name("ANALYTICS"), "ANALYTICS");
        assert_eq!(object_name("reporting_wh"), "REPORTING_WH");
        assert_eq!(object_name("MyDb"), "MyDb");
        assert_eq!(object_name("my db"), "my db");
    }
}
