//! Logging through tracing: `RUST_LOG` filters, `THREADQL_LOG_FORMAT=json` gives JSON lines.
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans also
//! go out as OpenTelemetry traces over OTLP/HTTP (protobuf), and JSON lines carry `trace_id`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::HttpMessage;
use anyhow::Context as _;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::dispatcher::WeakDispatch;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// The standard variables that turn traces on (the SDK reads the rest of `OTEL_*` itself:
/// headers, timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`).
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "threadql";
/// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the exit waits for the last spans to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the installed subscriber exports traces (set once by [`init_with`]).
static EXPORTING_TRACES: AtomicBool = AtomicBool::new(false);

/// Whether spans leave this process as OpenTelemetry traces. HTTP requests get a span of their
/// own only then: in log lines its method, path and request id added nothing a line's target does
/// not say, and making it was an eighth of the HTTP workers' time under a burst (BENCHMARKS.md).
pub fn exports_traces() -> bool {
    EXPORTING_TRACES.load(Ordering::Relaxed)
}

/// What [`init`] set up that needs an orderly end: the trace exporter's last batch.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still queued and stops the exporter (blocks up to a few seconds; call it
    /// once serving is over).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
                eprintln!("threadql: failed to flush traces: {error}");
            }
        }
    }
}

/// Installs the global subscriber once; later calls (tests) are ignored. Traces are exported
/// when the OTLP endpoint variables say so (see the module's doc).
pub fn init(format: LogFormat, default_filter: &str) -> Telemetry {
    init_with(format, default_filter, |name| std::env::var(name).ok())
}

/// [`init`], reading the `OTEL_*` switches through `lookup`.
pub fn init_with(format: LogFormat, default_filter: &str, lookup: impl Fn(&str) -> Option<String>) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let provider = if traces_enabled(&lookup) {
        match tracer_provider(&lookup) {
            Ok(provider) => Some(provider),
            Err(error) => {
                // Traces are optional: the server runs without them rather than not at all.
                eprintln!("threadql: traces are off: {error:#}");
                None
            }
        }
    } else {
        None
    };
    let otel = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("threadql")));
    let dispatch = Arc::new(OnceLock::new());
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // `try_init` fails only when a subscriber is already set, which is fine in tests.
    let installed = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .event_format(WithTraceId::new(
                        fmt::format().json().with_current_span(true).with_span_list(false),
                        dispatch.clone(),
                    ))
                    .fmt_fields(fmt::format::JsonFields::new()),
            )
            .try_init(),
        // Colour codes only for a terminal: a file, a pipe or a log collector gets plain text.
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
    };
    if installed.is_ok() {
        let _ = dispatch.set(tracing::dispatcher::get_default(tracing::Dispatch::downgrade));
        EXPORTING_TRACES.store(provider.is_some(), Ordering::Relaxed);
    }
    Telemetry { provider }
}

fn traces_enabled(lookup: &impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| lookup(name).is_some_and(|value| !value.trim().is_empty());
    let disabled = lookup("OTEL_SDK_DISABLED").is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    !disabled && (set(OTEL_EXPORTER_OTLP_ENDPOINT) || set(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT))
}

/// The OTLP/HTTP exporter behind a batch processor: spans are queued by the threads that end
/// them and posted from the SDK's own thread, never from an HTTP worker or an actor.
fn tracer_provider(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(export_client()?)
        .build()
        .context("Failed to build the OTLP trace exporter (OTEL_EXPORTER_OTLP_*)")?;
    let mut resource = Resource::builder();
    let named = lookup(OTEL_SERVICE_NAME).is_some_and(|name| !name.trim().is_empty())
        || lookup("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| attributes.contains("service.name="));
    if !named {
        resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// reqwest's blocking client (the SDK's batch thread posts synchronously) with the same TLS as
/// the LLM client: rustls with the ring provider and the platform's trust store. Built on a
/// thread of its own: a blocking client may not be made inside an async runtime.
fn export_client() -> anyhow::Result<reqwest_openai::blocking::Client> {
    std::thread::spawn(|| -> anyhow::Result<reqwest_openai::blocking::Client> {
        let tls = crate::outbound::tls_config("trace exporter")?;
        reqwest_openai::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(EXPORT_TIMEOUT)
            .build()
            .context("Failed to build the trace exporter's HTTP client")
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread building the trace exporter's HTTP client panicked"))?
}

/// A JSON event format that adds the OpenTelemetry trace id of the event's span as a top-level
/// `trace_id` field, so a log line leads to its trace (and back).
pub struct WithTraceId<F> {
    inner: F,
    /// The subscriber this format runs in, set once it is installed (the span's OpenTelemetry
    /// context is read through it).
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<F> WithTraceId<F> {
    pub fn new(inner: F, dispatch: Arc<OnceLock<WeakDispatch>>) -> Self {
        Self { inner, dispatch }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let trace_id = ctx
            .parent_span()
            .map(|span| span.id())
            .zip(self.dispatch.get().and_then(WeakDispatch::upgrade))
            .and_then(|(id, dispatch)| tracing_opentelemetry::get_otel_context(&id, &dispatch))
            .map(|cx| cx.span().span_context().trace_id())
            .filter(|id| *id != opentelemetry::trace::TraceId::INVALID);
        match (trace_id, line.strip_prefix('{')) {
            (Some(trace_id), Some(rest)) => write!(writer, "{{\"trace_id\":\"{trace_id}\",{rest}"),
            _ => writer.write_str(&line),
        }
    }
}

/// Where a message's work continues its trace: the OpenTelemetry context of the span the message
/// was taken in (nothing when traces are off). A queued message carries this rather than the span
/// itself, which would stay open, with its formatted fields, until the turn ends: under a burst
/// that was two open spans per waiting message (BENCHMARKS.md, heap profile).
#[derive(Debug, Clone, Default)]
pub struct TraceParent(Option<opentelemetry::trace::SpanContext>);

impl TraceParent {
    /// The context of `span`, if traces are exported.
    pub fn of(span: &tracing::Span) -> Self {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if span.is_disabled() {
            return Self(None);
        }
        let context = span.context().span().span_context().clone();
        Self(context.is_valid().then_some(context))
    }

    /// Makes `span` (just created) a child of this context: one trace from ingress to answer.
    pub fn adopt(&self, span: &tracing::Span) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if let Some(parent) = &self.0 {
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent.clone()));
        }
    }
}

/// The span each HTTP request runs in: method, path, request id and status. tracing-actix-web's
/// default records a dozen OpenTelemetry fields per request, each formatted into the span by the
/// fmt layer; on the ack path that cost a tenth of the HTTP workers' time (BENCHMARKS.md), for
/// fields no log line here uses.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = request.path(),
            request_id,
            status = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (response.status(), response.response().error().map(ToString::to_string)),
            Err(error) => (error.as_response_error().status_code(), Some(error.to_string())),
        };
        span.record("status", status.as_u16());
        if let Some(error) = error {
            span.record("error", error);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;
    use std::sync::Mutex;

    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Logs one line inside a span, through the JSON format, with or without the OpenTelemetry
    /// layer; returns the line and the span's trace id.
    fn log_in_a_span(with_traces: bool) -> (serde_json::Value, String) {
        let lines = Lines::default();
        let provider = SdkTracerProvider::builder().build();
        let otel = with_traces.then(|| tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let cell = Arc::new(OnceLock::new());
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(otel).with(
            fmt::layer()
                .event_format(WithTraceId::new(
                    fmt::format().json().with_current_span(true).with_span_list(false),
                    cell.clone(),
                ))
                .fmt_fields(fmt::format::JsonFields::new())
                .with_writer(move || writer.clone()),
        );
        let dispatch = tracing::Dispatch::new(subscriber);
        cell.set(dispatch.downgrade()).unwrap();
        let trace_id = tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("turn", thread_key = "T1/C1/1.0");
            let _entered = span.enter();
            tracing::info!("Turn handled");
            span.context().span().span_context().trace_id().to_string()
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        (serde_json::from_str(text.trim()).unwrap(), trace_id)
    }

    #[test]
    fn json_log_lines_carry_the_trace_id_of_their_span() {
        let (line, trace_id) = log_in_a_span(true);
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0".repeat(32));
        assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
        assert_eq!(
            line["fields"]["message"], "Turn handled",
            "the rest of the line is intact: {line}"
        );
        assert_eq!(line["span"]["thread_key"], "T1/C1/1.0", "{line}");
    }

    #[test]
    fn without_traces_json_log_lines_have_no_trace_id() {
        let (line, _) = log_in_a_span(false);
        assert!(line.get("trace_id").is_none(), "{line}");
        assert_eq!(line["fields"]["message"], "Turn handled");
    }

    #[test]
    fn traces_are_on_only_with_an_otlp_endpoint() {
        let lookup = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert!(!traces_enabled(&lookup(&[])));
        assert!(traces_enabled(&lookup(&[(
            OTEL_EXPORTER_OTLP_ENDPOINT,
            "http://127.0.0.1:4318"
        )])));
        assert!(traces_enabled(&lookup(&[(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!traces_enabled(&lookup(&[(OTEL_EXPORTER_OTLP_ENDPOINT, " ")])));
        assert!(!traces_enabled(&lookup(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
    }
}
