//! Prometheus metrics: one explicit registry, handles in a struct, bounded labels only.
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

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
        registry.register(Box::new(slack_requests.clone()))?;
        registry.register(Box::new(turns.clone()))?;
        registry.register(Box::new(query_seconds.clone()))?;
        registry.register(Box::new(live_threads.clone()))?;
        registry.register(Box::new(slack_api_calls.clone()))?;
        Ok(Self {
            registry,
            slack_requests,
            turns,
            query_seconds,
            live_threads,
            slack_api_calls,
        })
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
