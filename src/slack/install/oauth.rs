//! Slack's OAuth v2 flow (issue 15), all but the HTTP handlers (those are in
//! `crate::http::install`):
//!
//! - the link to Slack's authorize page, asking for the manifest's bot scopes;
//! - the `state` of each install: 32 random bytes from the operating system, stored with
//!   [`InstallationStore::create_state`](super::InstallationStore::create_state) so it is accepted
//!   once, and bound to the browser that asked for it by a cookie holding the state and its
//!   HMAC-SHA256 under a key derived from the client secret: a redirect that carries someone
//!   else's code and state (login CSRF) comes without a matching cookie and is refused;
//! - `oauth.v2.access`, which turns the redirect's `code` into an [`Installation`], and its
//!   refresh grant, which renews a bot token when token rotation is on.
//!
//! The client id and secret go to Slack with HTTP Basic authentication, as Slack's reference for
//! `oauth.v2.access` strongly recommends (RFC 6749, 2.3.1), so they are never in a form body
//! that a proxy might log. Neither the secret, the code nor a token appears in an error or in
//! `Debug` output: Slack's error code (`invalid_code`) is all a refusal carries.
use std::time::Duration;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

use super::seal::InstallationIdentity;
use super::store::Installation;

/// Slack's authorize page, where the person installing picks a workspace and approves scopes.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://slack.com/oauth/v2/authorize";

/// The bot scopes of `slack/manifest.yml` (`oauth_config.scopes.bot`), in its order. A unit
/// test reads the manifest, so the two cannot drift apart: an install that asked for fewer
/// scopes than the app uses would fail later, in some channel, with `missing_scope`.
pub const MANIFEST_BOT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "reactions:write",
    "files:write",
    "commands",
    "channels:read",
    "groups:read",
    "im:read",
    "mpim:read",
    "im:write",
    "users:read",
    "usergroups:read",
];

/// How long an install may take between the install page and Slack's redirect back: the
/// state's lifetime and the cookie's `Max-Age`.
pub const STATE_MAX_AGE: Duration = Duration::from_secs(600);

/// Random bytes in a state: 256 bits, beyond guessing.
const STATE_BYTES: usize = 32;

/// Labels the key that signs state cookies, derived from the client secret, so that this MAC
/// can never be confused with any other use of the secret (Slack itself uses it as a password).
const STATE_COOKIE_KEY_LABEL: &[u8] = b"threadql/slack-install-state-cookie/v1";

/// Separates the state from its MAC in the cookie; never part of URL-safe base64.
const COOKIE_SEPARATOR: char = '.';

/// How long a call to `oauth.v2.access` may take, and its connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type HmacSha256 = Hmac<Sha256>;

/// The app's OAuth credentials and where the flow goes.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Bot scopes asked for on the authorize page (normally [`MANIFEST_BOT_SCOPES`]).
    pub scopes: Vec<String>,
    /// Where Slack sends the browser back (`https://…/slack/oauth_redirect`). `None` leaves it
    /// to the first redirect URL of the app's settings; when given, it must be one of them, and
    /// it is sent again with the code exchange, as Slack requires.
    pub redirect_uri: Option<Url>,
    /// The Web API base (`SLACK_API_URL`, `https://slack.com/api/`).
    pub api_url: Url,
    /// Slack's authorize page ([`DEFAULT_AUTHORIZE_URL`]).
    pub authorize_url: Url,
}

/// Why an OAuth call to Slack did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// Slack answered `ok: false` with this error code (`invalid_code`, `bad_client_secret`,
    /// `invalid_refresh_token`…).
    #[error("Slack refused the OAuth call: {code}")]
    Refused { code: String },
    /// Slack could not be reached, or answered with something other than what its reference
    /// describes.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl OAuthError {
    /// Whether Slack refused the authorization code itself (`invalid_code`: unknown, used or
    /// expired): the person installing can start again, as opposed to the app's own
    /// credentials or redirect URL being wrong, which only its operator can fix.
    pub fn is_bad_code(&self) -> bool {
        matches!(self, Self::Refused { code } if code == "invalid_code")
    }
}

/// A bot token renewed by the refresh grant (token rotation).
#[derive(Debug, Clone)]
pub struct RefreshedTokens {
    pub bot_token: SecretString,
    /// The refresh token to use next time: the one Slack returned (it may rotate it), or the one
    /// just used when Slack returned none.
    pub refresh_token: SecretString,
    pub expires_at: DateTime<Utc>,
}

impl InstallSettings {
    /// Settings that ask for the manifest's bot scopes on Slack's own authorize page.
    pub fn with_manifest_scopes(
        client_id: String,
        client_secret: SecretString,
        redirect_uri: Option<Url>,
        api_url: Url,
    ) -> Result<Self, url::ParseError> {
        Ok(Self {
            client_id,
            client_secret,
            scopes: MANIFEST_BOT_SCOPES.iter().map(|scope| scope.to_string()).collect(),
            redirect_uri,
            api_url,
            authorize_url: Url::parse(DEFAULT_AUTHORIZE_URL)?,
        })
    }

    /// The "Add to Slack" link for an install with `state`: `client_id`, the bot `scope`s
    /// comma-joined, `redirect_uri` when set, and `state`.
    pub fn authorize_link(&self, state: &str) -> Url {
        let mut link = self.authorize_url.clone();
        {
            let mut query = link.query_pairs_mut();
            query.append_pair("client_id", &self.client_id);
            query.append_pair("scope", &self.scopes.join(","));
            if let Some(redirect_uri) = &self.redirect_uri {
                query.append_pair("redirect_uri", redirect_uri.as_str());
            }
            query.append_pair("state", state);
        }
        link
    }

    /// Whether the state cookie is `Secure`: when Slack redirects to an `https` URL. Over plain
    /// HTTP (a local test) a `Secure` cookie would never come back and every install would fail.
    pub fn cookie_is_secure(&self) -> bool {
        self.redirect_uri.as_ref().is_some_and(|uri| uri.scheme() == "https")
    }

    /// The value of the cookie that binds `state` to a browser: `<state>.<MAC>`.
    pub fn state_cookie(&self, state: &str) -> Option<String> {
        let mac = self.state_mac(state)?;
        Some(format!("{state}{COOKIE_SEPARATOR}{}", URL_SAFE_NO_PAD.encode(mac)))
    }

    /// The state a cookie made by [`Self::state_cookie`] holds, or `None` when the cookie was not
    /// made with this client secret (forged, altered, or truncated). The MAC is compared in
    /// constant time.
    pub fn state_in_cookie(&self, cookie: &str) -> Option<String> {
        let (state, mac) = cookie.rsplit_once(COOKIE_SEPARATOR)?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = self.state_mac(state)?;
        bool::from(expected.as_slice().ct_eq(given.as_slice())).then(|| state.to_string())
    }

    /// HMAC-SHA256 of `state` under a key derived from the client secret.
    fn state_mac(&self, state: &str) -> Option<[u8; 32]> {
        let key = hmac_sha256(self.client_secret.expose_secret().as_bytes(), STATE_COOKIE_KEY_LABEL)?;
        hmac_sha256(&key, state.as_bytes())
    }

    /// `{api_url}/{method}`, with or without a trailing slash in `SLACK_API_URL`.
    fn method_url(&self, method: &str) -> anyhow::Result<Url> {
        let base = self.api_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{method}")).with_context(|| format!("Failed to build the URL of {method}"))
    }
}

/// Whether two states are the same, compared in constant time.
pub fn same_state(one: &str, other: &str) -> bool {
    one.as_bytes().ct_eq(other.as_bytes()).into()
}

/// A new state: 32 bytes from the operating system's generator, URL-safe base64 (43 characters).
pub fn new_state() -> anyhow::Result<String> {
    let mut bytes = [0u8; STATE_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .context("Failed to draw a random OAuth state from the operating system")?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The HTTP client for Slack's OAuth calls (the crate's TLS set-up, see `crate::outbound`).
pub fn http_client() -> anyhow::Result<reqwest_openai::Client> {
    crate::outbound::http_client("Slack OAuth client", REQUEST_TIMEOUT, CONNECT_TIMEOUT)
}

/// Exchanges the redirect's `code` for the installation it grants (`oauth.v2.access`).
#[tracing::instrument(name = "Exchange a Slack OAuth code", skip_all)]
pub async fn exchange_code(
    http: &reqwest_openai::Client,
    settings: &InstallSettings,
    code: &SecretString,
) -> Result<Installation, OAuthError> {
    let mut form = vec![("code", code.expose_secret())];
    if let Some(redirect_uri) = &settings.redirect_uri {
        form.push(("redirect_uri", redirect_uri.as_str()));
    }
    let (status, body) = call_oauth_access(http, settings, &form).await?;
    installation_from_response(status, &body, Utc::now())
}

/// Renews a bot token with its refresh token (`oauth.v2.access` with
/// `grant_type=refresh_token`). Run it under
/// [`InstallationStore::with_refresh_lock`](super::InstallationStore::with_refresh_lock) and store
/// the result with `rotate_tokens`: a refresh token used twice at once fails one of the two.
#[tracing::instrument(name = "Refresh a Slack bot token", skip_all)]
pub async fn refresh(
    http: &reqwest_openai::Client,
    settings: &InstallSettings,
    refresh_token: &SecretString,
) -> Result<RefreshedTokens, OAuthError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose_secret()),
    ];
    let (status, body) = call_oauth_access(http, settings, &form).await?;
    refreshed_from_response(status, &body, refresh_token, Utc::now())
}

/// POSTs `form` to `oauth.v2.access` with the app's credentials, and answers the HTTP status and
/// the body.
async fn call_oauth_access(
    http: &reqwest_openai::Client,
    settings: &InstallSettings,
    form: &[(&str, &str)],
) -> Result<(u16, Vec<u8>), OAuthError> {
    let url = settings.method_url("oauth.v2.access")?;
    // `serde_urlencoded` rather than reqwest's `form`, which reqwest 0.13 keeps behind a feature.
    let body = serde_urlencoded::to_string(form).context("Failed to encode an oauth.v2.access request")?;
    let response = http
        .post(url)
        .basic_auth(&settings.client_id, Some(settings.client_secret.expose_secret()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        // reqwest's errors name the URL, which holds no secret here (they travel in the body).
        .context("Failed to call Slack's oauth.v2.access")?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .context("Failed to read Slack's answer to oauth.v2.access")?;
    Ok((status, body.to_vec()))
}

/// `oauth.v2.access`'s answer, as far as an installation needs it (see
/// `tests/fixtures/slack-samples/api/oauth.v2.access.json`). Tokens are read straight into secrets;
/// the struct has no `Debug`.
#[derive(Deserialize)]
struct AccessResponse {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    access_token: Option<SecretString>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    bot_user_id: Option<String>,
    /// Present with token rotation on.
    #[serde(default)]
    refresh_token: Option<SecretString>,
    /// Seconds the access token lives (12 hours), with token rotation on.
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    team: Option<IdAndName>,
    #[serde(default)]
    enterprise: Option<IdAndName>,
    #[serde(default)]
    is_enterprise_install: bool,
    #[serde(default)]
    authed_user: Option<AuthedUser>,
}

#[derive(Deserialize, Default)]
struct IdAndName {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct AuthedUser {
    #[serde(default)]
    id: Option<String>,
}

/// The installation in `oauth.v2.access`'s answer (HTTP `status`, `body`) received at `now`.
fn installation_from_response(status: u16, body: &[u8], now: DateTime<Utc>) -> Result<Installation, OAuthError> {
    let response = parse_access_response(status, body)?;
    if response.token_type.as_deref().is_some_and(|kind| kind != "bot") {
        return Err(unexpected("Slack's oauth.v2.access answer holds no bot token"));
    }
    let bot_token = non_empty_secret(response.access_token)
        .ok_or_else(|| unexpected("Slack's oauth.v2.access answer holds no bot token"))?;
    let bot_user_id = non_empty(response.bot_user_id)
        .ok_or_else(|| unexpected("Slack's oauth.v2.access answer names no bot user"))?;
    let app_id = non_empty(response.app_id).ok_or_else(|| unexpected("Slack's oauth.v2.access answer names no app"))?;
    let team = response.team.unwrap_or_default();
    let enterprise = response.enterprise.unwrap_or_default();
    // An org-wide install has an enterprise and no team; its row serves every team of the org.
    let team_id = if response.is_enterprise_install {
        None
    } else {
        team.id.as_deref()
    };
    let identity = InstallationIdentity::new(enterprise.id.as_deref(), team_id, &app_id)
        .ok_or_else(|| unexpected("Slack's oauth.v2.access answer names neither a team nor an enterprise"))?;
    let team_name = if response.is_enterprise_install {
        non_empty(enterprise.name)
    } else {
        non_empty(team.name)
    };
    let bot_refresh_token = non_empty_secret(response.refresh_token);
    let bot_token_expires_at = match (&bot_refresh_token, response.expires_in) {
        (Some(_), Some(seconds)) => Some(expiry(now, seconds)?),
        _ => None,
    };
    Ok(Installation {
        identity,
        is_enterprise_install: response.is_enterprise_install,
        bot_user_id,
        bot_token: Some(bot_token),
        bot_scopes: response
            .scope
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|scope| !scope.is_empty())
            .map(str::to_string)
            .collect(),
        bot_refresh_token,
        bot_token_expires_at,
        installer_user_id: response
            .authed_user
            .and_then(|user| non_empty(user.id))
            .unwrap_or_default(),
        team_name: team_name.unwrap_or_default(),
        active: true,
        inactive_reason: None,
    })
}

/// The tokens in the refresh grant's answer (HTTP `status`, `body`) received at `now`; `used` is
/// the refresh token that was sent.
fn refreshed_from_response(
    status: u16,
    body: &[u8],
    used: &SecretString,
    now: DateTime<Utc>,
) -> Result<RefreshedTokens, OAuthError> {
    let response = parse_access_response(status, body)?;
    let bot_token = non_empty_secret(response.access_token)
        .ok_or_else(|| unexpected("Slack's refresh answer holds no access token"))?;
    let seconds = response
        .expires_in
        .ok_or_else(|| unexpected("Slack's refresh answer does not say when the token expires"))?;
    Ok(RefreshedTokens {
        bot_token,
        refresh_token: non_empty_secret(response.refresh_token).unwrap_or_else(|| used.clone()),
        expires_at: expiry(now, seconds)?,
    })
}

/// The answer as JSON, or Slack's refusal. A body that is not Slack's JSON (a proxy's error
/// page, a 5xx) is reported with its HTTP status only, never its text.
fn parse_access_response(status: u16, body: &[u8]) -> Result<AccessResponse, OAuthError> {
    let response: AccessResponse = serde_json::from_slice(body).map_err(|error| {
        OAuthError::Unexpected(anyhow::anyhow!(
            "Slack answered oauth.v2.access with HTTP {status} and a body that is not its JSON ({})",
            error.classify_name()
        ))
    })?;
    if !response.ok {
        let code = non_empty(response.error.clone()).unwrap_or_else(|| "unknown_error".to_string());
        return Err(OAuthError::Refused { code });
    }
    Ok(response)
}

fn expiry(now: DateTime<Utc>, seconds: i64) -> Result<DateTime<Utc>, OAuthError> {
    chrono::TimeDelta::try_seconds(seconds)
        .and_then(|lifetime| now.checked_add_signed(lifetime))
        .ok_or_else(|| unexpected("Slack's token expiry is out of range"))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Option<[u8; 32]> {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac.finalize().into_bytes().into())
}

/// Slack sends `""` for absent values as often as it leaves them out.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

fn non_empty_secret(value: Option<SecretString>) -> Option<SecretString> {
    value.filter(|value| !value.expose_secret().is_empty())
}

fn unexpected(message: &'static str) -> OAuthError {
    OAuthError::Unexpected(anyhow::anyhow!(message))
}

/// How a `serde_json` error is named in a message: its category, never the text it quotes.
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const SECRET: &str = "client-secret-0123456789abcdef";

    fn settings(redirect_uri: Option<&str>) -> InstallSettings {
        InstallSettings::with_manifest_scopes(
            "1234.5678".to_string(),
            SecretString::from(SECRET),
            redirect_uri.map(|uri| Url::parse(uri).unwrap()),
            Url::parse("https://slack.com/api/").unwrap(),
        )
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap()
    }

    /// Slack's sample answer of `oauth.v2.access`, filled in as for a workspace install.
    fn sample_answer() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/slack-samples/api/oauth.v2.access.json"
        );
        let mut answer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        answer["ok"] = json!(true);
        answer["app_id"] = json!("A0THREADQL");
        answer["token_type"] = json!("bot");
        answer["access_token"] = json!("xoxb-17-from-slack");
        answer["scope"] = json!("chat:write,commands");
        answer["bot_user_id"] = json!("U0BOT");
        answer["refresh_token"] = json!("");
        answer["team"] = json!({ "id": "T0ACME", "name": "Acme" });
        answer["enterprise"] = json!(null);
        answer["authed_user"] = json!({ "id": "U0INSTALLER" });
        answer
    }

    fn parse(answer: &serde_json::Value) -> Result<Installation, OAuthError> {
        installation_from_response(200, answer.to_string().as_bytes(), now())
    }

    #[test]
    fn the_bot_scopes_asked_for_are_those_of_the_manifest() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/slack/manifest.yml");
        let manifest: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let scopes: Vec<&str> = manifest["oauth_config"]["scopes"]["bot"]
            .as_sequence()
            .expect("the manifest lists bot scopes")
            .iter()
            .map(|scope| scope.as_str().unwrap())
            .collect();

        assert_eq!(MANIFEST_BOT_SCOPES, scopes.as_slice());
    }

    #[test]
    fn the_authorize_link_carries_the_client_id_the_scopes_the_redirect_uri_and_the_state() {
        let settings = settings(Some("https://threadql.example.com/slack/oauth_redirect"));

        let link = settings.authorize_link("the-state");

        assert_eq!(link.as_str().split('?').next(), Some(DEFAULT_AUTHORIZE_URL));
        let query: std::collections::HashMap<String, String> = link.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "1234.5678");
        assert_eq!(query["scope"], MANIFEST_BOT_SCOPES.join(","));
        assert_eq!(
            query["redirect_uri"],
            "https://threadql.example.com/slack/oauth_redirect"
        );
        assert_eq!(query["state"], "the-state");
    }

    #[test]
    fn without_a_redirect_uri_the_link_leaves_it_to_the_apps_settings_and_the_cookie_is_not_secure() {
        let without = settings(None);

        assert!(!without
            .authorize_link("s")
            .query_pairs()
            .any(|(key, _)| key == "redirect_uri"));
        assert!(!without.cookie_is_secure());
        assert!(settings(Some("https://x.example/r")).cookie_is_secure());
        assert!(!settings(Some("http://127.0.0.1:3000/r")).cookie_is_secure());
    }

    #[test]
    fn states_are_random_url_safe_and_long() {
        let (one, other) = (new_state().unwrap(), new_state().unwrap());

        assert_ne!(one, other);
        assert_eq!(one.len(), 43);
        assert!(one.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn a_state_cookie_opens_only_under_the_secret_that_signed_it_and_unaltered() {
        let settings = settings(None);
        let state = new_state().unwrap();
        let cookie = settings.state_cookie(&state).unwrap();

        assert_eq!(settings.state_in_cookie(&cookie), Some(state.clone()));

        let mut other_secret = settings.clone();
        other_secret.client_secret = SecretString::from("another-secret");
        assert_eq!(
            other_secret.state_in_cookie(&cookie),
            None,
            "signed under another secret"
        );

        let other_state = new_state().unwrap();
        let (_, mac) = cookie.rsplit_once('.').unwrap();
        assert_eq!(
            settings.state_in_cookie(&format!("{other_state}.{mac}")),
            None,
            "state swapped"
        );
        let mut flipped = cookie.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            settings.state_in_cookie(&String::from_utf8(flipped).unwrap()),
            None,
            "MAC altered"
        );
        assert_eq!(settings.state_in_cookie(&state), None, "no MAC");
        assert_eq!(settings.state_in_cookie(""), None, "empty");
        assert!(!cookie.contains(SECRET));
    }

    #[test]
    fn a_workspace_install_is_read_from_slacks_answer() {
        let installation = parse(&sample_answer()).unwrap();

        assert_eq!(installation.identity.team_id(), Some("T0ACME"));
        assert_eq!(installation.identity.enterprise_id(), None);
        assert_eq!(installation.identity.app_id(), "A0THREADQL");
        assert!(!installation.is_enterprise_install);
        assert_eq!(installation.bot_user_id, "U0BOT");
        assert_eq!(
            installation.bot_token.as_ref().map(|t| t.expose_secret()),
            Some("xoxb-17-from-slack")
        );
        assert_eq!(installation.bot_scopes, ["chat:write", "commands"]);
        assert!(
            installation.bot_refresh_token.is_none(),
            "no token rotation: an empty refresh token"
        );
        assert_eq!(installation.bot_token_expires_at, None);
        assert_eq!(installation.installer_user_id, "U0INSTALLER");
        assert_eq!(installation.team_name, "Acme");
        assert!(installation.active);
    }

    #[test]
    fn with_token_rotation_the_refresh_token_and_the_expiry_are_kept() {
        let mut answer = sample_answer();
        answer["access_token"] = json!("xoxe.xoxb-1-rotating");
        answer["refresh_token"] = json!("xoxe-1-refresh");
        answer["expires_in"] = json!(43200);

        let installation = parse(&answer).unwrap();

        let refresh_token = installation.bot_refresh_token.as_ref().map(|t| t.expose_secret());
        assert_eq!(refresh_token, Some("xoxe-1-refresh"));
        assert_eq!(
            installation.bot_token_expires_at,
            Some(now() + chrono::TimeDelta::hours(12))
        );
    }

    #[test]
    fn an_org_wide_install_is_keyed_by_its_enterprise_and_named_after_it() {
        let mut answer = sample_answer();
        answer["team"] = json!(null);
        answer["enterprise"] = json!({ "id": "E0ORG", "name": "Acme Group" });
        answer["is_enterprise_install"] = json!(true);

        let installation = parse(&answer).unwrap();

        assert_eq!(installation.identity.enterprise_id(), Some("E0ORG"));
        assert_eq!(installation.identity.team_id(), None);
        assert!(installation.is_enterprise_install);
        assert_eq!(installation.team_name, "Acme Group");
    }

    #[test]
    fn a_workspace_of_an_org_keeps_both_ids() {
        let mut answer = sample_answer();
        answer["enterprise"] = json!({ "id": "E0ORG", "name": "Acme Group" });

        let installation = parse(&answer).unwrap();

        assert_eq!(installation.identity.enterprise_id(), Some("E0ORG"));
        assert_eq!(installation.identity.team_id(), Some("T0ACME"));
        assert_eq!(installation.team_name, "Acme");
    }

    #[test]
    fn a_refusal_carries_slacks_error_code_and_nothing_else() {
        let refused = json!({ "ok": false, "error": "invalid_code" });

        let error = parse(&refused).unwrap_err();

        assert!(matches!(&error, OAuthError::Refused { code } if code == "invalid_code"));
        assert!(error.is_bad_code());
        assert!(!OAuthError::Refused {
            code: "bad_client_secret".into()
        }
        .is_bad_code());
    }

    #[test]
    fn an_answer_without_a_bot_token_or_not_json_is_unexpected_and_quotes_nothing() {
        let mut user_only = sample_answer();
        user_only["access_token"] = json!("");
        assert!(matches!(parse(&user_only), Err(OAuthError::Unexpected(_))));

        let error = installation_from_response(502, b"<html>xoxb-leaked</html>", now()).unwrap_err();
        let message = format!("{error:?}");
        assert!(message.contains("HTTP 502"), "{message}");
        assert!(!message.contains("xoxb-leaked"), "{message}");
    }

    #[test]
    fn a_refresh_keeps_the_used_refresh_token_when_slack_returns_none() {
        let used = SecretString::from("xoxe-1-used");
        let answer = json!({ "ok": true, "access_token": "xoxe.xoxb-new", "expires_in": 43200, "token_type": "bot" });

        let refreshed = refreshed_from_response(200, answer.to_string().as_bytes(), &used, now()).unwrap();

        assert_eq!(refreshed.bot_token.expose_secret(), "xoxe.xoxb-new");
        assert_eq!(refreshed.refresh_token.expose_secret(), "xoxe-1-used");
        assert_eq!(refreshed.expires_at, now() + chrono::TimeDelta::hours(12));
    }

    #[test]
    fn debug_output_never_shows_the_client_secret() {
        let settings = settings(None);

        assert!(!format!("{settings:?}").contains(SECRET));
    }

    #[test]
    fn the_method_url_works_with_and_without_a_trailing_slash() {
        let mut settings = settings(None);
        assert_eq!(
            settings.method_url("oauth.v2.access").unwrap().as_str(),
            "https://slack.com/api/oauth.v2.access"
        );
        settings.api_url = Url::parse("http://127.0.0.1:9/api").unwrap();
        assert_eq!(
            settings.method_url("oauth.v2.access").unwrap().as_str(),
            "http://127.0.0.1:9/api/oauth.v2.access"
        );
    }
}
