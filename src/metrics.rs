//! Prometheus metrics: one explicit registry, handles in a struct, bounded labels only.
//!
//! Every series whose label values are known in advance is created (at zero) when the registry
//! is built, so `rate()` and the alerts see a series before the first event.
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::domain::ErrorCode;

/// The `intent` label of the turn metrics (see `crate::turn::intent_of`).
pub const INTENTS: [&str; 12] = [
    "ask",
    "schedule",
    "schedules",
    "help",
    "show_sql",
    "export_csv",
    "undo",
    "cancel",
    "chart",
    "explain",
    "run_anyway",
    "why_this_result",
];
/// The `endpoint` label of `threadql_slack_requests_total`.
pub const INGRESS_ENDPOINTS: [&str; 4] = ["events", "interactions", "commands", "socket_mode"];
/// The `outcome` label of `threadql_slack_requests_total`.
pub const INGRESS_OUTCOMES: [&str; 9] = [
    "accepted",
    "duplicate",
    "rate_limited",
    "overloaded",
    "unauthorized",
    "bad_request",
    "ignored",
    "help",
    // A channel's members or a user group changed: caches dropped, nothing for a thread.
    "membership",
];
/// The `engine` label of the warehouse metrics.
pub const ENGINES: [&str; 5] = ["postgres", "sqlite", "mysql", "snowflake", "bigquery"];
/// The `outcome` label of the warehouse metrics.
pub const QUERY_OUTCOMES: [&str; 5] = ["ok", "error", "timeout", "cancelled", "unavailable"];
/// The `reason` label of `threadql_warehouse_cancellations_total`.
pub const CANCEL_REASONS: [&str; 2] = ["user", "superseded"];
/// Slack Web API methods threadql calls (the `method` label).
pub const SLACK_METHODS: [&str; 17] = [
    "auth.test",
    "apps.connections.open",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "reactions.add",
    "files.getUploadURLExternal",
    "files.upload",
    "files.completeUploadExternal",
    "usergroups.list",
    "conversations.info",
    "conversations.members",
    "conversations.open",
    "users.info",
    "conversations.history",
    "conversations.replies",
    "views.open",
];
/// The `action` label of `threadql_schedules_changed_total`.
pub const SCHEDULE_ACTIONS: [&str; 6] = [
    "created",
    "paused",
    "resumed",
    "edited",
    "deleted",
    "paused_by_threadql",
];
/// The `outcome` label of `threadql_slack_api_calls_total`.
pub const SLACK_OUTCOMES: [&str; 4] = ["ok", "refused", "rate_limited", "error"];
/// The `outcome` label of `threadql_snapshot_writes_total`.
pub const SNAPSHOT_OUTCOMES: [&str; 4] = ["saved", "stale", "fenced", "failed"];

/// Something to bring up to date just before a scrape (sampled gauges).
type Refresh = Box<dyn Fn() + Send + Sync>;

/// Metric handles. Labels are bounded enums (endpoint, outcome, intent), never users or threads.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    refreshers: Arc<Mutex<Vec<Refresh>>>,
    /// Slack requests received, by endpoint and outcome ([`INGRESS_OUTCOMES`]).
    pub slack_requests: IntCounterVec,
    /// Turns handled by thread actors, by intent and outcome (the error table's outcome labels,
    /// plus `answered`, `replied`, `ignored`).
    pub turns: IntCounterVec,
    /// Time one turn took, from its start to its replies handed to Slack, by intent.
    pub turn_seconds: HistogramVec,
    /// Warehouse query duration in seconds, by engine and outcome.
    pub query_seconds: HistogramVec,
    /// Warehouse queries, by engine and outcome.
    pub warehouse_queries: IntCounterVec,
    /// Rows the warehouse returned, by engine.
    pub warehouse_rows: IntCounterVec,
    /// Bytes the warehouse estimated statements would read, before running them (the cost
    /// guard), by engine.
    pub warehouse_bytes_estimated: IntCounterVec,
    /// Statements the cost guard held back, by engine and decision (`confirm`, `refused`).
    pub cost_guard_decisions: IntCounterVec,
    /// Queries stopped in the warehouse, by engine and reason (`user`, `superseded`).
    pub warehouse_cancellations: IntCounterVec,
    /// Live thread actors.
    pub live_threads: IntGauge,
    /// Thread actors started, by source (`snapshot`: an existing thread read back; `new`).
    pub activations: IntCounterVec,
    /// Time from a thread actor's start to its first message being handled (its snapshot read).
    pub activation_seconds: Histogram,
    /// Idle thread actors stopped (their state is in their snapshot).
    pub passivations: IntCounter,
    /// Threads reloaded from their snapshot after a turn panicked.
    pub restarts: IntCounter,
    /// Messages waiting in or being handled by thread actors, summed over live actors (sampled
    /// at each scrape).
    pub mailbox_messages: IntGauge,
    /// The deepest live thread actor's messages (sampled at each scrape).
    pub mailbox_messages_max: IntGauge,
    /// Snapshot writes, by outcome (`saved`, `stale`: refused as based on an old version,
    /// `failed`).
    pub snapshot_writes: IntCounterVec,
    /// Snapshots written in one statement.
    pub snapshot_batch_size: Histogram,
    /// Time one batch of snapshot writes took.
    pub snapshot_write_seconds: Histogram,
    /// Slack Web API calls, by method and outcome.
    pub slack_api_calls: IntCounterVec,
    /// Time waited before retrying a Slack call, by reason (`rate_limited`: a 429's
    /// Retry-After; `error`: 5xx or network backoff).
    pub slack_retry_wait_seconds: HistogramVec,
    /// Outbound Slack messages waiting for their channel's pace or a retry.
    pub slack_outbox_waiting: IntGauge,
    pub backlog: IntGauge,
    /// Chat completions, by kind (`interpret`, `revise`) and outcome (`query`, `clarify`,
    /// `not_understood`, `unavailable`, `error`).
    pub llm_completions: IntCounterVec,
    /// Tokens sent to and received from the language model, by direction (`prompt`, `completion`).
    pub llm_tokens: IntCounterVec,
    /// Time one chat completion took (retries included), by outcome (`ok`, `error`).
    pub llm_seconds: HistogramVec,
    /// HTTP requests to the language model that were retried, by reason (`rate_limited`,
    /// `server_error`, `timeout`, `connect`).
    pub llm_retries: IntCounterVec,
    /// Chat completions one question needed (1 = no correction), observed once per answered question.
    pub llm_attempts: Histogram,
    /// Corrected queries the interpreter proposed after the guard or the warehouse refused one.
    pub llm_corrections: IntCounter,
    /// Redis round trips of the ingress gate (dedupe and rate limit in one script).
    pub redis_seconds: Histogram,
    /// Ingress decisions taken in process because Redis was down or too slow.
    pub redis_fallbacks: IntCounter,
    /// Audit rows deleted for being older than `THREADQL_AUDIT_RETENTION_DAYS`.
    pub audit_rows_deleted: IntCounter,
    /// Runs of scheduled reports and alerts, by how they ended (`report_executions.status`).
    pub report_runs: IntCounterVec,
    /// Schedules created, paused, resumed, edited or deleted, by action (`paused_by_threadql`
    /// when a channel is gone or an owner lost access).
    pub schedules_changed: IntCounterVec,
    /// Socket Mode connections open (past Slack's `hello`).
    pub socket_mode_connections: IntGauge,
    /// Socket Mode connections replaced, by reason (`refresh` after Slack's `disconnect`,
    /// `dropped`, `open_failed`).
    pub socket_mode_reconnects: IntCounterVec,
    /// Time from a request's arrival to its response, by route template (Slack wants its ack
    /// within 3 s).
    pub ack_seconds: HistogramVec,
    /// HTTP responses, by route template and status class (`2xx`, `4xx`, `5xx`).
    pub http_responses: IntCounterVec,
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let metric = IntCounter::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let metric = IntGauge::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Result<Histogram, prometheus::Error> {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
    labels: &[&str],
) -> Result<HistogramVec, prometheus::Error> {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        let metrics = Self {
            slack_requests: counter_vec(
                &r,
                "threadql_slack_requests_total",
                "Slack requests received, by endpoint and outcome",
                &["endpoint", "outcome"],
            )?,
            turns: counter_vec(
                &r,
                "threadql_turns_total",
                "Turns handled, by intent and outcome",
                &["intent", "outcome"],
            )?,
            turn_seconds: histogram_vec(
                &r,
                "threadql_turn_seconds",
                "Time one turn took, from its start to its replies handed to Slack, by intent",
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ],
                &["intent"],
            )?,
            query_seconds: histogram_vec(
                &r,
                "threadql_query_seconds",
                "Warehouse query duration, by engine and outcome",
                vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
                &["engine", "outcome"],
            )?,
            warehouse_queries: counter_vec(
                &r,
                "threadql_warehouse_queries_total",
                "Warehouse queries, by engine and outcome",
                &["engine", "outcome"],
            )?,
            warehouse_rows: counter_vec(
                &r,
                "threadql_warehouse_rows_total",
                "Rows the warehouse returned, by engine",
                &["engine"],
            )?,
            warehouse_bytes_estimated: counter_vec(
                &r,
                "threadql_warehouse_bytes_estimated_total",
                "Bytes the warehouse estimated statements would read before they ran (the cost guard), by engine",
                &["engine"],
            )?,
            cost_guard_decisions: counter_vec(
                &r,
                "threadql_cost_guard_decisions_total",
                "Statements the cost guard held back, by engine and decision (confirm, refused)",
                &["engine", "decision"],
            )?,
            warehouse_cancellations: counter_vec(
                &r,
                "threadql_warehouse_cancellations_total",
                "Queries stopped in the warehouse, by engine and reason",
                &["engine", "reason"],
            )?,
            live_threads: gauge(&r, "threadql_live_threads", "Live thread actors")?,
            activations: counter_vec(
                &r,
                "threadql_thread_activations_total",
                "Thread actors started, by source (snapshot or new)",
                &["source"],
            )?,
            activation_seconds: histogram(
                &r,
                "threadql_thread_activation_seconds",
                "Time from a thread actor's start to its state being ready (its snapshot read)",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ],
            )?,
            passivations: counter(&r, "threadql_thread_passivations_total", "Idle thread actors stopped")?,
            restarts: counter(
                &r,
                "threadql_thread_restarts_total",
                "Threads reloaded from their snapshot after a turn panicked",
            )?,
            mailbox_messages: gauge(
                &r,
                "threadql_mailbox_messages",
                "Messages queued in or handled by thread actors, summed over live actors (sampled at scrape)",
            )?,
            mailbox_messages_max: gauge(
                &r,
                "threadql_mailbox_messages_max",
                "Messages queued in or handled by the deepest live thread actor (sampled at scrape)",
            )?,
            snapshot_writes: counter_vec(
                &r,
                "threadql_snapshot_writes_total",
                "Thread snapshot writes, by outcome (saved, stale: refused as based on an old version, failed)",
                &["outcome"],
            )?,
            snapshot_batch_size: histogram(
                &r,
                "threadql_snapshot_batch_size",
                "Thread snapshots written in one statement",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            )?,
            snapshot_write_seconds: histogram(
                &r,
                "threadql_snapshot_write_seconds",
                "Time one batch of thread snapshot writes took",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ],
            )?,
            slack_api_calls: counter_vec(
                &r,
                "threadql_slack_api_calls_total",
                "Slack Web API calls, by method and outcome",
                &["method", "outcome"],
            )?,
            slack_retry_wait_seconds: histogram_vec(
                &r,
                "threadql_slack_retry_wait_seconds",
                "Time waited before retrying a Slack Web API call, by reason",
                vec![0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0],
                &["reason"],
            )?,
            slack_outbox_waiting: gauge(&r, "threadql_slack_outbox_waiting", "Slack messages waiting to be sent")?,
            backlog: gauge(
                &r,
                "threadql_backlog",
                "Messages handed to thread actors whose turn is not over (THREADQL_MAX_BACKLOG caps it)",
            )?,
            llm_completions: counter_vec(
                &r,
                "threadql_llm_completions_total",
                "Chat completions requested from the language model",
                &["kind", "outcome"],
            )?,
            llm_tokens: counter_vec(&r, "threadql_llm_tokens_total", "Language model tokens", &["direction"])?,
            llm_seconds: histogram_vec(
                &r,
                "threadql_llm_request_seconds",
                "Chat completion duration, retries included",
                vec![0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0],
                &["outcome"],
            )?,
            llm_retries: counter_vec(
                &r,
                "threadql_llm_retries_total",
                "Language model HTTP requests retried",
                &["reason"],
            )?,
            llm_attempts: histogram(
                &r,
                "threadql_llm_attempts",
                "Chat completions per answered question",
                vec![1.0, 2.0, 3.0, 4.0, 5.0],
            )?,
            llm_corrections: counter(
                &r,
                "threadql_llm_corrections_total",
                "Corrected queries the interpreter proposed after the guard or the warehouse refused one",
            )?,
            redis_seconds: histogram(
                &r,
                "threadql_redis_round_trip_seconds",
                "Redis round trips of the ingress gate (dedupe and rate limit)",
                vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
            )?,
            redis_fallbacks: counter(
                &r,
                "threadql_redis_fallbacks_total",
                "Ingress decisions taken in process because Redis was down or too slow",
            )?,
            audit_rows_deleted: counter(
                &r,
                "threadql_audit_rows_deleted_total",
                "Audit rows deleted for being older than THREADQL_AUDIT_RETENTION_DAYS",
            )?,
            report_runs: counter_vec(
                &r,
                "threadql_report_runs_total",
                "Runs of scheduled reports and alerts, by status",
                &["status"],
            )?,
            schedules_changed: counter_vec(
                &r,
                "threadql_schedules_changed_total",
                "Schedules created, paused, resumed, edited or deleted, by action",
                &["action"],
            )?,
            socket_mode_connections: gauge(&r, "threadql_socket_mode_connections", "Socket Mode connections open")?,
            socket_mode_reconnects: counter_vec(
                &r,
                "threadql_socket_mode_reconnects_total",
                "Socket Mode connections replaced",
                &["reason"],
            )?,
            ack_seconds: histogram_vec(
                &r,
                "threadql_ack_seconds",
                "Time from an HTTP request's arrival to its response, by route template",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0],
                &["route"],
            )?,
            http_responses: counter_vec(
                &r,
                "threadql_http_responses_total",
                "HTTP responses, by route template and status class",
                &["route", "status"],
            )?,
            registry: r,
            refreshers: Arc::default(),
        };
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
        // process_start_time_seconds (restarts show as a change of the last one).
        #[cfg(target_os = "linux")]
        metrics
            .registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        metrics.zero_known_series();
        Ok(metrics)
    }

    /// Creates every series whose labels are known in advance, at zero.
    fn zero_known_series(&self) {
        let mut turn_outcomes: Vec<&str> = vec!["answered", "replied", "ignored"];
        for code in ErrorCode::ALL {
            if !turn_outcomes.contains(&code.outcome()) {
                turn_outcomes.push(code.outcome());
            }
        }
        for intent in INTENTS {
            self.turn_seconds.with_label_values(&[intent]);
            for outcome in &turn_outcomes {
                self.turns.with_label_values(&[intent, outcome]);
            }
        }
        for endpoint in INGRESS_ENDPOINTS {
            for outcome in INGRESS_OUTCOMES {
                self.slack_requests.with_label_values(&[endpoint, outcome]);
            }
        }
        for engine in ENGINES {
            self.warehouse_rows.with_label_values(&[engine]);
            self.warehouse_bytes_estimated.with_label_values(&[engine]);
            for decision in ["confirm", "refused"] {
                self.cost_guard_decisions.with_label_values(&[engine, decision]);
            }
            for outcome in QUERY_OUTCOMES {
                self.warehouse_queries.with_label_values(&[engine, outcome]);
                self.query_seconds.with_label_values(&[engine, outcome]);
            }
            for reason in CANCEL_REASONS {
                self.warehouse_cancellations.with_label_values(&[engine, reason]);
            }
        }
        for status in crate::domain::ExecutionStatus::ALL {
            self.report_runs.with_label_values(&[status.as_str()]);
        }
        for action in SCHEDULE_ACTIONS {
            self.schedules_changed.with_label_values(&[action]);
        }
        for source in ["snapshot", "new"] {
            self.activations.with_label_values(&[source]);
        }
        for outcome in SNAPSHOT_OUTCOMES {
            self.snapshot_writes.with_label_values(&[outcome]);
        }
        for method in SLACK_METHODS {
            for outcome in SLACK_OUTCOMES {
                self.slack_api_calls.with_label_values(&[method, outcome]);
            }
        }
        for reason in ["rate_limited", "error"] {
            self.slack_retry_wait_seconds.with_label_values(&[reason]);
        }
        for kind in ["interpret", "revise"] {
            for outcome in ["query", "clarify", "not_understood", "unavailable", "error"] {
                self.llm_completions.with_label_values(&[kind, outcome]);
            }
        }
        for direction in ["prompt", "completion"] {
            self.llm_tokens.with_label_values(&[direction]);
        }
        for outcome in ["ok", "error"] {
            self.llm_seconds.with_label_values(&[outcome]);
        }
        for reason in ["rate_limited", "server_error", "timeout", "connect"] {
            self.llm_retries.with_label_values(&[reason]);
        }
        for reason in ["refresh", "dropped", "open_failed"] {
            self.socket_mode_reconnects.with_label_values(&[reason]);
        }
    }

    /// Runs `refresh` before every scrape (for gauges sampled from live state, such as the
    /// thread actors' mailboxes). It should hold only weak references to what it samples.
    pub fn on_scrape(&self, refresh: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut refreshers) = self.refreshers.lock() {
            refreshers.push(Box::new(refresh));
        }
    }

    /// Records one HTTP response. `route` is the matched route template (`None` for a path no
    /// route matches, counted as `other` so that the label stays bounded). Labelled `route`, not
    /// `endpoint`: that label holds the short names of `threadql_slack_requests_total`.
    pub fn observe_http(&self, route: Option<&str>, status: u16, seconds: f64) {
        let route = route.unwrap_or("other");
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.ack_seconds.with_label_values(&[route]).observe(seconds);
        self.http_responses.with_label_values(&[route, class]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Ok(refreshers) = self.refreshers.lock() {
            for refresh in refreshers.iter() {
                refresh();
            }
        }
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "Failed to encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_family_has_help_and_known_series_start_at_zero() {
        let scrape = Metrics::new().unwrap().render();
        for line in scrape.lines().filter(|l| l.starts_with("# TYPE threadql_")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(scrape.contains(&format!("# HELP {name} ")), "{name} has no HELP");
        }
        for series in [
            r#"threadql_turns_total{intent="ask",outcome="panicked"} 0"#,
            r#"threadql_slack_requests_total{endpoint="events",outcome="unauthorized"} 0"#,
            r#"threadql_slack_api_calls_total{method="chat.postMessage",outcome="rate_limited"} 0"#,
            r#"threadql_snapshot_writes_total{outcome="stale"} 0"#,
            r#"threadql_warehouse_queries_total{engine="postgres",outcome="error"} 0"#,
            r#"threadql_thread_activations_total{source="snapshot"} 0"#,
            "threadql_redis_fallbacks_total 0",
            "threadql_audit_rows_deleted_total 0",
        ] {
            assert!(scrape.lines().any(|l| l == series), "{series} not in:\n{scrape}");
        }
    }

    #[test]
    fn scrape_time_refreshers_run_before_each_render() {
        let metrics = Metrics::new().unwrap();
        let gauge = metrics.mailbox_messages_max.clone();
        metrics.on_scrape(move || gauge.set(7));
        assert!(metrics.render().lines().any(|l| l == "threadql_mailbox_messages_max 7"));
    }
}
