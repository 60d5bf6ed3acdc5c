//! The archive's Ed25519 signing key, kept outside the archive directory.
//!
//! The secret key file holds 64 hexadecimal characters (the 32-byte seed) and a newline; the
//! public key sits beside it in `<file>.pub`, also hex. `verify` needs only the public key,
//! so the verifying host never needs the secret.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::error::ArchiveError;

/// The key that signs manifests, deletion certificates, exports and audit entries.
#[derive(Clone)]
pub struct ArchiveKey {
    signing: SigningKey,
}

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ArchiveKey").field("public", &self.public().to_hex()).finish()
    }
}

/// The public half: what `verify` checks signatures with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

fn bad(path: &Path, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::BadKey { path: path.to_owned(), reason: reason.into() }
}

/// The path of the public key beside a secret key file.
pub fn public_key_path(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

impl ArchiveKey {
    /// Creates a new random key at `path` (mode 0600) and its public key at `path.pub`;
    /// refuses to overwrite an existing key (it signed the archive: losing it is final).
    pub fn generate(path: &Path) -> Result<ArchiveKey, ArchiveError> {
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(ArchiveError::io("/dev/urandom"))?;
        let key = ArchiveKey { signing: SigningKey::from_bytes(&seed) };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                bad(path, "exists already; a signing key is never overwritten (move it away first if you mean it)")
            } else {
                ArchiveError::Io { path: path.to_owned(), source: e }
            }
        })?;
        writeln!(file, "{}", hex(&seed)).and_then(|()| file.sync_all()).map_err(ArchiveError::io(path))?;
        let public = public_key_path(path);
        std::fs::write(&public, format!("{}\n", key.public().to_hex())).map_err(ArchiveError::io(&public))?;
        Ok(key)
    }

    /// Reads the secret key at `path`.
    pub fn load(path: &Path) -> Result<ArchiveKey, ArchiveError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(path, format!("{e}; create one with `vigie archive keygen --key {}`", path.display())))?;
        let bytes = unhex(text.trim()).ok_or_else(|| bad(path, "is not 64 hexadecimal characters"))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| bad(path, "is not 64 hexadecimal characters"))?;
        Ok(ArchiveKey { signing: SigningKey::from_bytes(&seed) })
    }

    /// A key from a fixed seed, for tests and fixtures.
    pub fn from_seed(seed: [u8; 32]) -> ArchiveKey {
        ArchiveKey { signing: SigningKey::from_bytes(&seed) }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// The signature of `message`, hex.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex(&self.signing.sign(message).to_bytes())
    }
}

impl PublicKey {
    /// Reads a public key file (hex).
    pub fn load(path: &Path) -> Result<PublicKey, ArchiveError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path, e.to_string()))?;
        PublicKey::from_hex(text.trim()).ok_or_else(|| bad(path, "is not a hex Ed25519 public key"))
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<PublicKey> {
        let bytes: [u8; 32] = unhex(text)?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }

    /// 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// Whether `signature_hex` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature_hex: &str) -> bool {
        let Some(bytes) = unhex(signature_hex.trim()) else { return false };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else { return false };
        self.0.verify(message, &Signature::from_bytes(&bytes)).is_ok()
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// SHA-256, hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_loads_back_and_verifies_its_signatures_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.key");
        let key = ArchiveKey::generate(&path).unwrap();
        let loaded = ArchiveKey::load(&path).unwrap();
        assert_eq!(loaded.public(), key.public());
        let public = PublicKey::load(&public_key_path(&path)).unwrap();
        let sig = key.sign_hex(b"manifest");
        assert!(public.verifies(b"manifest", &sig));
        assert!(!public.verifies(b"manifesT", &sig));
        assert!(!ArchiveKey::from_seed([7; 32]).public().verifies(b"manifest", &sig));
        let err = ArchiveKey::generate(&path).unwrap_err().to_string();
        assert!(err.contains("never overwritten"), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_malformed_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "not hex").unwrap();
        let err = ArchiveKey::load(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("hexadecimal"), "{err}");
        let missing = ArchiveKey::load(&dir.path().join("none")).unwrap_err().to_string();
        assert!(missing.contains("vigie archive keygen"), "{missing}");
    }
}
