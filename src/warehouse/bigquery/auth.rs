//! Google service-account credentials: the key file `GOOGLE_APPLICATION_CREDENTIALS` names, and
//! access tokens from OAuth 2.0's JWT-bearer grant (RFC 7523): a JWT signed with the account's
//! RSA key (RS256) is exchanged at `token_uri` for a bearer token, cached until shortly before
//! it expires.
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// The scope asked for: read-only BigQuery (running queries needs no more).
pub const SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";
/// Google accepts assertions valid for at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A cached token is renewed this long before it expires, so no request goes out with a token
/// that expires on the way.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(60);
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a service-account key file that signing needs.
#[derive(Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    private_key: SecretString,
    pub private_key_id: String,
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Reads and checks a key file (JSON as the Cloud console downloads it).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read the service-account key file {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("{} is not a service-account key file", path.display()))
    }

    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let key: Self = serde_json::from_str(text)
            .context("Failed to read it as JSON with client_email, private_key, private_key_id and token_uri")?;
        EncodingKey::from_rsa_pem(key.private_key.expose_secret().as_bytes())
            .context("Its private_key is not an RSA private key in PEM")?;
        Ok(key)
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// An access token and when it stops being used.
struct CachedToken {
    token: SecretString,
    renew_at: Instant,
}

/// Hands out access tokens, asking the token endpoint only when the cached one is about to
/// expire (or was refused).
pub struct TokenSource {
    key: ServiceAccountKey,
    encoding_key: EncodingKey,
    http: reqwest_openai::Client,
    cached: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint refused the account (disabled, deleted key, wrong scope): retrying won't help.
    #[error("Google refused the service account's credentials: {0}")]
    Refused(String),
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
}

impl TokenSource {
    pub fn new(key: ServiceAccountKey, http: reqwest_openai::Client) -> anyhow::Result<Self> {
        let encoding_key = EncodingKey::from_rsa_pem(key.private_key.expose_secret().as_bytes())
            .context("The service account's private_key is not an RSA private key in PEM")?;
        Ok(Self {
            key,
            encoding_key,
            http,
            cached: Mutex::new(None),
        })
    }

    /// A token valid for at least [`RENEW_BEFORE_EXPIRY`] more.
    pub async fn token(&self) -> Result<SecretString, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.token.clone());
        }
        let fresh = self.exchange().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets `token` when it is still the cached one (the API refused it: revoked, or the
    /// clock is off), so the next call asks for a new one.
    pub async fn invalidate(&self, token: &SecretString) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == token.expose_secret())
        {
            *cached = None;
        }
    }

    /// The signed assertion: who we are, what we want and for how long.
    fn assertion(&self) -> Result<String, TokenError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| TokenError::Unreachable(format!("the system clock is before 1970: {e}")))?
            .as_secs();
        let claims = Claims {
            iss: &self.key.client_email,
            scope: SCOPE,
            aud: &self.key.token_uri,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key.private_key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .map_err(|e| TokenError::Refused(format!("the assertion could not be signed: {e}")))
    }

    async fn exchange(&self) -> Result<CachedToken, TokenError> {
        let assertion = self.assertion()?;
        let asked_at = Instant::now();
        let response = self
            .http
            .post(&self.key.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([("grant_type", JWT_BEARER_GRANT), ("assertion", assertion.as_str())])
                    .map_err(|e| TokenError::Refused(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| TokenError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| TokenError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            // `{"error": "invalid_grant", "error_description": "..."}`
            let reason = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let error = v.get("error")?.as_str()?.to_string();
                    let description = v.get("error_description").and_then(|d| d.as_str()).unwrap_or("");
                    Some(format!("{error} {description}").trim().to_string())
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                TokenError::Unreachable(reason)
            } else {
                TokenError::Refused(reason)
            });
        }
        let token: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| TokenError::Unreachable(format!("the token endpoint's answer was not understood: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in);
        tracing::debug!(expires_in = token.expires_in, "got a BigQuery access token");
        Ok(CachedToken {
            token: SecretString::from(token.access_token),
            renew_at: asked_at + lifetime.saturating_sub(RENEW_BEFORE_EXPIRY),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: &str = include_str!("../../../tests/fixtures/bigquery_TEST_ONLY_service_account_key.pem");

    fn key_json(private_key: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "client_email": "reader@p.iam.gserviceaccount.com",
            "private_key": private_key,
            "private_key_id": "abc",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    #[test]
    fn a_key_file_needs_its_fields_and_an_rsa_private_key() {
        let key = ServiceAccountKey::from_json(&key_json(TEST_KEY)).unwrap();
        assert_eq!(key.client_email, "reader@p.iam.gserviceaccount.com");
        assert!(!format!("{key:?}").contains("PRIVATE KEY"), "Debug hides the key");

        let not_pem = ServiceAccountKey::from_json(&key_json("not a key")).unwrap_err();
        assert!(format!("{not_pem:#}").contains("not an RSA private key"), "{not_pem:#}");
        let missing = ServiceAccountKey::from_json(r#"{"client_email": "x"}"#).unwrap_err();
        assert!(format!("{missing:#}").contains("private_key"), "{missing:#}");
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_for_the_token_endpoint_valid_an_hour() {
        let key = ServiceAccountKey::from_json(&key_json(TEST_KEY)).unwrap();
        let http = super::super::http_client().unwrap();
        let tokens = TokenSource::new(key, http).unwrap();

        let assertion = tokens.assertion().unwrap();

        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("abc"));
        let payload = assertion.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&base64_url_decode(payload)).unwrap();
        assert_eq!(claims["iss"], "reader@p.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 3600);
    }

    /// Unpadded base64url, as JWTs write their parts.
    fn base64_url_decode(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits: u32 = 0;
        let mut count = 0;
        let mut out = Vec::new();
        for byte in text.bytes() {
            let value = ALPHABET.iter().position(|b| *b == byte).unwrap() as u32;
            bits = (bits << 6) | value;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        out
    }
}
