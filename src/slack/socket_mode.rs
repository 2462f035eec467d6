//! Socket Mode: Slack delivers events, interactions and slash commands over WebSockets that
//! threadql opens itself (`apps.connections.open` with the app-level token), so no public URL
//! is needed.
//!
//! Each of the configured connections runs in its own loop: open a URL, connect, wait for
//! `hello`, then hand every envelope to [`SlackIngress`] (the same code as HTTP) and ack it by
//! `envelope_id` as soon as ingress returns, which is when the work has been handed to the
//! thread actor (ingress never waits for the warehouse, the LLM or Slack). A slash command's
//! reply travels in the ack's `payload`. On Slack's `disconnect` message a new connection is
//! opened first and the old one closed once its acks are out; a dropped or silent connection is
//! replaced after a jittered, growing backoff.
//!
//! slack-morphism has a Socket Mode client, but it is not used: it acks only after the callback
//! returns, runs callbacks on plain tokio tasks (ingress spawns on actix's local set), hands over
//! re-typed events rather than the JSON ingress parses, and does not expose `retry_attempt`.
//! Redelivered envelopes need no special case here: ingress dedupes by message (team, channel, ts).
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use secrecy::SecretString;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::ingress::{EventAck, SlackIngress, SlashCommand};
use super::web_api::{SlackApiError, SlackWebApi};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, Message>;
type Stream = SplitStream<Socket>;
type Opening = Pin<Box<dyn Future<Output = Result<Socket, SocketModeError>>>>;

/// How Socket Mode connections are kept.
#[derive(Debug, Clone)]
pub struct SocketModeSettings {
    /// Connections kept open at once; Slack sends each envelope to one of them.
    pub connections: usize,
    /// Wait before the first reconnection after a failure; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// A connection that stayed up this long starts over from `first_backoff` when it drops.
    pub stable_after: Duration,
    /// How often threadql pings Slack; a connection silent for `missed_pings` intervals is
    /// considered dropped.
    pub ping_interval: Duration,
    pub missed_pings: u32,
    /// Connecting and receiving `hello` must take less than this.
    pub hello_timeout: Duration,
    /// Before a connection is closed (refresh or shutdown), acks still due get this long.
    pub drain_timeout: Duration,
}

impl SocketModeSettings {
    pub fn new(connections: usize) -> Self {
        Self {
            connections: connections.max(1),
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
            ping_interval: Duration::from_secs(15),
            missed_pings: 3,
            hello_timeout: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SocketModeError {
    #[error("apps.connections.open failed: {0}")]
    Open(#[from] SlackApiError),
    #[error("failed to connect to the Socket Mode URL: {0}")]
    Connect(String),
    #[error("Slack closed the connection before its hello")]
    ClosedBeforeHello,
    #[error("no hello from Slack within {0:?}")]
    NoHello(Duration),
}

/// The open Socket Mode connections. Dropping it closes them too, without waiting.
pub struct SocketMode {
    cancel: CancellationToken,
    slots: Vec<tokio::task::JoinHandle<()>>,
}

impl SocketMode {
    /// Starts `settings.connections` connection loops. Must run inside an actix `System`
    /// (ingress spawns on actix's local set).
    pub fn start(
        ingress: Arc<SlackIngress>,
        api: SlackWebApi,
        app_token: SecretString,
        settings: SocketModeSettings,
    ) -> Self {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            ingress,
            api,
            app_token,
            settings,
        });
        let slots = (0..shared.settings.connections)
            .map(|slot| actix_rt::spawn(run_slot(shared.clone(), slot, cancel.clone())))
            .collect();
        Self { cancel, slots }
    }

    /// Closes every connection (once acks still due are out, within the drain timeout) and
    /// waits for the connection loops to end. Envelopes Slack sends meanwhile stay unacked,
    /// so Slack redelivers them to another process.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for slot in std::mem::take(&mut self.slots) {
            if let Err(error) = slot.await {
                tracing::warn!(%error, "A Socket Mode connection loop ended abnormally");
            }
        }
    }
}

impl Drop for SocketMode {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct Shared {
    ingress: Arc<SlackIngress>,
    api: SlackWebApi,
    app_token: SecretString,
    settings: SocketModeSettings,
}

impl Shared {
    fn count_reconnect(&self, reason: &str) {
        self.ingress
            .metrics
            .socket_mode_reconnects
            .with_label_values(&[reason])
            .inc();
    }
}

/// What Slack sends over a connection, as far as threadql cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Hello {
        num_connections: Option<u32>,
    },
    /// Slack is about to close this connection (`refresh_requested`, `warning`, …).
    Disconnect {
        reason: String,
    },
    Envelope(Envelope),
    /// A frame of a type threadql does not know.
    Other(String),
}

/// One delivery to ack: `events_api`, `interactive` or `slash_commands` (or a newer type).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub envelope_id: String,
    pub kind: String,
    /// The same JSON as over HTTP (the interaction JSON is not form-wrapped).
    pub payload: serde_json::Value,
    pub accepts_response_payload: bool,
    /// 0 for a first delivery; Slack retries unacked envelopes.
    pub retry_attempt: u32,
    pub retry_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Frame {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
    #[serde(default)]
    accepts_response_payload: bool,
    #[serde(default)]
    retry_attempt: Option<u32>,
    #[serde(default)]
    retry_reason: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    num_connections: Option<u32>,
}

/// Parses a text frame. Anything carrying an `envelope_id` is an envelope, whatever its type,
/// so it gets acked even when threadql does not handle its type.
pub fn parse_frame(text: &str) -> Result<Inbound, serde_json::Error> {
    let frame: Frame = serde_json::from_str(text)?;
    Ok(match (frame.kind.as_str(), frame.envelope_id) {
        (_, Some(envelope_id)) if !envelope_id.is_empty() => Inbound::Envelope(Envelope {
            envelope_id,
            kind: frame.kind,
            payload: frame.payload,
            accepts_response_payload: frame.accepts_response_payload,
            retry_attempt: frame.retry_attempt.unwrap_or(0),
            retry_reason: frame.retry_reason.filter(|r| !r.is_empty()),
        }),
        ("hello", _) => Inbound::Hello {
            num_connections: frame.num_connections,
        },
        ("disconnect", _) => Inbound::Disconnect {
            reason: frame.reason.unwrap_or_default(),
        },
        _ => Inbound::Other(frame.kind),
    })
}

/// The ack of an envelope, with a payload only when there is one to send.
pub fn ack_frame(envelope_id: &str, payload: Option<serde_json::Value>) -> String {
    let mut ack = serde_json::json!({ "envelope_id": envelope_id });
    if let Some(payload) = payload {
        ack["payload"] = payload;
    }
    ack.to_string()
}

/// Hands an envelope to ingress and returns its ack. Ingress only dedupes, rate-limits and
/// dispatches to the thread actor, so the ack leaves as soon as the work is handed over. `None`
/// leaves the envelope unacked, for Slack to redeliver (the backlog is full).
async fn handle(ingress: &SlackIngress, envelope: Envelope) -> Option<String> {
    if envelope.retry_attempt > 0 {
        tracing::info!(
            envelope_id = %envelope.envelope_id,
            retry_attempt = envelope.retry_attempt,
            retry_reason = envelope.retry_reason.as_deref().unwrap_or(""),
            "Slack redelivered an envelope"
        );
    }
    let count = |outcome: &str| {
        ingress
            .metrics
            .slack_requests
            .with_label_values(&["socket_mode", outcome])
            .inc()
    };
    let reply = match envelope.kind.as_str() {
        "events_api" => {
            let body = envelope.payload.to_string();
            match ingress.event(body.as_bytes()).await {
                Ok(EventAck::RetryLater) => {
                    tracing::debug!(envelope_id = %envelope.envelope_id, "Left an envelope unacked for redelivery: backlog full");
                    return None;
                }
                Ok(_) => {}
                Err(error) => {
                    count("bad_request");
                    tracing::warn!(%error, envelope_id = %envelope.envelope_id, "Refused a Socket Mode event");
                }
            }
            None
        }
        // A dialog's validation errors go back as the ack's payload.
        "interactive" => ingress.interaction(&envelope.payload).await,
        "slash_commands" => match serde_json::from_value::<SlashCommand>(envelope.payload) {
            Ok(command) => {
                let reply = ingress.command(command).await;
                // `{}` means nothing to show now: a bare ack.
                Some(reply).filter(|r| !r.as_object().is_some_and(|o| o.is_empty()))
            }
            Err(error) => {
                count("bad_request");
                tracing::warn!(%error, envelope_id = %envelope.envelope_id, "Refused a Socket Mode slash command");
                None
            }
        },
        other => {
            count("ignored");
            tracing::debug!(
                kind = other,
                "Acked a Socket Mode envelope of a type threadql does not handle"
            );
            None
        }
    };
    Some(ack_frame(
        &envelope.envelope_id,
        reply.filter(|_| envelope.accepts_response_payload),
    ))
}

/// How [`serve`] gave up a connection.
enum Ended {
    Shutdown,
    /// Slack asked for a refresh and the replacement is open (past its `hello`).
    Replaced(Box<Socket>),
    Dropped(String),
}

/// Why a connection is being closed by threadql.
enum Closing {
    Shutdown,
    Replace(Box<Socket>),
}

/// Keeps one connection open until shutdown.
async fn run_slot(shared: Arc<Shared>, slot: usize, cancel: CancellationToken) {
    let settings = &shared.settings;
    let mut backoff = settings.first_backoff;
    let mut ready: Option<Socket> = None;
    loop {
        let socket = match ready.take() {
            Some(socket) => socket,
            None => {
                let opened = tokio::select! {
                    _ = cancel.cancelled() => return,
                    opened = open(shared.clone()) => opened,
                };
                match opened {
                    Ok(socket) => socket,
                    Err(error) => {
                        shared.count_reconnect("open_failed");
                        tracing::warn!(slot, %error, retry_in = ?backoff, "Failed to open a Socket Mode connection");
                        if sleep_or_cancel(jittered(backoff), &cancel).await {
                            return;
                        }
                        backoff = (backoff * 2).min(settings.max_backoff);
                        continue;
                    }
                }
            }
        };
        let opened_at = Instant::now();
        shared.ingress.metrics.socket_mode_connections.inc();
        let ended = serve(socket, &shared, slot, &cancel).await;
        shared.ingress.metrics.socket_mode_connections.dec();
        match ended {
            Ended::Shutdown => {
                tracing::info!(slot, "Closed a Socket Mode connection");
                return;
            }
            Ended::Replaced(next) => {
                shared.count_reconnect("refresh");
                tracing::info!(slot, "Replaced a Socket Mode connection at Slack's request");
                ready = Some(*next);
                backoff = settings.first_backoff;
            }
            Ended::Dropped(reason) => {
                shared.count_reconnect("dropped");
                if opened_at.elapsed() >= settings.stable_after {
                    backoff = settings.first_backoff;
                }
                tracing::warn!(slot, reason, retry_in = ?backoff, "A Socket Mode connection dropped; reconnecting");
                if sleep_or_cancel(jittered(backoff), &cancel).await {
                    return;
                }
                backoff = (backoff * 2).min(settings.max_backoff);
            }
        }
    }
}

/// A fresh URL, a connection to it and Slack's `hello`.
async fn open(shared: Arc<Shared>) -> Result<Socket, SocketModeError> {
    let url = shared.api.open_socket_connection(&shared.app_token).await?;
    // The URL carries a ticket: only its host is logged.
    let host = url.host_str().unwrap_or_default().to_string();
    let connect = async {
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| SocketModeError::Connect(e.to_string()))?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => match parse_frame(text.as_str()) {
                    Ok(Inbound::Hello { num_connections }) => {
                        tracing::info!(host, num_connections, "Opened a Socket Mode connection");
                        return Ok(socket);
                    }
                    // Slack always says hello first; anything else stays unacked and is redelivered.
                    _ => tracing::warn!(host, "Ignored a Socket Mode frame that came before hello"),
                },
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(SocketModeError::Connect(error.to_string())),
                None => return Err(SocketModeError::ClosedBeforeHello),
            }
        }
    };
    let timeout = shared.settings.hello_timeout;
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| SocketModeError::NoHello(timeout))?
}

/// Serves one connection until it ends: dispatches envelopes, sends their acks, pings, and
/// opens a replacement when Slack announces a disconnect.
async fn serve(socket: Socket, shared: &Arc<Shared>, slot: usize, cancel: &CancellationToken) -> Ended {
    let settings = &shared.settings;
    let (mut sink, mut stream) = socket.split();
    // `None`: an envelope left unacked on purpose, for Slack to redeliver.
    let (acks, mut due_acks) = mpsc::unbounded_channel::<Option<String>>();
    // Envelopes handed to ingress whose ack has not been sent yet.
    let mut in_flight = 0usize;
    let mut ping = tokio::time::interval_at(Instant::now() + settings.ping_interval, settings.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut replacement: Option<Opening> = None;
    let mut closing: Option<(Closing, Instant)> = None;

    let reason = loop {
        if let Some((_, deadline)) = &closing {
            if in_flight == 0 || Instant::now() >= *deadline {
                if in_flight > 0 {
                    tracing::warn!(
                        slot,
                        in_flight,
                        "Closing a Socket Mode connection with acks still due; Slack will redeliver"
                    );
                }
                close(sink, stream).await;
                return match closing.map(|(why, _)| why) {
                    Some(Closing::Replace(next)) => Ended::Replaced(next),
                    _ => Ended::Shutdown,
                };
            }
        }
        let shutting_down = matches!(closing, Some((Closing::Shutdown, _)));
        let drain_deadline = closing.as_ref().map(|(_, deadline)| *deadline);
        tokio::select! {
            _ = cancel.cancelled(), if !shutting_down => {
                if let Some((Closing::Replace(next), _)) = closing.take() {
                    actix_rt::spawn(close_socket(*next));
                }
                replacement = None;
                closing = Some((Closing::Shutdown, Instant::now() + settings.drain_timeout));
            }
            Some(ack) = due_acks.recv() => {
                in_flight = in_flight.saturating_sub(1);
                let Some(ack) = ack else { continue };
                if let Err(error) = sink.send(Message::text(ack)).await {
                    break format!("failed to send an ack: {error}");
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    match parse_frame(text.as_str()) {
                        Ok(Inbound::Envelope(envelope)) if shutting_down => {
                            tracing::debug!(envelope_id = %envelope.envelope_id, "Left an envelope unacked for redelivery: shutting down");
                        }
                        Ok(Inbound::Envelope(envelope)) => {
                            in_flight += 1;
                            let ingress = shared.ingress.clone();
                            let acks = acks.clone();
                            actix_rt::spawn(async move {
                                let ack = handle(&ingress, envelope).await;
                                if acks.send(ack).is_err() {
                                    tracing::debug!("The connection closed before an ack could be sent; Slack will redeliver");
                                }
                            });
                        }
                        Ok(Inbound::Disconnect { reason }) => {
                            tracing::info!(slot, reason, "Slack announced a disconnect; opening a new connection");
                            if replacement.is_none() && closing.is_none() {
                                replacement = Some(Box::pin(open(shared.clone())));
                            }
                        }
                        Ok(Inbound::Hello { .. }) => tracing::debug!(slot, "Another hello from Slack"),
                        Ok(Inbound::Other(kind)) => tracing::debug!(slot, kind, "Ignored a Socket Mode frame"),
                        Err(error) => tracing::warn!(slot, %error, "Ignored a Socket Mode frame that is not JSON"),
                    }
                }
                // tungstenite answers pings and completes Slack's close handshake itself; the
                // stream ends after a close.
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(error)) => break error.to_string(),
                None => break "Slack closed the connection".to_string(),
            },
            opened = poll_opening(&mut replacement), if replacement.is_some() => {
                replacement = None;
                match opened {
                    Ok(next) => closing = Some((Closing::Replace(Box::new(next)), Instant::now() + settings.drain_timeout)),
                    Err(error) => tracing::warn!(slot, %error, "Failed to open a replacement Socket Mode connection; keeping this one until Slack closes it"),
                }
            }
            _ = sleep_until_deadline(drain_deadline), if drain_deadline.is_some() => {}
            _ = ping.tick() => {
                let silence = settings.ping_interval * settings.missed_pings;
                if last_heard.elapsed() > silence {
                    break format!("nothing from Slack for {silence:?}");
                }
                if let Err(error) = sink.send(Message::Ping(Bytes::new())).await {
                    break format!("failed to send a ping: {error}");
                }
            }
        }
    };

    // The connection is gone; acks still due are lost and Slack redelivers those envelopes.
    match closing {
        Some((Closing::Replace(next), _)) => Ended::Replaced(next),
        Some((Closing::Shutdown, _)) => Ended::Shutdown,
        None => match replacement {
            Some(opening) => tokio::select! {
                _ = cancel.cancelled() => Ended::Shutdown,
                opened = opening => match opened {
                    Ok(next) => Ended::Replaced(Box::new(next)),
                    Err(error) => Ended::Dropped(format!("{reason}; the replacement failed too: {error}")),
                },
            },
            None => Ended::Dropped(reason),
        },
    }
}

async fn poll_opening(opening: &mut Option<Opening>) -> Result<Socket, SocketModeError> {
    match opening.as_mut() {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sends a close frame and waits briefly for Slack's, so the close handshake completes.
async fn close(mut sink: Sink, mut stream: Stream) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if sink.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

async fn close_socket(socket: Socket) {
    let (sink, stream) = socket.split();
    close(sink, stream).await;
}

/// Sleeps unless cancelled first; true when cancelled.
async fn sleep_or_cancel(duration: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

/// Between half and all of `backoff`, so connections dropped together do not return together.
fn jittered(backoff: Duration) -> Duration {
    backoff.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_events_api_envelope_keeps_its_id_payload_and_retry_attempt() {
        let frame = json!({
            "envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf",
            "payload": {"type": "event_callback", "event_id": "Ev01"},
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": 1,
            "retry_reason": "timeout"
        });
        let Ok(Inbound::Envelope(envelope)) = parse_frame(&frame.to_string()) else {
            panic!("not an envelope");
        };
        assert_eq!(envelope.envelope_id, "57d6a792-4d35-4d0b-b6aa-3361493e1caf");
        assert_eq!(envelope.kind, "events_api");
        assert_eq!(envelope.payload["event_id"], "Ev01");
        assert_eq!(
            (envelope.retry_attempt, envelope.retry_reason.as_deref()),
            (1, Some("timeout"))
        );
    }

    #[test]
    fn hello_and_disconnect_are_recognised_and_unknown_frames_are_not_envelopes() {
        let hello = r#"{"type":"hello","num_connections":2,"debug_info":{"host":"applink-1"},"connection_info":{"app_id":"A1"}}"#;
        assert_eq!(
            parse_frame(hello).ok(),
            Some(Inbound::Hello {
                num_connections: Some(2)
            })
        );
        let disconnect = r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-1"}}"#;
        assert_eq!(
            parse_frame(disconnect).ok(),
            Some(Inbound::Disconnect {
                reason: "refresh_requested".into()
            })
        );
        assert_eq!(
            parse_frame(r#"{"type":"something_new"}"#).ok(),
            Some(Inbound::Other("something_new".into()))
        );
        assert!(parse_frame("not json").is_err());
    }

    #[test]
    fn an_ack_carries_the_envelope_id_and_a_payload_only_when_given() {
        let bare: serde_json::Value = serde_json::from_str(&ack_frame("e1", None)).unwrap();
        assert_eq!(bare, json!({"envelope_id": "e1"}));
        let with_payload: serde_json::Value =
            serde_json::from_str(&ack_frame("e2", Some(json!({"text": "hi"})))).unwrap();
        assert_eq!(with_payload, json!({"envelope_id": "e2", "payload": {"text": "hi"}}));
    }
}
