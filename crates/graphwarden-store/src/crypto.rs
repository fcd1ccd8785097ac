//! Encryption at rest (design.md §2, "Encryption at rest").
//!
//! Envelope encryption: a 256-bit master key, kept outside the database, wraps 256-bit data keys
//! stored in `data_keys`; each secret is sealed with XChaCha20-Poly1305 under a data key. The
//! associated data names the row, the column and the key version, so a ciphertext copied to
//! another row, or relabelled with another key version, fails to open instead of decrypting to
//! the wrong secret. Lookups use an HMAC-SHA256 fingerprint under a separate wrapped key, never
//! the plaintext.

use std::fmt;
use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, StoreError};

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// The master key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Parse the 64-hex-character text form (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> std::result::Result<Self, &'static str> {
        let text = text.trim();
        if text.len() != KEY_LEN * 2 {
            return Err("wrong length");
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text, key.as_mut()).map_err(|_| "not hexadecimal")?;
        Ok(Self(key))
    }

    /// The text form written to `master.key`.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// Read a key file, refusing one that group or others can read unless `allow_insecure`.
    pub fn load_file(path: &Path, allow_insecure: bool) -> Result<Self> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::KeyMissing {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(StoreError::KeyIo {
                    action: "read the master key",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 && !allow_insecure {
                return Err(StoreError::KeyInsecure {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = (meta, allow_insecure);
        if meta_len_is_absurd(path) {
            return Err(StoreError::KeyMalformed {
                path: path.to_owned(),
                reason: "far too long",
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::InvalidData {
                StoreError::KeyMalformed {
                    path: path.to_owned(),
                    reason: "not text",
                }
            } else {
                StoreError::KeyIo {
                    action: "read the master key",
                    path: path.to_owned(),
                    source,
                }
            }
        })?);
        Self::from_hex(&text).map_err(|reason| StoreError::KeyMalformed {
            path: path.to_owned(),
            reason,
        })
    }

    /// Write the key to a new file with mode 0600, refusing to replace an existing file.
    pub fn write_new_file(&self, path: &Path) -> Result<()> {
        let io_err = |source| StoreError::KeyIo {
            action: "write the master key",
            path: path.to_owned(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::KeyExists {
                    path: path.to_owned(),
                }
            } else {
                io_err(e)
            }
        })?;
        let mut text = self.to_hex();
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Ok(())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

fn meta_len_is_absurd(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 4096)
}

/// A 256-bit key unwrapped from the database: a data key or the fingerprint key.
#[derive(Clone)]
pub(crate) struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub(crate) fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    /// Seal `plaintext`; the result is `nonce || ciphertext+tag`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher(), aad, plaintext)
    }

    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        open_with(&self.cipher(), aad, sealed)
    }

    /// The keyed fingerprint used to find a token without storing it in the clear.
    pub(crate) fn fingerprint(&self, secret: &[u8]) -> String {
        self.keyed(b"graphwarden/v1/token-fingerprint\0", secret)
    }

    /// A key for another purpose (`domain`), derived from this one: HMAC(self, domain).
    pub(crate) fn derive(&self, domain: &[u8]) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()) {
            mac.update(domain);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// A keyed hash of `secret` for one purpose (`domain`), hex-encoded: different purposes
    /// never give comparable hashes of the same input.
    pub(crate) fn keyed(&self, domain: &[u8], secret: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail; fall back to an empty
        // hash rather than panic if the library ever changes its mind.
        match <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()) {
            Ok(mut mac) => {
                mac.update(domain);
                mac.update(secret);
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// Wrap this key under the master key, bound to `label`.
    pub(crate) fn wrap(&self, master: &MasterKey, label: &str) -> Vec<u8> {
        seal_with(&master.cipher(), label.as_bytes(), self.0.as_ref())
    }

    /// Unwrap a key sealed by [`SecretKey::wrap`]; `None` when the master key or label is wrong.
    pub(crate) fn unwrap_from(master: &MasterKey, label: &str, wrapped: &[u8]) -> Option<Self> {
        let mut plain = open_with(&master.cipher(), label.as_bytes(), wrapped)?;
        if plain.len() != KEY_LEN {
            plain.zeroize();
            return None;
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&plain);
        Some(Self(key))
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // XChaCha20-Poly1305 encryption only fails for messages beyond 256 GiB; secrets are
        // capped far below that by the input checks.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Associated data for the wrapped data key of `version`.
pub(crate) fn data_key_label(version: i64) -> String {
    format!("graphwarden/v1/data-key/{version}")
}

/// Associated data for the wrapped fingerprint key of installation `instance_id`.
pub(crate) fn fingerprint_key_label(instance_id: &str) -> String {
    format!("graphwarden/v1/fingerprint-key/{instance_id}")
}

/// Associated data binding a sealed secret to its row, column and key version.
pub(crate) fn secret_aad(table: &str, row_id: &str, column: &str, key_version: i64) -> Vec<u8> {
    format!("graphwarden/v1/{table}/{row_id}/{column}/key-{key_version}").into_bytes()
}

/// A random identifier with a readable prefix, such as `tok_3f9c…`.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_aad() {
        let key = SecretKey::generate();
        let aad = secret_aad("tokens", "tok_1", "secret", 1);
        let sealed = key.seal(&aad, b"EAAB-secret");
        assert_eq!(&key.open(&aad, &sealed).unwrap()[..], b"EAAB-secret");
        assert!(
            key.open(&secret_aad("tokens", "tok_2", "secret", 1), &sealed)
                .is_none()
        );
        assert!(
            key.open(&secret_aad("tokens", "tok_1", "secret", 2), &sealed)
                .is_none()
        );
        assert!(SecretKey::generate().open(&aad, &sealed).is_none());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open(&aad, &tampered).is_none());
        assert!(key.open(&aad, &sealed[..10]).is_none());
    }

    #[test]
    fn wrapping_needs_the_same_master_key_and_label() {
        let master = MasterKey::generate();
        let key = SecretKey::generate();
        let wrapped = key.wrap(&master, &data_key_label(1));
        assert!(SecretKey::unwrap_from(&master, &data_key_label(1), &wrapped).is_some());
        assert!(SecretKey::unwrap_from(&master, &data_key_label(2), &wrapped).is_none());
        assert!(
            SecretKey::unwrap_from(&MasterKey::generate(), &data_key_label(1), &wrapped).is_none()
        );
    }

    #[test]
    fn master_key_hex_round_trip_and_redacted_debug() {
        let key = MasterKey::generate();
        let hex = key.to_hex();
        let again = MasterKey::from_hex(&format!("{}\n", *hex)).unwrap();
        assert_eq!(again.to_hex(), hex);
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert!(!format!("{:?}", SecretKey::generate()).contains(&hex[..8]));
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn fingerprints_are_keyed() {
        let a = SecretKey::generate();
        let b = SecretKey::generate();
        assert_eq!(a.fingerprint(b"tok"), a.fingerprint(b"tok"));
        assert_ne!(a.fingerprint(b"tok"), b.fingerprint(b"tok"));
        assert_ne!(a.fingerprint(b"tok"), a.fingerprint(b"tok2"));
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::generate();
        key.write_new_file(&path).unwrap();
        assert!(matches!(
            key.write_new_file(&path),
            Err(StoreError::KeyExists { .. })
        ));
        assert_eq!(
            MasterKey::load_file(&path, false).unwrap().to_hex(),
            key.to_hex()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                MasterKey::load_file(&path, false),
                Err(StoreError::KeyInsecure { mode: 0o644, .. })
            ));
            assert!(MasterKey::load_file(&path, true).is_ok());
        }
        assert!(matches!(
            MasterKey::load_file(&dir.path().join("nope"), false),
            Err(StoreError::KeyMissing { .. })
        ));
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, b"\xff\xfe not a key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            MasterKey::load_file(&bad, false),
            Err(StoreError::KeyMalformed { .. })
        ));
    }
}
