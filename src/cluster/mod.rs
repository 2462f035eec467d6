//! Several replicas, one live actor per thread (issue 13). Which replica owns a thread is kept
//! in Postgres ([`crate::store::ThreadOwnership`]); a replica that receives an event for a
//! thread another one owns forwards it there over HTTP, to the owner's advertised URL, with the
//! shared cluster secret. This module holds what both ends share: who this replica is, the
//! message as it travels, and the client that sends it.
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::{Origin, ThreadKey};

/// The path of the internal endpoint, served only on the advertised port.
pub const FORWARD_PATH: &str = "/internal/forward";
/// The internal endpoint that lists the threads this replica owns (operators, and the tests
/// that check a thread is live at one replica only).
pub const OWNED_THREADS_PATH: &str = "/internal/threads";
/// How long a forwarded message may take to be accepted (the owner only queues it).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// This replica in the cluster.
pub struct Cluster {
    /// This process's name (host and a random suffix, new at each start): the owner column.
    pub me: String,
    /// Where the other replicas reach this one (`THREADQL_ADVERTISE_URL`).
    pub url: String,
    /// How long a claimed thread stays this replica's without a renewal (`THREADQL_LEASE_SECS`).
    pub lease: Duration,
    secret: SecretString,
    client: reqwest_openai::Client,
}

/// A user's message on its way to the thread's owner: what the owner needs to run the turn.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForwardedMessage {
    pub thread: ThreadKey,
    pub user: String,
    pub text: String,
    pub message_ts: String,
    pub origin: WireOrigin,
    pub version: Option<usize>,
    pub event_id: String,
}

/// [`Origin`] as it travels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WireOrigin {
    Mention,
    DirectMessage,
    ThreadReply,
}

impl From<Origin> for WireOrigin {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Mention => Self::Mention,
            Origin::DirectMessage => Self::DirectMessage,
            Origin::ThreadReply => Self::ThreadReply,
        }
    }
}

impl From<WireOrigin> for Origin {
    fn from(origin: WireOrigin) -> Self {
        match origin {
            WireOrigin::Mention => Self::Mention,
            WireOrigin::DirectMessage => Self::DirectMessage,
            WireOrigin::ThreadReply => Self::ThreadReply,
        }
    }
}

/// Why a message could not be handed to its owner.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the owner at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the owner at {url} refused the message with HTTP {status}")]
    Refused { url: String, status: u16 },
}

impl Cluster {
    pub fn new(me: String, url: String, lease: Duration, secret: SecretString) -> anyhow::Result<Self> {
        let client = crate::outbound::http_client("cluster forwarding", FORWARD_TIMEOUT, FORWARD_TIMEOUT)
            .context("Failed to build the client that forwards events to other replicas")?;
        Ok(Self {
            me,
            url,
            lease,
            secret,
            client,
        })
    }

    /// Whether a request to the internal endpoint carries the cluster secret (`Bearer …`),
    /// compared in constant time.
    pub fn authorizes(&self, authorization: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        let Some(token) = authorization.and_then(|value| value.strip_prefix("Bearer ")) else {
            return false;
        };
        token.as_bytes().ct_eq(self.secret.expose_secret().as_bytes()).into()
    }

    /// Hands `message` to the replica at `url` (the thread's owner), which queues it in the
    /// thread's actor and answers 202.
    pub async fn forward(&self, url: &str, message: &ForwardedMessage) -> Result<(), ForwardError> {
        let endpoint = format!("{}{FORWARD_PATH}", url.trim_end_matches('/'));
        let body = serde_json::to_vec(message).map_err(|error| ForwardError::Unreachable {
            url: url.to_string(),
            reason: format!("the message could not be encoded: {error}"),
        })?;
        let sent = self
            .client
            .post(&endpoint)
            .bearer_auth(self.secret.expose_secret())
            .header(reqwest_openai::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| ForwardError::Unreachable {
                url: url.to_string(),
                reason: error.to_string(),
            })?;
        match sent.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(ForwardError::Refused {
                url: url.to_string(),
                status,
            }),
        }
    }
}
