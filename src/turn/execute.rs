//! Guarding and running a version's SQL, with its history and audit rows.
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::cancel::CancelReason;
use super::run::{TurnContext, TurnRequest};
use crate::access::Grant;
use crate::domain::{bytes_text, Answer, ErrorCode, ProposedQuery, QueryId, QueryResult, QueryVersion, Reply};
use crate::sql::{GuardError, GuardedSql, QueryTag};
use crate::store::{AuditRecord, QueryRecord, QueryStatus};
use crate::warehouse::{Estimate, PageSender, WarehouseError};

/// What someone in no role (and without a default role) is told.
const NO_ROLE: &str =
    "You are in no threadql role, so I can't read the warehouse for you. Ask your data team to add you to one.";

/// How long the cost guard waits for the warehouse's estimate.
const ESTIMATE_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of a warehouse run for a version.
pub(super) struct Execution {
    /// Empty when the rows were handed over page by page ([`Run::pages`]).
    pub result: QueryResult,
    pub rows: usize,
    pub duration: Duration,
}

/// One run of a version's query.
pub(super) struct Run<'a> {
    pub question: &'a str,
    pub query_id: &'a QueryId,
    pub query: &'a ProposedQuery,
    /// The version's number in the thread (the next one for a new question): its query tag.
    pub version: usize,
    pub row_cap: usize,
    pub consent: Consent,
    /// Hands the rows over page by page as the warehouse delivers them (an export) instead of
    /// collecting them into [`Execution::result`].
    pub pages: Option<PageSender>,
}

impl<'a> Run<'a> {
    /// A run of a version the thread already has.
    pub(super) fn of(version: &'a QueryVersion, row_cap: usize) -> Self {
        Self {
            question: &version.question,
            query_id: &version.query_id,
            query: &version.query,
            version: version.number,
            row_cap,
            consent: Consent::of(version),
            pages: None,
        }
    }
}

/// Why a query did not produce a result.
pub(super) struct Failure {
    /// What the user is told.
    pub reply: Reply,
    /// The guard's or the warehouse's own words, for an interpreter that can correct itself
    /// (never shown in the thread).
    pub error: String,
    /// Whether a corrected query could succeed (not after a timeout or an outage).
    pub revisable: bool,
    /// A newer question stopped this one.
    pub superseded: bool,
    /// The cost guard held it back: what it would read, for a "Run anyway" question.
    pub confirm: Option<String>,
}

/// Whether the cost guard's confirmation threshold applies to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Consent {
    /// Held back above `THREADQL_CONFIRM_ABOVE`.
    Ask,
    /// The asker pressed "Run anyway" for this version (the refusal threshold still applies).
    Given,
}

impl Consent {
    /// A version run anyway once keeps its consent (its export, its chart, undo back to it).
    pub(super) fn of(version: &QueryVersion) -> Self {
        if version.confirmed {
            Self::Given
        } else {
            Self::Ask
        }
    }
}

impl TurnContext {
    /// What the asker of `message` may read; someone in no role (and without a default role)
    /// gets the refusal to reply with, audited.
    pub(super) async fn grant(&self, message: &TurnRequest) -> Result<Grant, Reply> {
        let team = self.key.team().as_str();
        if let Some(grant) = self.services.access.grant(team, message.user.as_str()).await {
            return Ok(grant);
        }
        self.audit(
            message,
            "permission_refused",
            Some(ErrorCode::NotPermitted),
            "in no role".into(),
        )
        .await;
        Err(Reply::error_with(ErrorCode::NotPermitted, NO_ROLE.to_string()))
    }

    pub(super) fn answer(&self, summary: String, execution: Execution, query_id: QueryId, version: usize) -> Reply {
        let total_rows = execution.rows;
        Reply::Answer(Box::new(Answer {
            summary,
            capped: total_rows >= self.services.limits.answer_fetch_cap,
            total_rows,
            result: execution.result,
            duration: execution.duration,
            query_id,
            version,
        }))
    }

    /// Guards and runs a proposed query, recording it in the query history. A failure comes
    /// back as the reply that explains it.
    pub(super) async fn execute(&self, message: &TurnRequest, run: Run<'_>) -> Result<Execution, Failure> {
        let Run {
            question,
            query_id,
            query: proposed,
            version,
            row_cap,
            consent,
            pages,
        } = run;
        let services = &self.services;
        let record = |status: QueryStatus,
                      sql: &str,
                      duration: Duration,
                      rows: Option<usize>,
                      error: Option<(ErrorCode, String)>| QueryRecord {
            query_id: query_id.clone(),
            thread: self.key.clone(),
            user: message.user.clone(),
            question: question.to_string(),
            sql: sql.to_string(),
            status,
            duration_ms: duration.as_millis() as i64,
            row_count: rows.map(|r| r as i64),
            error_code: error.as_ref().map(|(code, _)| *code),
            error: error.map(|(_, text)| text),
        };
        // The asker's roles: a click is checked against the clicker, an export against whoever
        // asked for it.
        let grant = self.grant(message).await.map_err(|reply| Failure {
            error: NO_ROLE.to_string(),
            reply,
            revisable: false,
            superseded: false,
            confirm: None,
        })?;
        let checked =
            tracing::info_span!("guard", engine = services.guard.dialect().engine()).in_scope(|| match &grant.policy {
                None => services
                    .guard
                    .check(&proposed.sql, row_cap as u64)
                    .map(|guarded| (guarded, None)),
                Some(policy) => {
                    let columns = services.access.columns();
                    let columns_of = |table: &str| columns.get(table).cloned();
                    services
                        .guard
                        .check_with_policy(&proposed.sql, row_cap as u64, policy, &columns_of)
                        .map(|(guarded, disclosure)| (guarded, Some(disclosure)))
                }
            });
        let (guarded, disclosure) = match checked {
            Ok((guarded, disclosure)) => (guarded.tagged(QueryTag::new(&self.key, version)), disclosure),
            Err(error) => {
                let permission = grant.policy.is_some()
                    && matches!(
                        error,
                        GuardError::ColumnNotAllowed(_)
                            | GuardError::RelationNotAllowed(_)
                            | GuardError::InvalidRowFilter(_)
                    );
                let (code, action) = if permission {
                    (ErrorCode::NotPermitted, "permission_refused")
                } else {
                    (ErrorCode::QueryRefused, "sql_refused")
                };
                let roles = if grant.roles.is_empty() {
                    String::new()
                } else {
                    format!(" (roles: {})", grant.roles.join(", "))
                };
                self.audit(message, action, Some(code), format!("{error}{roles}: {}", proposed.sql))
                    .await;
                self.history(record(
                    QueryStatus::Refused,
                    &proposed.sql,
                    Duration::ZERO,
                    None,
                    Some((code, error.to_string())),
                ))
                .await;
                // The guard's reason is our own wording, safe and useful to show.
                return Err(Failure {
                    reply: Reply::error_with(code, super::run::as_sentence(&error.to_string())),
                    error: error.to_string(),
                    revisable: true,
                    superseded: false,
                    confirm: None,
                });
            }
        };
        if let Some(disclosure) = &disclosure {
            self.disclose(disclosure.clone());
            let filters = if disclosure.row_filters.is_empty() {
                "no row filter".to_string()
            } else {
                disclosure.row_filter_lines().join("; ")
            };
            self.audit(
                message,
                "policy_applied",
                None,
                format!(
                    "roles {}; read {}; {filters}; {}",
                    grant.roles.join(", "),
                    disclosure.columns.iter().cloned().collect::<Vec<_>>().join(", "),
                    guarded.hash()
                ),
            )
            .await;
        }
        let estimated_bytes = self.cost_guard(message, &guarded, consent).await?;
        // Held until the query ends: caps running queries per user and for the warehouse.
        let _slot = match services.slots.acquire(&message.user).await {
            Ok(permit) => permit,
            Err(busy) => {
                return Err(Failure {
                    reply: Reply::error_with(ErrorCode::TooManyQueries, super::run::as_sentence(&busy.to_string())),
                    error: busy.to_string(),
                    revisable: false,
                    superseded: false,
                    confirm: None,
                });
            }
        };
        let started = Instant::now();
        let engine = services.warehouse.dialect().engine();
        let span = tracing::info_span!(
            "warehouse.query",
            engine,
            outcome = tracing::field::Empty,
            rows = tracing::field::Empty,
        );
        let timeout = services.limits.query_timeout;
        let outcome = match pages {
            Some(pages) => services
                .warehouse
                .execute_pages(&guarded, timeout, self.signal.token(), pages)
                .instrument(span.clone())
                .await
                .map(|rows| (QueryResult::default(), rows)),
            None => services
                .warehouse
                .execute(&guarded, timeout, self.signal.token())
                .instrument(span.clone())
                .await
                .map(|result| {
                    let rows = result.rows.len();
                    (result, rows)
                }),
        };
        let duration = started.elapsed();
        let metrics = &services.metrics;
        let count = |outcome: &str| {
            metrics.warehouse_queries.with_label_values(&[engine, outcome]).inc();
            metrics
                .query_seconds
                .with_label_values(&[engine, outcome])
                .observe(duration.as_secs_f64());
        };
        match outcome {
            Ok((mut result, rows)) => {
                count("ok");
                span.record("outcome", "ok");
                span.record("rows", rows);
                metrics.warehouse_rows.with_label_values(&[engine]).inc_by(rows as u64);
                result.apply_formats(&proposed.formats);
                self.history(record(
                    QueryStatus::Succeeded,
                    guarded.as_str(),
                    duration,
                    Some(rows),
                    None,
                ))
                .await;
                let read = match estimated_bytes {
                    Some(bytes) => format!("about {} read", bytes_text(bytes)),
                    None => "bytes read not estimated".to_string(),
                };
                self.audit(
                    message,
                    "query_executed",
                    None,
                    format!(
                        "version {version}: {rows} rows in {} ms, {read}; {}",
                        duration.as_millis(),
                        guarded.hash()
                    ),
                )
                .await;
                Ok(Execution { result, rows, duration })
            }
            Err(error) => {
                let superseded = self.signal.reason() == Some(CancelReason::Superseded);
                let (status, code, label, revisable) = match &error {
                    WarehouseError::Timeout(_) => (QueryStatus::TimedOut, ErrorCode::QueryTimedOut, "timeout", false),
                    WarehouseError::Cancelled if superseded => {
                        (QueryStatus::Cancelled, ErrorCode::QuerySuperseded, "cancelled", false)
                    }
                    WarehouseError::Cancelled => {
                        (QueryStatus::Cancelled, ErrorCode::QueryCancelled, "cancelled", false)
                    }
                    WarehouseError::Unavailable(_) => (
                        QueryStatus::Failed,
                        ErrorCode::WarehouseUnavailable,
                        "unavailable",
                        false,
                    ),
                    WarehouseError::Query(_) => (QueryStatus::Failed, ErrorCode::QueryFailed, "error", true),
                };
                count(label);
                span.record("outcome", label);
                if let WarehouseError::Cancelled = error {
                    let reason = if superseded { "superseded" } else { "user" };
                    metrics
                        .warehouse_cancellations
                        .with_label_values(&[engine, reason])
                        .inc();
                }
                // The engine's own text goes to the log and the history row, not the thread.
                tracing::warn!(thread = %self.key, %error, code = %code, "A query failed");
                self.audit(
                    message,
                    "query_failed",
                    Some(code),
                    format!(
                        "version {version} after {} ms; {}",
                        duration.as_millis(),
                        guarded.hash()
                    ),
                )
                .await;
                self.history(record(
                    status,
                    guarded.as_str(),
                    duration,
                    None,
                    Some((code, error.to_string())),
                ))
                .await;
                let reply = match code {
                    ErrorCode::QueryCancelled | ErrorCode::QuerySuperseded => {
                        Reply::error_with(code, format!("It was the query for “{question}”."))
                    }
                    _ => Reply::error(code),
                };
                Err(Failure {
                    reply,
                    error: error.to_string(),
                    revisable,
                    superseded,
                    confirm: None,
                })
            }
        }
    }

    async fn history(&self, record: QueryRecord) {
        if let Err(error) = self.services.store.record_query(&record).await {
            tracing::error!(thread = %self.key, ?error, "Failed to record query history");
        }
    }

    pub(super) async fn audit(&self, message: &TurnRequest, action: &str, code: Option<ErrorCode>, detail: String) {
        let record = AuditRecord {
            thread: self.key.clone(),
            user: message.user.clone(),
            event_id: message.event_id.clone(),
            action: action.to_string(),
            code,
            detail,
        };
        if let Err(error) = self.services.store.record_audit(&record).await {
            tracing::error!(thread = %self.key, ?error, "Failed to record an audit row");
        }
    }

    /// Asks the warehouse what the statement would read when a threshold or a daily budget is
    /// set: above `THREADQL_REFUSE_ABOVE` it is refused, above `THREADQL_CONFIRM_ABOVE` it waits
    /// for "Run anyway" (unless given), past a daily budget it is refused until the next UTC day;
    /// otherwise its estimate is charged to the asker's and the channel's budgets. An estimate
    /// that fails lets the statement run: the warehouse's own limits (timeout, BigQuery's bytes
    /// billed) still hold.
    async fn cost_guard(
        &self,
        message: &TurnRequest,
        guarded: &GuardedSql,
        consent: Consent,
    ) -> Result<Option<u64>, Failure> {
        let limits = &self.services.limits;
        if limits.confirm_above.is_none() && limits.refuse_above.is_none() && !limits.daily_budgets.is_set() {
            return Ok(None);
        }
        let engine = self.services.warehouse.dialect().engine();
        let estimated = tokio::time::timeout(ESTIMATE_TIMEOUT, self.services.warehouse.estimate(guarded)).await;
        let estimate = match estimated {
            Ok(Ok(estimate)) => estimate,
            Ok(Err(error)) => {
                tracing::warn!(thread_key = %self.key, %error, "the warehouse could not estimate a query; running it");
                return Ok(None);
            }
            Err(_) => {
                tracing::warn!(thread_key = %self.key, "the warehouse's estimate took too long; running the query");
                return Ok(None);
            }
        };
        let metrics = &self.services.metrics;
        if let Some(bytes) = estimate.bytes {
            metrics
                .warehouse_bytes_estimated
                .with_label_values(&[engine])
                .inc_by(bytes);
        }
        let decided = |decision: &str| {
            metrics
                .cost_guard_decisions
                .with_label_values(&[engine, decision])
                .inc();
        };
        if let Some(limit) = limits.refuse_above.filter(|limit| limit.exceeded_by(&estimate)) {
            decided("refused");
            let detail = format!(
                "It would read about {}; the limit is {limit}.",
                limit.describe(&estimate)
            );
            return Err(refusal(ErrorCode::QueryTooExpensive, detail));
        }
        if let Some(limit) = limits.confirm_above.filter(|limit| limit.exceeded_by(&estimate)) {
            if consent == Consent::Ask {
                decided("confirm");
                let text = format!(
                    "This query would read about {} of the warehouse (more than {limit}), so I haven't run it.",
                    limit.describe(&estimate)
                );
                return Err(Failure {
                    reply: Reply::Text(text.clone()),
                    error: text.clone(),
                    revisable: false,
                    superseded: false,
                    confirm: Some(text),
                });
            }
        }
        if let Some(failure) = self.charge_budgets(message, &estimate).await {
            decided("over_budget");
            return Err(failure);
        }
        Ok(estimate.bytes)
    }

    /// Refuses a statement whose estimate would take the asker or the channel past today's
    /// budget, and otherwise charges the estimate to both. A store that cannot be reached lets
    /// the statement run (logged): the budget is a guard rail, the warehouse's own limits hold.
    async fn charge_budgets(&self, message: &TurnRequest, estimate: &Estimate) -> Option<Failure> {
        let budgets = self.services.limits.daily_budgets;
        let bytes = estimate.bytes?;
        let mut budgeted = Vec::new();
        if let Some(limit) = budgets.per_user {
            budgeted.push((format!("user:{}:{}", self.key.team(), message.user), limit, "your"));
        }
        if let Some(limit) = budgets.per_channel {
            budgeted.push((
                format!("channel:{}:{}", self.key.team(), self.key.channel()),
                limit,
                "this channel's",
            ));
        }
        if budgeted.is_empty() {
            return None;
        }
        let day = chrono::Utc::now().date_naive().to_string();
        let subjects: Vec<String> = budgeted.iter().map(|(subject, _, _)| subject.clone()).collect();
        let store = &self.services.store;
        let used = match store.charge_daily_bytes(&day, &subjects, 0).await {
            Ok(used) => used,
            Err(error) => {
                tracing::error!(thread_key = %self.key, ?error, "the daily budgets could not be read; running the query");
                return None;
            }
        };
        for ((_, limit, whose), used) in budgeted.iter().zip(&used) {
            if used.saturating_add(bytes) > *limit {
                let detail = format!(
                    "It would read about {}, and {whose} reads today come to {} of a daily budget of {}.",
                    bytes_text(bytes),
                    bytes_text(*used),
                    bytes_text(*limit)
                );
                self.audit(
                    message,
                    "budget_exceeded",
                    Some(ErrorCode::DailyBudgetExceeded),
                    detail.clone(),
                )
                .await;
                return Some(refusal(ErrorCode::DailyBudgetExceeded, detail));
            }
        }
        if let Err(error) = store.charge_daily_bytes(&day, &subjects, bytes).await {
            tracing::error!(thread_key = %self.key, ?error, "a query's estimate could not be charged to the daily budgets");
        }
        None
    }
}

/// A statement the cost guard will not run: `detail` is our own wording (the estimate and the
/// limit), safe to show.
fn refusal(code: ErrorCode, detail: String) -> Failure {
    Failure {
        reply: Reply::error_with(code, detail.clone()),
        error: detail,
        revisable: false,
        superseded: false,
        confirm: None,
    }
}
