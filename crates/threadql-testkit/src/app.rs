//! The real server in process: `spawn_app()` and the requests tests send it.
use std::time::Duration;

use actix_rt::task::JoinHandle;
use serde_json::{json, Value};
use threadql::startup::{AppHandle, Application, Stopped};

use crate::config::{config_with, TEAM};
use crate::postgres::TestDatabase;
use crate::slack::{as_form, fixture, post_signed_to, FakeSlack};

/// How long [`TestApp::wait_until_idle`] waits before failing the test.
const IDLE_PATIENCE: Duration = Duration::from_secs(60);

/// A running server under test, over its own fake Slack and state store.
pub struct TestApp {
    pub address: String,
    /// Where `/metrics` is served: `address`, or its own listener with `THREADQL_METRICS_LISTEN`.
    pub metrics_address: String,
    pub slack: FakeSlack,
    /// The state store (`DATABASE_URL`).
    pub database: TestDatabase,
    pub client: reqwest::Client,
    handle: AppHandle,
    running: Option<JoinHandle<std::io::Result<Stopped>>>,
}

/// A server with the default test configuration (see [`config_with`]).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// A server whose configuration differs from the default test one by `overrides`.
pub async fn spawn_app_with(overrides: &[(&str, String)]) -> TestApp {
    let slack = FakeSlack::start().await;
    let database = TestDatabase::create().await;
    start_server_with(slack, database, overrides).await
}

/// Starts a server over an existing fake Slack and state store (also used to "restart").
pub async fn start_server(slack: FakeSlack, database: TestDatabase) -> TestApp {
    start_server_with(slack, database, &[]).await
}

pub async fn start_server_with(slack: FakeSlack, database: TestDatabase, overrides: &[(&str, String)]) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        threadql::telemetry::init(threadql::config::LogFormat::Text, "info");
    }
    let config = config_with(&slack.api_url(), database.url(), overrides);
    let application = Application::build(config).await.expect("the application starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let metrics_address = application
        .metrics_port()
        .map_or_else(|| address.clone(), |port| format!("http://127.0.0.1:{port}"));
    let handle = application.handle();
    let running = actix_rt::spawn(application.run_until_stopped());
    TestApp {
        address,
        metrics_address,
        slack,
        database,
        client: reqwest::Client::new(),
        handle,
        running: Some(running),
    }
}

/// A second server over a [`TestApp`]'s fake Slack and state store.
pub struct Replica {
    pub address: String,
    pub handle: AppHandle,
    client: reqwest::Client,
}

impl Replica {
    /// Posts an Events API envelope, signed as Slack signs it, to this replica.
    pub async fn post_event(&self, envelope: &Value) -> reqwest::Response {
        let body = serde_json::to_vec(envelope).unwrap();
        post_signed_to(
            &self.client,
            &self.address,
            "/slack/events",
            "application/json",
            body,
            &[],
        )
        .await
    }
}

impl Drop for TestApp {
    /// The test is over: stop its actix System, so the server's workers, the thread actors'
    /// arbiters and the connection pools they hold go away now rather than at process exit
    /// (a full run would otherwise exhaust Postgres's connections). A server stopped for a
    /// restart leaves the System to the next one.
    fn drop(&mut self) {
        if self.running.is_some() {
            if let Some(system) = actix_rt::System::try_current() {
                system.stop();
            }
        }
    }
}

impl TestApp {
    /// Another server over this one's fake Slack and state store: a second replica. It runs
    /// until the test's actix System stops.
    pub async fn start_replica(&self, overrides: &[(&str, String)]) -> Replica {
        let config = config_with(&self.slack.api_url(), self.database.url(), overrides);
        let application = Application::build(config).await.expect("the replica starts");
        let address = format!("http://127.0.0.1:{}", application.port());
        let handle = application.handle();
        actix_rt::spawn(application.run_until_stopped());
        Replica {
            address,
            handle,
            client: reqwest::Client::new(),
        }
    }

    /// The step function for the server's background work: resolves once no dispatched
    /// message's turn is under way and nothing is queued or in flight to Slack, so what Slack
    /// received is final. Fails the test if that takes longer than a minute.
    pub async fn wait_until_idle(&self) {
        let waited = tokio::time::timeout(IDLE_PATIENCE, self.handle.wait_until_idle()).await;
        assert!(
            waited.is_ok(),
            "still busy after {IDLE_PATIENCE:?}: {} messages whose turn is not over, {} Slack calls queued",
            self.handle.backlog(),
            self.handle.outbox()
        );
    }

    /// The running server's handle (backlog, outbox, stop).
    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// Stops the server as `threadql serve` stops on SIGTERM, once its work is done, and hands
    /// back the fake Slack and the state store for a restart.
    pub async fn stop(mut self) -> (FakeSlack, TestDatabase) {
        self.wait_until_idle().await;
        self.handle.stop();
        let running = self.running.take().expect("the server runs until stopped");
        let stopped = running.await.expect("the server task").expect("the server stops");
        assert_eq!(stopped.abandoned, None, "an idle server stops with nothing left behind");
        let slack = std::mem::replace(&mut self.slack, FakeSlack::silent().await);
        (slack, self.database.take())
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

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.metrics_address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}
