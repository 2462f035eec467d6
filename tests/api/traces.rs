//! OpenTelemetry traces: `threadql serve` with `OTEL_EXPORTER_OTLP_ENDPOINT` posts its spans over
//! OTLP/HTTP (protobuf) to a local receiver, one trace per Slack event from ingress to the posted
//! answer, across the actor hop; its JSON log lines carry the trace id; the last spans leave on
//! SIGTERM.
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use threadql_testkit::{app_mention, new_channel, new_ts, FakeSlack, ServerProcess, TestDatabase};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fake_openai::{query, FakeOpenAi, MODEL};

/// Spans one answered question must produce, all in the event's trace.
const EXPECTED: [&str; 7] = [
    "request",
    "slack.event",
    "turn",
    "interpret",
    "guard",
    "warehouse.query",
    "slack.api",
];

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|value| match value {
            AnyValue::StringValue(text) => Some(text.as_str()),
            _ => None,
        })
}

/// Every span the receiver got, with its resource's `service.name`.
async fn received_spans(collector: &MockServer) -> Vec<(String, Span)> {
    let mut spans = Vec::new();
    for request in collector.received_requests().await.unwrap() {
        let export = ExportTraceServiceRequest::decode(request.body.as_slice()).expect("an OTLP protobuf body");
        for resource_spans in export.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default()
                .to_string();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
    }
    spans
}

/// A local OTLP/HTTP receiver: takes `POST /v1/traces` (protobuf) and keeps the bodies.
async fn collector() -> MockServer {
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .and(header("content-type", "application/x-protobuf"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    collector
}

/// `threadql serve` exporting to `collector`, with JSON logs, plus `env`.
async fn serve_traced(
    collector: &MockServer,
    slack: &FakeSlack,
    database: &TestDatabase,
    env: &[(&str, String)],
) -> ServerProcess {
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.uri()),
        ("THREADQL_LOG_FORMAT", "json".to_string()),
    ];
    vars.extend(env.iter().cloned());
    ServerProcess::start(env!("CARGO_BIN_EXE_threadql"), &slack.api_url(), database.url(), &vars).await
}

/// Asks one question in a new thread, waits for its answer, then stops the server with SIGTERM
/// (which flushes the exporter); returns the spans received and the thread's channel.
async fn ask_and_stop(
    server: &mut ServerProcess,
    slack: &FakeSlack,
    collector: &MockServer,
    event_id: &str,
    question: &str,
) -> (Vec<(String, Span)>, String) {
    let (channel, root) = (new_channel(), new_ts());
    let response = server
        .post_event(&app_mention(event_id, &channel, &root, question))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    slack.wait_for_posts(&channel, &root, 1).await;
    server.terminate();
    let exited = server.wait_for_exit(Duration::from_secs(30)).await;
    assert!(
        exited.is_some_and(|status| status.success()),
        "{exited:?}:\n{}",
        server.log_tail()
    );
    (received_spans(collector).await, channel)
}

/// The `slack.event` span of `event_id` and every span of its trace.
fn trace_of<'a>(spans: &'a [(String, Span)], event_id: &str) -> (&'a str, &'a Span, Vec<&'a Span>) {
    let (service, event) = spans
        .iter()
        .find(|(_, span)| span.name == "slack.event" && attribute(&span.attributes, "event_id") == Some(event_id))
        .unwrap_or_else(|| panic!("no slack.event span for {event_id} among {} spans", spans.len()));
    let trace = spans
        .iter()
        .map(|(_, span)| span)
        .filter(|span| span.trace_id == event.trace_id)
        .collect();
    (service, event, trace)
}

#[actix_rt::test]
async fn one_slack_event_makes_one_trace_from_ingress_to_the_posted_answer() {
    // Arrange: an OTLP/HTTP receiver, and the real binary pointed at it.
    let collector = collector().await;
    let slack = FakeSlack::start().await;
    let database = TestDatabase::create().await;
    let mut server = serve_traced(&collector, &slack, &database, &[]).await;

    // Act: one question answered, then a stop, which flushes the exporter.
    let (spans, channel) = ask_and_stop(
        &mut server,
        &slack,
        &collector,
        "EvTrace1",
        "revenue by region last month",
    )
    .await;

    // Assert: the event's span and everything under it share one trace.
    let (service, event, trace) = trace_of(&spans, "EvTrace1");
    assert_eq!(service, "threadql", "the default service.name");
    let thread_key = attribute(&event.attributes, "thread_key").expect("the event span has the thread key");
    assert!(thread_key.contains(&channel), "{thread_key}");
    let names: BTreeSet<&str> = trace.iter().map(|span| span.name.as_str()).collect();
    for name in EXPECTED {
        assert!(names.contains(name), "no {name} span in the event's trace: {names:?}");
    }
    let turn = trace.iter().find(|span| span.name == "turn").unwrap();
    assert_eq!(
        turn.parent_span_id, event.span_id,
        "the turn continues the ingress span"
    );
    assert_eq!(attribute(&turn.attributes, "thread_key"), Some(thread_key));
    assert_eq!(attribute(&turn.attributes, "event_id"), Some("EvTrace1"));
    // Every span reaches the trace's root through its parents: one tree, not pieces.
    let by_id: HashMap<&[u8], &Span> = trace.iter().map(|span| (span.span_id.as_slice(), *span)).collect();
    for span in &trace {
        let mut at = *span;
        while !at.parent_span_id.is_empty() {
            at = by_id
                .get(at.parent_span_id.as_slice())
                .unwrap_or_else(|| panic!("{}'s parent is not in the trace", at.name));
        }
        assert_eq!(at.name, "request", "{} hangs off {}", span.name, at.name);
    }
    // No other trace holds a turn of this thread.
    let turns_elsewhere = spans
        .iter()
        .filter(|(_, span)| span.name == "turn" && span.trace_id != event.trace_id)
        .filter(|(_, span)| attribute(&span.attributes, "thread_key") == Some(thread_key))
        .count();
    assert_eq!(turns_elsewhere, 0);

    // The JSON log line of the turn carries the trace id.
    let trace_id = hex::encode(&event.trace_id);
    let log = server.log();
    let line = log
        .lines()
        .find(|line| line.contains("Turn handled"))
        .unwrap_or_else(|| panic!("no turn logged:\n{}", server.log_tail()));
    let line: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
}

#[actix_rt::test]
async fn each_chat_completion_is_a_span_of_the_question_s_trace() {
    // Arrange: the LLM interpreter over a fake OpenAI whose first query fails in the warehouse.
    let collector = collector().await;
    let fake = FakeOpenAi::start().await;
    fake.push(query("SELECT no_such_column FROM orders", "Orders", "First try."));
    fake.push(query(
        "SELECT COUNT(*) AS orders FROM orders",
        "Orders",
        "Counts the orders.",
    ));
    let slack = FakeSlack::start().await;
    let database = TestDatabase::create().await;
    let mut server = serve_traced(
        &collector,
        &slack,
        &database,
        &[
            ("OPENAI_API_KEY", "sk-test-key".to_string()),
            ("OPENAI_BASE_URL", fake.base_url()),
            ("OPENAI_MODEL", MODEL.to_string()),
            ("OTEL_SERVICE_NAME", "threadql-staging".to_string()),
        ],
    )
    .await;

    // Act
    let (spans, _) = ask_and_stop(&mut server, &slack, &collector, "EvTrace2", "how many orders").await;

    // Assert: the first completion and the correction, each a span under an `interpret` span.
    assert_eq!(fake.requests().await.len(), 2);
    let (service, _, trace) = trace_of(&spans, "EvTrace2");
    assert_eq!(service, "threadql-staging", "OTEL_SERVICE_NAME names the service");
    let completions: Vec<&&Span> = trace.iter().filter(|span| span.name == "llm.completion").collect();
    let kinds: Vec<&str> = completions
        .iter()
        .filter_map(|span| attribute(&span.attributes, "kind"))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&"interpret") && kinds.contains(&"revise"), "{kinds:?}");
    for completion in completions {
        assert_eq!(attribute(&completion.attributes, "gen_ai.request.model"), Some(MODEL));
        let parent = trace
            .iter()
            .find(|span| span.span_id == completion.parent_span_id)
            .expect("the completion's parent is in the trace");
        assert_eq!(parent.name, "interpret");
    }
}
