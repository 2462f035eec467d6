//! Outbound Slack Web API calls through slack-morphism's client, pointed at `SLACK_API_URL`
//! (plain `http://` allowed, so a proxy or a local test server can stand in for Slack).
//! Every call retries 429 after `Retry-After` and 5xx/network errors with backoff.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::{ExposeSecret, SecretString};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::blocks::SlackMessage;
use crate::metrics::Metrics;

/// How often one call is tried before the error is reported.
const MAX_ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

type Client = SlackClient<SlackClientHyperConnector<HttpsConnector<HttpConnector>>>;

#[derive(Debug, thiserror::Error)]
pub enum SlackApiError {
    /// Slack answered `ok: false`; the code is Slack's (`channel_not_found`, `not_in_channel`…).
    #[error("Slack refused {method}: {code}")]
    Refused { method: &'static str, code: String },
    #[error("Slack could not be reached for {method} after {attempts} attempts: {cause}")]
    Unreachable {
        method: &'static str,
        attempts: u32,
        cause: String,
    },
}

/// The Slack Web API as threadql uses it.
#[derive(Clone)]
pub struct SlackWebApi {
    client: Arc<Client>,
    token: SlackApiToken,
    metrics: Metrics,
}

impl SlackWebApi {
    /// `api_url` is the Web API base (`https://slack.com/api/`).
    pub fn new(api_url: &url::Url, bot_token: &SecretString, metrics: Metrics) -> anyhow::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| anyhow::anyhow!("Failed to load the system's TLS root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        // slack-morphism joins base and method with a slash itself.
        let base = api_url.as_str().trim_end_matches('/');
        let connector = SlackClientHyperConnector::with_connector(https).with_slack_api_url(base);
        Ok(Self {
            client: Arc::new(SlackClient::new(connector)),
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.expose_secret().to_string())),
            metrics,
        })
    }

    /// The bot's own user id (`auth.test`), to recognise its mentions and its own messages.
    pub async fn bot_user_id(&self) -> Result<String, SlackApiError> {
        let response = self
            .call("auth.test", || async {
                self.client.open_session(&self.token).auth_test().await
            })
            .await?;
        Ok(response.user_id.to_string())
    }

    /// Posts a message (in a thread when `thread_ts` is set) and returns its ts.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &SlackMessage,
    ) -> Result<String, SlackApiError> {
        let mut body = serde_json::json!({
            "channel": channel,
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = serde_json::Value::String(ts.to_string());
        }
        let response: serde_json::Value = self
            .call("chat.postMessage", || async {
                self.client
                    .open_session(&self.token)
                    .http_session_api
                    .http_post("chat.postMessage", &body, None)
                    .await
            })
            .await?;
        Ok(response
            .get("ts")
            .and_then(|ts| ts.as_str())
            .unwrap_or_default()
            .to_string())
    }

    /// Uploads a file into a thread with the upload-v2 flow: `files.getUploadURLExternal`,
    /// the bytes to the returned URL, then `files.completeUploadExternal`.
    pub async fn upload_file(
        &self,
        channel: &str,
        thread_ts: &str,
        filename: &str,
        content_type: &str,
        bytes: Vec<u8>,
        title: &str,
    ) -> Result<(), SlackApiError> {
        let length = bytes.len();
        let ticket = self
            .call("files.getUploadURLExternal", || async {
                let request = SlackApiFilesGetUploadUrlExternalRequest::new(filename.to_string(), length);
                self.client
                    .open_session(&self.token)
                    .get_upload_url_external(&request)
                    .await
            })
            .await?;
        self.call("files.upload", || async {
            let request = SlackApiFilesUploadViaUrlRequest::new(
                ticket.upload_url.clone(),
                bytes.clone(),
                content_type.to_string(),
            );
            self.client
                .open_session(&self.token)
                .files_upload_via_url(&request)
                .await
        })
        .await?;
        self.call("files.completeUploadExternal", || async {
            let request = SlackApiFilesCompleteUploadExternalRequest::new(vec![SlackApiFilesComplete::new(
                ticket.file_id.clone(),
            )
            .with_title(title.to_string())])
            .with_channel_id(SlackChannelId::new(channel.to_string()))
            .with_thread_ts(SlackTs::new(thread_ts.to_string()));
            self.client
                .open_session(&self.token)
                .files_complete_upload_external(&request)
                .await
        })
        .await?;
        Ok(())
    }

    /// Runs one Web API call with the retry policy, counting outcomes per method.
    async fn call<T, F, Fut>(&self, method: &'static str, attempt: F) -> Result<T, SlackApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let wait = match attempt().await {
                Ok(value) => {
                    self.metrics.slack_api_calls.with_label_values(&[method, "ok"]).inc();
                    return Ok(value);
                }
                Err(SlackClientError::ApiError(error)) => {
                    self.metrics
                        .slack_api_calls
                        .with_label_values(&[method, "refused"])
                        .inc();
                    return Err(SlackApiError::Refused {
                        method,
                        code: error.code,
                    });
                }
                Err(SlackClientError::RateLimitError(error)) => {
                    self.metrics
                        .slack_api_calls
                        .with_label_values(&[method, "rate_limited"])
                        .inc();
                    tracing::warn!(method, retry_after = ?error.retry_after, "Slack rate-limited a call");
                    error.retry_after.unwrap_or(backoff)
                }
                Err(SlackClientError::HttpError(error)) if !error.status_code.is_server_error() => {
                    // 4xx other than 429: the request itself is wrong; repeating it cannot help.
                    self.metrics
                        .slack_api_calls
                        .with_label_values(&[method, "refused"])
                        .inc();
                    return Err(SlackApiError::Refused {
                        method,
                        code: format!("HTTP {}", error.status_code),
                    });
                }
                Err(error) => {
                    self.metrics.slack_api_calls.with_label_values(&[method, "error"]).inc();
                    if attempts >= MAX_ATTEMPTS {
                        return Err(SlackApiError::Unreachable {
                            method,
                            attempts,
                            cause: error.to_string(),
                        });
                    }
                    tracing::warn!(method, %error, attempts, "Slack call failed; retrying");
                    backoff
                }
            };
            if attempts >= MAX_ATTEMPTS {
                return Err(SlackApiError::Unreachable {
                    method,
                    attempts,
                    cause: "still rate-limited".into(),
                });
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
