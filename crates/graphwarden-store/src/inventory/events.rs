//! The event log as a whole: checking its hash chain, and asking whether a token was ever
//! stored here without the log holding the token (events name secrets only by their keyed
//! fingerprint).

use graphwarden_core::TokenAlias;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{Inventory, poisoned};
use crate::chain::{ChainKey, ChainReport, Verifier};
use crate::crypto::SecretKey;
use crate::error::Result;
use crate::model::Event;

const CHAIN_DOMAIN: &[u8] = b"graphwarden/v1/event-chain-key\0";

/// Rows read per round trip while verifying.
const PAGE: i64 = 2_000;

/// The chain key of an installation, from its fingerprint key.
pub(super) fn chain_key(fingerprint: &SecretKey) -> ChainKey {
    ChainKey::from_bytes(fingerprint.derive(CHAIN_DOMAIN))
}

/// What the inventory knows of one token secret, found by fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sighting {
    /// The token's keyed fingerprint (safe to show: it reveals nothing without the key).
    pub fingerprint: String,
    /// The alias of the token stored with this secret now, if one is.
    pub stored_as: Option<TokenAlias>,
    /// Every event that names this secret, oldest first.
    pub events: Vec<Event>,
}

impl Sighting {
    /// Whether this secret was ever stored here.
    pub fn known(&self) -> bool {
        self.stored_as.is_some() || !self.events.is_empty()
    }
}

impl Inventory {
    /// Check the whole event log's hash chain, oldest first.
    pub async fn verify_events(&self) -> Result<ChainReport> {
        let key = self.chain_key()?;
        let head = self.store.event_chain_head().await?;
        let mut verifier = Verifier::new(key, head.as_ref());
        let after = self.walk_chain(&mut verifier, 0, i64::MAX).await?;
        // Read the head again and take in what was appended meanwhile, up to the event it names.
        let head = self.store.event_chain_head().await?;
        if let Some(h) = &head
            && h.event_id > after
        {
            self.walk_chain(&mut verifier, after, h.event_id).await?;
        }
        Ok(verifier.finish(head.as_ref()))
    }

    /// Whether `secret` was ever stored here: the token holding it now, and every event that
    /// names it by fingerprint (added, renewed, staged as a renewal).
    pub async fn find_secret(&self, secret: &SecretString) -> Result<Sighting> {
        let fingerprint = self.fingerprint(secret.expose_secret().trim())?;
        let stored_as = self.store.token_alias_by_fingerprint(&fingerprint).await?;
        let mut events: Vec<Event> = self
            .store
            .events_mentioning(&fingerprint, 10_000)
            .await?
            .into_iter()
            .filter(|e| e.detail.get("fingerprint").and_then(|v| v.as_str()) == Some(&fingerprint))
            .collect();
        // Events from before fingerprints were logged still belong to the token stored now.
        if let Some(alias) = &stored_as
            && let Ok(history) = self.token_events(alias).await
        {
            for e in history {
                if !events.iter().any(|known| known.id == e.id) {
                    events.push(e);
                }
            }
            events.sort_by_key(|e| e.id);
        }
        Ok(Sighting {
            fingerprint,
            stored_as,
            events,
        })
    }

    /// Feed the verifier rows with ids in `(after, through]`; returns the last id read.
    async fn walk_chain(
        &self,
        verifier: &mut Verifier,
        mut after: i64,
        through: i64,
    ) -> Result<i64> {
        loop {
            let rows = self.store.event_chain_rows(after, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            for row in rows.iter().take_while(|row| row.id <= through) {
                verifier.push(row);
                after = row.id;
            }
            if !full || rows.last().is_some_and(|row| row.id > through) {
                return Ok(after);
            }
        }
    }

    fn chain_key(&self) -> Result<ChainKey> {
        let keys = self.keys.read().map_err(|_| poisoned())?;
        Ok(chain_key(&keys.fingerprint))
    }
}
