//! The pages of an install through Slack's OAuth v2 flow (issue 15):
//!
//! - `GET /slack/install`: records a new `state`, binds it to the browser with a signed cookie
//!   (`HttpOnly`, `SameSite=Lax`, `Path=/slack`, ten minutes, `Secure` when the redirect URL is
//!   `https`) and shows an "Add to Slack" link to Slack's authorize page;
//! - `GET /slack/oauth_redirect`: where Slack sends the browser back. The cookie must be one this
//!   server signed and name the redirect's state; the state is then consumed (once, within ten
//!   minutes); only then is the code exchanged and the installation stored, and a page links to
//!   the workspace.
//!
//! Every refusal is an HTML page that says what happened and what to do, with a 400 when the
//! redirect itself is at fault, a 502 when Slack did not complete the exchange and a 503 when the
//! store is down; none stores anything, and none shows Slack's or the database's own words (they
//! go to the log). `SameSite=Lax` is what lets the cookie come back at all: Slack's redirect is a
//! top-level navigation from another site, which `Strict` would send without it.
use std::sync::Arc;

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;

use crate::slack::install::oauth::{self, InstallSettings, STATE_MAX_AGE};
use crate::slack::install::{Installation, InstallationStore, StateError};

/// The install page.
pub const INSTALL_PATH: &str = "/slack/install";
/// Where Slack redirects after the authorize page: the app's redirect URL ends with this.
pub const REDIRECT_PATH: &str = "/slack/oauth_redirect";
/// The cookie that binds an install's state to the browser that began it.
pub const STATE_COOKIE: &str = "threadql_slack_oauth_state";
/// The cookie goes only to the Slack pages, which both live under this path.
const COOKIE_PATH: &str = "/slack";

/// Who is behind `error=` when the person installing clicked "Cancel" on Slack's page.
const ACCESS_DENIED: &str = "access_denied";

/// Keeps the pages out of caches, frames and other sites' referrers (the redirect's URL holds a
/// code and a state), and lets them load nothing but their own inline style.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'",
    ),
];

/// What the install pages need: the app's OAuth settings, the installations' store, and the
/// HTTP client for `oauth.v2.access`.
pub struct InstallEndpoint {
    pub settings: InstallSettings,
    pub store: Arc<InstallationStore>,
    pub http: reqwest_openai::Client,
}

impl InstallEndpoint {
    /// The endpoint with its own HTTP client ([`oauth::http_client`]).
    pub fn new(settings: InstallSettings, store: Arc<InstallationStore>) -> anyhow::Result<Self> {
        Ok(Self {
            settings,
            store,
            http: oauth::http_client()?,
        })
    }
}

/// Registers `GET /slack/install` and `GET /slack/oauth_redirect`; the app data must hold a
/// `web::Data<InstallEndpoint>`.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(INSTALL_PATH, web::get().to(install_page))
        .route(REDIRECT_PATH, web::get().to(oauth_redirect));
}

/// `GET /slack/install`: a new state, its cookie, and the "Add to Slack" link.
#[tracing::instrument(name = "Show the Slack install page", skip_all)]
async fn install_page(endpoint: web::Data<InstallEndpoint>) -> HttpResponse {
    let settings = &endpoint.settings;
    let state = match oauth::new_state() {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(error = ?error, "Failed to begin a Slack install");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The install could not begin",
                "<p>This server could not prepare an install link. Please try again in a moment.</p>",
                None,
            );
        }
    };
    let Some(cookie_value) = settings.state_cookie(&state) else {
        tracing::error!("Failed to sign a Slack install's state");
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The install could not begin",
            "<p>This server could not prepare an install link. Please try again in a moment.</p>",
            None,
        );
    };
    if let Err(error) = endpoint.store.create_state(&state).await {
        tracing::error!(error = ?error, "Failed to record a Slack install's state");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The install could not begin",
            "<p>This server cannot record installs right now. Please try again in a few minutes.</p>",
            None,
        );
    }
    let cookie = state_cookie(settings, cookie_value);
    let body = format!(
        "<p>threadql answers data questions asked in Slack, in the thread they were asked in.</p>\
         <p><a class=\"button\" href=\"{link}\">Add to Slack</a></p>\
         <p class=\"note\">The link works once, from this browser, for the next {minutes} minutes.</p>",
        link = escape_html(settings.authorize_link(&state).as_str()),
        minutes = STATE_MAX_AGE.as_secs() / 60,
    );
    page(StatusCode::OK, "Add threadql to Slack", &body, Some(cookie))
}

/// What Slack's redirect carries: `code` and `state`, or `error` (and `state`) when the install
/// was not approved.
#[derive(Debug, Deserialize)]
struct RedirectQuery {
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Why a redirect completed no install. Each one has its status, its page, and whether the
/// state cookie is cleared (it is kept only when it may still belong to an install under way
/// in another tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No code or no state (or a query that does not parse): not a redirect from Slack.
    NotARedirect,
    /// Slack sent `error=` other than a cancel.
    SlackDeclined,
    /// The browser has no state cookie: another browser, or cookies blocked or expired.
    NoCookie,
    /// The cookie is not one this server signed.
    ForgedCookie,
    /// The cookie is genuine but names another state (a second install page opened since).
    CookieForAnotherState,
    UnknownState,
    UsedState,
    ExpiredState,
    /// Slack refused the code itself (unknown, used, expired).
    CodeRefused,
    /// Slack refused the app's credentials or redirect URL, or could not be reached.
    SlackFailed,
    /// The store could not consume the state or save the installation.
    StoreDown,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Self::NotARedirect
            | Self::SlackDeclined
            | Self::NoCookie
            | Self::ForgedCookie
            | Self::CookieForAnotherState
            | Self::UnknownState
            | Self::UsedState
            | Self::ExpiredState
            | Self::CodeRefused => StatusCode::BAD_REQUEST,
            Self::SlackFailed => StatusCode::BAD_GATEWAY,
            Self::StoreDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The page's title and its explanation (plain text, escaped when shown).
    fn explanation(self) -> (&'static str, &'static str) {
        match self {
            Self::NotARedirect => (
                "This is not an install link",
                "This page completes an install that Slack sends back here, and this request \
                 did not come from Slack.",
            ),
            Self::SlackDeclined => (
                "Slack did not complete the install",
                "Slack sent the install back without approving it.",
            ),
            Self::NoCookie => (
                "This install was begun in another browser",
                "The install has to finish in the browser where it began, and this browser \
                 holds no install in progress (or it began more than ten minutes ago, or cookies \
                 are blocked for this site).",
            ),
            Self::ForgedCookie => (
                "This install cannot be verified",
                "The install in progress in this browser was not begun by this server.",
            ),
            Self::CookieForAnotherState => (
                "This is not the latest install link",
                "Another install was begun in this browser since this link was opened: only the \
                 newest link works.",
            ),
            Self::UnknownState => (
                "This install link is unknown",
                "This server did not issue this install link, or issued it more than a day ago.",
            ),
            Self::UsedState => (
                "This install link was used already",
                "Each install link completes one install only.",
            ),
            Self::ExpiredState => (
                "This install link has expired",
                "An install has to be completed within ten minutes of opening the install page.",
            ),
            Self::CodeRefused => (
                "Slack did not accept this install",
                "Slack refused the authorization it sent back, which happens when it was used \
                 already or is too old.",
            ),
            Self::SlackFailed => (
                "Slack did not complete the install",
                "Slack could not be reached or refused this app's credentials. If this happens \
                 again, tell whoever runs threadql.",
            ),
            Self::StoreDown => (
                "The install could not be saved",
                "This server cannot record installs right now.",
            ),
        }
    }

    fn clears_cookie(self) -> bool {
        !matches!(self, Self::NoCookie | Self::CookieForAnotherState | Self::NotARedirect)
    }
}

/// `GET /slack/oauth_redirect`: checks the cookie, consumes the state, exchanges the code,
/// stores the installation.
#[tracing::instrument(name = "Complete a Slack install", skip_all, fields(installation = tracing::field::Empty))]
async fn oauth_redirect(request: HttpRequest, endpoint: web::Data<InstallEndpoint>) -> HttpResponse {
    let settings = &endpoint.settings;
    let query: RedirectQuery = match serde_urlencoded::from_str(request.query_string()) {
        Ok(query) => query,
        Err(_) => return refused(settings, Refusal::NotARedirect),
    };
    if let Some(error) = query.error.as_deref() {
        if error == ACCESS_DENIED {
            tracing::info!("A Slack install was cancelled on Slack's authorize page");
            let body = format!(
                "<p>Nothing was installed. To add threadql after all, <a href=\"{INSTALL_PATH}\">start again</a>.</p>"
            );
            return page(
                StatusCode::OK,
                "Install cancelled",
                &body,
                Some(removal_cookie(settings)),
            );
        }
        tracing::warn!(slack_error = %error, "Slack redirected an install back with an error");
        return refused(settings, Refusal::SlackDeclined);
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return refused(settings, Refusal::NotARedirect);
    };
    let Some(cookie) = request.cookie(STATE_COOKIE) else {
        return refused(settings, Refusal::NoCookie);
    };
    let Some(cookie_state) = settings.state_in_cookie(cookie.value()) else {
        return refused(settings, Refusal::ForgedCookie);
    };
    if !oauth::same_state(&cookie_state, &state) {
        return refused(settings, Refusal::CookieForAnotherState);
    }
    if let Err(error) = endpoint.store.consume_state(&state, STATE_MAX_AGE).await {
        let refusal = match error {
            StateError::Unknown => Refusal::UnknownState,
            StateError::Used => Refusal::UsedState,
            StateError::Expired => Refusal::ExpiredState,
            StateError::Unexpected(error) => {
                tracing::error!(error = ?error, "Failed to consume a Slack install's state");
                Refusal::StoreDown
            }
        };
        return refused(settings, refusal);
    }
    let installation = match oauth::exchange_code(&endpoint.http, settings, &code).await {
        Ok(installation) => installation,
        Err(error) => {
            let refusal = if error.is_bad_code() {
                Refusal::CodeRefused
            } else {
                Refusal::SlackFailed
            };
            tracing::error!(error = ?error, "Slack did not exchange an install's code");
            return refused(settings, refusal);
        }
    };
    tracing::Span::current().record("installation", tracing::field::display(&installation.identity));
    if let Err(error) = endpoint.store.save(&installation).await {
        tracing::error!(error = ?error, "Failed to save a Slack installation");
        return refused(settings, Refusal::StoreDown);
    }
    tracing::info!(
        installation = %installation.identity,
        is_enterprise_install = installation.is_enterprise_install,
        "Installed in a Slack workspace"
    );
    installed(settings, &installation)
}

/// The success page, linking to the app in the workspace it was installed to.
fn installed(settings: &InstallSettings, installation: &Installation) -> HttpResponse {
    let workspace = if installation.team_name.is_empty() {
        "your workspace".to_string()
    } else {
        installation.team_name.clone()
    };
    let body = format!(
        "<p>threadql was added to {workspace}. Invite it to a channel and mention it with a \
         question, or send it a direct message.</p>\
         <p><a class=\"button\" href=\"{link}\">Open Slack</a></p>",
        workspace = escape_html(&workspace),
        link = escape_html(&app_redirect_link(installation)),
    );
    page(
        StatusCode::OK,
        "threadql is installed",
        &body,
        Some(removal_cookie(settings)),
    )
}

/// Slack's link into a conversation with the app (`https://slack.com/app_redirect?app=…&team=…`,
/// see "Deep linking into Slack"); an org-wide install has no team to name.
fn app_redirect_link(installation: &Installation) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("app", installation.identity.app_id());
    if let Some(team_id) = installation.identity.team_id() {
        query.append_pair("team", team_id);
    }
    format!("https://slack.com/app_redirect?{}", query.finish())
}

/// The page of a refused redirect, logged with its reason.
fn refused(settings: &InstallSettings, refusal: Refusal) -> HttpResponse {
    tracing::warn!(reason = ?refusal, "Refused a Slack install redirect");
    let (title, explanation) = refusal.explanation();
    let body = format!(
        "<p>{}</p><p>Nothing was installed. <a href=\"{INSTALL_PATH}\">Start the install again</a>.</p>",
        escape_html(explanation)
    );
    let cookie = refusal.clears_cookie().then(|| removal_cookie(settings));
    page(refusal.status(), title, &body, cookie)
}

/// The state cookie as [`InstallSettings::state_cookie`] wrote it.
fn state_cookie(settings: &InstallSettings, value: String) -> Cookie<'static> {
    let max_age = i64::try_from(STATE_MAX_AGE.as_secs()).unwrap_or(i64::MAX);
    Cookie::build(STATE_COOKIE, value)
        .path(COOKIE_PATH)
        .http_only(true)
        .secure(settings.cookie_is_secure())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age))
        .finish()
}

/// A cookie that deletes the state cookie (same name and path, expired).
fn removal_cookie(settings: &InstallSettings) -> Cookie<'static> {
    let mut cookie = state_cookie(settings, String::new());
    cookie.make_removal();
    cookie
}

/// An HTML page: `title` is text, `body` is HTML whose interpolated values are escaped already.
fn page(status: StatusCode, title: &str, body: &str, cookie: Option<Cookie<'static>>) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"));
    for header in SECURITY_HEADERS {
        response.insert_header(header);
    }
    if let Some(cookie) = cookie {
        response.cookie(cookie);
    }
    let title = escape_html(title);
    response.body(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         .button{{display:inline-block;padding:.6rem 1.2rem;border-radius:.4rem;background:#4a154b;color:#fff;\
         text-decoration:none;font-weight:600}}.note{{color:#666;font-size:.9rem}}\
         </style></head><body><h1>{title}</h1>{body}</body></html>\n"
    ))
}

/// `text` safe inside HTML text and double- or single-quoted attributes.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::slack::install::InstallationIdentity;

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#x27;Jerry&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_success_page_escapes_the_workspace_name_and_links_to_the_app() {
        let installation = Installation {
            identity: InstallationIdentity::new(None, Some("T0ACME"), "A0THREADQL").unwrap(),
            is_enterprise_install: false,
            bot_user_id: "U0BOT".into(),
            bot_token: None,
            bot_scopes: vec![],
            bot_refresh_token: None,
            bot_token_expires_at: None,
            installer_user_id: "U0INSTALLER".into(),
            team_name: "<script>alert(1)</script>".into(),
            active: true,
            inactive_reason: None,
        };
        let settings = InstallSettings::with_manifest_scopes(
            "1.2".into(),
            SecretString::from("secret"),
            None,
            url::Url::parse("https://slack.com/api/").unwrap(),
        )
        .unwrap();

        let response = installed(&settings, &installation);
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures::executor::block_on(body).unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();

        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(
            body.contains("https://slack.com/app_redirect?app=A0THREADQL&amp;team=T0ACME"),
            "{body}"
        );
    }

    #[test]
    fn an_org_wide_install_links_to_the_app_without_a_team() {
        let installation = Installation {
            identity: InstallationIdentity::new(Some("E0ORG"), None, "A0THREADQL").unwrap(),
            is_enterprise_install: true,
            bot_user_id: "U0BOT".into(),
            bot_token: None,
            bot_scopes: vec![],
            bot_refresh_token: None,
            bot_token_expires_at: None,
            installer_user_id: String::new(),
            team_name: String::new(),
            active: true,
            inactive_reason: None,
        };

        assert_eq!(
            app_redirect_link(&installation),
            "https://slack.com/app_redirect?app=A0THREADQL"
        );
    }

    #[test]
    fn a_refusal_never_clears_the_cookie_of_an_install_that_may_still_be_under_way() {
        assert!(!Refusal::CookieForAnotherState.clears_cookie());
        assert!(!Refusal::NoCookie.clears_cookie());
        assert!(Refusal::UsedState.clears_cookie());
        assert!(Refusal::ForgedCookie.clears_cookie());
    }
}
