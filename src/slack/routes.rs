//! Slack's three HTTP endpoints. Handlers verify, parse, dedupe and hand off; they never wait
//! for the warehouse or Slack.
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

use super::ingress::{EventAck, SlackIngress, SlashCommand};
use super::verify::{SignatureError, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::domain::ErrorCode;

/// Largest request body accepted from Slack.
const MAX_BODY_BYTES: usize = 1024 * 1024;

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

impl IngressError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthorized(_) => ErrorCode::InvalidSignature,
            Self::BadRequest(_) => ErrorCode::BadRequest,
        }
    }
}

impl ResponseError for IngressError {
    /// From the error table, like every failure a caller can meet.
    fn status_code(&self) -> StatusCode {
        self.code()
            .describe()
            .http_status
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// `error` is the stable code (as Slack's own API answers); `message` says what was wrong.
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(serde_json::json!({
            "ok": false,
            "error": self.code().code(),
            "message": self.to_string(),
        }))
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
                    .with_label_values(&[endpoint_label(req.path()), "unauthorized"])
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
    let ack = ingress.event(&request.body).await;
    match ack.map_err(|error| bad_request(&ingress, "events", error))? {
        EventAck::Challenge(challenge) => Ok(HttpResponse::Ok().json(serde_json::json!({ "challenge": challenge }))),
        EventAck::Ok => Ok(HttpResponse::Ok().finish()),
        EventAck::RetryLater => Ok(HttpResponse::ServiceUnavailable().finish()),
    }
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

pub async fn interactions(
    request: VerifiedSlackRequest,
    ingress: web::Data<SlackIngress>,
) -> Result<HttpResponse, IngressError> {
    let form: InteractionForm = serde_urlencoded::from_bytes(&request.body)
        .map_err(|e| bad_request(&ingress, "interactions", format!("the body has no payload field: {e}")))?;
    let payload: serde_json::Value = serde_json::from_str(&form.payload)
        .map_err(|e| bad_request(&ingress, "interactions", format!("the payload is not JSON: {e}")))?;
    match ingress.interaction(&payload).await {
        Some(reply) => Ok(HttpResponse::Ok().json(reply)),
        None => Ok(HttpResponse::Ok().finish()),
    }
}

pub async fn commands(
    request: VerifiedSlackRequest,
    ingress: web::Data<SlackIngress>,
) -> Result<HttpResponse, IngressError> {
    let command: SlashCommand = serde_urlencoded::from_bytes(&request.body).map_err(|e| {
        bad_request(
            &ingress,
            "commands",
            format!("the body is not a slash command form: {e}"),
        )
    })?;
    let reply = ingress.command(command).await;
    // An empty object means "nothing to show now": answer with an empty 200.
    if reply.as_object().is_some_and(|o| o.is_empty()) {
        Ok(HttpResponse::Ok().finish())
    } else {
        Ok(HttpResponse::Ok().json(reply))
    }
}

/// A verified request whose body cannot be read, counted as `bad_request`.
fn bad_request(ingress: &SlackIngress, endpoint: &str, message: String) -> IngressError {
    ingress
        .metrics
        .slack_requests
        .with_label_values(&[endpoint, "bad_request"])
        .inc();
    IngressError::BadRequest(message)
}

/// The `endpoint` label of `threadql_slack_requests_total` for a request path: the same short
/// names ingress counts under (`events`, `interactions`, `commands`), and a bounded `other`.
fn endpoint_label(path: &str) -> &'static str {
    match path.trim_end_matches('/').rsplit('/').next() {
        Some("events") => "events",
        Some("interactions") => "interactions",
        Some("commands") => "commands",
        _ => "other",
    }
}

/// Registers Slack's three endpoints.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/slack/events", web::post().to(events))
        .route("/slack/interactions", web::post().to(interactions))
        .route("/slack/commands", web::post().to(commands));
}
