//! What Slack sends, whatever the transport (HTTP or Socket Mode): events, interactions and
//! slash commands are deduped, rate-limited and handed to thread actors. Nothing here waits
//! for the warehouse or the LLM; Slack calls that must follow an ack are spawned.
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tracing::Instrument;

use super::blocks::{self, EditMetadata};
use super::events::{classify, Classified, Envelope, InboundMessage};
use super::verify::SignatureVerifier;
use super::web_api::SlackWebApi;
use crate::actors::{Dispatched, ThreadRegistry, UserMessage};
use crate::domain::ThreadKey;
use crate::domain::{ErrorCode, MessageTs, Origin, UserId};
use crate::interpret::Interpreter;
use crate::limits::{Admission, IngressGate};
use crate::metrics::Metrics;

/// Button `action_id`s on answers, progress messages and schedules, and the follow-up each one
/// types (a schedule's button adds the schedule's number).
pub const BUTTONS: [(&str, &str); 10] = [
    ("show_sql", "show sql"),
    ("export_csv", "export csv"),
    ("chart", "chart"),
    ("undo", "undo"),
    ("cancel", "cancel"),
    ("run_anyway", "run anyway"),
    ("why_this_result", "why this result"),
    ("schedule_pause", "pause schedule"),
    ("schedule_resume", "resume schedule"),
    ("schedule_delete", "delete schedule"),
];

/// The Edit button of a schedule: opens a dialog rather than typing a follow-up.
const EDIT_SCHEDULE: &str = "schedule_edit";

/// What a button carries: the thread and the version of the answer it was attached to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ButtonValue {
    pub thread_ts: String,
    #[serde(default)]
    pub version: Option<usize>,
    /// A schedule's buttons: its number.
    #[serde(default)]
    pub report: Option<i64>,
    /// A schedule's buttons: its words, where the Edit dialog starts.
    #[serde(default)]
    pub phrase: Option<String>,
}

/// What the Slack handlers share.
pub struct SlackIngress {
    pub verifier: SignatureVerifier,
    pub registry: Arc<ThreadRegistry>,
    /// Told when a channel's members or a user group change (their caches are dropped).
    pub access: Arc<crate::access::AccessControl>,
    /// Dedupe and the per-user rate limit.
    pub gate: IngressGate,
    /// Questions per user per minute, for the notice.
    pub rate_limit_per_minute: u32,
    /// For notices and slash-command thread roots, sent after the ack.
    pub slack: SlackWebApi,
    /// Installed through OAuth: the installations `app_uninstalled` and `tokens_revoked` end.
    pub installs: Option<Arc<super::install::InstallationStore>>,
    /// The bot's user id from `auth.test`, when known.
    pub bot_user: Option<String>,
    /// Whose help `/threadql help` shows: the metrics and dimensions the interpreter knows now
    /// (asked each time, so a model refreshed in the background shows its new tables).
    pub interpreter: Arc<dyn Interpreter>,
    pub metrics: Metrics,
    /// `THREADQL_MAX_BACKLOG`: unfinished messages beyond which new threads are refused for now.
    pub max_backlog: usize,
    /// Whether the last message that would start a thread was refused (logs the change once).
    pub shedding: std::sync::atomic::AtomicBool,
}

/// The reply to an event delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAck {
    /// `url_verification`: echo the challenge.
    Challenge(String),
    Ok,
    /// Over `THREADQL_MAX_BACKLOG`: not taken, so that Slack delivers it again later (HTTP 503,
    /// or no Socket Mode ack). Nothing was claimed, so the redelivery is handled normally.
    RetryLater,
}

/// A slash command's form fields (the subset threadql reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlashCommand {
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Deserialize)]
struct Id {
    #[serde(default)]
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct Container {
    #[serde(default)]
    channel_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Action {
    #[serde(default)]
    action_id: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    action_ts: Option<String>,
}

/// The fields of a `block_actions` or `view_submission` payload threadql reads.
#[derive(Debug, Deserialize)]
struct BlockActions {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    trigger_id: Option<String>,
    #[serde(default)]
    view: Option<serde_json::Value>,
    user: Option<Id>,
    team: Option<Id>,
    channel: Option<Id>,
    #[serde(default)]
    container: Container,
    #[serde(default)]
    actions: Vec<Action>,
}

impl SlackIngress {
    /// An Events API envelope (already verified).
    pub async fn event(&self, body: &[u8]) -> Result<EventAck, String> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|e| format!("the body is not an Events API envelope: {e}"))?;
        if let (Some(workspaces), Some(team), Some(enterprise)) =
            (self.slack.workspaces(), &envelope.team_id, &envelope.enterprise_id)
        {
            workspaces.remember_enterprise(team, enterprise);
        }
        match classify(envelope, self.bot_user.as_deref()) {
            Classified::UrlVerification(challenge) => Ok(EventAck::Challenge(challenge)),
            Classified::Message(message) => {
                if self.overloaded(&message.thread) {
                    self.count("events", "overloaded");
                    return Ok(EventAck::RetryLater);
                }
                self.accept("events", message, None).await;
                Ok(EventAck::Ok)
            }
            Classified::AudienceChanged { team, channel } => {
                self.count("events", "membership");
                self.access.channel_changed(&team, &channel).await;
                Ok(EventAck::Ok)
            }
            Classified::UserGroupsChanged => {
                self.count("events", "membership");
                self.access.groups_changed().await;
                Ok(EventAck::Ok)
            }
            Classified::Uninstalled(workspace) => {
                self.count("events", "installation");
                self.installation_ended(&workspace, true).await;
                Ok(EventAck::Ok)
            }
            Classified::TokensRevoked(workspace) => {
                self.count("events", "installation");
                self.installation_ended(&workspace, false).await;
                Ok(EventAck::Ok)
            }
            Classified::Ignored(reason) => {
                tracing::debug!(reason, "Ignored a Slack event");
                self.count("events", "ignored");
                Ok(EventAck::Ok)
            }
        }
    }

    /// `app_uninstalled` (`uninstalled`: the installation goes) or `tokens_revoked` (its tokens
    /// go, the row stays inactive with its audit trail). Nothing to do with one
    /// `SLACK_BOT_TOKEN`: Slack's own revocation is what stops that token.
    async fn installation_ended(&self, workspace: &super::events::Workspace, uninstalled: bool) {
        let Some(installs) = &self.installs else {
            return;
        };
        let Some(identity) = super::install::InstallationIdentity::new(
            workspace.enterprise.as_deref(),
            workspace.team.as_deref(),
            &workspace.app,
        ) else {
            return tracing::warn!("An installation event named no team or enterprise; ignored");
        };
        let ended = match uninstalled {
            true => installs.delete(&identity).await,
            false => installs.delete_tokens(&identity).await,
        };
        match ended {
            Ok(found) => tracing::info!(%identity, uninstalled, found, "An installation's tokens were removed"),
            Err(error) => tracing::error!(%identity, ?error, "Failed to remove an installation's tokens"),
        }
        if let (Some(workspaces), Some(team)) = (self.slack.workspaces(), workspace.team.as_deref()) {
            workspaces.forget(team);
        }
    }

    /// An interaction payload (the JSON of the form's `payload` field). A click on an answer's
    /// button becomes the follow-up it stands for, on the version that answer showed; a
    /// schedule's Edit button opens its dialog, whose submission becomes "edit schedule N …".
    /// Returns the body to answer with, when there is one (a dialog's validation errors).
    pub async fn interaction(&self, payload: &serde_json::Value) -> Option<serde_json::Value> {
        let Ok(actions) = serde_json::from_value::<BlockActions>(payload.clone()) else {
            self.count("interactions", "ignored");
            return None;
        };
        let team = actions.team.as_ref().map(|t| t.id.clone()).unwrap_or_default();
        let user = actions.user.as_ref().map(|u| u.id.clone()).unwrap_or_default();
        if actions.kind == "view_submission" {
            return self.edit_submitted(&team, &user, actions.view.as_ref()).await;
        }
        if actions.kind != "block_actions" {
            self.count("interactions", "ignored");
            return None;
        }
        let channel = actions
            .channel
            .map(|c| c.id)
            .or(actions.container.channel_id)
            .unwrap_or_default();
        for action in actions.actions {
            let Some(value) = action
                .value
                .as_deref()
                .and_then(|v| serde_json::from_str::<ButtonValue>(v).ok())
            else {
                continue;
            };
            if action.action_id == EDIT_SCHEDULE {
                if let (Some(report), Some(trigger)) = (value.report, actions.trigger_id.clone()) {
                    self.open_edit_dialog(&channel, &value, report, trigger);
                    self.count("interactions", "accepted");
                    return None;
                }
                continue;
            }
            let Some((_, text)) = BUTTONS.iter().find(|(id, _)| *id == action.action_id) else {
                continue;
            };
            let text = match value.report {
                Some(report) => format!("{text} {report}"),
                None => text.to_string(),
            };
            let Some(thread) = ThreadKey::parse(&team, &channel, &value.thread_ts) else {
                continue;
            };
            if user.is_empty() {
                continue;
            }
            let message_ts = action.action_ts.unwrap_or_default();
            let message = InboundMessage {
                thread,
                user: UserId::new(user.clone()),
                text,
                message_ts: MessageTs::new(message_ts),
                origin: Origin::ThreadReply,
                event_id: String::new(),
            };
            self.accept("interactions", message, value.version).await;
            return None;
        }
        self.count("interactions", "ignored");
        None
    }

    /// Opens a schedule's Edit dialog (`views.open`), after the ack: the trigger is valid for
    /// a few seconds only, so it is not queued behind other Slack calls.
    fn open_edit_dialog(&self, channel: &str, value: &ButtonValue, report: i64, trigger: String) {
        let metadata = EditMetadata {
            channel: channel.to_string(),
            thread_ts: value.thread_ts.clone(),
            report,
        };
        let view = blocks::schedule_edit_view(&metadata, value.phrase.as_deref().unwrap_or_default());
        let slack = self.slack.clone();
        // Counted from now, like a slash command's root post: the server is not idle until the
        // dialog's call is over (a test waiting for idleness would otherwise miss it).
        let queued = slack.outbox_ticket();
        actix_rt::spawn(async move {
            let _queued = queued;
            if let Err(error) = slack.open_view(&trigger, &view).await {
                tracing::warn!(%error, report, "Failed to open a schedule's Edit dialog");
            }
        });
    }

    /// The Edit dialog was submitted: words that are not a schedule are sent back as the field's
    /// error (the dialog stays open); a schedule goes to the thread as "edit schedule N …".
    async fn edit_submitted(
        &self,
        team: &str,
        user: &str,
        view: Option<&serde_json::Value>,
    ) -> Option<serde_json::Value> {
        let view = view?;
        if view["callback_id"] != "schedule_edit" {
            self.count("interactions", "ignored");
            return None;
        }
        let metadata: Option<EditMetadata> = view["private_metadata"]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok());
        let words = view["state"]["values"]["schedule"]["words"]["value"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let (Some(metadata), false) = (metadata, user.is_empty()) else {
            self.count("interactions", "ignored");
            return None;
        };
        let problem = match crate::domain::parse_schedule(&words, chrono_tz::Tz::UTC) {
            Ok(Some(_)) => None,
            Ok(None) => Some(ErrorCode::ScheduleNotUnderstood.sentence().to_string()),
            Err(error) => Some(error.message().to_string()),
        };
        if let Some(problem) = problem {
            self.count("interactions", "invalid");
            return Some(serde_json::json!({
                "response_action": "errors",
                "errors": { "schedule": problem },
            }));
        }
        let Some(thread) = ThreadKey::parse(team, &metadata.channel, &metadata.thread_ts) else {
            self.count("interactions", "ignored");
            return None;
        };
        let message = InboundMessage {
            thread,
            user: UserId::new(user),
            text: format!("edit schedule {} {words}", metadata.report),
            message_ts: MessageTs::new(""),
            origin: Origin::ThreadReply,
            event_id: String::new(),
        };
        self.accept("interactions", message, None).await;
        None
    }

    /// A slash command. Returns the body of the immediate reply (ephemeral unless stated).
    /// A question is posted in the channel as a new thread root and answered in that thread.
    pub async fn command(&self, command: SlashCommand) -> serde_json::Value {
        let question = command.text.trim().to_string();
        if question.is_empty() || question.eq_ignore_ascii_case("help") {
            self.count("commands", "help");
            return serde_json::json!({ "response_type": "ephemeral", "text": self.interpreter.help() });
        }
        if command.team_id.is_empty() || command.channel_id.is_empty() || command.user_id.is_empty() {
            self.count("commands", "ignored");
            return serde_json::json!({ "response_type": "ephemeral", "text": "That command arrived without its channel or user; please try again." });
        }
        if self.registry.backlog() >= self.max_backlog {
            self.count("commands", "overloaded");
            return serde_json::json!({ "response_type": "ephemeral", "text": ErrorCode::Overloaded.sentence() });
        }
        let asker = (command.team_id.as_str(), command.user_id.as_str());
        if let Admission::Limited { retry_after } = self.gate.admit(None, Some(asker)).await {
            self.count("commands", "rate_limited");
            return serde_json::json!({ "response_type": "ephemeral", "text": self.rate_limit_text(retry_after) });
        }
        self.count("commands", "accepted");
        let slack = self.slack.clone();
        let registry = self.registry.clone();
        // Counted from now, not from the task's first poll: the root post hands the question to
        // its thread before this ticket goes, so the server never looks idle in between.
        let queued = slack.outbox_ticket();
        // After the ack: the thread root must exist before its thread can be answered.
        actix_rt::spawn(async move {
            let _queued = queued;
            let root = super::blocks::text(&format!("*<@{}> asked:* {question}", command.user_id));
            let posted = slack.post_message(&command.channel_id, None, &root).await;
            let root_ts = match posted {
                Ok(ts) if !ts.is_empty() => ts,
                Ok(_) => return tracing::warn!("chat.postMessage returned no ts for a slash command's thread root"),
                Err(error) => {
                    // Slack's own error code goes to the log; the user gets the table's sentence.
                    tracing::warn!(%error, code = %ErrorCode::SlackRefused, "Failed to start a thread for a slash command");
                    let text = ErrorCode::SlackRefused.sentence();
                    let _ = slack
                        .post_ephemeral(&command.channel_id, &command.user_id, None, &blocks::text(text))
                        .await;
                    return;
                }
            };
            let Some(thread) = ThreadKey::parse(&command.team_id, &command.channel_id, &root_ts) else {
                return;
            };
            let message = UserMessage::new(&command.user_id, &question, &root_ts, Origin::Mention);
            registry.dispatch_kept(thread, message).await;
        });
        serde_json::json!({})
    }

    /// Hands a message to its thread unless it was handled already or its author is over the
    /// rate limit (then the author gets an ephemeral notice and the thread is untouched).
    async fn accept(&self, endpoint: &str, message: InboundMessage, version: Option<usize>) {
        // The root of the message's work: the thread actor's turn continues this span's trace
        // (it travels with the message across the actor hop).
        let span = tracing::info_span!(
            "slack.event",
            thread_key = %message.thread,
            event_id = %message.event_id,
            endpoint,
            outcome = tracing::field::Empty,
        );
        self.admit_and_dispatch(endpoint, message, version, &span)
            .instrument(span.clone())
            .await;
    }

    async fn admit_and_dispatch(
        &self,
        endpoint: &str,
        message: InboundMessage,
        version: Option<usize>,
        span: &tracing::Span,
    ) {
        let thread = &message.thread;
        // One claim per message, not per event id: it catches Slack's retries (same event id,
        // same message) and the double delivery of a mention under two event ids (app_mention
        // and message) alike, with one Redis key.
        let message_key = format!("message:{}:{}:{}", thread.team(), thread.channel(), message.message_ts);
        // A reply in a thread with no live actor may be chatter in a thread the bot is not in:
        // it is not metered (its actor drops it), so nobody gets a notice for talking to others.
        let metered = message.origin != Origin::ThreadReply || self.registry.is_live(thread);
        let asker = metered.then_some((thread.team().as_str(), message.user.as_str()));
        match self.gate.admit(Some(&message_key), asker).await {
            Admission::Accepted => {}
            Admission::Duplicate => {
                span.record("outcome", "duplicate");
                return self.count(endpoint, "duplicate");
            }
            Admission::Limited { retry_after } => {
                span.record("outcome", "rate_limited");
                self.count(endpoint, "rate_limited");
                return self.notify_rate_limited(&message, retry_after);
            }
        }
        let InboundMessage {
            thread,
            user,
            text,
            message_ts,
            origin,
            event_id,
        } = message;
        let mut user_message = UserMessage::new(&user, &text, &message_ts, origin);
        user_message.version = version;
        user_message.event_id = event_id;
        user_message.trace = crate::telemetry::TraceParent::of(span);
        let outcome = match self.registry.dispatch_kept(thread, user_message).await {
            Dispatched::Queued => "accepted",
            Dispatched::Duplicate => "duplicate",
        };
        span.record("outcome", outcome);
        self.count(endpoint, outcome);
    }

    /// Whether a message for `thread` should wait for Slack's redelivery: it would start a
    /// thread (a live one only queues in its actor, and `cancel` must always get through) while
    /// the backlog is at its cap. Under a flood each new thread would otherwise hold a live actor
    /// and its turn in memory until answered, without bound.
    fn overloaded(&self, thread: &ThreadKey) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let over = self.registry.backlog() >= self.max_backlog && !self.registry.is_live(thread);
        if over != self.shedding.load(Relaxed) && over != self.shedding.swap(over, Relaxed) {
            if over {
                tracing::warn!(
                    backlog = self.registry.backlog(),
                    max_backlog = self.max_backlog,
                    "Backlog full: new threads are left for Slack to redeliver"
                );
            } else {
                tracing::info!(
                    backlog = self.registry.backlog(),
                    "Backlog below its cap again: taking new threads"
                );
            }
        }
        over
    }

    fn count(&self, endpoint: &str, outcome: &str) {
        self.metrics
            .slack_requests
            .with_label_values(&[endpoint, outcome])
            .inc();
    }

    fn rate_limit_text(&self, retry_after: Duration) -> String {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        format!(
            "You're asking faster than I can answer: at most {} questions a minute. \
             I didn't answer that one; please ask again in {seconds} s.",
            self.rate_limit_per_minute
        )
    }

    fn notify_rate_limited(&self, message: &InboundMessage, retry_after: Duration) {
        let text = self.rate_limit_text(retry_after);
        let slack = self.slack.clone();
        let channel = message.thread.channel().to_string();
        let thread_ts = message.thread.thread_ts().to_string();
        let user = message.user.clone();
        let queued = slack.outbox_ticket();
        // After the ack: the handler never waits for Slack.
        actix_rt::spawn(async move {
            let _queued = queued;
            if let Err(error) = slack
                .post_ephemeral(&channel, &user, Some(&thread_ts), &blocks::text(&text))
                .await
            {
                tracing::warn!(%error, "Failed to post a rate-limit notice");
            }
        });
    }
}
