//! The HTTP side of the LLM interpreter: the reqwest client with our TLS setup, the
//! async-openai client on top of it, the one retry policy (429, 5xx, timeouts, connection
//! errors, with backoff or `Retry-After` within a time budget) and what a failure means for the
//! thread.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::Client;
use rand::Rng;
use secrecy::ExposeSecret;

use super::prompt::one_line;
use super::settings::LlmSettings;
use crate::metrics::Metrics;

/// Why one chat completion did not give an answer.
#[derive(Debug)]
pub(super) enum CallError {
    /// The server refused the `response_format` (HTTP 400 naming it).
    FormatRejected(String),
    Unavailable(String),
    Unexpected(anyhow::Error),
}

/// The async-openai client for the configured server, sending through [`RetryingTransport`]
/// (no request is made until the first question).
pub(super) fn openai_client(settings: &LlmSettings, metrics: Option<Metrics>) -> anyhow::Result<Client<OpenAIConfig>> {
    let http = http_client(settings.request_timeout)?;
    let transport = RetryingTransport {
        http: http.clone(),
        policy: RetryPolicy {
            max_retries: settings.max_retries,
            base_delay: settings.retry_base_delay,
            max_delay: settings.max_retry_delay,
            budget: settings.completion_timeout,
        },
        metrics,
    };
    let config = OpenAIConfig::new()
        .with_api_base(settings.base_url.clone())
        .with_api_key(settings.api_key.expose_secret().to_string());
    // `Client::build` rather than `with_config`: the latter builds a default reqwest client,
    // which needs a process-wide TLS provider; ours is configured explicitly.
    Ok(Client::build(http, config).with_http_service(transport))
}

/// Maps an async-openai error to what the thread can say about it.
pub(super) fn classify(error: OpenAIError, model: &str) -> CallError {
    match error {
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            let message = one_line(&api.api_error.message, 300);
            match status {
                400 | 422 if mentions_response_format(&message) => CallError::FormatRejected(message),
                401 | 403 => CallError::Unavailable(format!("the server refused the API key, HTTP {status}")),
                404 => CallError::Unavailable(format!("the model `{model}` was not found, HTTP 404")),
                429 if api.api_error.code.as_deref() == Some("insufficient_quota") => {
                    CallError::Unavailable("the API quota is used up, HTTP 429".into())
                }
                429 => CallError::Unavailable("it is rate-limiting us, HTTP 429".into()),
                500..=599 => CallError::Unavailable(format!("the server failed, HTTP {status}")),
                _ => CallError::Unexpected(anyhow::anyhow!(
                    "The language model server answered HTTP {status}: {message}"
                )),
            }
        }
        OpenAIError::Reqwest(error) if error.is_timeout() => CallError::Unavailable("it did not answer in time".into()),
        OpenAIError::Reqwest(error) if error.is_connect() => {
            let host = error
                .url()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            CallError::Unavailable(format!("cannot connect to {host}"))
        }
        OpenAIError::Reqwest(error) => {
            CallError::Unavailable(format!("request failed: {}", one_line(&error.to_string(), 200)))
        }
        OpenAIError::JSONDeserialize(error, content) => CallError::Unavailable(format!(
            "its answer is not a chat completion ({error}): {}",
            one_line(&content, 120)
        )),
        other => CallError::Unexpected(anyhow::Error::new(other).context("The chat completion failed")),
    }
}

fn mentions_response_format(message: &str) -> bool {
    let lower = message.to_lowercase();
    [
        "response_format",
        "json_schema",
        "json_object",
        "structured output",
        "response format",
        "guided",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The language model's HTTP client (see [`crate::outbound`]).
pub fn http_client(request_timeout: Duration) -> anyhow::Result<reqwest_openai::Client> {
    crate::outbound::http_client("language model client", request_timeout, Duration::from_secs(5))
}

/// When and how often an HTTP request to the model is retried.
#[derive(Debug, Clone, Copy)]
struct RetryPolicy {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    /// No retry starts after this much time since the first try.
    budget: Duration,
}

/// async-openai's HTTP service with our retry policy in place of its built-in one.
#[derive(Clone)]
pub struct RetryingTransport {
    http: reqwest_openai::Client,
    policy: RetryPolicy,
    metrics: Option<Metrics>,
}

type TransportFuture = Pin<Box<dyn Future<Output = Result<reqwest_openai::Response, OpenAIError>> + Send + 'static>>;

impl tower::Service<HttpRequestFactory> for RetryingTransport {
    type Response = reqwest_openai::Response;
    type Error = OpenAIError;
    type Future = TransportFuture;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let transport = self.clone();
        Box::pin(async move { transport.send(request).await })
    }
}

/// A failed try that may be retried.
enum Retryable {
    Response(reqwest_openai::Response),
    Error(reqwest_openai::Error),
}

impl RetryingTransport {
    async fn send(&self, request: HttpRequestFactory) -> Result<reqwest_openai::Response, OpenAIError> {
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            let built = request.build().await?;
            let (failed, reason, hint) = match self.http.execute(built).await {
                Ok(response) if response.status().as_u16() == 429 => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = response.bytes().await.map_err(OpenAIError::Reqwest)?;
                    let hint = retry_after(&headers);
                    let rebuilt = rebuild_response(status, &headers, body.clone());
                    // No point retrying a quota that is used up.
                    if String::from_utf8_lossy(&body).contains("insufficient_quota") {
                        return Ok(rebuilt);
                    }
                    (Retryable::Response(rebuilt), "rate_limited", hint)
                }
                Ok(response) if response.status().is_server_error() => {
                    let hint = retry_after(response.headers());
                    (Retryable::Response(response), "server_error", hint)
                }
                Ok(response) => return Ok(response),
                Err(error) if error.is_timeout() => (Retryable::Error(error), "timeout", None),
                Err(error) if error.is_connect() => (Retryable::Error(error), "connect", None),
                Err(error) => return Err(OpenAIError::Reqwest(error)),
            };
            let delay = hint
                .unwrap_or_else(|| backoff(self.policy.base_delay, retries))
                .min(self.policy.max_delay);
            let exhausted = retries >= self.policy.max_retries || started.elapsed() + delay >= self.policy.budget;
            if exhausted {
                return match failed {
                    Retryable::Response(response) => Ok(response),
                    Retryable::Error(error) => Err(OpenAIError::Reqwest(error)),
                };
            }
            retries += 1;
            if let Some(metrics) = &self.metrics {
                metrics.llm_retries.with_label_values(&[reason]).inc();
            }
            tracing::warn!(
                reason,
                retry = retries,
                delay_ms = delay.as_millis() as u64,
                "Retrying the language model"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// `base × 2^retry`, with ±20 % jitter so many threads do not retry in step.
fn backoff(base: Duration, retry: u32) -> Duration {
    let exact = base.saturating_mul(2u32.saturating_pow(retry.min(16)));
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    exact.mul_f64(jitter)
}

/// `Retry-After` (seconds) or OpenAI's `retry-after-ms`.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|seconds| Duration::from_secs_f64(seconds.clamp(0.0, 3_600.0)))
}

/// A response whose body was read, put back together for async-openai to read again.
fn rebuild_response(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: impl Into<reqwest_openai::Body>,
) -> reqwest_openai::Response {
    let mut response = http::Response::new(body.into());
    *response.status_mut() = status;
    *response.headers_mut() = headers.clone();
    reqwest_openai::Response::from(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_headers_are_read_in_seconds_or_milliseconds() {
        let mut headers = http::HeaderMap::new();
        headers.insert("retry-after", http::HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", http::HeaderValue::from_static("150"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
    }
}
