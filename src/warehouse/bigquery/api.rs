//! BigQuery's REST API v2, the few calls threadql makes: jobs.query, jobs.getQueryResults,
//! jobs.cancel and a dry-run jobs.insert. Each request carries a bearer token from the service
//! account; Google's errors (`{"error": {code, message, status, errors: [{reason}]}}`) are
//! read, and rate limits (429, `rateLimitExceeded`) and server errors (5xx) are retried with
//! backoff. jobs.query carries a `requestId`, so a retried call never starts a second job.
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value as Json;

use super::auth::{TokenError, TokenSource};
use crate::warehouse::WarehouseError;

/// How rate limits and server errors are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetrySettings {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub max_retries: usize,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retries: 5,
        }
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Google answered with an error.
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        /// The first `errors[].reason` (`invalidQuery`, `rateLimitExceeded`, `accessDenied`).
        reason: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl ApiError {
    fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { status, reason, .. } => {
                *status == 429
                    || *status >= 500
                    || matches!(
                        reason.as_deref(),
                        Some("rateLimitExceeded" | "backendError" | "internalError")
                    )
            }
            ApiError::Unreachable(_) | ApiError::Token(TokenError::Unreachable(_)) => true,
            ApiError::Token(TokenError::Refused(_)) => false,
        }
    }

    /// What the caller is told.
    pub fn into_warehouse_error(self) -> WarehouseError {
        match self {
            // invalidQuery, notFound (a table or column), bytesBilledLimitExceeded...: the
            // statement's own problem, in BigQuery's words.
            ApiError::Status {
                status: 400 | 404,
                message,
                ..
            } => WarehouseError::Query(message),
            ApiError::Status {
                status: status @ (401 | 403),
                reason,
                message,
            } if reason.as_deref() != Some("rateLimitExceeded") => WarehouseError::Unavailable(format!(
                "BigQuery refused the service account (HTTP {status}: {message}); check that it may run jobs \
                 in the project and read the data set (roles BigQuery Job User and BigQuery Data Viewer)"
            )),
            ApiError::Status { status, message, .. } => {
                WarehouseError::Unavailable(format!("BigQuery answered HTTP {status}: {message}"))
            }
            ApiError::Unreachable(message) => WarehouseError::Unavailable(message),
            ApiError::Token(error) => WarehouseError::Unavailable(error.to_string()),
        }
    }
}

/// The JSON body of a Google API error.
#[derive(Deserialize)]
struct ErrorBody {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorProto>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorProto {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// An HTTP method of the calls made.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Get,
    Post,
}

/// The REST client of one project.
#[derive(Debug)]
pub struct Api {
    http: reqwest_openai::Client,
    /// `https://bigquery.googleapis.com`, without a trailing slash.
    base_url: String,
    tokens: TokenSource,
    retry: RetrySettings,
}

impl Api {
    pub fn new(http: reqwest_openai::Client, base_url: &str, tokens: TokenSource, retry: RetrySettings) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            tokens,
            retry,
        }
    }

    /// Calls `path` (below `/bigquery/v2/`), retrying what can be retried.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, ApiError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.first_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        (|| self.call_once(method, path, query, body))
            .retry(backoff)
            .when(ApiError::is_retryable)
            .notify(|error, delay| tracing::warn!(%error, ?delay, path, "a BigQuery call failed; retrying"))
            .await
    }

    /// One call, and once more with a fresh token when the token was refused (revoked, or
    /// expired early by a clock that is off).
    async fn call_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, ApiError> {
        match self.send(method, path, query, body).await {
            Err(ApiError::Status { status: 401, .. }) => self.send(method, path, query, body).await,
            other => other,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Json, ApiError> {
        let token = self.tokens.token().await?;
        let url = format!("{}/bigquery/v2/{path}", self.base_url);
        let request = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
        };
        let mut request = request.query(query).bearer_auth(token.expose_secret());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(format!("BigQuery cannot be reached: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::Unreachable(format!("BigQuery's answer was cut off: {e}")))?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text)
                .map_err(|e| ApiError::Unreachable(format!("BigQuery's answer was not understood: {e}")));
        }
        if status == 401 {
            self.tokens.invalidate(&token).await;
        }
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ApiError::Status {
                status,
                reason: body.error.errors.first().and_then(|e| e.reason.clone()),
                message: body.error.message,
            },
            Err(_) => ApiError::Status {
                status,
                reason: None,
                message: text.chars().take(300).collect(),
            },
        })
    }
}

/// A field of a result's schema.
#[derive(Debug, Clone, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Schema {
    #[serde(default)]
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    pub job_id: String,
    #[serde(default)]
    pub location: Option<String>,
}

/// jobs.query's and jobs.getQueryResults' answer (the fields used).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    #[serde(default)]
    pub job_complete: bool,
    pub job_reference: Option<JobReference>,
    #[serde(default)]
    pub schema: Option<Schema>,
    #[serde(default)]
    pub rows: Vec<Row>,
    #[serde(default)]
    pub page_token: Option<String>,
    /// The job's errors when it failed (getQueryResults of a failed job may answer 200).
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
}

/// `{"f": [{"v": …}, …]}`
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub f: Vec<Cell>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cell {
    #[serde(default)]
    pub v: Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, reason: &str, message: &str) -> ApiError {
        ApiError::Status {
            status,
            reason: Some(reason.to_string()),
            message: message.to_string(),
        }
    }

    #[test]
    fn googles_errors_map_to_what_the_thread_is_told_and_only_passing_ones_are_retried() {
        let cases = [
            (status(400, "invalidQuery", "Unrecognized name: x"), "query", false),
            (status(404, "notFound", "Not found: Table p:d.t"), "query", false),
            (
                status(401, "authError", "Invalid Credentials"),
                "refused the service account",
                false,
            ),
            (status(403, "accessDenied", "Access Denied"), "BigQuery Job User", false),
            (
                status(403, "rateLimitExceeded", "Exceeded rate limits"),
                "HTTP 403",
                true,
            ),
            (
                status(429, "rateLimitExceeded", "Exceeded rate limits"),
                "HTTP 429",
                true,
            ),
            (status(500, "backendError", "Backend error"), "HTTP 500", true),
            (status(503, "", "Service unavailable"), "HTTP 503", true),
            (
                ApiError::Unreachable("connection refused".into()),
                "connection refused",
                true,
            ),
            (
                ApiError::Token(TokenError::Refused("invalid_grant".into())),
                "invalid_grant",
                false,
            ),
        ];
        for (error, says, retried) in cases {
            let description = error.to_string();
            assert_eq!(error.is_retryable(), retried, "{description}");
            let told = error.into_warehouse_error();
            match &told {
                WarehouseError::Query(message) => assert_eq!(says, "query", "{description}: {message}"),
                WarehouseError::Unavailable(message) => {
                    assert!(message.contains(says), "{description}: {message}")
                }
                other => panic!("{description}: {other:?}"),
            }
        }
    }
}
