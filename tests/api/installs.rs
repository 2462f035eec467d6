//! Installed into several workspaces through OAuth (issue 15): each thread is answered with its
//! own workspace's bot token, from the sealed installation store; `tokens_revoked` and
//! `app_uninstalled` end an installation.
use secrecy::SecretString;
use serde_json::json;
use threadql::slack::install::{Installation, InstallationIdentity, InstallationStore, SealingKeys};
use threadql_testkit::{app_mention, new_channel, new_ts, post_text, spawn_app_with, TestApp};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const APP: &str = "A0THREADQL";
const OTHER_TEAM: &str = "T0OTHER02";

/// An app installed through OAuth: no SLACK_BOT_TOKEN, the app's credentials and a sealing key.
async fn oauth_app() -> TestApp {
    spawn_app_with(&[
        ("SLACK_BOT_TOKEN", String::new()),
        ("SLACK_CLIENT_ID", "1234.5678".to_string()),
        ("SLACK_CLIENT_SECRET", "client-secret-for-tests".to_string()),
        ("THREADQL_ENCRYPTION_KEY", KEY.to_string()),
    ])
    .await
}

/// The test app's installation store (same database, same key).
async fn installations(app: &TestApp) -> InstallationStore {
    let pool = sqlx::PgPool::connect(app.database.url()).await.unwrap();
    let keys = SealingKeys::new(&SecretString::from(KEY), None).unwrap();
    InstallationStore::new(pool, keys)
}

fn installation(team: &str, token: &str) -> Installation {
    Installation {
        identity: InstallationIdentity::new(None, Some(team), APP).unwrap(),
        is_enterprise_install: false,
        bot_user_id: threadql_testkit::BOT_USER.to_string(),
        bot_token: Some(SecretString::from(token)),
        bot_scopes: vec!["chat:write".to_string()],
        bot_refresh_token: None,
        bot_token_expires_at: None,
        installer_user_id: "U0INSTALL".to_string(),
        team_name: format!("{team} workspace"),
        active: true,
        inactive_reason: None,
    }
}

/// The test app's installation store with `workspaces` (team, bot token) installed.
async fn installed(app: &TestApp, workspaces: &[(&str, &str)]) -> InstallationStore {
    let store = installations(app).await;
    for (team, token) in workspaces {
        store.save(&installation(team, token)).await.unwrap();
    }
    store
}

/// An event about the installation in `team` (`tokens_revoked`, `app_uninstalled`).
fn installation_event(team: &str, event: serde_json::Value) -> serde_json::Value {
    json!({
        "type": "event_callback",
        "team_id": team,
        "api_app_id": APP,
        "event_id": format!("Ev{}", new_ts()),
        "event": event,
    })
}

/// A mention in `team`, as Slack sends it to an app installed there.
fn mention_in(team: &str, channel: &str, ts: &str) -> serde_json::Value {
    let mut event = app_mention(&format!("Ev{ts}"), channel, ts, "orders by channel");
    event["team_id"] = json!(team);
    event["api_app_id"] = json!(APP);
    event["event"]["team"] = json!(team);
    event
}

/// The bot tokens `chat.postMessage` was called with in `channel`.
async fn tokens_posting_in(app: &TestApp, channel: &str) -> Vec<String> {
    app.slack
        .requests("/api/chat.postMessage")
        .await
        .iter()
        .filter(|request| {
            serde_json::from_slice::<serde_json::Value>(&request.body).is_ok_and(|body| body["channel"] == channel)
        })
        .filter_map(|request| request.headers.get("authorization")?.to_str().ok().map(str::to_string))
        .collect()
}

#[actix_rt::test]
async fn each_workspace_is_answered_with_its_own_bot_token() {
    let app = oauth_app().await;
    installed(
        &app,
        &[
            (threadql_testkit::TEAM, "xoxb-first-workspace"),
            (OTHER_TEAM, "xoxb-other-workspace"),
        ],
    )
    .await;

    let (first, other) = (new_channel(), new_channel());
    let (first_root, other_root) = (new_ts(), new_ts());
    app.post_event(&mention_in(threadql_testkit::TEAM, &first, &first_root))
        .await;
    app.post_event(&mention_in(OTHER_TEAM, &other, &other_root)).await;
    let first_posts = app.slack.wait_for_posts(&first, &first_root, 1).await;
    let other_posts = app.slack.wait_for_posts(&other, &other_root, 1).await;
    assert!(post_text(&first_posts[0]).contains("mobile"));
    assert!(post_text(&other_posts[0]).contains("mobile"));

    assert_eq!(tokens_posting_in(&app, &first).await, ["Bearer xoxb-first-workspace"]);
    assert_eq!(tokens_posting_in(&app, &other).await, ["Bearer xoxb-other-workspace"]);
}

#[actix_rt::test]
async fn a_workspace_without_an_installation_gets_no_answer_and_others_go_on() {
    let app = oauth_app().await;
    installed(&app, &[(threadql_testkit::TEAM, "xoxb-first-workspace")]).await;

    let (stranger, channel) = (new_channel(), new_channel());
    let (stranger_root, root) = (new_ts(), new_ts());
    let response = app
        .post_event(&mention_in("T0NOTINSTALLED", &stranger, &stranger_root))
        .await;
    assert_eq!(response.status(), 200);
    app.post_event(&mention_in(threadql_testkit::TEAM, &channel, &root))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    app.wait_until_idle().await;
    assert!(
        tokens_posting_in(&app, &stranger).await.is_empty(),
        "no token to post with"
    );
}

#[actix_rt::test]
async fn revoked_tokens_and_an_uninstall_end_the_installation() {
    let app = oauth_app().await;
    let store = installed(
        &app,
        &[
            (threadql_testkit::TEAM, "xoxb-first-workspace"),
            (OTHER_TEAM, "xoxb-other-workspace"),
        ],
    )
    .await;

    let revoked = installation_event(
        threadql_testkit::TEAM,
        json!({ "type": "tokens_revoked", "tokens": { "bot": ["U0BOT"] } }),
    );
    assert_eq!(app.post_event(&revoked).await.status(), 200);
    let uninstalled = installation_event(OTHER_TEAM, json!({ "type": "app_uninstalled" }));
    assert_eq!(app.post_event(&uninstalled).await.status(), 200);

    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1, "the uninstalled workspace is gone: {listed:?}");
    assert_eq!(listed[0].identity.team_id(), Some(threadql_testkit::TEAM));
    assert!(!listed[0].active && !listed[0].has_bot_token, "{:?}", listed[0]);

    // The revoked workspace's next question is not answered with a token it no longer has.
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&mention_in(threadql_testkit::TEAM, &channel, &root))
        .await;
    app.wait_until_idle().await;
    assert!(tokens_posting_in(&app, &channel).await.is_empty());
}

#[actix_rt::test]
async fn a_workspace_installed_through_the_servers_pages_is_answered_with_the_token_slack_issued() {
    let app = oauth_app().await;
    app.slack.serve_oauth("1234.5678", "client-secret-for-tests").await;
    let http = reqwest::Client::new();

    // The install page: a link to Slack's authorize page with a state, bound by a cookie.
    let page = http.get(format!("{}/slack/install", app.address)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body = page.text().await.unwrap();
    let state = body
        .split("state=")
        .nth(1)
        .and_then(|rest| rest.split(['"', '&']).next())
        .expect("the authorize link carries a state")
        .to_string();

    // Slack sends the browser back with a code; the server exchanges it and keeps the token.
    let code = app.slack.issue_oauth_code();
    let done = http
        .get(format!("{}/slack/oauth_redirect", app.address))
        .query(&[("code", code.as_str()), ("state", state.as_str())])
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());

    // That workspace's question is answered with the token Slack issued at the install.
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&mention_in(threadql_testkit::TEAM, &channel, &root))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    assert_eq!(
        tokens_posting_in(&app, &channel).await,
        [format!("Bearer {}", threadql_testkit::BOT_TOKEN)]
    );
    let listed = installations(&app).await.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].active && listed[0].has_bot_token);
}

/// The app's settings as the server builds them, over the test's fake Slack.
fn app_settings(app: &TestApp) -> threadql::slack::install::oauth::InstallSettings {
    threadql::slack::install::oauth::InstallSettings::with_manifest_scopes(
        "1234.5678".to_string(),
        SecretString::from("client-secret-for-tests"),
        None,
        url::Url::parse(&format!("{}/api/", app.slack.server.uri())).unwrap(),
    )
    .unwrap()
}

/// An installation whose rotating token expires in five minutes.
fn expiring(refresh_token: &str) -> Installation {
    Installation {
        bot_refresh_token: Some(SecretString::from(refresh_token)),
        bot_token_expires_at: Some(chrono::Utc::now() + chrono::TimeDelta::minutes(5)),
        ..installation(threadql_testkit::TEAM, "xoxe.xoxb-about-to-expire")
    }
}

#[actix_rt::test]
async fn a_token_about_to_expire_is_renewed_once_when_two_replicas_need_it_at_the_same_time() {
    use secrecy::ExposeSecret;
    use threadql::slack::workspaces::{InstalledWorkspaces, WorkspaceTokens};
    let app = oauth_app().await;
    app.slack.serve_oauth("1234.5678", "client-secret-for-tests").await;
    app.slack.turn_on_token_rotation();
    let store = std::sync::Arc::new(installations(&app).await);
    store
        .save(&expiring(threadql_testkit::FakeSlack::REFRESH_TOKEN))
        .await
        .unwrap();
    // Two replicas, each with its own cache and pool.
    let first = InstalledWorkspaces::new(store.clone(), app_settings(&app)).unwrap();
    let second = InstalledWorkspaces::new(std::sync::Arc::new(installations(&app).await), app_settings(&app)).unwrap();

    let (a, b) = tokio::join!(
        first.bot_token(threadql_testkit::TEAM),
        second.bot_token(threadql_testkit::TEAM)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.expose_secret(), b.expose_secret(), "both use the one renewed token");
    assert_ne!(a.expose_secret(), "xoxe.xoxb-about-to-expire");
    let refreshes = app.slack.oauth_calls().await;
    assert_eq!(refreshes.len(), 1, "one refresh for both: {refreshes:?}");
    assert_eq!(refreshes[0]["grant_type"], "refresh_token");
    let renewed = store
        .find(None, Some(threadql_testkit::TEAM), false)
        .await
        .unwrap()
        .unwrap();
    assert!(renewed.bot_token_expires_at.unwrap() > chrono::Utc::now() + chrono::TimeDelta::hours(1));
}

#[actix_rt::test]
async fn a_token_slack_will_not_renew_makes_the_installation_inactive_with_its_reason() {
    use threadql::slack::workspaces::{InstalledWorkspaces, NoToken, WorkspaceTokens};
    let app = oauth_app().await;
    app.slack.serve_oauth("1234.5678", "client-secret-for-tests").await;
    app.slack.turn_on_token_rotation();
    let store = std::sync::Arc::new(installations(&app).await);
    store.save(&expiring("xoxe-1-revoked-refresh-token")).await.unwrap();
    let workspaces = InstalledWorkspaces::new(store.clone(), app_settings(&app)).unwrap();

    let refused = workspaces.bot_token(threadql_testkit::TEAM).await.unwrap_err();
    assert!(matches!(refused, NoToken::Inactive { .. }), "{refused:?}");
    let listed = store.list().await.unwrap();
    assert!(!listed[0].active, "{:?}", listed[0]);
    assert!(
        listed[0]
            .inactive_reason
            .as_deref()
            .unwrap_or_default()
            .contains("install the app again"),
        "{:?}",
        listed[0]
    );
}

#[actix_rt::test]
async fn a_schedule_of_a_workspace_whose_tokens_were_revoked_pauses_at_its_next_run() {
    let app = oauth_app().await;
    installed(&app, &[(threadql_testkit::TEAM, "xoxb-first-workspace")]).await;
    let (channel, root) = (new_channel(), new_ts());
    app.post_event(&mention_in(threadql_testkit::TEAM, &channel, &root))
        .await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    let ts = new_ts();
    app.post_event(&threadql_testkit::thread_reply(
        &format!("Ev{ts}"),
        &channel,
        &root,
        &ts,
        "every monday at 9:00",
    ))
    .await;
    let echo = app.slack.wait_for_posts(&channel, &root, 2).await[1].clone();
    let id = threadql_testkit::button_value(&echo, "schedule_pause").expect("a schedule's echo")["report"]
        .as_i64()
        .unwrap();

    // Slack revokes the workspace's tokens; the schedule's next run cannot be posted.
    let revoked = installation_event(
        threadql_testkit::TEAM,
        json!({ "type": "tokens_revoked", "tokens": { "bot": ["U0BOT"] } }),
    );
    assert_eq!(app.post_event(&revoked).await.status(), 200);
    let mut connection = app.database.connect().await;
    let fire: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT next_fire_at FROM scheduled_reports WHERE id = $1")
            .bind(id)
            .fetch_one(&mut connection)
            .await
            .unwrap();
    app.handle()
        .run_due_reports(fire + chrono::TimeDelta::seconds(5))
        .await
        .unwrap();
    app.wait_until_idle().await;

    let (state, reason): (String, Option<String>) =
        sqlx::query_as("SELECT state, paused_reason FROM scheduled_reports WHERE id = $1")
            .bind(id)
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!(state, "paused");
    assert!(reason.unwrap_or_default().contains("installation is inactive"));
    assert_eq!(
        app.slack.posts_in_thread(&channel, &root).await.len(),
        2,
        "nothing posted without a token"
    );
}

#[actix_rt::test]
async fn an_org_wide_install_answers_a_workspace_of_its_org_and_is_found_for_it_after_a_restart() {
    use secrecy::ExposeSecret;
    use threadql::slack::workspaces::{InstalledWorkspaces, WorkspaceTokens};
    let app = oauth_app().await;
    let store = installations(&app).await;
    store
        .save(&Installation {
            identity: InstallationIdentity::new(Some("E0GRIDORG"), None, APP).unwrap(),
            is_enterprise_install: true,
            ..installation(threadql_testkit::TEAM, "xoxb-whole-org")
        })
        .await
        .unwrap();

    // An event from a workspace of the org names its enterprise.
    let (channel, root) = (new_channel(), new_ts());
    let mut event = mention_in(threadql_testkit::TEAM, &channel, &root);
    event["enterprise_id"] = json!("E0GRIDORG");
    app.post_event(&event).await;
    app.slack.wait_for_posts(&channel, &root, 1).await;
    assert_eq!(tokens_posting_in(&app, &channel).await, ["Bearer xoxb-whole-org"]);

    // A process started later, before any event (a scheduled run), finds it too.
    let later = InstalledWorkspaces::new(std::sync::Arc::new(installations(&app).await), app_settings(&app)).unwrap();
    let token = later.bot_token(threadql_testkit::TEAM).await.unwrap();
    assert_eq!(token.expose_secret(), "xoxb-whole-org");
}
