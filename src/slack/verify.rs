//! Slack request signing, v0: `v0=hex(HMAC-SHA256(secret, "v0:{ts}:{raw body}"))`, compared in
//! constant time, requests older than five minutes refused.
//!
//! slack-morphism has a verifier, but its clock-injectable method is private, so Slack's own
//! published example (from 2018) could not be checked against it; this is the same algorithm
//! with the clock as a parameter.
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-slack-signature";
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// Slack's replay window.
pub const MAX_AGE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("the request timestamp is not a number")]
    BadTimestamp,
    #[error("the request is older than five minutes (or from the future)")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Verifies requests signed with one signing secret.
#[derive(Clone)]
pub struct SignatureVerifier {
    secret: secrecy::SecretString,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureVerifier")
    }
}

impl SignatureVerifier {
    pub fn new(secret: secrecy::SecretString) -> Self {
        Self { secret }
    }

    /// Checks `signature` and `timestamp` (header values, `None` when absent) against `body` at
    /// the unix time `now`.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::MissingHeader(SIGNATURE_HEADER))?;
        let timestamp = timestamp.ok_or(SignatureError::MissingHeader(TIMESTAMP_HEADER))?;
        let ts: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
        if (now - ts).abs() > MAX_AGE_SECONDS {
            return Err(SignatureError::Stale);
        }
        let expected = sign(&self.secret, timestamp, body);
        if expected.as_bytes().ct_eq(signature.trim().as_bytes()).into() {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// Computes the `X-Slack-Signature` value for a body (used by tests and the load generator too).
pub fn sign(secret: &secrecy::SecretString, timestamp: &str, body: &[u8]) -> String {
    use secrecy::ExposeSecret;
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's published example (docs "Verifying requests from Slack"), as reproduced in
    // slackapi/python-slack-sdk tests/slack_sdk/signature/test_signature_verifier.py.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verifier() -> SignatureVerifier {
        SignatureVerifier::new(SECRET.to_string().into())
    }

    #[test]
    fn slacks_published_example_verifies() {
        assert_eq!(sign(&SECRET.to_string().into(), TS, BODY.as_bytes()), EXPECTED);
        assert_eq!(
            verifier().verify(Some(EXPECTED), Some(TS), BODY.as_bytes(), 1531420618 + 10),
            Ok(())
        );
    }

    #[test]
    fn slack_morphisms_test_vector_verifies() {
        let secret = "fa2c05deeef5a4077494e89f54394de0".to_string().into();
        assert_eq!(
            sign(&secret, "1531420618", b"test-body"),
            "v0=baa91ef62d346e56607bbdd278a8acd570b91226854f15a382f43d33be42f666"
        );
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn forged_stale_and_incomplete_requests_are_refused() {
        let now = 1531420618;
        let forged = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b504";
        let cases: [(&str, Option<&str>, Option<&str>, &[u8], i64, SignatureError); 6] = [
            (
                "forged signature",
                Some(forged),
                Some(TS),
                BODY.as_bytes(),
                now,
                SignatureError::Mismatch,
            ),
            (
                "body changed",
                Some(EXPECTED),
                Some(TS),
                b"token=other",
                now,
                SignatureError::Mismatch,
            ),
            (
                "older than five minutes",
                Some(EXPECTED),
                Some(TS),
                BODY.as_bytes(),
                now + 301,
                SignatureError::Stale,
            ),
            (
                "from the future",
                Some(EXPECTED),
                Some(TS),
                BODY.as_bytes(),
                now - 301,
                SignatureError::Stale,
            ),
            (
                "no signature",
                None,
                Some(TS),
                BODY.as_bytes(),
                now,
                SignatureError::MissingHeader(SIGNATURE_HEADER),
            ),
            (
                "no timestamp",
                Some(EXPECTED),
                None,
                BODY.as_bytes(),
                now,
                SignatureError::MissingHeader(TIMESTAMP_HEADER),
            ),
        ];
        for (description, signature, ts, body, now, expected) in cases {
            assert_eq!(
                verifier().verify(signature, ts, body, now),
                Err(expected),
                "{description}"
            );
        }
        let other_secret = SignatureVerifier::new("another-secret".to_string().into());
        assert_eq!(
            other_secret.verify(Some(EXPECTED), Some(TS), BODY.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
    }
}
