//! HTTP routes: Slack's three endpoints plus health, readiness and metrics. Slack handlers
//! verify, parse, dedupe and hand off; they never wait for the warehouse or Slack.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

use super::dedupe::Deduplicator;
use super::events::{classify, Classified, Envelope, InboundMessage, Origin};
use super::outbox::SlackWebApi;
use super::verify::{SignatureError, SignatureVerifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::actors::{ThreadRegistry, UserMessage};
use crate::limits::{RateDecision, RateLimiter};
use crate::metrics::Metrics;
use crate::store::StateStore;
use crate::warehouse::Warehouse;

/// Largest request body accepted from Slack.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the Slack handlers share.
pub struct SlackIngress {
    pub verifier: SignatureVerifier,
    pub registry: Arc<ThreadRegistry>,
    pub dedupe: Deduplicator,
    pub limiter: RateLimiter,
    /// Questions per user per minute, for the notice.
    pub rate_limit_per_minute: u32,
    /// For ephemeral notices, sent after the ack.
    pub slack: SlackWebApi,
    /// The bot's user id from `auth.test`, when known.
    pub bot_user: Option<String>,
    pub metrics: Metrics,
}

impl SlackIngress {
    /// Hands a message to its thread unless it was handled already or its author is over the
    /// rate limit (then the author gets an ephemeral notice and the thread is untouched).
    async fn accept(&self, endpoint: &str, event_id: Option<&str>, message: InboundMessage) -> &'static str {
        let event_is_new = match event_id {
            Some(id) => self.dedupe.claim(&format!("event:{id}")).await,
            None => true,
        };
        // The same message can arrive twice under different event ids (app_mention + message).
        let thread = &message.thread;
        let message_key = format!("message:{}:{}:{}", thread.team(), thread.channel(), message.message_ts);
        if !event_is_new || !self.dedupe.claim(&message_key).await {
            self.count(endpoint, "duplicate");
            return "duplicate";
        }
        // A reply in a thread with no live actor may be chatter in a thread the bot is not in:
        // it is not metered (its actor drops it), so nobody gets a notice for talking to others.
        let metered = message.origin != Origin::ThreadReply || self.registry.is_live(thread);
        if metered {
            if let RateDecision::Limited { retry_after } = self.limiter.check(thread.team(), &message.user).await {
                self.count(endpoint, "rate_limited");
                self.notify_rate_limited(&message, retry_after);
                return "rate_limited";
            }
        }
        self.count(endpoint, "accepted");
        let InboundMessage {
            thread,
            user,
            text,
            message_ts,
            origin,
        } = message;
        self.registry.dispatch(
            thread,
            UserMessage {
                user,
                text,
                message_ts,
                origin,
                done: None,
            },
        );
        "accepted"
    }

    fn count(&self, endpoint: &str, outcome: &str) {
        self.metrics
            .slack_requests
            .with_label_values(&[endpoint, outcome])
            .inc();
    }

    fn notify_rate_limited(&self, message: &InboundMessage, retry_after: std::time::Duration) {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let text = format!(
            "You're asking faster than I can answer: at most {} questions a minute. \
             I didn't answer that one; please ask again in {seconds} s.",
            self.rate_limit_per_minute
        );
        let slack = self.slack.clone();
        let channel = message.thread.channel().to_string();
        let thread_ts = message.thread.thread_ts().to_string();
        let user = message.user.clone();
        // After the ack: the handler never waits for Slack.
        actix_rt::spawn(async move {
            if let Err(error) = slack.post_ephemeral(&channel, &user, Some(&thread_ts), &text).await {
                tracing::warn!(%error, "Failed to post a rate-limit notice");
            }
        });
    }
}

/// Dependencies `/readyz` checks.
pub struct Readiness {
    pub store: Arc<dyn StateStore>,
    pub warehouse: Arc<dyn Warehouse>,
}

/// A request body whose Slack signature has been verified.
pub struct VerifiedSlackRequest {
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("invalid Slack signature: {0}")]
    Unauthorized(#[from] SignatureError),
    #[error("{0}")]
    BadRequest(String),
}

impl ResponseError for IngressError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "ok": false, "error": self.to_string() }))
    }
}

impl FromRequest for VerifiedSlackRequest {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await?;
            let ingress = req
                .app_data::<web::Data<SlackIngress>>()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("Slack ingress is not configured"))?;
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
            let now = chrono::Utc::now().timestamp();
            if let Err(error) = ingress
                .verifier
                .verify(header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER), &body, now)
            {
                ingress
                    .metrics
                    .slack_requests
                    .with_label_values(&[req.path(), "rejected"])
                    .inc();
                tracing::warn!(path = req.path(), %error, "Refused a Slack request");
                return Err(IngressError::from(error).into());
            }
            Ok(Self { body })
        })
    }
}

pub async fn events(
    request: VerifiedSlackRequest,
    ingress: web::Data<SlackIngress>,
) -> Result<HttpResponse, IngressError> {
    let envelope: Envelope = serde_json::from_slice(&request.body)
        .map_err(|e| IngressError::BadRequest(format!("the body is not an Events API envelope: {e}")))?;
    match classify(envelope, ingress.bot_user.as_deref()) {
        Classified::UrlVerification(challenge) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "challenge": challenge })))
        }
        Classified::Message { event_id, message } => {
            ingress.accept("events", event_id.as_deref(), message).await;
            Ok(HttpResponse::Ok().finish())
        }
        Classified::Ignored(reason) => {
            tracing::debug!(reason, "Ignored a Slack event");
            ingress
                .metrics
                .slack_requests
                .with_label_values(&["events", "ignored"])
                .inc();
            Ok(HttpResponse::Ok().finish())
        }
    }
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

/// Interactive payloads (`block_actions`, shortcuts, views): acknowledged; threadql's answers
/// carry no interactive elements yet, so there is nothing to route.
pub async fn interactions(
    request: VerifiedSlackRequest,
    ingress: web::Data<SlackIngress>,
) -> Result<HttpResponse, IngressError> {
    let form: InteractionForm = serde_urlencoded::from_bytes(&request.body)
        .map_err(|e| IngressError::BadRequest(format!("the body has no payload field: {e}")))?;
    let payload: serde_json::Value = serde_json::from_str(&form.payload)
        .map_err(|e| IngressError::BadRequest(format!("the payload is not JSON: {e}")))?;
    let kind = payload.get("type").and_then(|t| t.as_str()).unwrap_or_default();
    tracing::debug!(kind, "Acknowledged an interaction");
    ingress
        .metrics
        .slack_requests
        .with_label_values(&["interactions", "ignored"])
        .inc();
    Ok(HttpResponse::Ok().finish())
}

#[derive(Deserialize)]
struct CommandForm {
    #[serde(default)]
    text: String,
}

/// Slash commands: acknowledged with an ephemeral pointer to mentions and threads.
pub async fn commands(
    request: VerifiedSlackRequest,
    ingress: web::Data<SlackIngress>,
) -> Result<HttpResponse, IngressError> {
    let form: CommandForm = serde_urlencoded::from_bytes(&request.body)
        .map_err(|e| IngressError::BadRequest(format!("the body is not a slash command form: {e}")))?;
    ingress
        .metrics
        .slack_requests
        .with_label_values(&["commands", "ignored"])
        .inc();
    let _ = form.text;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "response_type": "ephemeral",
        "text": "Mention me with a question, e.g. `@threadql revenue by region last month`, or send me a direct message. I answer in the thread, and you can refine the answer there.",
    })))
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let (store, warehouse) = tokio::join!(readiness.store.ping(), readiness.warehouse.ping());
    let status = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = serde_json::json!({
        "state_store": status(store.is_ok()),
        "warehouse": status(warehouse.is_ok()),
    });
    if let Err(error) = &store {
        tracing::warn!(?error, "Readiness: state store unavailable");
    }
    if let Err(error) = &warehouse {
        tracing::warn!(%error, "Readiness: warehouse unavailable");
    }
    if store.is_ok() && warehouse.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

/// Registers every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/slack/events", web::post().to(events))
        .route("/slack/interactions", web::post().to(interactions))
        .route("/slack/commands", web::post().to(commands))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}
