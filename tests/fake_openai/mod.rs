//! A local fake OpenAI-compatible server: `POST /v1/chat/completions` answers from a script,
//! one scripted reply per request, with bodies shaped exactly like the real API's (ids, `object`,
//! `created`, `choices[].message` with `refusal` and `annotations`, `usage` with its details,
//! `system_fingerprint`), and errors shaped like OpenAI's (`{"error": {message, type, param,
//! code}}`, `retry-after-ms` on 429). Every request is recorded for assertions.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const MODEL: &str = "gpt-4o-mini";
pub const PROMPT_TOKENS: u64 = 812;
pub const COMPLETION_TOKENS: u64 = 64;

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// A completion whose message content is this text (usually the model's JSON answer).
    Content(String),
    /// An HTTP error with OpenAI's error body.
    Error {
        status: u16,
        code: &'static str,
        message: String,
    },
    /// The reply, sent only after this delay.
    Delayed(Duration, Box<Scripted>),
}

/// The model's JSON answer with a query.
pub fn query(sql: &str, summary: &str, explanation: &str) -> Scripted {
    Scripted::Content(
        json!({"kind": "query", "sql": sql, "summary": summary, "explanation": explanation, "clarification": ""})
            .to_string(),
    )
}

/// The model's JSON answer asking the user something.
pub fn clarification(question: &str) -> Scripted {
    Scripted::Content(
        json!({"kind": "clarification", "sql": "", "summary": "", "explanation": "", "clarification": question})
            .to_string(),
    )
}

pub fn rate_limited() -> Scripted {
    Scripted::Error {
        status: 429,
        code: "rate_limit_exceeded",
        message: "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20ms.".into(),
    }
}

/// A chat completion exactly as OpenAI returns it.
pub fn completion_body(content: &str, request_number: usize) -> Value {
    json!({
        "id": format!("chatcmpl-fake{request_number:06}"),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": content,
                "refusal": null,
                "annotations": []
            },
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake0001"
    })
}

fn error_body(status: u16, code: &str, message: &str) -> Value {
    let kind = match status {
        429 => "requests",
        400 => "invalid_request_error",
        401 => "invalid_request_error",
        _ => "server_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

struct ScriptResponder {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    served: Arc<Mutex<usize>>,
}

impl ScriptResponder {
    fn template(reply: Scripted, number: usize) -> ResponseTemplate {
        match reply {
            Scripted::Content(content) => ResponseTemplate::new(200)
                .insert_header("openai-processing-ms", "321")
                .insert_header("x-request-id", format!("req_fake{number:06}").as_str())
                .set_body_json(completion_body(&content, number)),
            Scripted::Error { status, code, message } => {
                let mut template = ResponseTemplate::new(status).set_body_json(error_body(status, code, &message));
                if status == 429 {
                    template = template.insert_header("retry-after-ms", "20");
                }
                template
            }
            Scripted::Delayed(delay, reply) => Self::template(*reply, number).set_delay(delay),
        }
    }
}

impl Respond for ScriptResponder {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let number = {
            let mut served = self.served.lock().unwrap();
            *served += 1;
            *served
        };
        let next = self.script.lock().unwrap().pop_front();
        match next {
            Some(reply) => Self::template(reply, number),
            None => ResponseTemplate::new(500).set_body_json(error_body(
                500,
                "script_exhausted",
                "The fake OpenAI server has no scripted reply left for this request",
            )),
        }
    }
}

/// The fake server and its script.
pub struct FakeOpenAi {
    pub server: MockServer,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        Self::on(MockServer::builder().start().await).await
    }

    /// Serves on an already bound listener (to come back on a port that was down).
    pub async fn start_on(listener: std::net::TcpListener) -> Self {
        Self::on(MockServer::builder().listener(listener).start().await).await
    }

    async fn on(server: MockServer) -> Self {
        let script = Arc::new(Mutex::new(VecDeque::new()));
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ScriptResponder {
                script: script.clone(),
                served: Arc::new(Mutex::new(0)),
            })
            .mount(&server)
            .await;
        Self { server, script }
    }

    /// `OPENAI_BASE_URL` for this server.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    pub fn push(&self, reply: Scripted) {
        self.script.lock().unwrap().push_back(reply);
    }

    /// Drops the replies not asked for.
    #[allow(dead_code)] // Only tests/hostile_corpus.rs scripts more replies than a turn asks for.
    pub fn clear(&self) {
        self.script.lock().unwrap().clear();
    }

    /// Bodies of the chat completion requests received, in order.
    pub async fn requests(&self) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == "/v1/chat/completions")
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    /// Authorization headers of the requests received.
    pub async fn authorizations(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .collect()
    }
}

/// The text of the message with `role` at `index` among the request's messages of that role.
pub fn message(request: &Value, role: &str, index: usize) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == role)
        .nth(index)
        .map(|m| match &m["content"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| panic!("no {role} message #{index} in {request:#}"))
}

/// A port nothing listens on, and a listener to bring it up later.
pub fn closed_port() -> (u16, impl FnOnce() -> std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    (port, move || std::net::TcpListener::bind(("127.0.0.1", port)).unwrap())
}
