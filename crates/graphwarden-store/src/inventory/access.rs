//! API keys: made once, shown once, stored as a keyed hash, checked in constant time.
//!
//! A key reads `gwk_<id>_<secret>`: `id` (12 characters) is public and finds the row, `secret`
//! (32 random bytes in hex) never leaves the person who made it. The stored hash is an HMAC of
//! the whole key under the instance's fingerprint key, so a copy of the database alone cannot
//! even test a guess.

use graphwarden_core::{Role, TokenAlias, free_text};
use rand::Rng as _;
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq as _;

use super::{Inventory, poisoned};
use crate::error::{Result, StoreError};
use crate::service::{ApiKey, ApiKeyRecord};

const PREFIX: &str = "gwk_";
const HASH_DOMAIN: &[u8] = b"graphwarden/v1/api-key\0";
/// `last_used_at` is written at most this often per key, not on every request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Split a presented key into its id, refusing anything not shaped like one of ours.
fn key_id(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.len() == 64
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(id)
}

impl Inventory {
    fn api_key_hash(&self, key: &str) -> Result<String> {
        let keys = self.keys.read().map_err(|_| poisoned())?;
        Ok(keys.fingerprint.keyed(HASH_DOMAIN, key.as_bytes()))
    }

    /// Make an API key. The returned secret is the only copy: it is not stored.
    pub async fn create_api_key(
        &self,
        name: &str,
        role: Role,
        aliases: Vec<TokenAlias>,
        actor: &str,
    ) -> Result<(ApiKey, SecretString)> {
        let name = free_text("name", name, 100, false)?;
        match (role, aliases.is_empty()) {
            (Role::Consumer, true) => {
                return Err(StoreError::InvalidInput(
                    graphwarden_core::InvalidInput::new(
                        "a consumer key must name the tokens it may fetch (`--aliases a,b`)",
                    ),
                ));
            }
            (Role::Consumer, false) => {
                for alias in &aliases {
                    self.token(alias).await?;
                }
            }
            (_, false) => {
                return Err(StoreError::InvalidInput(
                    graphwarden_core::InvalidInput::new(
                        "only consumer keys are limited to aliases; other roles see every token",
                    ),
                ));
            }
            (_, true) => {}
        }
        let id: String = (0..12)
            .map(|_| {
                let n = OsRng.gen_range(0..36u8);
                char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
            })
            .collect();
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let full = SecretString::from(format!("{PREFIX}{id}_{}", hex::encode(secret)));
        let key = ApiKey {
            id,
            name,
            role,
            aliases,
            created_at: self.clock.now(),
            created_by: actor.to_owned(),
            last_used_at: None,
            revoked_at: None,
        };
        let record = ApiKeyRecord {
            hash: self.api_key_hash(full.expose_secret())?,
            key: key.clone(),
        };
        let mut event = self.event(actor, "api_key.created");
        event.detail =
            json!({ "name": key.name, "id": key.id, "role": key.role, "aliases": key.aliases });
        self.store.insert_api_key(&record, &event).await?;
        Ok((key, full))
    }

    /// The live key a request presents, or `None` for anything else (malformed, unknown,
    /// revoked or wrong): callers answer all of those alike.
    pub async fn verify_api_key(&self, presented: &str) -> Result<Option<ApiKey>> {
        let Some(id) = key_id(presented) else {
            return Ok(None);
        };
        let Some(record) = self.store.api_key(id).await? else {
            return Ok(None);
        };
        let hash = self.api_key_hash(presented)?;
        let matches: bool = hash.as_bytes().ct_eq(record.hash.as_bytes()).into();
        if !matches || record.key.revoked_at.is_some() {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let stale = record
            .key
            .last_used_at
            .is_none_or(|t| now - t.as_millisecond() >= TOUCH_EVERY_MS);
        if stale {
            self.store.touch_api_key(&record.key.id, now).await?;
        }
        Ok(Some(record.key))
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.store.api_keys().await
    }

    /// Revoke a key by name; it stops working at once.
    pub async fn revoke_api_key(&self, name: &str, actor: &str) -> Result<()> {
        let mut event = self.event(actor, "api_key.revoked");
        event.detail = json!({ "name": name });
        if self
            .store
            .revoke_api_key(name, self.clock.now_ms(), &event)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                what: "API key",
                name: name.to_owned(),
                hint: "see `graphwarden apikey list`",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_id;

    #[test]
    fn only_well_formed_keys_have_an_id() {
        let good = format!("gwk_abcdef012345_{}", "a".repeat(64));
        assert_eq!(key_id(&good), Some("abcdef012345"));
        for bad in [
            String::new(),
            "gwk_".into(),
            format!("gwk_ABCDEF012345_{}", "a".repeat(64)),
            format!("gwk_abcdef01234_{}", "a".repeat(64)),
            format!("gwk_abcdef012345_{}", "g".repeat(64)),
            format!("xyz_abcdef012345_{}", "a".repeat(64)),
            format!("gwk_abcdef012345_{}", "a".repeat(65)),
        ] {
            assert_eq!(key_id(&bad), None, "{bad}");
        }
    }
}
