//! Signed, expiring links: "approve this notice" in an approver's email, "acknowledge" in an
//! on-call email. A token is `hex(payload).hex(HMAC-SHA256(key, payload))`; the payload names
//! the action, its subject, the person the link was sent to and the expiry instant, so a link
//! cannot be replayed for another notice, by another person, or after it expired. The key is
//! 32 random bytes in the data directory (`signing.key`, mode 0600), created on first use.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::Sha256;

use crate::AlertError;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC key of the signed links.
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("SigningKey(..)")
    }
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `approve` or `ack`.
    pub action: String,
    /// The notice or alert id.
    pub subject: i64,
    /// For an approval: the notice revision the link was made for.
    pub revision: i64,
    /// Who the link was sent to (recorded as the approver or acknowledger).
    pub who: String,
    pub expires: Timestamp,
}

impl SigningKey {
    /// Reads the key at `path`, or creates it (32 random bytes, readable by the owner only).
    pub fn load_or_create(path: &Path) -> Result<SigningKey, AlertError> {
        let err = |reason: String| AlertError::Key { path: path.to_owned(), reason };
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] =
                    bytes.try_into().map_err(|b: Vec<u8>| err(format!("{} bytes instead of 32", b.len())))?;
                Ok(SigningKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(|e| err(e.to_string()))?;
                file.write_all(&key).and_then(|()| file.sync_all()).map_err(|e| err(e.to_string()))?;
                Ok(SigningKey(key))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// A key from fixed bytes (tests, or a key managed elsewhere).
    pub fn from_bytes(bytes: [u8; 32]) -> SigningKey {
        SigningKey(bytes)
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length: this cannot fail for 32 bytes.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_key());
        mac.update(payload);
        mac
    }

    /// Signs `claims` into a token for a URL.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = format!(
            "v1|{}|{}|{}|{}|{}",
            claims.action,
            claims.subject,
            claims.revision,
            claims.expires.as_second(),
            claims.who
        );
        let tag = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!("{}.{}", hex(payload.as_bytes()), hex(&tag))
    }

    /// Checks `token`'s signature and expiry at `now`, and that it is for `action`.
    pub fn verify(&self, token: &str, action: &str, now: Timestamp) -> Result<Claims, AlertError> {
        let bad = |why: &str| AlertError::BadToken(why.to_owned());
        let (payload_hex, tag_hex) = token.trim().split_once('.').ok_or_else(|| bad("malformed token"))?;
        let payload = unhex(payload_hex).ok_or_else(|| bad("malformed token"))?;
        let tag = unhex(tag_hex).ok_or_else(|| bad("malformed token"))?;
        // Constant-time comparison.
        self.mac(&payload).verify_slice(&tag).map_err(|_| bad("the signature does not match"))?;
        let payload = String::from_utf8(payload).map_err(|_| bad("malformed token"))?;
        let mut parts = payload.splitn(6, '|');
        let (Some("v1"), Some(act), Some(subject), Some(revision), Some(expires), Some(who)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("malformed token"));
        };
        if act != action {
            return Err(bad("this link is for another action"));
        }
        let expires = expires.parse::<i64>().ok().and_then(|s| Timestamp::from_second(s).ok());
        let (Some(expires), Ok(subject), Ok(revision)) = (expires, subject.parse(), revision.parse()) else {
            return Err(bad("malformed token"));
        };
        if now >= expires {
            return Err(bad("the link has expired"));
        }
        Ok(Claims { action: act.to_owned(), subject, revision, who: who.to_owned(), expires })
    }
}

#[cold]
fn unreachable_key() -> HmacSha256 {
    panic!("HMAC accepts keys of any length")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn claims() -> Claims {
        Claims {
            action: "approve".into(),
            subject: 7,
            revision: 2,
            who: "dsi@ville.test".into(),
            expires: t("2025-04-08T12:00:00Z"),
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = SigningKey::from_bytes([7; 32]);
        let token = key.sign(&claims());
        assert_eq!(key.verify(&token, "approve", t("2025-04-08T11:59:59Z")).unwrap(), claims());
        let expired = key.verify(&token, "approve", t("2025-04-08T12:00:00Z")).unwrap_err().to_string();
        assert!(expired.contains("expired"), "{expired}");
        let other_action = key.verify(&token, "ack", t("2025-04-08T11:00:00Z")).unwrap_err().to_string();
        assert!(other_action.contains("another action"), "{other_action}");
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let key = SigningKey::from_bytes([7; 32]);
        let token = key.sign(&claims());
        let now = t("2025-04-08T11:00:00Z");
        // Another key.
        assert!(SigningKey::from_bytes([8; 32]).verify(&token, "approve", now).is_err());
        // Another subject with the old signature.
        let mut forged = claims();
        forged.subject = 8;
        let forged_payload = key.sign(&forged);
        let (payload, _) = forged_payload.split_once('.').unwrap();
        let (_, tag) = token.split_once('.').unwrap();
        let err = key.verify(&format!("{payload}.{tag}"), "approve", now).unwrap_err().to_string();
        assert!(err.contains("signature"), "{err}");
        for junk in ["", "abc", "zz.zz", "00.", &token[..token.len() - 1]] {
            assert!(key.verify(junk, "approve", now).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn the_key_is_created_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let a = SigningKey::load_or_create(&path).unwrap();
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        let err = SigningKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("5 bytes instead of 32"), "{err}");
        assert_eq!(format!("{a:?}"), "SigningKey(..)");
    }
}
