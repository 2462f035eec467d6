//! Slack's side: its payload samples turned into signed events, and a fake Web API (wiremock)
//! that records what the server posts and stores uploaded files.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use threadql::slack::verify::sign;
use wiremock::matchers::{basic_auth, method, path, path_regex};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::config::{BOT_TOKEN, BOT_USER, SIGNING_SECRET, TEAM};

/// How long [`FakeSlack::wait_for_posts`] waits for the server.
const POST_PATIENCE: Duration = Duration::from_secs(60);

/// Slack's payload samples, vendored in the repository (source and licence in its README).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/slack-samples")
}

/// A sample as JSON (`relative` to [`fixtures`]).
pub fn read_fixture(relative: &str) -> anyhow::Result<Value> {
    let path = fixtures().join(relative);
    let text = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// [`read_fixture`], failing the test when the sample is missing.
pub fn fixture(relative: &str) -> Value {
    read_fixture(relative).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A Web API sample turned into a success response: `ok: true`, and without the blank
/// `error`/`warning` fields the samples carry (Slack sends those only with `ok: false`).
pub fn api_success(method: &str) -> Value {
    let mut response = fixture(&format!("api/{method}.json"));
    let object = response.as_object_mut().unwrap();
    for field in ["error", "needed", "provided", "warning", "response_metadata"] {
        object.remove(field);
    }
    object.insert("ok".into(), json!(true));
    response
}

/// Messages posted with `chat.postMessage`, in order (with their ts), as `chat.update` left them.
type Posted = Arc<Mutex<Vec<(String, Value)>>>;

/// The workspace the fake Slack describes: channels' members, users' kinds and user groups
/// (`conversations.info`, `conversations.members`, `users.info`, `usergroups.list`).
#[derive(Debug, Default)]
struct Workspace {
    channels: HashMap<String, FakeChannel>,
    /// User id → `(team, guest)`; a user not listed is a full member of [`TEAM`].
    users: HashMap<String, (String, bool)>,
    groups: Vec<(String, Vec<String>)>,
    /// User id → time zone (`users.info`'s `tz`).
    timezones: HashMap<String, String>,
    /// Users deactivated (`users.info`'s `deleted`).
    deactivated: std::collections::HashSet<String>,
    /// Channel → the error `chat.postMessage` answers there (`channel_not_found`, `is_archived`).
    refusing: HashMap<String, String>,
    /// Channels whose next `chat.postMessage` is answered only after a long wait (the post is
    /// recorded at once): a turn caught mid-post, for tests that kill its server then.
    stalling: std::collections::HashSet<String>,
    /// The app `oauth.v2.access` installs, once [`FakeSlack::serve_oauth`] mounted it.
    oauth: Option<FakeOAuthApp>,
}

/// The OAuth side of the fake: the app's credentials, the codes it issued and not exchanged yet,
/// and whether token rotation is on.
#[derive(Debug, Default)]
struct FakeOAuthApp {
    client_id: String,
    client_secret: String,
    codes: std::collections::HashSet<String>,
    token_rotation: bool,
    /// Refresh grants answered so far (each bot token they hand out is new).
    refreshes: u32,
}

#[derive(Debug, Default, Clone)]
struct FakeChannel {
    members: Vec<String>,
    /// Slack Connect (`is_ext_shared`).
    shared: bool,
}

type SharedWorkspace = Arc<Mutex<Workspace>>;

/// The fake Slack Web API.
pub struct FakeSlack {
    pub server: MockServer,
    messages: Posted,
    workspace: SharedWorkspace,
}

/// A progress message that has not been replaced by its answer yet.
pub fn is_progress(post: &Value) -> bool {
    post["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|b| b["block_id"] == "threadql_progress")
}

impl FakeSlack {
    /// The refresh token `oauth.v2.access` hands out with token rotation on, and accepts in a
    /// refresh grant (see [`Self::serve_oauth`]).
    pub const REFRESH_TOKEN: &'static str = "xoxe-1-fake-refresh-token";

    pub async fn start() -> Self {
        // Not from wiremock's pool: a pooled server is handed to the next test while an earlier
        // test's server may still be posting to it.
        let server = MockServer::builder().start().await;
        let mut auth = api_success("auth.test");
        auth["user_id"] = json!(BOT_USER);
        auth["team_id"] = json!(TEAM);
        Mock::given(path("/api/auth.test"))
            .respond_with(ResponseTemplate::new(200).set_body_json(auth))
            .mount(&server)
            .await;
        let messages = Posted::default();
        let posted = messages.clone();
        let workspace = SharedWorkspace::default();
        let refusing = workspace.clone();
        Mock::given(method("POST"))
            .and(path("/api/chat.postMessage"))
            .respond_with(move |request: &Request| {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let channel = body["channel"].as_str().unwrap_or_default().to_string();
                let stalled = {
                    let mut workspace = refusing.lock().unwrap();
                    if let Some(code) = workspace.refusing.get(&channel) {
                        return ResponseTemplate::new(200).set_body_json(json!({ "ok": false, "error": code }));
                    }
                    workspace.stalling.remove(&channel)
                };
                let mut reply = api_success("chat.postMessage");
                let ts = new_ts();
                reply["channel"] = body["channel"].clone();
                reply["ts"] = json!(ts);
                posted.lock().unwrap().push((ts, body));
                let response = ResponseTemplate::new(200).set_body_json(reply);
                if stalled {
                    return response.set_delay(std::time::Duration::from_secs(60));
                }
                response
            })
            .mount(&server)
            .await;
        let updated = messages.clone();
        Mock::given(method("POST"))
            .and(path("/api/chat.update"))
            .respond_with(move |request: &Request| {
                let update: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let mut messages = updated.lock().unwrap();
                if let Some((_, body)) = messages.iter_mut().find(|(ts, _)| update["ts"] == ts.as_str()) {
                    body["text"] = update["text"].clone();
                    body["blocks"] = update["blocks"].clone();
                }
                ResponseTemplate::new(200).set_body_json(api_success("chat.update"))
            })
            .mount(&server)
            .await;
        // Slack's samples have no views.open response: its documented reply is the view opened.
        Mock::given(method("POST"))
            .and(path("/api/views.open"))
            .respond_with(|request: &Request| {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let mut view = body["view"].clone();
                view["id"] = json!("V0EDIT001");
                ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "view": view }))
            })
            .mount(&server)
            .await;
        for method_name in ["reactions.add", "chat.postEphemeral"] {
            Mock::given(method("POST"))
                .and(path(format!("/api/{method_name}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(api_success(method_name)))
                .mount(&server)
                .await;
        }
        let upload_url = format!("{}/upload/F0UPLOAD1", server.uri());
        Mock::given(method("GET"))
            .and(path("/api/files.getUploadURLExternal"))
            .respond_with(move |_: &Request| {
                let mut reply = api_success("files.getUploadURLExternal");
                reply["upload_url"] = json!(upload_url);
                reply["file_id"] = json!("F0UPLOAD1");
                ResponseTemplate::new(200).set_body_json(reply)
            })
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex("^/upload/"))
            .respond_with(ResponseTemplate::new(200).set_body_string("OK - 1234"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/files.completeUploadExternal"))
            .respond_with(|_: &Request| {
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true, "files": [{"id": "F0UPLOAD1", "title": "export"}]}))
            })
            .mount(&server)
            .await;
        mount_workspace(&server, &workspace).await;
        mount_history(&server, &messages).await;
        Self {
            server,
            messages,
            workspace,
        }
    }

    /// Sets a channel's members (the bot is added) and whether it is shared with another
    /// organisation (Slack Connect).
    pub fn set_channel(&self, channel: &str, members: &[&str], shared: bool) {
        let mut members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        members.push(BOT_USER.to_string());
        self.workspace
            .lock()
            .unwrap()
            .channels
            .insert(channel.to_string(), FakeChannel { members, shared });
    }

    /// Adds a member to a channel set with [`Self::set_channel`].
    pub fn join_channel(&self, channel: &str, user: &str) {
        let mut workspace = self.workspace.lock().unwrap();
        let found = workspace.channels.entry(channel.to_string()).or_default();
        found.members.push(user.to_string());
    }

    /// Makes `user` a guest of the workspace (`is_restricted`).
    pub fn set_guest(&self, user: &str) {
        self.workspace
            .lock()
            .unwrap()
            .users
            .insert(user.to_string(), (TEAM.to_string(), true));
    }

    /// Makes `user` a member of another organisation's workspace `team` (Slack Connect).
    pub fn set_external(&self, user: &str, team: &str) {
        self.workspace
            .lock()
            .unwrap()
            .users
            .insert(user.to_string(), (team.to_string(), false));
    }

    /// Sets a user's time zone (`users.info`'s `tz`).
    pub fn set_timezone(&self, user: &str, timezone: &str) {
        self.workspace
            .lock()
            .unwrap()
            .timezones
            .insert(user.to_string(), timezone.to_string());
    }

    /// Deactivates `user` (`users.info` says `deleted: true`).
    pub fn deactivate(&self, user: &str) {
        self.workspace.lock().unwrap().deactivated.insert(user.to_string());
    }

    /// Makes `chat.postMessage` in `channel` fail with Slack's `code` (`channel_not_found`).
    pub fn refuse_posts_in(&self, channel: &str, code: &str) {
        self.workspace
            .lock()
            .unwrap()
            .refusing
            .insert(channel.to_string(), code.to_string());
    }

    /// Answers the next `chat.postMessage` in `channel` only after a minute (recorded at once,
    /// like a post whose reply the poster never saw).
    pub fn stall_next_post_in(&self, channel: &str) {
        self.workspace.lock().unwrap().stalling.insert(channel.to_string());
    }

    /// Answers `oauth.v2.access` as Slack does for the app `client_id`/`client_secret` (HTTP
    /// Basic, or both in the form): a code from [`Self::issue_oauth_code`], once, exchanges for
    /// Slack's sample answer filled in with [`TEAM`] ("Test Workspace"), [`BOT_USER`],
    /// [`BOT_TOKEN`], app `A0THREADQL` and installer `U0ALICE01`, and with token rotation on
    /// ([`Self::turn_on_token_rotation`]) [`Self::REFRESH_TOKEN`] and a 12-hour expiry;
    /// `grant_type=refresh_token` with that refresh token answers a new bot token. Anything
    /// else gets Slack's codes: `invalid_client_id` (credentials), `invalid_code`,
    /// `invalid_refresh_token`. Mount it once per fake.
    pub async fn serve_oauth(&self, client_id: &str, client_secret: &str) {
        self.workspace.lock().unwrap().oauth = Some(FakeOAuthApp {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            ..FakeOAuthApp::default()
        });
        let known = self.workspace.clone();
        Mock::given(method("POST"))
            .and(path("/api/oauth.v2.access"))
            .respond_with(move |request: &Request| {
                let refused =
                    |code: &str| ResponseTemplate::new(200).set_body_json(json!({ "ok": false, "error": code }));
                let form: HashMap<String, String> = serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
                let mut workspace = known.lock().unwrap();
                let Some(app) = workspace.oauth.as_mut() else {
                    return refused("invalid_client_id");
                };
                let in_form = |name: &str, expected: &str| form.get(name).map(String::as_str) == Some(expected);
                let authenticated = basic_auth(&app.client_id, &app.client_secret).matches(request)
                    || (in_form("client_id", &app.client_id) && in_form("client_secret", &app.client_secret));
                if !authenticated {
                    return refused("invalid_client_id");
                }
                if in_form("grant_type", "refresh_token") {
                    if !(app.token_rotation && in_form("refresh_token", Self::REFRESH_TOKEN)) {
                        return refused("invalid_refresh_token");
                    }
                    app.refreshes += 1;
                    return ResponseTemplate::new(200).set_body_json(json!({
                        "ok": true,
                        "app_id": "A0THREADQL",
                        "token_type": "bot",
                        "access_token": format!("{BOT_TOKEN}-refreshed-{}", app.refreshes),
                        "refresh_token": Self::REFRESH_TOKEN,
                        "expires_in": 43200,
                        "scope": "app_mentions:read,chat:write",
                        "bot_user_id": BOT_USER,
                        "team": { "id": TEAM, "name": "Test Workspace" },
                        "enterprise": null,
                        "is_enterprise_install": false,
                    }));
                }
                let code = form.get("code").cloned().unwrap_or_default();
                if !app.codes.remove(&code) {
                    return refused("invalid_code");
                }
                let mut answer = api_success("oauth.v2.access");
                answer["app_id"] = json!("A0THREADQL");
                answer["token_type"] = json!("bot");
                answer["access_token"] = json!(BOT_TOKEN);
                answer["scope"] = json!("app_mentions:read,chat:write");
                answer["bot_user_id"] = json!(BOT_USER);
                answer["team"] = json!({ "id": TEAM, "name": "Test Workspace" });
                answer["enterprise"] = json!(null);
                answer["is_enterprise_install"] = json!(false);
                answer["authed_user"] = json!({ "id": "U0ALICE01" });
                answer.as_object_mut().unwrap().remove("incoming_webhook");
                if app.token_rotation {
                    answer["refresh_token"] = json!(Self::REFRESH_TOKEN);
                    answer["expires_in"] = json!(43200);
                } else {
                    let answer = answer.as_object_mut().unwrap();
                    answer.remove("refresh_token");
                    answer.remove("expires_in");
                }
                ResponseTemplate::new(200).set_body_json(answer)
            })
            .mount(&self.server)
            .await;
    }

    /// A code Slack's authorize page would put in its redirect, good for one exchange.
    pub fn issue_oauth_code(&self) -> String {
        let code = format!("{}.{}", TEAM, uuid::Uuid::new_v4().simple());
        let mut workspace = self.workspace.lock().unwrap();
        let app = workspace.oauth.as_mut().expect("serve_oauth before issuing codes");
        app.codes.insert(code.clone());
        code
    }

    /// Installs from now on come with a refresh token and an expiry (the app's "token rotation").
    pub fn turn_on_token_rotation(&self) {
        let mut workspace = self.workspace.lock().unwrap();
        let app = workspace.oauth.as_mut().expect("serve_oauth before token rotation");
        app.token_rotation = true;
    }

    /// The form of each `oauth.v2.access` call, in order (credentials sent with HTTP Basic are
    /// in the `authorization` header, not here).
    pub async fn oauth_calls(&self) -> Vec<HashMap<String, String>> {
        self.requests("/api/oauth.v2.access")
            .await
            .into_iter()
            .map(|request| serde_urlencoded::from_bytes(&request.body).unwrap_or_default())
            .collect()
    }

    /// Every message posted, with its ts, in order (as `chat.update` left it).
    pub async fn all_messages(&self) -> Vec<(String, Value)> {
        self.messages.lock().unwrap().clone()
    }

    /// Sets a user group's members (`usergroups.list`).
    pub fn set_group(&self, handle: &str, members: &[&str]) {
        let mut workspace = self.workspace.lock().unwrap();
        workspace.groups.retain(|(h, _)| h != handle);
        workspace
            .groups
            .push((handle.to_string(), members.iter().map(|m| m.to_string()).collect()));
    }

    /// Messages posted in the direct-message channel with `user` (`conversations.open`).
    pub async fn direct_messages(&self, user: &str) -> Vec<Value> {
        let channel = direct_channel(user);
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body.clone())
            .filter(|b| b["channel"] == channel.as_str())
            .collect()
    }

    /// A fake that answers nothing (stands in for the one a stopped server hands back).
    pub(crate) async fn silent() -> Self {
        Self {
            server: MockServer::builder().start().await,
            messages: Posted::default(),
            workspace: SharedWorkspace::default(),
        }
    }

    pub fn api_url(&self) -> String {
        format!("{}/api", self.server.uri())
    }

    pub async fn requests(&self, request_path: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == request_path)
            .collect()
    }

    /// Messages posted in one thread, in order, as updated since (a progress message shows
    /// the answer that replaced it).
    pub async fn posts_in_thread(&self, channel: &str, thread_ts: &str) -> Vec<Value> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body.clone())
            .filter(|b| b["channel"] == channel && b["thread_ts"] == thread_ts)
            .collect()
    }

    /// Bodies of `chat.postEphemeral` calls.
    pub async fn ephemerals(&self) -> Vec<Value> {
        self.requests("/api/chat.postEphemeral")
            .await
            .into_iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect()
    }

    /// Top-level messages (no thread_ts) posted in a channel, with their ts.
    pub async fn roots_in_channel(&self, channel: &str) -> Vec<(String, Value)> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, b)| b["channel"] == channel && b.get("thread_ts").is_none())
            .cloned()
            .collect()
    }

    pub async fn all_posts(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// Waits (bounded) until a thread has `count` posts, none of them a progress message still
    /// waiting for its answer, and returns them.
    pub async fn wait_for_posts(&self, channel: &str, thread_ts: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + POST_PATIENCE;
        loop {
            let posts = self.posts_in_thread(channel, thread_ts).await;
            let settled = posts.len() >= count && !posts.iter().any(is_progress);
            if settled || Instant::now() > deadline {
                assert_eq!(posts.len(), count, "posts in {channel}/{thread_ts}: {posts:#?}");
                assert!(
                    !posts.iter().any(is_progress),
                    "a progress message was never replaced: {posts:#?}"
                );
                return posts;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Uploaded file bodies (step 2 of upload-v2), in order.
    pub async fn uploads(&self) -> Vec<Vec<u8>> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path().starts_with("/upload/"))
            .map(|r| r.body)
            .collect()
    }

    pub async fn completed_uploads(&self) -> Vec<HashMap<String, String>> {
        self.requests("/api/files.completeUploadExternal")
            .await
            .into_iter()
            .map(|r| {
                // slack-morphism sends this call as JSON.
                let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                body.as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), as_plain_string(v))).collect())
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// The id of the direct-message channel the fake opens with `user`.
pub fn direct_channel(user: &str) -> String {
    format!("D{}", user.trim_start_matches('U'))
}

/// A request's query parameter.
fn query_param(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The directory methods, answered from `workspace` with Slack's samples as the shapes.
/// `conversations.members` pages by `limit` with an offset cursor, as Slack pages.
async fn mount_workspace(server: &MockServer, workspace: &SharedWorkspace) {
    let known = workspace.clone();
    Mock::given(method("GET"))
        .and(path("/api/conversations.info"))
        .respond_with(move |request: &Request| {
            let channel = query_param(request, "channel").unwrap_or_default();
            let shared = known.lock().unwrap().channels.get(&channel).is_some_and(|c| c.shared);
            let mut reply = api_success("conversations.info");
            reply["channel"]["id"] = json!(channel);
            reply["channel"]["is_channel"] = json!(!channel.starts_with('D'));
            reply["channel"]["is_im"] = json!(channel.starts_with('D'));
            reply["channel"]["is_ext_shared"] = json!(shared);
            reply["channel"]["is_shared"] = json!(shared);
            ResponseTemplate::new(200).set_body_json(reply)
        })
        .mount(server)
        .await;
    let known = workspace.clone();
    Mock::given(method("GET"))
        .and(path("/api/conversations.members"))
        .respond_with(move |request: &Request| {
            let channel = query_param(request, "channel").unwrap_or_default();
            // A channel nobody set up holds the usual asker and the bot.
            let members = known
                .lock()
                .unwrap()
                .channels
                .get(&channel)
                .map(|c| c.members.clone())
                .unwrap_or_else(|| vec!["U0ALICE01".to_string(), BOT_USER.to_string()]);
            let limit: usize = query_param(request, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100);
            let start: usize = query_param(request, "cursor")
                .and_then(|c| c.strip_prefix("offset:").and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            let end = (start + limit).min(members.len());
            let next = if end < members.len() {
                format!("offset:{end}")
            } else {
                String::new()
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "members": members.get(start..end).unwrap_or_default(),
                "response_metadata": { "next_cursor": next },
            }))
        })
        .mount(server)
        .await;
    let known = workspace.clone();
    Mock::given(method("GET"))
        .and(path("/api/users.info"))
        .respond_with(move |request: &Request| {
            let user = query_param(request, "user").unwrap_or_default();
            let (team, guest) = known
                .lock()
                .unwrap()
                .users
                .get(&user)
                .cloned()
                .unwrap_or_else(|| (TEAM.to_string(), false));
            let mut reply = api_success("users.info");
            reply["user"]["id"] = json!(user);
            reply["user"]["team_id"] = json!(team);
            reply["user"]["is_restricted"] = json!(guest);
            reply["user"]["is_ultra_restricted"] = json!(false);
            reply["user"]["is_stranger"] = json!(team != TEAM);
            reply["user"]["deleted"] = json!(known.lock().unwrap().deactivated.contains(&user));
            if let Some(timezone) = known.lock().unwrap().timezones.get(&user) {
                reply["user"]["tz"] = json!(timezone);
            }
            ResponseTemplate::new(200).set_body_json(reply)
        })
        .mount(server)
        .await;
    let known = workspace.clone();
    Mock::given(method("GET"))
        .and(path("/api/usergroups.list"))
        .respond_with(move |_: &Request| {
            let groups: Vec<Value> = known
                .lock()
                .unwrap()
                .groups
                .iter()
                .enumerate()
                .map(|(index, (handle, members))| {
                    json!({
                        "id": format!("S{index:08}"),
                        "team_id": TEAM,
                        "is_usergroup": true,
                        "name": handle,
                        "handle": handle,
                        "is_external": false,
                        "date_create": 1_700_000_000,
                        "created_by": "U0ADMIN01",
                        "prefs": { "channels": [], "groups": [] },
                        "users": members,
                        "user_count": members.len(),
                    })
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "usergroups": groups }))
        })
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/conversations.open"))
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let user = body["users"].as_str().unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "channel": { "id": direct_channel(user) },
            }))
        })
        .mount(server)
        .await;
}

/// `conversations.history` and `conversations.replies` over the messages posted, newest first
/// (as Slack orders history), with the metadata they were posted with when
/// `include_all_metadata` is set.
async fn mount_history(server: &MockServer, messages: &Posted) {
    for method_name in ["conversations.history", "conversations.replies"] {
        let posted = messages.clone();
        Mock::given(method("GET"))
            .and(path(format!("/api/{method_name}")))
            .respond_with(move |request: &Request| {
                let channel = query_param(request, "channel").unwrap_or_default();
                let thread = query_param(request, "ts");
                let with_metadata = query_param(request, "include_all_metadata").as_deref() == Some("true");
                let found: Vec<Value> = posted
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .filter(|(ts, body)| {
                        body["channel"] == channel.as_str()
                            && match &thread {
                                Some(thread) => ts == thread || body["thread_ts"] == thread.as_str(),
                                None => body.get("thread_ts").is_none(),
                            }
                    })
                    .map(|(ts, body)| {
                        let mut message =
                            json!({ "type": "message", "ts": ts, "text": body["text"], "user": BOT_USER });
                        if with_metadata && body.get("metadata").is_some() {
                            message["metadata"] = body["metadata"].clone();
                        }
                        message
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "messages": found, "has_more": false }))
            })
            .mount(server)
            .await;
    }
}

/// A JSON string's text, any other value's JSON.
fn as_plain_string(value: &Value) -> String {
    value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 1_000_000
}

/// A ts no other test uses.
pub fn new_ts() -> String {
    format!("{}.{:06}", chrono::Utc::now().timestamp(), rand_suffix())
}

/// A channel id no other test uses.
pub fn new_channel() -> String {
    format!("C{}", &uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase())
}

/// An `app_mention` envelope built from Slack's sample, with the given fields, from `U0ALICE01`.
pub fn app_mention(event_id: &str, channel: &str, ts: &str, text: &str) -> Value {
    let mut envelope = fixture("events/AppMentionPayload.json");
    fill_envelope(&mut envelope, event_id);
    let event = &mut envelope["event"];
    strip_sample_fields(event);
    event["user"] = json!("U0ALICE01");
    event["text"] = json!(format!("<@{BOT_USER}> {text}"));
    event["ts"] = json!(ts);
    event["event_ts"] = json!(ts);
    event["channel"] = json!(channel);
    event["team"] = json!(TEAM);
    event.as_object_mut().unwrap().remove("thread_ts");
    envelope
}

/// A `message` reply in a thread, built from Slack's sample.
pub fn thread_reply(event_id: &str, channel: &str, thread_ts: &str, ts: &str, text: &str) -> Value {
    let mut envelope = fixture("events/MessagePayload.json");
    fill_envelope(&mut envelope, event_id);
    let event = &mut envelope["event"];
    strip_sample_fields(event);
    event["user"] = json!("U0ALICE01");
    event["text"] = json!(text);
    event["ts"] = json!(ts);
    event["event_ts"] = json!(ts);
    event["thread_ts"] = json!(thread_ts);
    event["channel"] = json!(channel);
    event["channel_type"] = json!("channel");
    event["team"] = json!(TEAM);
    envelope
}

fn fill_envelope(envelope: &mut Value, event_id: &str) {
    envelope["type"] = json!("event_callback");
    envelope["team_id"] = json!(TEAM);
    envelope["api_app_id"] = json!("A0THREADQL");
    envelope["event_id"] = json!(event_id);
    envelope["event_time"] = json!(chrono::Utc::now().timestamp());
    envelope["authorizations"] = json!([{"enterprise_id": null, "team_id": TEAM, "user_id": BOT_USER, "is_bot": true, "is_enterprise_install": false}]);
}

/// The samples fill every optional field with a blank; a real user message has no bot fields,
/// no subtype and no edit marker.
fn strip_sample_fields(event: &mut Value) {
    if let Some(object) = event.as_object_mut() {
        for field in [
            "bot_id",
            "bot_profile",
            "subtype",
            "edited",
            "app_id",
            "username",
            "blocks",
            "attachments",
            "files",
        ] {
            object.remove(field);
        }
    }
}

/// The text of a post: its fallback text and every block's text, joined.
pub fn post_text(post: &Value) -> String {
    let mut text = post["text"].as_str().unwrap_or_default().to_string();
    for block in post["blocks"].as_array().into_iter().flatten() {
        if let Some(t) = block["text"]["text"].as_str() {
            text.push('\n');
            text.push_str(t);
        }
        for element in block["elements"].as_array().into_iter().flatten() {
            if let Some(t) = element["text"].as_str() {
                text.push('\n');
                text.push_str(t);
            }
        }
    }
    text
}

/// A `block_actions` payload for a click on one of threadql's buttons, from Slack's sample.
pub fn button_click(channel: &str, action_id: &str, value: &Value) -> Value {
    let mut payload = fixture("app-backend/interactive-components/BlockActionPayload.json");
    payload["type"] = json!("block_actions");
    payload["user"]["id"] = json!("U0ALICE01");
    payload["team"]["id"] = json!(TEAM);
    payload["channel"]["id"] = json!(channel);
    payload["container"]["channel_id"] = json!(channel);
    let mut action = payload["actions"][0].clone();
    action["type"] = json!("button");
    action["action_id"] = json!(action_id);
    action["value"] = json!(as_plain_string(value));
    action["action_ts"] = json!(new_ts());
    payload["actions"] = json!([action]);
    payload
}

/// The value of the button `action_id` on a posted message.
pub fn button_value(post: &Value, action_id: &str) -> Option<Value> {
    post["blocks"]
        .as_array()?
        .iter()
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .find_map(|e| {
            (e["action_id"] == action_id)
                .then(|| serde_json::from_str(e["value"].as_str()?).ok())
                .flatten()
        })
}

/// A slash command's fields (a JSON object, as in Slack's sample) form-encoded as Slack sends them.
pub fn as_form(fields: &Value) -> String {
    let pairs: Vec<(String, String)> = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), as_plain_string(v)))
        .collect();
    serde_urlencoded::to_string(&pairs).unwrap()
}

/// POSTs `body` to `address` + `endpoint`, signed as Slack signs it (any server under test:
/// in process, a child process).
pub async fn post_signed_to(
    client: &reqwest::Client,
    address: &str,
    endpoint: &str,
    content_type: &str,
    body: Vec<u8>,
    extra_headers: &[(&str, &str)],
) -> reqwest::Response {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = sign(&SIGNING_SECRET.to_string().into(), &timestamp, &body);
    let mut request = client
        .post(format!("{address}{endpoint}"))
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", timestamp)
        .header("x-slack-signature", signature);
    for (name, value) in extra_headers {
        request = request.header(*name, *value);
    }
    request.body(body).send().await.expect("the server answers")
}
