//! Socket Mode: a local WebSocket server speaking Slack's envelope protocol (hello, events_api,
//! interactive, slash_commands, disconnect) stands in for Slack's, next to the fake Web API that
//! hands out its `ws://` URLs from `apps.connections.open`.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use threadql_testkit::{
    api_success, app_mention, button_click, button_value, fixture, new_channel, new_ts, post_text, start_server_with,
    thread_reply, FakeSlack, TestApp, TestDatabase, TEAM,
};

const APP_TOKEN: &str = "xapp-1-A0THREADQL-1234-test";
/// How long a test waits for something the server should do promptly.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the test tells one connection's server side to do.
enum ServerAction {
    Send(Value),
    /// Close the TCP connection without a WebSocket close frame.
    DropTcp,
}

/// What the client did on one connection.
#[derive(Debug)]
enum ClientFrame {
    Text(Value),
    /// A WebSocket close frame.
    Close,
    /// The TCP connection ended.
    Gone,
}

/// The server side of one Socket Mode connection, after its `hello`.
struct SocketConnection {
    /// The `ticket` of the URL the client connected to.
    ticket: String,
    actions: mpsc::UnboundedSender<ServerAction>,
    frames: mpsc::UnboundedReceiver<ClientFrame>,
    /// Text frames received but not yet looked for.
    unread: Vec<Value>,
}

impl SocketConnection {
    fn send(&self, frame: Value) {
        self.actions.send(ServerAction::Send(frame)).unwrap();
    }

    fn drop_tcp(&self) {
        self.actions.send(ServerAction::DropTcp).unwrap();
    }

    /// Waits for the client's ack of `envelope_id`.
    async fn ack_of(&mut self, envelope_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.unread.iter().position(|f| f["envelope_id"] == envelope_id) {
                return self.unread.remove(i);
            }
            match tokio::time::timeout_at(deadline, self.frames.recv()).await {
                Ok(Some(ClientFrame::Text(frame))) => self.unread.push(frame),
                other => panic!("no ack of {envelope_id} on connection {}: {other:?}", self.ticket),
            }
        }
    }

    /// Waits for the client to end the connection; true when it sent a close frame first.
    async fn closed_cleanly(&mut self) -> bool {
        loop {
            match tokio::time::timeout(PATIENCE, self.frames.recv()).await {
                Ok(Some(ClientFrame::Text(frame))) => self.unread.push(frame),
                Ok(Some(ClientFrame::Close)) => return true,
                Ok(Some(ClientFrame::Gone) | None) => return false,
                Err(_) => panic!("connection {} is still open", self.ticket),
            }
        }
    }
}

/// Slack's Socket Mode endpoint: every connection gets `hello`, then does what the test says.
struct FakeSocketMode {
    port: u16,
    connections: Mutex<mpsc::UnboundedReceiver<SocketConnection>>,
    urls_handed_out: Arc<AtomicUsize>,
}

impl FakeSocketMode {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (connected, connections) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let connected = connected.clone();
                tokio::spawn(serve_connection(tcp, connected));
            }
        });
        Self {
            port,
            connections: Mutex::new(connections),
            urls_handed_out: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// `apps.connections.open` on the fake Web API: a new single-use URL each time, only for
    /// the app-level token.
    async fn mount_connections_open(&self, slack: &FakeSlack) {
        let port = self.port;
        let handed_out = self.urls_handed_out.clone();
        Mock::given(method("POST"))
            .and(path("/api/apps.connections.open"))
            .respond_with(move |request: &wiremock::Request| {
                let authorization = request.headers.get("authorization").and_then(|v| v.to_str().ok());
                if authorization != Some(&format!("Bearer {APP_TOKEN}")) {
                    return ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "invalid_auth"}));
                }
                let ticket = handed_out.fetch_add(1, Ordering::SeqCst) + 1;
                let mut reply = api_success("apps.connections.open");
                reply["url"] = json!(format!(
                    "ws://127.0.0.1:{port}/link/?ticket=t{ticket}&app_id=A0THREADQL"
                ));
                ResponseTemplate::new(200).set_body_json(reply)
            })
            .mount(&slack.server)
            .await;
    }

    async fn next_connection(&self) -> SocketConnection {
        tokio::time::timeout(PATIENCE, self.connections.lock().await.recv())
            .await
            .expect("the client connects")
            .unwrap()
    }

    fn urls_handed_out(&self) -> usize {
        self.urls_handed_out.load(Ordering::SeqCst)
    }
}

async fn serve_connection(tcp: tokio::net::TcpStream, connected: mpsc::UnboundedSender<SocketConnection>) {
    let mut ticket = String::new();
    // The error type is tungstenite's.
    #[allow(clippy::result_large_err)]
    let remember_ticket = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        ticket = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("ticket="))
            .unwrap_or_default()
            .to_string();
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(tcp, remember_ticket).await else {
        return;
    };
    let hello = json!({
        "type": "hello",
        "num_connections": 1,
        "debug_info": {"host": "applink-test", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A0THREADQL"}
    });
    if socket.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let (actions, mut to_do) = mpsc::unbounded_channel();
    let (frames, received) = mpsc::unbounded_channel();
    let connection = SocketConnection {
        ticket,
        actions,
        frames: received,
        unread: Vec::new(),
    };
    if connected.send(connection).is_err() {
        return;
    }
    loop {
        tokio::select! {
            action = to_do.recv() => match action {
                Some(ServerAction::Send(frame)) => {
                    if socket.send(Message::text(frame.to_string())).await.is_err() {
                        let _ = frames.send(ClientFrame::Gone);
                        return;
                    }
                }
                // Dropping the stream closes the TCP connection without a close frame.
                Some(ServerAction::DropTcp) | None => return,
            },
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let _ = frames.send(ClientFrame::Text(serde_json::from_str(text.as_str()).unwrap()));
                }
                Some(Ok(Message::Close(_))) => {
                    let _ = frames.send(ClientFrame::Close);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = frames.send(ClientFrame::Gone);
                    return;
                }
            },
        }
    }
}

/// A server in Socket Mode (app-level token, no signing secret) over a fresh fake Slack.
async fn spawn_socket_mode_app(connections: usize) -> (TestApp, FakeSocketMode) {
    spawn_socket_mode_app_with(connections, &[]).await
}

async fn spawn_socket_mode_app_with(connections: usize, overrides: &[(&str, String)]) -> (TestApp, FakeSocketMode) {
    let slack = FakeSlack::start().await;
    let sockets = FakeSocketMode::start().await;
    sockets.mount_connections_open(&slack).await;
    let database = TestDatabase::create().await;
    let mut settings = vec![
        ("SLACK_APP_TOKEN", APP_TOKEN.to_string()),
        ("SLACK_SIGNING_SECRET", String::new()),
        ("THREADQL_SOCKET_CONNECTIONS", connections.to_string()),
    ];
    settings.extend(overrides.iter().cloned());
    let app = start_server_with(slack, database, &settings).await;
    (app, sockets)
}

fn new_envelope_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An `events_api` envelope as Slack sends it over Socket Mode.
fn events_api(envelope_id: &str, payload: &Value, retry_attempt: u32) -> Value {
    json!({
        "envelope_id": envelope_id,
        "payload": payload,
        "type": "events_api",
        "accepts_response_payload": false,
        "retry_attempt": retry_attempt,
        "retry_reason": if retry_attempt > 0 { "timeout" } else { "" },
    })
}

fn interactive(envelope_id: &str, payload: &Value) -> Value {
    json!({
        "envelope_id": envelope_id,
        "payload": payload,
        "type": "interactive",
        "accepts_response_payload": false,
    })
}

fn slash_commands(envelope_id: &str, channel: &str, text: &str) -> Value {
    let mut payload = fixture("app-backend/slash-commands/SlashCommandPayload.json");
    payload["team_id"] = json!(TEAM);
    payload["channel_id"] = json!(channel);
    payload["user_id"] = json!("U0ALICE01");
    payload["command"] = json!("/threadql");
    payload["text"] = json!(text);
    json!({
        "envelope_id": envelope_id,
        "payload": payload,
        "type": "slash_commands",
        "accepts_response_payload": true,
    })
}

/// `threadql_slack_requests_total` for one endpoint and outcome.
async fn slack_requests(app: &TestApp, endpoint: &str, outcome: &str) -> u64 {
    let labels = format!("{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}}");
    app.metrics()
        .await
        .lines()
        .find(|l| l.starts_with(&format!("threadql_slack_requests_total{labels}")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn an_app_mention_over_socket_mode_is_acked_by_envelope_id_and_answered_in_its_thread() {
    // Arrange
    let (app, sockets) = spawn_socket_mode_app(1).await;
    let mut connection = sockets.next_connection().await;
    let (channel, root) = (new_channel(), new_ts());
    let envelope_id = new_envelope_id();

    // Act
    connection.send(events_api(
        &envelope_id,
        &app_mention("EvSock1", &channel, &root, "revenue by region last month"),
        0,
    ));

    // Assert: a bare ack by envelope id, then the answer in the mention's thread.
    let ack = connection.ack_of(&envelope_id).await;
    assert_eq!(ack, json!({ "envelope_id": envelope_id }));
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(post_text(&posts[0]).contains("EMEA"), "{}", post_text(&posts[0]));
    let opens = app.slack.requests("/api/apps.connections.open").await;
    assert_eq!(opens.len(), 1);
    assert_eq!(
        opens[0].headers.get("authorization").unwrap().to_str().unwrap(),
        format!("Bearer {APP_TOKEN}"),
        "apps.connections.open takes the app-level token"
    );
}

#[actix_rt::test]
async fn a_redelivered_envelope_with_the_same_event_id_is_acked_but_not_answered_twice() {
    // Arrange: the first delivery is answered.
    let (app, sockets) = spawn_socket_mode_app(1).await;
    let mut connection = sockets.next_connection().await;
    let (channel, root) = (new_channel(), new_ts());
    let mention = app_mention("EvSockRetry", &channel, &root, "revenue by region last month");
    let first = new_envelope_id();
    connection.send(events_api(&first, &mention, 0));
    connection.ack_of(&first).await;
    app.slack.wait_for_posts(&channel, &root, 1).await;

    // Act: Slack redelivers it (new envelope, retry_attempt 1, same event_id).
    let retry = new_envelope_id();
    connection.send(events_api(&retry, &mention, 1));

    // Assert: acked, counted as a duplicate, and no second answer.
    connection.ack_of(&retry).await;
    assert_eq!(slack_requests(&app, "events", "duplicate").await, 1);
    assert_eq!(slack_requests(&app, "events", "accepted").await, 1);
    assert_eq!(app.slack.posts_in_thread(&channel, &root).await.len(), 1);
}

#[actix_rt::test]
async fn a_new_thread_beyond_the_backlog_is_left_unacked_for_slack_to_redeliver() {
    // Arrange: a backlog of one message, taken by a slow query.
    let warehouse = crate::threads::slow_warehouse().await;
    let (app, sockets) = spawn_socket_mode_app_with(
        1,
        &[
            ("WAREHOUSE_URL", warehouse.url().to_string()),
            ("THREADQL_QUERY_TIMEOUT_SECS", "600".into()),
            ("THREADQL_MAX_BACKLOG", "1".into()),
        ],
    )
    .await;
    let mut connection = sockets.next_connection().await;
    let (busy_channel, busy_root) = (new_channel(), new_ts());
    let slow = new_envelope_id();
    connection.send(events_api(
        &slow,
        &app_mention("EvSockB1", &busy_channel, &busy_root, "slow numbers count"),
        0,
    ));
    connection.ack_of(&slow).await;
    crate::threads::wait_until_slow_query_runs(&warehouse).await;

    // Act: a question that would start a new thread.
    let (channel, root) = (new_channel(), new_ts());
    let question = app_mention("EvSockB2", &channel, &root, "help");
    let first = new_envelope_id();
    connection.send(events_api(&first, &question, 0));

    // Assert: no ack (Slack redelivers an unacked envelope), while the busy thread's `cancel`
    // is acked and handled.
    let acked = tokio::time::timeout(Duration::from_secs(1), connection.ack_of(&first)).await;
    assert!(acked.is_err(), "the envelope was acked: {acked:?}");
    let cancel = new_envelope_id();
    connection.send(events_api(
        &cancel,
        &thread_reply("EvSockB3", &busy_channel, &busy_root, &new_ts(), "cancel"),
        0,
    ));
    connection.ack_of(&cancel).await;
    app.slack.wait_for_posts(&busy_channel, &busy_root, 1).await;

    // Act: Slack redelivers until the envelope is acked (the backlog empties once the cancelled
    // turn is over).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let retry = new_envelope_id();
        connection.send(events_api(&retry, &question, 1));
        if tokio::time::timeout(Duration::from_millis(500), connection.ack_of(&retry))
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no redelivery was ever acked");
    }

    // Assert: answered, once.
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    assert!(post_text(&posts[0]).contains("show sql"), "{}", post_text(&posts[0]));
    assert!(slack_requests(&app, "events", "overloaded").await >= 1);
    app.wait_until_idle().await;
    assert_eq!(app.slack.posts_in_thread(&channel, &root).await.len(), 1);
}

#[actix_rt::test]
async fn a_disconnect_message_makes_the_client_reconnect_on_a_new_url_and_close_the_old_connection() {
    // Arrange
    let (app, sockets) = spawn_socket_mode_app(1).await;
    let mut old = sockets.next_connection().await;

    // Act
    old.send(json!({
        "type": "disconnect",
        "reason": "refresh_requested",
        "debug_info": {"host": "applink-test"}
    }));

    // Assert: a second URL was fetched and connected to; the old connection was closed cleanly.
    let mut new = sockets.next_connection().await;
    assert_ne!(new.ticket, old.ticket, "a Socket Mode URL is single-use");
    assert_eq!(sockets.urls_handed_out(), 2);
    assert!(old.closed_cleanly().await, "the old connection ends with a close frame");

    // Assert: events on the new connection work.
    let (channel, root) = (new_channel(), new_ts());
    let envelope_id = new_envelope_id();
    new.send(events_api(
        &envelope_id,
        &app_mention("EvSockRefresh", &channel, &root, "orders by channel this year"),
        0,
    ));
    new.ack_of(&envelope_id).await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
}

#[actix_rt::test]
async fn a_connection_dropped_mid_stream_is_replaced_without_losing_events() {
    // Arrange: an event is on its way when the TCP connection drops, before any ack can return.
    let (app, sockets) = spawn_socket_mode_app(1).await;
    let dropped = sockets.next_connection().await;
    let (channel, root_a, root_b) = (new_channel(), new_ts(), new_ts());
    let mention_a = app_mention("EvSockDropA", &channel, &root_a, "revenue by region last month");
    dropped.send(events_api(&new_envelope_id(), &mention_a, 0));

    // Act
    dropped.drop_tcp();

    // Assert: the client fetches a new URL and reconnects.
    let mut replacement = sockets.next_connection().await;
    assert_eq!(sockets.urls_handed_out(), 2);

    // Act: Slack redelivers the unacked event and sends a new one.
    let (redelivery, next) = (new_envelope_id(), new_envelope_id());
    replacement.send(events_api(&redelivery, &mention_a, 1));
    replacement.send(events_api(
        &next,
        &app_mention("EvSockDropB", &channel, &root_b, "orders by channel this year"),
        0,
    ));

    // Assert: both acked, each question answered once.
    replacement.ack_of(&redelivery).await;
    replacement.ack_of(&next).await;
    app.slack.wait_for_posts(&channel, &root_a, 1).await;
    app.slack.wait_for_posts(&channel, &root_b, 1).await;
    assert_eq!(
        slack_requests(&app, "events", "accepted").await,
        2,
        "the event that was in flight is accepted once, on one connection or the other"
    );
}

#[actix_rt::test]
async fn a_slash_command_envelope_is_acked_with_the_reply_as_payload() {
    // Arrange
    let (app, sockets) = spawn_socket_mode_app(1).await;
    let mut connection = sockets.next_connection().await;
    let channel = new_channel();

    // Act: `/threadql help`.
    let help = new_envelope_id();
    connection.send(slash_commands(&help, &channel, "help"));

    // Assert: the help comes back in the ack.
    let ack = connection.ack_of(&help).await;
    assert_eq!(ack["payload"]["response_type"], "ephemeral", "{ack:#}");
    let text = ack["payload"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("revenue") && text.contains("only EMEA"), "{text}");

    // Act: `/threadql <question>`.
    let question = new_envelope_id();
    connection.send(slash_commands(&question, &channel, "revenue by region last month"));

    // Assert: a bare ack, then the question as a thread root answered in its thread.
    let ack = connection.ack_of(&question).await;
    assert_eq!(ack, json!({ "envelope_id": question }));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let root = loop {
        if let Some(root) = app.slack.roots_in_channel(&channel).await.into_iter().next() {
            break root;
        }
        assert!(tokio::time::Instant::now() < deadline, "no thread root was posted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let posts = app.slack.wait_for_posts(&channel, &root.0, 1).await;
    assert!(post_text(&posts[0]).contains("EMEA"), "{}", post_text(&posts[0]));
}

#[actix_rt::test]
async fn a_show_sql_click_over_socket_mode_posts_the_sql_of_that_answer() {
    // Arrange: an answer with its buttons.
    let (app, sockets) = spawn_socket_mode_app(1).await;
    let mut connection = sockets.next_connection().await;
    let (channel, root) = (new_channel(), new_ts());
    let mention = new_envelope_id();
    connection.send(events_api(
        &mention,
        &app_mention("EvSockButton", &channel, &root, "revenue by region last month"),
        0,
    ));
    let posts = app.slack.wait_for_posts(&channel, &root, 1).await;
    let value = button_value(&posts[0], "show_sql").expect("the answer has a Show SQL button");
    assert_eq!(value, json!({"thread_ts": root, "version": 1}));

    // Act
    let click = new_envelope_id();
    connection.send(interactive(&click, &button_click(&channel, "show_sql", &value)));

    // Assert
    let ack = connection.ack_of(&click).await;
    assert_eq!(ack, json!({ "envelope_id": click }));
    let posts = app.slack.wait_for_posts(&channel, &root, 2).await;
    let sql = post_text(&posts[1]);
    assert!(sql.contains("SELECT"), "{sql}");
}

#[actix_rt::test]
async fn the_configured_connections_stay_open_and_close_cleanly_when_the_server_stops() {
    // Arrange
    let (app, sockets) = spawn_socket_mode_app(3).await;
    let mut connections = Vec::new();
    for _ in 0..3 {
        connections.push(sockets.next_connection().await);
    }
    let mut tickets: Vec<&str> = connections.iter().map(|c| c.ticket.as_str()).collect();
    tickets.sort();
    tickets.dedup();
    assert_eq!(tickets.len(), 3, "each connection has its own URL");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !app.metrics().await.contains("threadql_socket_mode_connections 3") {
        assert!(tokio::time::Instant::now() < deadline, "{}", app.metrics().await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Act
    let _ = app.stop().await;

    // Assert
    for connection in &mut connections {
        assert!(
            connection.closed_cleanly().await,
            "connection {} got a close frame",
            connection.ticket
        );
    }
    assert_eq!(sockets.urls_handed_out(), 3, "no reconnection after shutdown");
}

#[actix_rt::test]
async fn without_a_signing_secret_the_http_slack_endpoints_refuse_every_request() {
    // Arrange: Socket Mode only.
    let (app, sockets) = spawn_socket_mode_app(1).await;
    let _connection = sockets.next_connection().await;
    let (channel, root) = (new_channel(), new_ts());

    // Act: a request signed with the test secret the HTTP tests use.
    let response = app
        .post_event(&app_mention("EvSockHttp", &channel, &root, "revenue"))
        .await;

    // Assert
    assert_eq!(response.status().as_u16(), 401);
    let health = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
