//! A paced, retrying Slack Web API client (slack-morphism), pointed at `SLACK_API_URL`
//! (plain `http://` allowed, so a proxy or a local test server can stand in for Slack).
//!
//! Messages are paced per channel (Slack allows about one message per second per channel;
//! slack-morphism's own rate control paces per workspace, which is too coarse). A message is
//! never dropped: a 429 is retried after its `Retry-After` and 5xx/network errors with capped
//! backoff, for as long as it takes; only Slack's refusal of the request itself (`ok: false`,
//! a 4xx) ends it. Lookups (`auth.test`, `apps.connections.open`) and reactions, whose callers
//! can do without, give up after a few attempts instead.
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::{ExposeSecret, SecretString};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tracing::Instrument;

use super::blocks::{SerializedMessage, SlackMessage};
use crate::access::Channel;
use crate::activity::{Activity, ActivityGuard};
use crate::metrics::Metrics;

/// Attempts of a lookup or a reaction before its error is reported (messages have no limit).
const LOOKUP_ATTEMPTS: u32 = 4;
/// Messages a channel may receive at once before pacing applies.
const CHANNEL_BURST: f64 = 3.0;
/// Members asked for per `conversations.members` page (Slack suggests at most 200).
const MEMBERS_PAGE: usize = 200;
/// Web API calls in flight at once: beyond this, calls wait (a backlog must not open
/// thousands of connections and run out of file descriptors).
const MAX_CALLS_IN_FLIGHT: usize = 128;
/// Sustained messages per second per channel.
const CHANNEL_RATE_PER_SECOND: f64 = 1.0;
/// How often refilled channel buckets are dropped (see [`forget_idle_channels`]).
const FORGET_CHANNELS_EVERY: Duration = Duration::from_secs(10);
/// By when a channel quiet since its last post has no pacing state left: its bucket refills in
/// `CHANNEL_BURST / CHANNEL_RATE_PER_SECOND` seconds, then the next sweep drops it.
pub const QUIET_CHANNELS_FORGOTTEN_WITHIN: Duration =
    Duration::from_secs((CHANNEL_BURST / CHANNEL_RATE_PER_SECOND) as u64).saturating_add(FORGET_CHANNELS_EVERY);

type Client = SlackClient<SlackClientHyperConnector<HttpsConnector<HttpConnector>>>;

#[derive(Debug, thiserror::Error)]
pub enum SlackApiError {
    /// Slack answered `ok: false`; the code is Slack's (`channel_not_found`, `not_in_channel`…).
    #[error("Slack refused {method}: {code}")]
    Refused { method: &'static str, code: String },
    #[error("Slack could not be reached for {method} after {attempts} attempts: {cause}")]
    GaveUp {
        method: &'static str,
        attempts: u32,
        cause: String,
    },
    /// Installed through OAuth: the workspace has no token to call with.
    #[error(transparent)]
    NoToken(#[from] super::workspaces::NoToken),
}

/// How long the outbox waits between attempts of a call Slack did not take (a 429's
/// `Retry-After` wins over both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_backoff: Duration,
    /// Backoff doubles up to this; a message keeps being retried at this interval.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Whether a call must get through or its caller can do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persistence {
    /// A message for a user: retried until Slack takes it or refuses the request itself.
    UntilDelivered,
    /// A lookup or a reaction: given up after [`LOOKUP_ATTEMPTS`].
    GiveUp,
}

/// A channel's token bucket. Behind an async mutex, so a channel's messages leave in order.
struct ChannelPace {
    tokens: f64,
    refilled_at: Instant,
}

type ChannelBuckets = DashMap<String, Arc<tokio::sync::Mutex<ChannelPace>>>;

/// The body of `chat.postMessage`.
#[derive(serde::Serialize)]
struct PostMessage<'a> {
    channel: &'a str,
    text: &'a str,
    blocks: Blocks<'a>,
    unfurl_links: bool,
    unfurl_media: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_ts: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a serde_json::Value>,
}

/// A message's blocks, as built or as serialized before.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Blocks<'a> {
    Built(&'a [serde_json::Value]),
    Serialized(&'a serde_json::value::RawValue),
}

/// What threadql reads of `chat.postMessage`'s answer (Slack echoes the whole message too).
#[derive(serde::Deserialize)]
struct Posted {
    #[serde(default)]
    ts: String,
}

/// Every [`FORGET_CHANNELS_EVERY`], drops the buckets of channels that have refilled (a full
/// bucket is what a new channel gets); ends with the client. One entry per channel ever answered
/// would otherwise stay for the life of the process (a burst over 400,000 channels:
/// BENCHMARKS.md, "Bursts and memory").
async fn forget_idle_channels(channels: std::sync::Weak<ChannelBuckets>) {
    let mut every = tokio::time::interval(FORGET_CHANNELS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(channels) = channels.upgrade() else { return };
        forget_refilled(&channels, Instant::now());
        // The slots of a burst's channels go back too (a sweep every few seconds at most).
        if channels.len() * 4 < channels.capacity() {
            channels.shrink_to_fit();
        }
    }
}

/// Drops the buckets that are full again at `now` and that no call holds or waits for: a
/// channel's next message finds a full bucket either way.
fn forget_refilled(channels: &ChannelBuckets, now: Instant) {
    let full_after = Duration::from_secs_f64(CHANNEL_BURST / CHANNEL_RATE_PER_SECOND);
    channels.retain(|_, bucket| {
        Arc::strong_count(bucket) > 1
            || bucket.try_lock().map_or(true, |pace| {
                now.saturating_duration_since(pace.refilled_at) < full_after
            })
    });
}

/// What users are to see and has not reached Slack yet: messages, updates, reactions and
/// uploads queued (pacing, waiting for a connection, backing off) or in flight. The count is the
/// client's own state; the `slack_outbox_waiting` gauge only shows the waits, for scrapes.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: AtomicUsize,
}

impl Outbox {
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// One call counted in the [`Outbox`] (and in the server's [`Activity`]) until dropped.
#[derive(Debug)]
pub struct OutboxTicket {
    outbox: Arc<Outbox>,
    /// Dropped after the outbox's own count goes down (fields drop after `drop` runs).
    _activity: ActivityGuard,
}

impl Drop for OutboxTicket {
    fn drop(&mut self) {
        self.outbox.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The Slack Web API as threadql uses it.
#[derive(Clone)]
pub struct SlackWebApi {
    client: Arc<Client>,
    token: SlackApiToken,
    metrics: Metrics,
    channels: Arc<ChannelBuckets>,
    /// Whether `channels` has its sweeper (see [`forget_idle_channels`]).
    sweeping: Arc<AtomicBool>,
    in_flight: Arc<tokio::sync::Semaphore>,
    retry: RetryPolicy,
    outbox: Arc<Outbox>,
    activity: Arc<Activity>,
    /// Installed into several workspaces: where each one's token comes from (`None`: the one
    /// `SLACK_BOT_TOKEN`).
    workspaces: Option<Arc<dyn super::workspaces::WorkspaceTokens>>,
    /// The workspace this client calls as (set by [`SlackWebApi::for_team`]; empty with one
    /// `SLACK_BOT_TOKEN`): part of each channel's pacing key.
    team: Arc<str>,
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
            channels: Arc::new(DashMap::new()),
            sweeping: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_CALLS_IN_FLIGHT)),
            retry: RetryPolicy::default(),
            outbox: Arc::default(),
            activity: Activity::new(),
            workspaces: None,
            team: Arc::from(""),
        })
    }

    /// The same client for many workspaces: [`SlackWebApi::for_team`] calls with each one's
    /// token. Set before the client is cloned.
    pub fn with_workspaces(mut self, workspaces: Arc<dyn super::workspaces::WorkspaceTokens>) -> Self {
        self.workspaces = Some(workspaces);
        self
    }

    /// The client that calls Slack as the bot of workspace `team` (sharing this one's pacing,
    /// outbox and retries). With one `SLACK_BOT_TOKEN`, this same client.
    pub async fn for_team(&self, team: &str) -> Result<Self, SlackApiError> {
        let Some(workspaces) = &self.workspaces else {
            return Ok(self.clone());
        };
        let token = workspaces.bot_token(team).await?;
        let mut client = self.clone();
        client.token = SlackApiToken::new(SlackApiTokenValue::new(token.expose_secret().to_string()));
        client.team = Arc::from(team);
        Ok(client)
    }

    /// Where workspaces' tokens come from, when installed into several.
    pub fn workspaces(&self) -> Option<&Arc<dyn super::workspaces::WorkspaceTokens>> {
        self.workspaces.as_ref()
    }

    /// The same client counting its outbox in `activity` too (the server shares it with the
    /// thread registry; see [`Activity`]). Set before the client is cloned.
    pub fn with_activity(mut self, activity: Arc<Activity>) -> Self {
        self.activity = activity;
        self
    }

    /// Counts a call in the outbox from now until the ticket is dropped. Every message call
    /// takes one itself; a caller that spawns a call takes one first, so the call counts from
    /// the moment it is decided rather than from its task's first poll.
    pub fn outbox_ticket(&self) -> OutboxTicket {
        let activity = self.activity.begin();
        self.outbox.pending.fetch_add(1, Ordering::SeqCst);
        OutboxTicket {
            outbox: self.outbox.clone(),
            _activity: activity,
        }
    }

    /// Calls queued or in flight (see [`Outbox`]).
    pub fn outbox(&self) -> Arc<Outbox> {
        self.outbox.clone()
    }

    /// The same client with another retry policy (tests use short waits).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The bot's own user id (`auth.test`), to recognise its mentions and its own messages.
    pub async fn bot_user_id(&self) -> Result<String, SlackApiError> {
        let response = self
            .call("auth.test", Persistence::GiveUp, || async {
                self.client.open_session(&self.token).auth_test().await
            })
            .await?;
        Ok(response.user_id.to_string())
    }

    /// Every enabled user group's handle and members (`usergroups.list` with `include_users`;
    /// scope `usergroups:read`).
    pub async fn user_groups(&self) -> Result<Vec<(String, Vec<String>)>, SlackApiError> {
        let response = self
            .call("usergroups.list", Persistence::GiveUp, || async {
                self.client
                    .open_session(&self.token)
                    .usergroups_list(&SlackApiUserGroupsListRequest::new().with_include_users(true))
                    .await
            })
            .await?;
        Ok(response
            .usergroups
            .into_iter()
            .map(|group| {
                let members = group
                    .users
                    .unwrap_or_default()
                    .into_iter()
                    .map(|u| u.to_string())
                    .collect();
                (group.handle, members)
            })
            .collect())
    }

    /// A channel's members and how widely it is shared (`conversations.info`, then
    /// `conversations.members` page by page; scopes `channels:read`, `groups:read`, `im:read`,
    /// `mpim:read`).
    pub async fn channel(&self, channel: &str) -> Result<Channel, SlackApiError> {
        let info = self
            .get_json("conversations.info", &[("channel", Some(channel.to_string()))])
            .await?;
        let flag = |name: &str| info["channel"][name].as_bool().unwrap_or(false);
        let shared = flag("is_ext_shared") || flag("is_org_shared") || flag("is_pending_ext_shared");
        let direct = flag("is_im");
        let mut members = Vec::new();
        if !direct {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .get_json(
                        "conversations.members",
                        &[
                            ("channel", Some(channel.to_string())),
                            ("limit", Some(MEMBERS_PAGE.to_string())),
                            ("cursor", cursor.clone()),
                        ],
                    )
                    .await?;
                members.extend(
                    page["members"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|member| member.as_str().map(str::to_string)),
                );
                cursor = page["response_metadata"]["next_cursor"]
                    .as_str()
                    .filter(|next| !next.is_empty())
                    .map(str::to_string);
                if cursor.is_none() {
                    break;
                }
            }
        }
        Ok(Channel {
            members,
            shared,
            direct,
        })
    }

    /// Whether `user` is a guest (`is_restricted`, `is_ultra_restricted`), a stranger from
    /// another organisation (`is_stranger`) or a member of another workspace than `team`
    /// (`users.info`; scope `users:read`). A user Slack will not describe counts as external.
    pub async fn is_external_user(&self, team: &str, user: &str) -> Result<bool, SlackApiError> {
        let found = self.get_json("users.info", &[("user", Some(user.to_string()))]).await;
        let info = match found {
            Ok(info) => info,
            Err(SlackApiError::Refused { code, .. }) if code == "user_not_found" || code == "user_not_visible" => {
                return Ok(true);
            }
            Err(error) => return Err(error),
        };
        let user = &info["user"];
        let flag = |name: &str| user[name].as_bool().unwrap_or(false);
        let other_team = user["team_id"].as_str().is_some_and(|id| !id.is_empty() && id != team);
        Ok(flag("is_restricted") || flag("is_ultra_restricted") || flag("is_stranger") || other_team)
    }

    /// The direct-message channel with `user` (`conversations.open`; scope `im:write`).
    pub async fn open_direct_message(&self, user: &str) -> Result<String, SlackApiError> {
        let response: serde_json::Value = self
            .post_json(
                "conversations.open",
                Persistence::GiveUp,
                &serde_json::json!({ "users": user }),
            )
            .await?;
        response["channel"]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| SlackApiError::Refused {
                method: "conversations.open",
                code: "no_channel".into(),
            })
    }

    /// A single-use Socket Mode WebSocket URL (`apps.connections.open`). Slack wants the
    /// app-level token (`xapp-…`, scope `connections:write`) here, not the bot token.
    pub async fn open_socket_connection(&self, app_token: &SecretString) -> Result<url::Url, SlackApiError> {
        let token = SlackApiToken::new(SlackApiTokenValue::new(app_token.expose_secret().to_string()));
        let response = self
            .call("apps.connections.open", Persistence::GiveUp, || async {
                self.client
                    .open_session(&token)
                    .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
                    .await
            })
            .await?;
        Ok(response.url.0)
    }

    /// Posts a message (in a thread when `thread_ts` is set) and returns its ts.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &SlackMessage,
    ) -> Result<String, SlackApiError> {
        self.post_message_with(channel, thread_ts, message, None).await
    }

    /// [`Self::post_message`] with Slack message metadata (`event_type`, `event_payload`): a
    /// scheduled run marks its post so that a retry after a crash can find it again.
    pub async fn post_message_with(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &SlackMessage,
        metadata: Option<&serde_json::Value>,
    ) -> Result<String, SlackApiError> {
        self.post(
            channel,
            thread_ts,
            &message.text,
            Blocks::Built(&message.blocks),
            metadata,
        )
        .await
    }

    /// [`Self::post_message`] of a message serialized before.
    pub async fn post_serialized(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &SerializedMessage,
    ) -> Result<String, SlackApiError> {
        self.post(
            channel,
            thread_ts,
            &message.text,
            Blocks::Serialized(&message.blocks),
            None,
        )
        .await
    }

    async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        blocks: Blocks<'_>,
        metadata: Option<&serde_json::Value>,
    ) -> Result<String, SlackApiError> {
        let _queued = self.outbox_ticket();
        // Borrowed, not built into a `serde_json::Value`: an answer's blocks are serialized
        // straight from the message instead of copied first (BENCHMARKS.md, "Bursts and memory").
        let body = PostMessage {
            channel,
            text,
            blocks,
            unfurl_links: false,
            unfurl_media: false,
            thread_ts,
            metadata,
        };
        self.pace(channel).await;
        let posted: Posted = self
            .post_json("chat.postMessage", Persistence::UntilDelivered, &body)
            .await?;
        Ok(posted.ts)
    }

    /// The newest messages of a thread (`conversations.replies`) or, without `thread_ts`, of a
    /// channel (`conversations.history`), with their metadata (scopes `channels:history`,
    /// `groups:history`, `im:history`).
    pub async fn recent_messages(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, SlackApiError> {
        let mut params = vec![
            ("channel", Some(channel.to_string())),
            ("include_all_metadata", Some("true".to_string())),
            ("limit", Some("200".to_string())),
        ];
        let method = match thread_ts {
            Some(ts) => {
                params.push(("ts", Some(ts.to_string())));
                "conversations.replies"
            }
            None => "conversations.history",
        };
        let found = self.get_json(method, &params).await?;
        Ok(found["messages"].as_array().cloned().unwrap_or_default())
    }

    /// Opens a dialog (`views.open`) for the click that gave `trigger_id`.
    pub async fn open_view(&self, trigger_id: &str, view: &serde_json::Value) -> Result<(), SlackApiError> {
        let body = serde_json::json!({ "trigger_id": trigger_id, "view": view });
        self.post_json::<_, serde::de::IgnoredAny>("views.open", Persistence::GiveUp, &body)
            .await?;
        Ok(())
    }

    /// Whether `user` was deactivated (`users.info`'s `deleted`); a user Slack no longer knows
    /// counts as gone.
    pub async fn user_deactivated(&self, user: &str) -> Result<bool, SlackApiError> {
        match self.get_json("users.info", &[("user", Some(user.to_string()))]).await {
            Ok(info) => Ok(info["user"]["deleted"].as_bool().unwrap_or(false)),
            Err(SlackApiError::Refused { code, .. }) if code == "user_not_found" => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// A user's time zone as Slack has it (`users.info`'s `tz`, e.g. `Europe/Berlin`).
    pub async fn user_timezone(&self, user: &str) -> Result<Option<String>, SlackApiError> {
        let info = self.get_json("users.info", &[("user", Some(user.to_string()))]).await?;
        Ok(info["user"]["tz"]
            .as_str()
            .filter(|tz| !tz.is_empty())
            .map(str::to_string))
    }

    /// Replaces the content of a message the bot posted.
    pub async fn update_message(&self, channel: &str, ts: &str, message: &SlackMessage) -> Result<(), SlackApiError> {
        let _queued = self.outbox_ticket();
        let body = serde_json::json!({ "channel": channel, "ts": ts, "text": message.text, "blocks": message.blocks });
        self.post_json::<_, serde::de::IgnoredAny>("chat.update", Persistence::UntilDelivered, &body)
            .await?;
        Ok(())
    }

    /// Adds an emoji reaction (name without colons) to a message; one already there is fine.
    pub async fn add_reaction(&self, channel: &str, ts: &str, name: &str) -> Result<(), SlackApiError> {
        let _queued = self.outbox_ticket();
        let body = serde_json::json!({ "channel": channel, "timestamp": ts, "name": name });
        let added = self
            .post_json::<_, serde::de::IgnoredAny>("reactions.add", Persistence::GiveUp, &body)
            .await;
        match added {
            Err(SlackApiError::Refused { code, .. }) if code == "already_reacted" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Posts a message only `user` sees (rate-limit notices, slash-command help).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        message: &SlackMessage,
    ) -> Result<(), SlackApiError> {
        let _queued = self.outbox_ticket();
        let mut body = serde_json::json!({
            "channel": channel,
            "user": user,
            "text": message.text,
            "blocks": message.blocks,
        });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = serde_json::Value::String(ts.to_string());
        }
        self.pace(channel).await;
        self.post_json::<_, serde::de::IgnoredAny>("chat.postEphemeral", Persistence::UntilDelivered, &body)
            .await?;
        Ok(())
    }

    /// Uploads a file into a thread with the upload-v2 flow: `files.getUploadURLExternal`,
    /// the bytes to the returned URL, then `files.completeUploadExternal`.
    pub async fn upload_file(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        filename: &str,
        content_type: &str,
        bytes: Vec<u8>,
        title: &str,
    ) -> Result<(), SlackApiError> {
        let _queued = self.outbox_ticket();
        let length = bytes.len();
        let ticket = self
            .call("files.getUploadURLExternal", Persistence::UntilDelivered, || async {
                let request = SlackApiFilesGetUploadUrlExternalRequest::new(filename.to_string(), length);
                self.client
                    .open_session(&self.token)
                    .get_upload_url_external(&request)
                    .await
            })
            .await?;
        self.call("files.upload", Persistence::UntilDelivered, || async {
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
        self.pace(channel).await;
        self.call("files.completeUploadExternal", Persistence::UntilDelivered, || async {
            let mut request = SlackApiFilesCompleteUploadExternalRequest::new(vec![SlackApiFilesComplete::new(
                ticket.file_id.clone(),
            )
            .with_title(title.to_string())])
            .with_channel_id(SlackChannelId::new(channel.to_string()));
            if let Some(ts) = thread_ts {
                request = request.with_thread_ts(SlackTs::new(ts.to_string()));
            }
            self.client
                .open_session(&self.token)
                .files_complete_upload_external(&request)
                .await
        })
        .await?;
        Ok(())
    }

    /// GETs a read method with query parameters through [`Self::call`] (read methods take no
    /// JSON body) and returns Slack's reply; a lookup, so it gives up after a few attempts.
    async fn get_json(
        &self,
        method: &'static str,
        params: &[(&'static str, Option<String>)],
    ) -> Result<serde_json::Value, SlackApiError> {
        self.call(method, Persistence::GiveUp, || async {
            let params: Vec<(&str, Option<&String>)> =
                params.iter().map(|(name, value)| (*name, value.as_ref())).collect();
            self.client
                .open_session(&self.token)
                .http_session_api
                .http_get(method, &params, None)
                .await
        })
        .await
    }

    /// POSTs a JSON body to a Web API method through [`Self::call`] and returns Slack's reply.
    async fn post_json<Body, Response>(
        &self,
        method: &'static str,
        persistence: Persistence,
        body: &Body,
    ) -> Result<Response, SlackApiError>
    where
        Body: serde::Serialize + Send + Sync,
        Response: serde::de::DeserializeOwned + Send,
    {
        self.call(method, persistence, || async {
            self.client
                .open_session(&self.token)
                .http_session_api
                .http_post(method, body, None)
                .await
        })
        .await
    }

    /// Waits for `channel`'s turn: a burst of [`CHANNEL_BURST`] messages, then one per second.
    /// Waiting callers queue in order (the mutex is fair), so a thread's replies keep theirs.
    async fn pace(&self, channel: &str) {
        // Per workspace and channel: installed into several, two workspaces' channels never
        // share a bucket, whatever their ids.
        let bucket = self
            .channels
            .entry(format!("{}/{channel}", self.team))
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(ChannelPace {
                    tokens: CHANNEL_BURST,
                    refilled_at: Instant::now(),
                }))
            })
            .clone();
        // A load first: every post passes here, and only the first needs the write.
        if !self.sweeping.load(Ordering::Relaxed) && !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(forget_idle_channels(Arc::downgrade(&self.channels)));
        }
        self.metrics.slack_outbox_waiting.inc();
        let mut pace = bucket.lock().await;
        let now = Instant::now();
        let refill = now.duration_since(pace.refilled_at).as_secs_f64() * CHANNEL_RATE_PER_SECOND;
        pace.tokens = (pace.tokens + refill).min(CHANNEL_BURST);
        pace.refilled_at = now;
        if pace.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - pace.tokens) / CHANNEL_RATE_PER_SECOND);
            tokio::time::sleep(wait).await;
            pace.tokens = 1.0;
            pace.refilled_at = Instant::now();
        }
        pace.tokens -= 1.0;
        drop(pace);
        self.metrics.slack_outbox_waiting.dec();
    }

    /// Runs one Web API call with the retry policy, counting outcomes per method: a 429 waits
    /// for `Retry-After`, 5xx and network errors back off, other refusals return at once. A call
    /// that must be delivered is retried for as long as it takes; its wait shows in the
    /// `slack_outbox_waiting` gauge and in a warning at attempts 1, 2, 4, 8…
    async fn call<T, F, Fut>(
        &self,
        method: &'static str,
        persistence: Persistence,
        attempt: F,
    ) -> Result<T, SlackApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut backoff = self.retry.first_backoff;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let count = |outcome: &str| self.metrics.slack_api_calls.with_label_values(&[method, outcome]).inc();
            // The semaphore is never closed, so acquiring cannot fail.
            let permit = self.in_flight.acquire().await.ok();
            let span = tracing::info_span!("slack.api", method, attempt = attempts);
            let outcome = attempt().instrument(span).await;
            drop(permit);
            let (wait, cause, reason) = match outcome {
                Ok(value) => {
                    count("ok");
                    if attempts > 1 {
                        tracing::info!(method, attempts, "Slack took a call after retries");
                    }
                    return Ok(value);
                }
                Err(SlackClientError::ApiError(error)) => {
                    count("refused");
                    return Err(SlackApiError::Refused {
                        method,
                        code: error.code,
                    });
                }
                Err(SlackClientError::HttpError(error)) if !error.status_code.is_server_error() => {
                    // 4xx other than 429: the request itself is wrong; repeating it cannot help.
                    count("refused");
                    return Err(SlackApiError::Refused {
                        method,
                        code: format!("HTTP {}", error.status_code),
                    });
                }
                Err(SlackClientError::RateLimitError(error)) => {
                    count("rate_limited");
                    (
                        error.retry_after.unwrap_or(backoff),
                        "rate-limited".to_string(),
                        "rate_limited",
                    )
                }
                Err(error) => {
                    count("error");
                    (backoff, error.to_string(), "error")
                }
            };
            if persistence == Persistence::GiveUp && attempts >= LOOKUP_ATTEMPTS {
                return Err(SlackApiError::GaveUp {
                    method,
                    attempts,
                    cause,
                });
            }
            if attempts.is_power_of_two() {
                tracing::warn!(method, attempts, ?wait, cause, "Slack did not take a call; retrying");
            }
            self.metrics
                .slack_retry_wait_seconds
                .with_label_values(&[reason])
                .observe(wait.as_secs_f64());
            self.metrics.slack_outbox_waiting.inc();
            tokio::time::sleep(wait).await;
            self.metrics.slack_outbox_waiting.dec();
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn quick_retries() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        }
    }

    #[test]
    fn forgets_only_refilled_channel_buckets_nobody_holds() {
        let now = Instant::now();
        let earlier = |secs| now.checked_sub(Duration::from_secs(secs)).unwrap();
        let bucket = |refilled_at| {
            Arc::new(tokio::sync::Mutex::new(ChannelPace {
                tokens: 0.0,
                refilled_at,
            }))
        };
        let channels = ChannelBuckets::new();
        channels.insert("T/refilled".into(), bucket(earlier(60)));
        channels.insert("T/still-draining".into(), bucket(earlier(1)));
        let held = bucket(earlier(60));
        channels.insert("T/held-by-a-call".into(), held.clone());

        forget_refilled(&channels, now);

        let mut kept: Vec<String> = channels.iter().map(|entry| entry.key().clone()).collect();
        kept.sort();
        assert_eq!(kept, ["T/held-by-a-call", "T/still-draining"]);
        drop(held);
        forget_refilled(&channels, now);
        assert_eq!(channels.len(), 1);
        assert_eq!(
            QUIET_CHANNELS_FORGOTTEN_WITHIN,
            Duration::from_secs_f64(CHANNEL_BURST / CHANNEL_RATE_PER_SECOND) + FORGET_CHANNELS_EVERY
        );
    }

    async fn api_for(server: &MockServer) -> SlackWebApi {
        let url = url::Url::parse(&format!("{}/api/", server.uri())).unwrap();
        SlackWebApi::new(&url, &SecretString::from("xoxb-test"), Metrics::new().unwrap())
            .unwrap()
            .with_retry_policy(quick_retries())
    }

    async fn fail_first(server: &MockServer, api_method: &str, failures: u64, response: ResponseTemplate) {
        Mock::given(path(format!("/api/{api_method}")))
            .respond_with(response)
            .up_to_n_times(failures)
            .with_priority(1)
            .mount(server)
            .await;
        Mock::given(path(format!("/api/{api_method}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true, "ts": "1.000200"})))
            .mount(server)
            .await;
    }

    async fn attempts(server: &MockServer) -> usize {
        server.received_requests().await.unwrap_or_default().len()
    }

    #[tokio::test]
    async fn a_message_outlasts_any_number_of_server_errors() {
        // Thirty 503s: far more than any fixed number of attempts a client might allow.
        let server = MockServer::start().await;
        fail_first(&server, "chat.postMessage", 30, ResponseTemplate::new(503)).await;
        let api = api_for(&server).await;

        let ts = api
            .post_message("C1", Some("1.0001"), &super::super::blocks::text("hello"))
            .await;

        assert_eq!(ts.unwrap(), "1.000200");
        assert_eq!(attempts(&server).await, 31);
    }

    #[tokio::test]
    async fn a_message_outlasts_repeated_rate_limits() {
        let server = MockServer::start().await;
        let limited = ResponseTemplate::new(429)
            .insert_header("Retry-After", "0")
            .set_body_json(serde_json::json!({"ok": false, "error": "ratelimited"}));
        fail_first(&server, "chat.update", 12, limited).await;
        let api = api_for(&server).await;

        api.update_message("C1", "1.0001", &super::super::blocks::text("answer"))
            .await
            .unwrap();

        assert_eq!(attempts(&server).await, 13);
    }

    #[tokio::test]
    async fn a_message_counts_in_the_outbox_until_its_call_ends() {
        // Arrange: Slack fails the first attempt and the retry waits long, so the message sits
        // in the outbox, backing off.
        let server = MockServer::start().await;
        fail_first(&server, "chat.postMessage", 1, ResponseTemplate::new(503)).await;
        let activity = Activity::new();
        let api = api_for(&server)
            .await
            .with_activity(activity.clone())
            .with_retry_policy(RetryPolicy {
                first_backoff: Duration::from_secs(600),
                max_backoff: Duration::from_secs(600),
            });
        let posting = tokio::spawn({
            let api = api.clone();
            async move { api.post_message("C1", None, &super::super::blocks::text("hello")).await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while attempts(&server).await == 0 {
            assert!(Instant::now() < deadline, "the first attempt never reached Slack");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // Assert: counted while waiting to be retried, in the outbox and in the server's work.
        assert_eq!(api.outbox().pending(), 1);
        assert_eq!(activity.pending(), 1);

        // Act: the call ends (here: abandoned, as at a shutdown deadline).
        posting.abort();
        assert!(posting.await.unwrap_err().is_cancelled());

        // Assert
        assert_eq!(api.outbox().pending(), 0);
        assert!(activity.is_idle());
        // A delivered message leaves nothing behind either.
        api.with_retry_policy(quick_retries())
            .post_message("C1", None, &super::super::blocks::text("again"))
            .await
            .unwrap();
        assert!(activity.is_idle());
    }

    #[tokio::test]
    async fn a_refused_request_is_not_repeated() {
        let server = MockServer::start().await;
        let refused =
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": false, "error": "channel_not_found"}));
        fail_first(&server, "chat.postMessage", 1, refused).await;
        let api = api_for(&server).await;

        let error = api
            .post_message("C404", None, &super::super::blocks::text("hello"))
            .await
            .unwrap_err();

        assert!(
            matches!(error, SlackApiError::Refused { ref code, .. } if code == "channel_not_found"),
            "{error}"
        );
        assert_eq!(attempts(&server).await, 1);
    }

    #[tokio::test]
    async fn a_lookup_gives_up_so_its_caller_can_go_on() {
        let server = MockServer::start().await;
        fail_first(&server, "auth.test", 100, ResponseTemplate::new(502)).await;
        let api = api_for(&server).await;

        let error = api.bot_user_id().await.unwrap_err();

        assert!(
            matches!(
                error,
                SlackApiError::GaveUp {
                    attempts: LOOKUP_ATTEMPTS,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(attempts(&server).await, LOOKUP_ATTEMPTS as usize);
    }
}
