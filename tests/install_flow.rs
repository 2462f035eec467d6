#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Installing through Slack's OAuth v2 flow (issue 15), over HTTP as a browser does it: the
//! install page and its signed state cookie, Slack's redirect back, the code exchanged with the
//! fake Slack's `oauth.v2.access`, the installation in Postgres with its token sealed; and every
//! redirect that must be refused (no cookie, a forged one, one for another state, a replayed,
//! expired or unknown state, a cancelled install, a code or credentials Slack refuses, the store
//! down), none of which stores anything.
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use chrono::{TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPool;
use threadql::http::install::{self, InstallEndpoint, REDIRECT_PATH, STATE_COOKIE};
use threadql::slack::install::oauth::{self, InstallSettings, OAuthError, MANIFEST_BOT_SCOPES};
use threadql::slack::install::{InstallationStore, SealingKeys};
use threadql::store::PostgresStore;
use threadql_testkit::{FakeSlack, TestDatabase, BOT_TOKEN, BOT_USER, TEAM};
use url::Url;

const CLIENT_ID: &str = "1234567890.0987654321";
const CLIENT_SECRET: &str = "3f1c0ffee0ddba11d15ea5e0c0ffee42";
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The install endpoint alone on a port of its own, with its database and the fake Slack.
struct InstallServer {
    address: String,
    slack: FakeSlack,
    pool: PgPool,
    store: Arc<InstallationStore>,
    settings: InstallSettings,
    _database: TestDatabase,
}

impl InstallServer {
    /// The endpoint with the app's own client secret.
    async fn start() -> Self {
        Self::start_with_secret(CLIENT_SECRET).await
    }

    /// The endpoint configured with `client_secret` (the fake Slack knows [`CLIENT_SECRET`]).
    async fn start_with_secret(client_secret: &str) -> Self {
        let database = TestDatabase::create().await;
        PostgresStore::connect(database.url())
            .await
            .unwrap()
            .migrate()
            .await
            .unwrap();
        let pool = PgPool::connect(database.url()).await.unwrap();
        let keys = SealingKeys::new(&SecretString::from(KEY), None).unwrap();
        let store = Arc::new(InstallationStore::new(pool.clone(), keys));
        let slack = FakeSlack::start().await;
        slack.serve_oauth(CLIENT_ID, CLIENT_SECRET).await;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let settings = InstallSettings::with_manifest_scopes(
            CLIENT_ID.to_string(),
            SecretString::from(client_secret),
            Some(Url::parse(&format!("{address}{REDIRECT_PATH}")).unwrap()),
            Url::parse(&slack.api_url()).unwrap(),
        )
        .unwrap();
        let endpoint = web::Data::new(InstallEndpoint::new(settings.clone(), store.clone()).unwrap());
        let server = HttpServer::new(move || App::new().app_data(endpoint.clone()).configure(install::configure))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        actix_rt::spawn(server);
        Self {
            address,
            slack,
            pool,
            store,
            settings,
            _database: database,
        }
    }

    /// Opens the install page in `browser` and answers the state of its "Add to Slack" link.
    async fn begin_install(&self, browser: &mut Browser) -> String {
        let page = browser.get(&format!("{}/slack/install", self.address)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        authorize_link(&page.body)["state"].clone()
    }

    /// Slack's redirect back to the server, in `browser`, with `query`.
    async fn redirect(&self, browser: &mut Browser, query: &[(&str, &str)]) -> Page {
        let query = serde_urlencoded::to_string(query).unwrap();
        browser.get(&format!("{}{REDIRECT_PATH}?{query}", self.address)).await
    }

    /// How many installations are stored.
    async fn installations(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM slack_installations")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Whether `state` was consumed (`None`: never recorded).
    async fn state_used(&self, state: &str) -> Option<bool> {
        sqlx::query_scalar("SELECT used_at IS NOT NULL FROM slack_oauth_states WHERE state = $1")
            .bind(state)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
    }

    /// Asserts that a refused redirect stored nothing and never reached Slack.
    async fn assert_nothing_installed(&self) {
        assert_eq!(self.installations().await, 0, "no installation is stored");
        assert!(self.slack.oauth_calls().await.is_empty(), "no code was exchanged");
    }
}

/// A browser's cookie jar and client. The jar is kept by hand from `Set-Cookie` (the workspace's
/// reqwest is built without its `cookies` feature), which also lets the tests read the cookie's
/// attributes; like a browser, it drops a cookie whose `Max-Age` is 0.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// A page as the browser received it.
struct Page {
    status: u16,
    body: String,
    /// The `Set-Cookie` of the state cookie, if any.
    set_cookie: Option<String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::new(),
            cookies: HashMap::new(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let mut request = self.http.get(url);
        if !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header("cookie", header.join("; "));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let mut set_cookie = None;
        for header in response.headers().get_all("set-cookie") {
            let header = header.to_str().unwrap().to_string();
            let (pair, attributes) = header.split_once(';').unwrap_or((&header, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes
                .split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"))
            {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_string(), value.trim().to_string());
            }
            if name.trim() == STATE_COOKIE {
                set_cookie = Some(header.clone());
            }
        }
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(content_type, "text/html; charset=utf-8", "every page is HTML");
        Page {
            status,
            body: response.text().await.unwrap(),
            set_cookie,
        }
    }

    fn state_cookie(&self) -> Option<&String> {
        self.cookies.get(STATE_COOKIE)
    }
}

/// The query of the "Add to Slack" link on the install page, after checking it goes to Slack's
/// authorize page.
fn authorize_link(body: &str) -> HashMap<String, String> {
    let start = body
        .find("href=\"https://slack.com/oauth/v2/authorize?")
        .expect("an Add to Slack link")
        + 6;
    let end = start + body[start..].find('"').unwrap();
    let link = Url::parse(&body[start..end].replace("&amp;", "&")).unwrap();
    assert_eq!(link.host_str(), Some("slack.com"));
    assert_eq!(link.path(), "/oauth/v2/authorize");
    link.query_pairs().into_owned().collect()
}

#[actix_web::test]
async fn a_complete_install_stores_the_workspace_with_its_bot_token_sealed() {
    // Arrange
    let server = InstallServer::start().await;
    let mut browser = Browser::new();

    // Act: the install page
    let page = browser.get(&format!("{}/slack/install", server.address)).await;

    // Assert: a link to Slack's authorize page, and the cookie that binds its state here
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Add to Slack"), "{}", page.body);
    let link = authorize_link(&page.body);
    assert_eq!(link["client_id"], CLIENT_ID);
    assert_eq!(link["scope"], MANIFEST_BOT_SCOPES.join(","));
    assert_eq!(link["redirect_uri"], format!("{}{REDIRECT_PATH}", server.address));
    let state = link["state"].clone();
    assert!(state.len() >= 43, "a state of 256 random bits: {state}");
    assert_eq!(
        server.state_used(&state).await,
        Some(false),
        "the state is recorded, unused"
    );
    let cookie = page.set_cookie.expect("the install page sets the state cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/slack", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not Secure over plain HTTP: {cookie}");
    assert!(!cookie.contains(CLIENT_SECRET));

    // Act: Slack sends the browser back with a code
    let code = server.slack.issue_oauth_code();
    let page = server
        .redirect(&mut browser, &[("code", &code), ("state", &state)])
        .await;

    // Assert: a success page linking to the workspace, the cookie cleared
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("threadql is installed"), "{}", page.body);
    assert!(page.body.contains("Test Workspace"), "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "https://slack.com/app_redirect?app=A0THREADQL&amp;team={TEAM}"
        )),
        "{}",
        page.body
    );
    assert!(page.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(browser.state_cookie(), None);
    assert_eq!(server.state_used(&state).await, Some(true));

    // Assert: the code went to Slack with the app's credentials in HTTP Basic, not in the form
    let calls = server.slack.requests("/api/oauth.v2.access").await;
    assert_eq!(calls.len(), 1);
    let authorization = calls[0].headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("Basic "), "{authorization}");
    let form = &server.slack.oauth_calls().await[0];
    assert_eq!(form["code"], code);
    assert_eq!(form["redirect_uri"], format!("{}{REDIRECT_PATH}", server.address));
    assert!(!form.contains_key("client_secret"));

    // Assert: the installation, its token sealed at rest and opening to Slack's
    let (team_id, bot_user_id, sealed, installer): (String, String, String, String) =
        sqlx::query_as("SELECT team_id, bot_user_id, bot_token_sealed, installer_user_id FROM slack_installations")
            .fetch_one(&server.pool)
            .await
            .unwrap();
    assert_eq!((team_id.as_str(), bot_user_id.as_str()), (TEAM, BOT_USER));
    assert_eq!(installer, "U0ALICE01");
    assert!(!sealed.contains(BOT_TOKEN), "the token is sealed: {sealed}");
    let installation = server.store.find(None, Some(TEAM), false).await.unwrap().unwrap();
    assert_eq!(installation.bot_token.unwrap().expose_secret(), BOT_TOKEN);
    assert_eq!(installation.identity.app_id(), "A0THREADQL");
    assert_eq!(installation.team_name, "Test Workspace");
    assert_eq!(installation.bot_scopes, ["app_mentions:read", "chat:write"]);
    assert!(installation.bot_refresh_token.is_none());
    assert!(installation.active);
}

#[actix_web::test]
async fn with_token_rotation_the_install_keeps_its_refresh_token_and_expiry_and_a_refresh_renews_the_token() {
    // Arrange
    let server = InstallServer::start().await;
    server.slack.turn_on_token_rotation();
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;

    // Act
    let code = server.slack.issue_oauth_code();
    let page = server
        .redirect(&mut browser, &[("code", &code), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 200, "{}", page.body);
    let installation = server.store.find(None, Some(TEAM), false).await.unwrap().unwrap();
    let refresh_token = installation
        .bot_refresh_token
        .expect("a refresh token with token rotation");
    assert_eq!(refresh_token.expose_secret(), FakeSlack::REFRESH_TOKEN);
    let expires_at = installation
        .bot_token_expires_at
        .expect("an expiry with token rotation");
    let twelve_hours = Utc::now() + TimeDelta::hours(12);
    assert!(
        (expires_at - twelve_hours).abs() < TimeDelta::minutes(1),
        "{expires_at}"
    );

    // Act: the refresh grant
    let http = oauth::http_client().unwrap();
    let refreshed = oauth::refresh(&http, &server.settings, &refresh_token).await.unwrap();

    // Assert
    assert_eq!(refreshed.bot_token.expose_secret(), format!("{BOT_TOKEN}-refreshed-1"));
    assert_eq!(refreshed.refresh_token.expose_secret(), FakeSlack::REFRESH_TOKEN);
    assert!((refreshed.expires_at - twelve_hours).abs() < TimeDelta::minutes(1));
    let calls = server.slack.oauth_calls().await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["grant_type"], "refresh_token");

    // Act: a refresh token Slack does not know
    let refused = oauth::refresh(&http, &server.settings, &SecretString::from("xoxe-1-unknown")).await;

    // Assert
    assert!(
        matches!(&refused, Err(OAuthError::Refused { code }) if code == "invalid_refresh_token"),
        "{refused:?}"
    );
}

#[actix_web::test]
async fn a_redirect_in_a_browser_without_the_cookie_is_refused_and_leaves_the_install_to_its_browser() {
    // Arrange
    let server = InstallServer::start().await;
    let mut installing = Browser::new();
    let state = server.begin_install(&mut installing).await;
    let code = server.slack.issue_oauth_code();

    // Act: the same redirect in a browser that never opened the install page
    let page = server
        .redirect(&mut Browser::new(), &[("code", &code), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 400);
    assert!(page.body.contains("begun in another browser"), "{}", page.body);
    assert!(page.body.contains("Nothing was installed"), "{}", page.body);
    server.assert_nothing_installed().await;
    assert_eq!(server.state_used(&state).await, Some(false), "the state is not spent");

    // Act: the browser that began it completes it
    let page = server
        .redirect(&mut installing, &[("code", &code), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(server.installations().await, 1);
}

#[actix_web::test]
async fn a_forged_cookie_is_refused_and_stores_nothing() {
    // Arrange
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;
    let code = server.slack.issue_oauth_code();
    let genuine = browser.state_cookie().unwrap().clone();
    let (cookie_state, mac) = genuine.rsplit_once('.').unwrap();
    assert_eq!(cookie_state, state);
    let altered_mac = format!("{state}.{}", mac.replace(|c: char| c != 'A', "A"));
    let made_up = "attacker-chosen-state.c2lnbmVkIGJ5IG5vYm9keQ".to_string();

    for (description, cookie, state) in [
        ("the MAC altered", altered_mac, state.as_str()),
        ("a state and a MAC made up", made_up, "attacker-chosen-state"),
        ("no MAC at all", state.clone(), state.as_str()),
    ] {
        browser.cookies.insert(STATE_COOKIE.to_string(), cookie);

        // Act
        let page = server
            .redirect(&mut browser, &[("code", &code), ("state", state)])
            .await;

        // Assert
        assert_eq!(page.status, 400, "{description}");
        assert!(page.body.contains("cannot be verified"), "{description}: {}", page.body);
        server.assert_nothing_installed().await;
    }
    assert_eq!(server.state_used(&state).await, Some(false));
}

#[actix_web::test]
async fn a_cookie_for_another_state_is_refused_and_kept_for_its_own_install() {
    // Arrange: this browser's install, and another one's state
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let own_state = server.begin_install(&mut browser).await;
    let other_state = server.begin_install(&mut Browser::new()).await;
    let code = server.slack.issue_oauth_code();

    // Act
    let page = server
        .redirect(&mut browser, &[("code", &code), ("state", &other_state)])
        .await;

    // Assert
    assert_eq!(page.status, 400);
    assert!(page.body.contains("not the latest install link"), "{}", page.body);
    server.assert_nothing_installed().await;
    assert_eq!(server.state_used(&other_state).await, Some(false));
    assert_eq!(server.state_used(&own_state).await, Some(false));
    assert!(
        page.set_cookie.is_none(),
        "this browser's own install may still complete"
    );
    assert!(browser.state_cookie().is_some());
}

#[actix_web::test]
async fn a_replayed_redirect_is_refused_even_with_its_cookie_and_a_fresh_code() {
    // Arrange: a complete install, its cookie captured on the way
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;
    let cookie = browser.state_cookie().unwrap().clone();
    let first_code = server.slack.issue_oauth_code();
    let page = server
        .redirect(&mut browser, &[("code", &first_code), ("state", &state)])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);

    // Act: the same state and cookie again, with a code Slack would accept
    browser.cookies.insert(STATE_COOKIE.to_string(), cookie);
    let second_code = server.slack.issue_oauth_code();
    let page = server
        .redirect(&mut browser, &[("code", &second_code), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 400);
    assert!(page.body.contains("used already"), "{}", page.body);
    assert_eq!(
        server.slack.oauth_calls().await.len(),
        1,
        "the second code is never exchanged"
    );
    assert_eq!(server.installations().await, 1);
}

#[actix_web::test]
async fn an_expired_state_is_refused_and_stores_nothing() {
    // Arrange: an install page opened eleven minutes ago
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;
    sqlx::query("UPDATE slack_oauth_states SET created_at = now() - interval '11 minutes' WHERE state = $1")
        .bind(&state)
        .execute(&server.pool)
        .await
        .unwrap();
    let code = server.slack.issue_oauth_code();

    // Act
    let page = server
        .redirect(&mut browser, &[("code", &code), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 400);
    assert!(page.body.contains("expired"), "{}", page.body);
    server.assert_nothing_installed().await;
    assert_eq!(browser.state_cookie(), None, "the spent install's cookie is cleared");
}

#[actix_web::test]
async fn a_state_this_server_never_issued_is_refused_even_under_a_genuine_cookie() {
    // Arrange: a cookie signed with the app's secret for a state never recorded (what only a
    // leaked secret or a pruned state could produce)
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let state = oauth::new_state().unwrap();
    let cookie = server.settings.state_cookie(&state).unwrap();
    browser.cookies.insert(STATE_COOKIE.to_string(), cookie);
    let code = server.slack.issue_oauth_code();

    // Act
    let page = server
        .redirect(&mut browser, &[("code", &code), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 400);
    assert!(page.body.contains("install link is unknown"), "{}", page.body);
    server.assert_nothing_installed().await;
}

#[actix_web::test]
async fn an_install_cancelled_on_slacks_page_gets_a_friendly_page_and_stores_nothing() {
    // Arrange
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;

    // Act
    let page = server
        .redirect(&mut browser, &[("error", "access_denied"), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Install cancelled"), "{}", page.body);
    assert!(page.body.contains("href=\"/slack/install\""), "{}", page.body);
    server.assert_nothing_installed().await;
    assert_eq!(browser.state_cookie(), None);
}

#[actix_web::test]
async fn a_code_slack_refuses_gets_a_400_that_quotes_nothing_from_slack() {
    // Arrange
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;

    // Act
    let page = server
        .redirect(
            &mut browser,
            &[("code", "a-code-slack-never-issued"), ("state", &state)],
        )
        .await;

    // Assert
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Slack did not accept this install"), "{}", page.body);
    assert!(!page.body.contains("invalid_code"), "{}", page.body);
    assert_eq!(server.slack.oauth_calls().await.len(), 1, "Slack was asked");
    assert_eq!(server.installations().await, 0);
}

#[actix_web::test]
async fn credentials_slack_refuses_get_a_502_that_shows_no_secret() {
    // Arrange: a server configured with the wrong client secret
    let server = InstallServer::start_with_secret("not-the-apps-client-secret").await;
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;
    let code = server.slack.issue_oauth_code();

    // Act
    let page = server
        .redirect(&mut browser, &[("code", &code), ("state", &state)])
        .await;

    // Assert
    assert_eq!(page.status, 502);
    assert!(
        page.body.contains("Slack did not complete the install"),
        "{}",
        page.body
    );
    for leaked in ["invalid_client_id", "not-the-apps-client-secret", code.as_str()] {
        assert!(!page.body.contains(leaked), "{leaked} in {}", page.body);
    }
    assert_eq!(server.installations().await, 0);
}

#[actix_web::test]
async fn with_the_store_down_the_pages_answer_503_and_nothing_reaches_slack() {
    // Arrange: an install begun, then the database gone
    let server = InstallServer::start().await;
    let mut browser = Browser::new();
    let state = server.begin_install(&mut browser).await;
    let code = server.slack.issue_oauth_code();
    server.pool.close().await;

    // Act
    let redirect = server
        .redirect(&mut browser, &[("code", &code), ("state", &state)])
        .await;
    let install = browser.get(&format!("{}/slack/install", server.address)).await;

    // Assert
    assert_eq!(redirect.status, 503, "{}", redirect.body);
    assert!(redirect.body.contains("could not be saved"), "{}", redirect.body);
    assert!(server.slack.oauth_calls().await.is_empty());
    assert_eq!(install.status, 503, "{}", install.body);
    assert!(
        !install.body.contains("oauth/v2/authorize"),
        "no link without a recorded state"
    );
    assert!(install.set_cookie.is_none());
}

#[actix_web::test]
async fn a_request_that_did_not_come_from_slack_is_refused() {
    // Arrange
    let server = InstallServer::start().await;
    let mut browser = Browser::new();

    // Act
    let page = server.redirect(&mut browser, &[]).await;

    // Assert
    assert_eq!(page.status, 400);
    assert!(page.body.contains("not an install link"), "{}", page.body);
    server.assert_nothing_installed().await;
}
