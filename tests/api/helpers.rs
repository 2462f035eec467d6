//! `spawn_app()` and typed helpers: signed Slack requests built from Slack's own payload
//! samples, and a fake Web API (wiremock) that records posts and stores uploaded files.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use threadql::config::Config;
use threadql::slack::verify::sign;
use threadql::startup::Application;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const SIGNING_SECRET: &str = "test-signing-secret";
pub const BOT_USER: &str = "UBOT0001";
pub const TEAM: &str = "T0TEST01";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slack-samples")
}

pub fn fixture(relative: &str) -> Value {
    let path = fixtures().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
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

/// The demo data set, generated once per day and shared by the tests (read-only).
pub fn demo_warehouse_path() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("threadql-demo-{}.db", chrono::Utc::now().date_naive()))
}

/// A fresh Postgres database for one test.
pub async fn create_database() -> String {
    let name = format!("threadql_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(ADMIN_URL)
        .await
        .expect("Postgres must run on 127.0.0.1:5432");
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap();
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

/// The fake Slack Web API.
pub struct FakeSlack {
    pub server: MockServer,
    /// Messages posted with `chat.postMessage`, in order, as `chat.update` left them.
    messages: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
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
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Value)>::new()));
        let posted = messages.clone();
        Mock::given(method("POST"))
            .and(path("/api/chat.postMessage"))
            .respond_with(move |request: &Request| {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let mut reply = api_success("chat.postMessage");
                let ts = format!("{}.{:06}", chrono::Utc::now().timestamp(), rand_suffix());
                reply["channel"] = body["channel"].clone();
                reply["ts"] = json!(ts);
                posted.lock().unwrap().push((ts, body));
                ResponseTemplate::new(200).set_body_json(reply)
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
        for method_name in ["reactions.add"] {
            Mock::given(method("POST"))
                .and(path(format!("/api/{method_name}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(api_success(method_name)))
                .mount(&server)
                .await;
        }
        Mock::given(method("POST"))
            .and(path("/api/chat.postEphemeral"))
            .respond_with(ResponseTemplate::new(200).set_body_json(api_success("chat.postEphemeral")))
            .mount(&server)
            .await;
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
        Self { server, messages }
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
        let deadline = Instant::now() + Duration::from_secs(60);
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
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }
}

fn rand_suffix() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 1_000_000
}

/// A running server under test.
pub struct TestApp {
    pub address: String,
    pub slack: FakeSlack,
    pub database_url: String,
    pub client: reqwest::Client,
    handle: ServerHandle,
    /// Set by [`TestApp::stop`]: the test goes on with another server in the same System.
    restarting: bool,
}

/// The test configuration with some variables set or overridden.
pub fn config_with(slack_api_url: &str, database_url: &str, overrides: &[(&str, String)]) -> Config {
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("THREADQL_LISTEN", "127.0.0.1:0".into());
    vars.insert("SLACK_SIGNING_SECRET", SIGNING_SECRET.into());
    vars.insert("SLACK_BOT_TOKEN", "xoxb-test-token".into());
    vars.insert("SLACK_API_URL", slack_api_url.into());
    vars.insert("DATABASE_URL", database_url.into());
    vars.insert("THREADQL_DEMO_WAREHOUSE", demo_warehouse_path().display().to_string());
    for (name, value) in overrides {
        vars.insert(name, value.clone());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration is valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// A server whose configuration differs from the default test one by `overrides`.
pub async fn spawn_app_with(overrides: &[(&str, String)]) -> TestApp {
    let slack = FakeSlack::start().await;
    let database_url = create_database().await;
    start_server_with(slack, database_url, overrides).await
}

/// Starts a server over an existing fake Slack and state store (also used to "restart").
pub async fn start_server(slack: FakeSlack, database_url: String) -> TestApp {
    start_server_with(slack, database_url, &[]).await
}

pub async fn start_server_with(slack: FakeSlack, database_url: String, overrides: &[(&str, String)]) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        threadql::telemetry::init(threadql::config::LogFormat::Text, "info");
    }
    let config = config_with(&slack.api_url(), &database_url, overrides);
    let application = Application::build(config).await.expect("the application starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.server_handle();
    actix_rt::spawn(application.run_until_stopped());
    TestApp {
        address,
        slack,
        database_url,
        client: reqwest::Client::new(),
        handle,
        restarting: false,
    }
}

impl Drop for TestApp {
    /// The test is over: stop its actix System, so the server's workers, the thread actors'
    /// arbiters and the connection pools they hold go away now rather than at process exit
    /// (a full run would otherwise exhaust Postgres's connections).
    fn drop(&mut self) {
        if !self.restarting {
            if let Some(system) = actix_rt::System::try_current() {
                system.stop();
            }
        }
    }
}

impl TestApp {
    /// Stops the HTTP server and hands back the fake Slack and database for a restart.
    pub async fn stop(self) -> (FakeSlack, String) {
        // As `threadql serve` does on SIGTERM: the turns under way finish first (the server
        // drains them after its HTTP side stops; waiting here keeps the restart from racing it).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.metrics().await.lines().any(|line| line == "threadql_backlog 0") {
            assert!(std::time::Instant::now() < deadline, "turns still under way after 20 s");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.handle.stop(false).await;
        let slack = FakeSlack {
            server: MockServer::builder().start().await,
            messages: Default::default(),
        };
        let mut this = self;
        this.restarting = true;
        (
            std::mem::replace(&mut this.slack, slack),
            std::mem::take(&mut this.database_url),
        )
    }

    /// POSTs a body signed as Slack signs it.
    pub async fn post_signed(
        &self,
        endpoint: &str,
        content_type: &str,
        body: Vec<u8>,
        extra_headers: &[(&str, &str)],
    ) -> reqwest::Response {
        post_signed_to(&self.client, &self.address, endpoint, content_type, body, extra_headers).await
    }

    pub async fn post_event(&self, envelope: &Value) -> reqwest::Response {
        self.post_signed(
            "/slack/events",
            "application/json",
            serde_json::to_vec(envelope).unwrap(),
            &[],
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// An `app_mention` envelope built from Slack's sample, with the given fields.
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

/// Unique ts values for one test.
pub fn new_ts() -> String {
    format!("{}.{:06}", chrono::Utc::now().timestamp(), rand_suffix())
}

pub fn new_channel() -> String {
    format!("C{}", &uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase())
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
    action["value"] = json!(value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()));
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

impl TestApp {
    pub async fn click(&self, payload: &Value) -> reqwest::Response {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            &[],
        )
        .await
    }

    pub async fn slash_command(&self, channel: &str, text: &str) -> reqwest::Response {
        let mut fields = fixture("app-backend/slash-commands/SlashCommandPayload.json");
        fields["team_id"] = json!(TEAM);
        fields["channel_id"] = json!(channel);
        fields["user_id"] = json!("U0ALICE01");
        fields["command"] = json!("/threadql");
        fields["text"] = json!(text);
        self.post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            as_form(&fields).into_bytes(),
            &[],
        )
        .await
    }
}

/// A slash command's fields (a JSON object, as in Slack's sample) form-encoded as Slack sends them.
pub fn as_form(fields: &Value) -> String {
    let pairs: Vec<(String, String)> = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    serde_urlencoded::to_string(&pairs).unwrap()
}

/// POSTs `body` to `address` + `endpoint`, signed as Slack signs it (any server under test:
/// in process, a child process, the LLM tests' app).
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
