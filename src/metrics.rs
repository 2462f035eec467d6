//! Prometheus metrics: one explicit registry, handles in a struct, bounded labels only.
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Metric handles. Labels are bounded enums (endpoint, outcome, intent), never users or threads.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Slack requests received, by endpoint and outcome (`accepted`, `duplicate`, `ignored`, `rejected`).
    pub slack_requests: IntCounterVec,
    /// Turns handled by thread actors, by intent and outcome.
    pub turns: IntCounterVec,
    /// Warehouse query duration in seconds, by outcome.
    pub query_seconds: HistogramVec,
    /// Live thread actors.
    pub live_threads: IntGauge,
    /// Slack Web API calls, by method and outcome.
    pub slack_api_calls: IntCounterVec,
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

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let slack_requests = IntCounterVec::new(
            Opts::new("threadql_slack_requests_total", "Slack requests received"),
            &["endpoint", "outcome"],
        )?;
        let turns = IntCounterVec::new(
            Opts::new("threadql_turns_total", "Turns handled"),
            &["intent", "outcome"],
        )?;
        let query_seconds = HistogramVec::new(
            HistogramOpts::new("threadql_query_seconds", "Warehouse query duration")
                .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["outcome"],
        )?;
        let live_threads = IntGauge::new("threadql_live_threads", "Live thread actors")?;
        let slack_api_calls = IntCounterVec::new(
            Opts::new("threadql_slack_api_calls_total", "Slack Web API calls"),
            &["method", "outcome"],
        )?;
        let llm_completions = IntCounterVec::new(
            Opts::new(
                "threadql_llm_completions_total",
                "Chat completions requested from the language model",
            ),
            &["kind", "outcome"],
        )?;
        let llm_tokens = IntCounterVec::new(
            Opts::new("threadql_llm_tokens_total", "Language model tokens"),
            &["direction"],
        )?;
        let llm_seconds = HistogramVec::new(
            HistogramOpts::new(
                "threadql_llm_request_seconds",
                "Chat completion duration, retries included",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0]),
            &["outcome"],
        )?;
        let llm_retries = IntCounterVec::new(
            Opts::new("threadql_llm_retries_total", "Language model HTTP requests retried"),
            &["reason"],
        )?;
        let llm_attempts = Histogram::with_opts(
            HistogramOpts::new("threadql_llm_attempts", "Chat completions per answered question")
                .buckets(vec![1.0, 2.0, 3.0, 4.0, 5.0]),
        )?;
        registry.register(Box::new(llm_completions.clone()))?;
        registry.register(Box::new(llm_tokens.clone()))?;
        registry.register(Box::new(llm_seconds.clone()))?;
        registry.register(Box::new(llm_retries.clone()))?;
        registry.register(Box::new(llm_attempts.clone()))?;
        registry.register(Box::new(slack_requests.clone()))?;
        registry.register(Box::new(turns.clone()))?;
        registry.register(Box::new(query_seconds.clone()))?;
        registry.register(Box::new(live_threads.clone()))?;
        registry.register(Box::new(slack_api_calls.clone()))?;
        let backlog = IntGauge::new(
            "threadql_backlog",
            "Messages handed to thread actors whose turn is not over (THREADQL_MAX_BACKLOG caps it)",
        )?;
        registry.register(Box::new(backlog.clone()))?;
        let slack_outbox_waiting = IntGauge::new("threadql_slack_outbox_waiting", "Slack messages waiting to be sent")?;
        registry.register(Box::new(slack_outbox_waiting.clone()))?;
        let socket_mode_connections =
            IntGauge::new("threadql_socket_mode_connections", "Socket Mode connections open")?;
        registry.register(Box::new(socket_mode_connections.clone()))?;
        let socket_mode_reconnects = IntCounterVec::new(
            Opts::new(
                "threadql_socket_mode_reconnects_total",
                "Socket Mode connections replaced",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(socket_mode_reconnects.clone()))?;
        let ack_seconds = HistogramVec::new(
            HistogramOpts::new(
                "threadql_ack_seconds",
                "Time from an HTTP request's arrival to its response, by route template",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0]),
            &["route"],
        )?;
        registry.register(Box::new(ack_seconds.clone()))?;
        let http_responses = IntCounterVec::new(
            Opts::new(
                "threadql_http_responses_total",
                "HTTP responses, by route template and status class",
            ),
            &["route", "status"],
        )?;
        registry.register(Box::new(http_responses.clone()))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
        // process_start_time_seconds (restarts show as a change of the last one).
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Self {
            registry,
            slack_requests,
            turns,
            query_seconds,
            live_threads,
            backlog,
            slack_api_calls,
            slack_outbox_waiting,
            llm_completions,
            llm_tokens,
            llm_seconds,
            llm_retries,
            llm_attempts,
            socket_mode_connections,
            socket_mode_reconnects,
            ack_seconds,
            http_responses,
        })
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
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "Failed to encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
