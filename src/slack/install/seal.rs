//! Slack tokens sealed at rest: AES-256-GCM under `THREADQL_ENCRYPTION_KEY`, with the
//! installation's identity as associated data.
//!
//! A sealed value is one line of text, `v1:<key id>:<base64 nonce>:<base64 ciphertext>`:
//!
//! - the nonce is 96 random bits drawn from the operating system for every seal: with random
//!   nonces one key stays safe for far more seals (about 2^32) than a deployment ever makes;
//! - the key id (the first 8 hex characters of the key's SHA-256) names the key that sealed the
//!   value, so `THREADQL_ENCRYPTION_KEY` can rotate: the key it replaced, given as
//!   `THREADQL_ENCRYPTION_KEY_PREVIOUS`, still opens what it sealed until `threadql installations
//!   rekey` has re-sealed everything with the new one;
//! - the associated data is the installation's identity (enterprise, team, app), so a token
//!   copied into another workspace's row fails authentication instead of answering that
//!   workspace's events with the wrong bot.
//!
//! A key is 32 random bytes written either as 64 hex characters (`openssl rand -hex 32`) or as
//! standard, padded base64 (`openssl rand -base64 32`); surrounding whitespace is ignored (a
//! trailing newline from a secret file). Nothing else is accepted: a passphrase would need a key
//! derivation function and would invite weak keys. No error or `Debug` output here ever shows a
//! key or a token.
use std::fmt;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::ConfigError;
pub use crate::config::{THREADQL_ENCRYPTION_KEY, THREADQL_ENCRYPTION_KEY_PREVIOUS};

/// The first field of every sealed value: a later format gets a new version, and values of this
/// one keep opening.
const FORMAT_VERSION: &str = "v1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// GCM's authentication tag, at the end of every ciphertext.
const TAG_LEN: usize = 16;
/// Hex characters of a key id: 32 bits, enough to tell two keys apart, far too few to learn
/// anything about either.
const KEY_ID_LEN: usize = 8;
/// Leads the associated data, so a value sealed here opens only as an installation's token and
/// never as anything else a future caller seals with the same key.
const AAD_CONTEXT: &str = "threadql/slack-installation/v1";

/// Which installation a token belongs to: an enterprise (Grid org) id, a team (workspace) id,
/// or both, and the Slack app. An org-wide install has an enterprise and no team; a workspace
/// outside any org has a team and no enterprise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstallationIdentity {
    enterprise_id: Option<String>,
    team_id: Option<String>,
    app_id: String,
}

impl InstallationIdentity {
    /// `None` when neither an enterprise nor a team is given: such an installation could never
    /// be found again. An empty id counts as absent (Slack sends `""` as often as `null`).
    pub fn new(enterprise_id: Option<&str>, team_id: Option<&str>, app_id: &str) -> Option<Self> {
        let present = |id: Option<&str>| id.filter(|id| !id.is_empty()).map(str::to_string);
        let (enterprise_id, team_id) = (present(enterprise_id), present(team_id));
        if enterprise_id.is_none() && team_id.is_none() {
            return None;
        }
        Some(Self {
            enterprise_id,
            team_id,
            app_id: app_id.to_string(),
        })
    }

    pub fn enterprise_id(&self) -> Option<&str> {
        self.enterprise_id.as_deref()
    }

    pub fn team_id(&self) -> Option<&str> {
        self.team_id.as_deref()
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The identity as associated data: each field prefixed with its length, so no two
    /// identities encode alike (`("E1", "T2")` and `("E1T", "2")` differ).
    fn associated_data(&self) -> Vec<u8> {
        let fields = [
            AAD_CONTEXT,
            self.enterprise_id().unwrap_or_default(),
            self.team_id().unwrap_or_default(),
            self.app_id(),
        ];
        let mut data = Vec::with_capacity(fields.iter().map(|field| 8 + field.len()).sum());
        for field in fields {
            let length = u64::try_from(field.len()).unwrap_or(u64::MAX);
            data.extend_from_slice(&length.to_be_bytes());
            data.extend_from_slice(field.as_bytes());
        }
        data
    }
}

impl fmt::Display for InstallationIdentity {
    /// `enterprise/team` with `-` for the absent one (how operators and logs name it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.enterprise_id().unwrap_or("-"),
            self.team_id().unwrap_or("-")
        )
    }
}

/// Why a value does not seal or open. The messages name the key id at most, never a key or a
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the stored value is not a sealed token (expected `v1:<key id>:<nonce>:<ciphertext>`)")]
    Malformed,
    #[error(
        "the token was sealed with key {key_id}, which is neither {THREADQL_ENCRYPTION_KEY} nor \
         {THREADQL_ENCRYPTION_KEY_PREVIOUS}"
    )]
    UnknownKey { key_id: String },
    /// The ciphertext, the nonce or the identity differ from what was sealed.
    #[error("the sealed token does not open: it was altered, or it belongs to another installation")]
    Unauthentic,
    #[error("the operating system gave no randomness for a nonce")]
    NoRandomness,
    #[error("the token is too long to seal")]
    TooLong,
    #[error("the opened token is not text")]
    NotText,
}

/// A sealed token as stored: which key sealed it, its nonce and its ciphertext (with the tag).
/// [`Sealed::parse`] reads the stored text and [`Sealed::encode`] writes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    key_id: String,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl Sealed {
    /// Reads `v1:<key id>:<base64 nonce>:<base64 ciphertext>`.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut fields = text.split(':');
        let (Some(FORMAT_VERSION), Some(key_id), Some(nonce), Some(ciphertext), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(SealError::Malformed);
        };
        if key_id.len() != KEY_ID_LEN || !key_id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(SealError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = BASE64
            .decode(nonce)
            .ok()
            .and_then(|nonce| nonce.try_into().ok())
            .ok_or(SealError::Malformed)?;
        let ciphertext = BASE64.decode(ciphertext).map_err(|_| SealError::Malformed)?;
        if ciphertext.len() < TAG_LEN {
            return Err(SealError::Malformed);
        }
        Ok(Self {
            key_id: key_id.to_ascii_lowercase(),
            nonce,
            ciphertext,
        })
    }

    /// The stored text (the ciphertext is not secret; it is kept out of `Debug` only to keep
    /// logs short).
    pub fn encode(&self) -> String {
        format!(
            "{FORMAT_VERSION}:{}:{}:{}",
            self.key_id,
            BASE64.encode(self.nonce),
            BASE64.encode(&self.ciphertext)
        )
    }

    /// The id of the key that sealed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// One key, ready to seal and open, known by its id.
struct SealingKey {
    id: String,
    cipher: Aes256Gcm,
}

impl SealingKey {
    /// Reads the key given in `variable`; the error names the variable and the accepted forms.
    fn parse(variable: &'static str, text: &SecretString) -> Result<(Self, Zeroizing<Vec<u8>>), ConfigError> {
        let text = text.expose_secret().trim();
        let bytes = decode_key(text).ok_or_else(|| ConfigError {
            variable,
            message: format!(
                "must be {KEY_LEN} random bytes written as 64 hex characters (`openssl rand -hex 32`) or as \
                 padded base64 (`openssl rand -base64 32`); the value given ({} characters) is neither",
                text.chars().count()
            ),
        })?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| ConfigError {
            variable,
            message: format!("must be {KEY_LEN} bytes long"),
        })?;
        let digest = Sha256::digest(bytes.as_slice());
        let mut id = hex::encode(digest);
        id.truncate(KEY_ID_LEN);
        Ok((Self { id, cipher }, bytes))
    }
}

/// The 32 bytes of a key written in hex or base64, or `None`. Hex is tried first: 64 hex
/// characters are also valid base64, of 48 bytes, which would be refused anyway.
fn decode_key(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Zeroizing::new(hex::decode(text).ok()?)
    } else {
        Zeroizing::new(BASE64.decode(text).ok()?)
    };
    (bytes.len() == KEY_LEN).then_some(bytes)
}

/// The current key, which seals, and the previous one, which only opens: what
/// `THREADQL_ENCRYPTION_KEY` and `THREADQL_ENCRYPTION_KEY_PREVIOUS` hold.
pub struct SealingKeys {
    current: SealingKey,
    previous: Option<SealingKey>,
}

impl SealingKeys {
    /// Both keys from their text (see the module documentation for the accepted forms). Two
    /// different keys whose ids collide (a chance in 2^32) are refused, since a sealed value
    /// could not say which of them sealed it; the same key given twice is simply one key.
    pub fn new(current: &SecretString, previous: Option<&SecretString>) -> Result<Self, ConfigError> {
        let (current, current_bytes) = SealingKey::parse(THREADQL_ENCRYPTION_KEY, current)?;
        let previous = match previous {
            None => None,
            Some(previous) => {
                let (previous, previous_bytes) = SealingKey::parse(THREADQL_ENCRYPTION_KEY_PREVIOUS, previous)?;
                match (previous.id == current.id, previous_bytes == current_bytes) {
                    (false, _) => Some(previous),
                    (true, true) => None,
                    (true, false) => {
                        return Err(ConfigError {
                            variable: THREADQL_ENCRYPTION_KEY,
                            message: format!(
                                "its key id is the same as {THREADQL_ENCRYPTION_KEY_PREVIOUS}'s; generate another key"
                            ),
                        })
                    }
                }
            }
        };
        Ok(Self { current, previous })
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for `identity` with the current key and a fresh nonce. Fails only when
    /// the operating system has no randomness or the token is longer than GCM allows (64 GiB).
    pub fn seal(&self, plaintext: &SecretString, identity: &InstallationIdentity) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.try_fill_bytes(&mut nonce).map_err(|_| SealError::NoRandomness)?;
        let aad = identity.associated_data();
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::TooLong)?;
        Ok(Sealed {
            key_id: self.current.id.clone(),
            nonce,
            ciphertext,
        })
    }

    /// Opens `sealed` with the key its id names, if it was sealed for `identity`.
    pub fn open(&self, sealed: &Sealed, identity: &InstallationIdentity) -> Result<SecretString, SealError> {
        let key = self.key(&sealed.key_id).ok_or_else(|| SealError::UnknownKey {
            key_id: sealed.key_id.clone(),
        })?;
        let aad = identity.associated_data();
        let plaintext = key
            .cipher
            .decrypt(
                &Nonce::from(sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Unauthentic)?;
        match String::from_utf8(plaintext) {
            Ok(text) => Ok(SecretString::from(text)),
            Err(error) => {
                drop(Zeroizing::new(error.into_bytes()));
                Err(SealError::NotText)
            }
        }
    }

    /// Whether `sealed` was sealed with another key than the current one (`rekey` re-seals it).
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.current.id
    }

    fn key(&self, id: &str) -> Option<&SealingKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|key| key.id == id)
    }
}

impl fmt::Debug for SealingKeys {
    /// The key ids only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys")
            .field("current", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|key| &key.id))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OTHER_KEY_HEX: &str = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100";
    const TOKEN: &str = "xoxb-1234-5678-secretbottoken";

    fn keys(current: &str, previous: Option<&str>) -> SealingKeys {
        let previous = previous.map(SecretString::from);
        SealingKeys::new(&SecretString::from(current), previous.as_ref()).unwrap()
    }

    fn team(team_id: &str) -> InstallationIdentity {
        InstallationIdentity::new(None, Some(team_id), "A0APP").unwrap()
    }

    fn token() -> SecretString {
        SecretString::from(TOKEN)
    }

    #[test]
    fn a_sealed_token_opens_for_its_installation() {
        let keys = keys(KEY_HEX, None);
        let sealed = keys.seal(&token(), &team("T1")).unwrap();

        let reread = Sealed::parse(&sealed.encode()).unwrap();
        let opened = keys.open(&reread, &team("T1")).unwrap();

        assert_eq!(opened.expose_secret(), TOKEN);
        assert!(!sealed.encode().contains(TOKEN));
        assert!(sealed.encode().starts_with(&format!("v1:{}:", keys.current_key_id())));
    }

    #[test]
    fn each_seal_draws_a_fresh_nonce() {
        let keys = keys(KEY_HEX, None);

        let first = keys.seal(&token(), &team("T1")).unwrap();
        let second = keys.seal(&token(), &team("T1")).unwrap();

        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
    }

    #[test]
    fn a_token_sealed_for_one_installation_does_not_open_for_another() {
        let keys = keys(KEY_HEX, None);
        let sealed = keys.seal(&token(), &team("T1")).unwrap();

        let cases = [
            ("another team", team("T2")),
            (
                "the same team in an enterprise",
                InstallationIdentity::new(Some("E1"), Some("T1"), "A0APP").unwrap(),
            ),
            (
                "the same team of another app",
                InstallationIdentity::new(None, Some("T1"), "A0OTHER").unwrap(),
            ),
        ];
        for (description, identity) in cases {
            assert_eq!(
                keys.open(&sealed, &identity).unwrap_err(),
                SealError::Unauthentic,
                "{description}"
            );
        }
    }

    #[test]
    fn identities_whose_ids_run_together_differ_as_associated_data() {
        let first = InstallationIdentity::new(Some("E1"), Some("T2"), "A").unwrap();
        let second = InstallationIdentity::new(Some("E1T"), Some("2"), "A").unwrap();

        assert_ne!(first.associated_data(), second.associated_data());
    }

    #[test]
    fn a_tampered_ciphertext_or_nonce_does_not_open() {
        let keys = keys(KEY_HEX, None);
        let sealed = keys.seal(&token(), &team("T1")).unwrap();

        let mut ciphertext = sealed.clone();
        if let Some(byte) = ciphertext.ciphertext.first_mut() {
            *byte ^= 1;
        }
        let mut nonce = sealed.clone();
        nonce.nonce[0] ^= 1;

        assert_eq!(keys.open(&ciphertext, &team("T1")).unwrap_err(), SealError::Unauthentic);
        assert_eq!(keys.open(&nonce, &team("T1")).unwrap_err(), SealError::Unauthentic);
    }

    #[test]
    fn the_previous_key_still_opens_what_it_sealed_and_the_current_one_seals() {
        let old = keys(KEY_HEX, None);
        let sealed = old.seal(&token(), &team("T1")).unwrap();
        let rotated = keys(OTHER_KEY_HEX, Some(KEY_HEX));

        let opened = rotated.open(&sealed, &team("T1")).unwrap();
        let resealed = rotated.seal(&opened, &team("T1")).unwrap();

        assert_eq!(opened.expose_secret(), TOKEN);
        assert!(rotated.is_stale(&sealed));
        assert_eq!(resealed.key_id(), rotated.current_key_id());
        assert!(!rotated.is_stale(&resealed));
        // The old key alone cannot open what the new one sealed.
        assert!(matches!(
            old.open(&resealed, &team("T1")),
            Err(SealError::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_key_id_that_no_configured_key_has_is_refused_by_name() {
        let sealed = keys(KEY_HEX, None).seal(&token(), &team("T1")).unwrap();
        let other = keys(OTHER_KEY_HEX, None);

        let error = other.open(&sealed, &team("T1")).unwrap_err();

        assert_eq!(
            error,
            SealError::UnknownKey {
                key_id: sealed.key_id().to_string()
            }
        );
        let message = error.to_string();
        assert!(!message.contains(KEY_HEX) && !message.contains(TOKEN), "{message}");
    }

    #[test]
    fn the_key_id_is_the_start_of_the_keys_sha256() {
        let expected = hex::encode(Sha256::digest(hex::decode(KEY_HEX).unwrap()));

        assert_eq!(keys(KEY_HEX, None).current_key_id(), &expected[..8]);
    }

    #[test]
    fn a_key_in_hex_or_base64_is_the_same_key() {
        let base64 = BASE64.encode(hex::decode(KEY_HEX).unwrap());
        let from_hex = keys(KEY_HEX, None);
        // Surrounding whitespace (a secret file's newline) is ignored.
        let from_base64 = keys(&format!("{base64}\n"), None);

        let sealed = from_hex.seal(&token(), &team("T1")).unwrap();

        assert_eq!(from_hex.current_key_id(), from_base64.current_key_id());
        assert_eq!(from_base64.open(&sealed, &team("T1")).unwrap().expose_secret(), TOKEN);
    }

    #[test]
    fn a_key_in_another_form_is_refused_without_showing_it() {
        let cases = [
            ("a passphrase", "correct horse battery staple".to_string()),
            ("63 hex characters", KEY_HEX[1..].to_string()),
            ("16 bytes of base64", BASE64.encode([7u8; 16])),
            ("48 bytes of base64", BASE64.encode([7u8; 48])),
            (
                "base64 without padding",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode([7u8; 32]),
            ),
            (
                "URL-safe base64",
                base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]),
            ),
        ];
        for (description, key) in cases {
            let error = SealingKeys::new(&SecretString::from(key.clone()), None).unwrap_err();

            assert_eq!(error.variable, THREADQL_ENCRYPTION_KEY, "{description}");
            let message = error.to_string();
            assert!(message.contains("64 hex characters"), "{description}: {message}");
            assert!(!message.contains(&key), "{description}: {message}");
        }
    }

    #[test]
    fn a_bad_previous_key_is_reported_as_the_previous_key() {
        let current = SecretString::from(KEY_HEX.to_string());
        let previous = SecretString::from("hunter2".to_string());

        let error = SealingKeys::new(&current, Some(&previous)).unwrap_err();

        assert_eq!(error.variable, THREADQL_ENCRYPTION_KEY_PREVIOUS);
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn a_stored_value_in_another_form_is_malformed() {
        let sealed = keys(KEY_HEX, None).seal(&token(), &team("T1")).unwrap().encode();
        let cases = [
            ("a plaintext token", TOKEN.to_string()),
            ("another version", sealed.replacen("v1:", "v2:", 1)),
            ("a field too many", format!("{sealed}:extra")),
            ("a short nonce", {
                let fields: Vec<&str> = sealed.split(':').collect();
                format!("v1:{}:{}:{}", fields[1], BASE64.encode([0u8; 8]), fields[3])
            }),
            ("no ciphertext", {
                let fields: Vec<&str> = sealed.split(':').collect();
                format!("v1:{}:{}:", fields[1], fields[2])
            }),
        ];
        for (description, text) in cases {
            assert_eq!(Sealed::parse(&text).unwrap_err(), SealError::Malformed, "{description}");
        }
    }

    #[test]
    fn debug_output_shows_key_ids_and_never_a_key_or_token() {
        let keys = keys(OTHER_KEY_HEX, Some(KEY_HEX));
        let sealed = keys.seal(&token(), &team("T1")).unwrap();
        let opened = keys.open(&sealed, &team("T1")).unwrap();

        let printed = format!("{keys:?} {sealed:?} {opened:?}");

        assert!(printed.contains(keys.current_key_id()), "{printed}");
        for secret in [KEY_HEX, OTHER_KEY_HEX, TOKEN, &sealed.encode()] {
            assert!(!printed.contains(secret), "{printed}");
        }
        // Nor the raw bytes of a key, as Debug of a byte array would print them.
        assert!(!printed.contains("[0, 1, 2"), "{printed}");
    }

    #[test]
    fn an_identity_needs_a_team_or_an_enterprise() {
        assert!(InstallationIdentity::new(None, None, "A0APP").is_none());
        assert!(InstallationIdentity::new(Some(""), Some(""), "A0APP").is_none());

        let org_wide = InstallationIdentity::new(Some("E1"), Some(""), "A0APP").unwrap();

        assert_eq!(org_wide.team_id(), None);
        assert_eq!(org_wide.to_string(), "E1/-");
    }
}
