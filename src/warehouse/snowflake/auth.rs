//! Key-pair authentication: an RS256 JWT signed with the user's private key, whose issuer names
//! the SHA-256 fingerprint of the public key (`<ACCOUNT>.<USER>.SHA256:<base64>`), renewed
//! before it expires.
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where "now" comes from, so tests can move it past a token's expiry.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Snowflake accepts a key-pair JWT for at most an hour.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is renewed when less than this is left, so none expires in flight.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// The claims Snowflake reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
}

/// Signs and caches the JWT of one user.
#[derive(Debug)]
pub struct KeyPairAuth {
    /// `<ACCOUNT>.<USER>`.
    subject: String,
    /// `SHA256:<base64 of the SHA-256 of the public key's DER>`.
    fingerprint: String,
    key: EncodingKey,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
    current: Mutex<Option<(String, SystemTime)>>,
}

impl KeyPairAuth {
    /// From the unencrypted PKCS#8 PEM private key. `account` may carry a region
    /// (`xy12345.eu-west-1`): the JWT names the account without it, upper-cased like the user.
    pub fn new(
        pem: &str,
        account: &str,
        user: &str,
        lifetime: Duration,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem.trim()).context(
            "The Snowflake private key is not an unencrypted PKCS#8 PEM RSA key (-----BEGIN PRIVATE KEY-----)",
        )?;
        let fingerprint = public_key_fingerprint(&private)?;
        let key =
            EncodingKey::from_rsa_pem(pem.trim().as_bytes()).context("Failed to load the Snowflake private key")?;
        let account = account.split('.').next().unwrap_or(account).to_uppercase();
        Ok(Self {
            subject: format!("{account}.{}", user.to_uppercase()),
            fingerprint,
            key,
            lifetime: lifetime.clamp(Duration::from_secs(1), MAX_TOKEN_LIFETIME),
            clock,
            current: Mutex::new(None),
        })
    }

    /// `SHA256:<base64>`, as `DESCRIBE USER` shows in `RSA_PUBLIC_KEY_FP`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The current token, signed anew when none is cached or the cached one is about to expire.
    pub fn token(&self) -> anyhow::Result<String> {
        let now = self.clock.now();
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((token, expires)) = current.as_ref() {
            if now + RENEW_BEFORE.min(self.lifetime / 2) < *expires {
                return Ok(token.clone());
            }
        }
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            iss: format!("{}.{}", self.subject, self.fingerprint),
            sub: self.subject.clone(),
            iat,
            exp: iat + self.lifetime.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .context("Failed to sign the Snowflake JWT")?;
        *current = Some((token.clone(), UNIX_EPOCH + Duration::from_secs(claims.exp)));
        Ok(token)
    }

    /// Forgets the cached token (Snowflake refused it), so the next call signs a new one.
    pub fn forget(&self) {
        *self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// `SHA256:` and the base64 SHA-256 of the DER SubjectPublicKeyInfo of the key's public half.
pub fn public_key_fingerprint(private: &rsa::RsaPrivateKey) -> anyhow::Result<String> {
    let der = private
        .to_public_key()
        .to_public_key_der()
        .context("Failed to encode the Snowflake public key")?;
    let digest = Sha256::digest(der.as_bytes());
    Ok(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KEY: &str = include_str!("../../../tests/fixtures/snowflake_TEST_ONLY_rsa_key.p8");

    #[derive(Debug)]
    struct FixedClock(SystemTime);

    impl Clock for FixedClock {
        fn now(&self) -> SystemTime {
            self.0
        }
    }

    #[test]
    fn the_token_names_the_account_without_region_and_the_user_in_upper_case() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let auth = KeyPairAuth::new(
            TEST_KEY,
            "xy12345.eu-west-1",
            "svc_threadql",
            Duration::from_secs(3600),
            Arc::new(FixedClock(at)),
        )
        .unwrap();
        let token = auth.token().unwrap();
        let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&token)
            .unwrap()
            .claims;
        assert_eq!(claims.sub, "XY12345.SVC_THREADQL");
        assert_eq!(claims.iss, format!("XY12345.SVC_THREADQL.{}", auth.fingerprint()));
        assert_eq!((claims.iat, claims.exp), (1_700_000_000, 1_700_003_600));
        assert!(auth.fingerprint().starts_with("SHA256:"));
        assert_eq!(auth.token().unwrap(), token, "a fresh token is reused");
    }
}
