//! The event log's hash chain.
//!
//! Every event row carries `prev_hash`, the hash of the event before it, and `hash`, a keyed
//! HMAC-SHA256 over `prev_hash` and the row's own columns exactly as stored. One row of
//! `event_chain` (the head) names the last event, its hash and how many chained events there
//! are, under a MAC of its own. Appending an event updates the head first, which takes the write
//! lock (SQLite) or the head row's lock (PostgreSQL), so appenders on any number of instances
//! form one chain in id order.
//!
//! The key is derived from the installation's fingerprint key, which only the master key opens:
//! someone with write access to the database but not the key can delete, edit, insert or reorder
//! rows, but cannot make the chain agree again, and [`verify`] names where it breaks. What the
//! chain cannot show: every row after a point deleted *and* the head put back from an older copy
//! of the database (a rollback to a backup); compare `events verify`'s head with one noted
//! elsewhere to catch that.
//!
//! Rows written before the chain existed (schema 0012) are counted, not hashed: the head records
//! how many there were and the highest id among them, so deleting or adding one is still found.

use std::fmt;
use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

/// The `prev_hash` of the first chained event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key the chain is computed under. Opaque: only the inventory makes one.
#[derive(Clone)]
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

/// The columns of one event row, as stored (the detail as its stored JSON text).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventFields<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub token_id: Option<&'a str>,
    pub token_alias: Option<&'a str>,
    pub app_id: Option<&'a str>,
    pub detail: &'a str,
}

impl ChainKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Hex of the MAC of whatever `feed` writes. HMAC accepts keys of any length, so this
    /// cannot fail; should the library ever disagree, the empty answer matches no stored hash.
    fn keyed(&self, feed: impl FnOnce(&mut Hmac<Sha256>)) -> String {
        match <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()) {
            Ok(mut mac) => {
                feed(&mut mac);
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// The hash of an event whose predecessor's hash is `prev`.
    pub(crate) fn event_hash(&self, prev: &str, event: &EventFields<'_>) -> String {
        self.keyed(|mac| {
            mac.update(b"graphwarden/v1/event\0");
            field(mac, Some(prev));
            mac.update(&event.at.to_be_bytes());
            field(mac, Some(event.actor));
            field(mac, Some(event.action));
            field(mac, event.token_id);
            field(mac, event.token_alias);
            field(mac, event.app_id);
            field(mac, Some(event.detail));
        })
    }

    /// The MAC of the head row.
    pub(crate) fn head_mac(&self, head: &HeadFields<'_>) -> String {
        self.keyed(|mac| {
            mac.update(b"graphwarden/v1/event-head\0");
            mac.update(&head.legacy_through.to_be_bytes());
            mac.update(&head.legacy_count.to_be_bytes());
            mac.update(&head.event_id.to_be_bytes());
            mac.update(&head.count.to_be_bytes());
            field(mac, Some(head.hash));
        })
    }
}

/// Length-prefixed, so no two different rows feed the MAC the same bytes.
fn field(mac: &mut Hmac<Sha256>, value: Option<&str>) {
    match value {
        None => mac.update(&[0]),
        Some(text) => {
            mac.update(&[1]);
            mac.update(&(text.len() as u64).to_be_bytes());
            mac.update(text.as_bytes());
        }
    }
}

/// The head row's MACed columns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadFields<'a> {
    pub legacy_through: i64,
    pub legacy_count: i64,
    pub event_id: i64,
    pub count: i64,
    pub hash: &'a str,
}

/// Where a backend keeps the chain key once the inventory has opened it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainSlot(Arc<RwLock<Option<ChainKey>>>);

impl ChainSlot {
    pub(crate) fn set(&self, key: ChainKey) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(key);
        }
    }

    /// The key, or an error saying why an event cannot be written without it.
    pub(crate) fn key(&self) -> Result<ChainKey> {
        self.0
            .read()
            .ok()
            .and_then(|slot| slot.clone())
            .ok_or_else(|| StoreError::EventLog {
                detail: "the event log's key is not loaded (the store was opened without its \
                         inventory)"
                    .into(),
            })
    }
}

/// The head row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub legacy_through: i64,
    pub legacy_count: i64,
    pub event_id: i64,
    pub count: i64,
    pub hash: String,
    pub mac: Option<String>,
}

/// One event row with its chain columns and its detail as stored text.
#[derive(Debug, Clone)]
pub struct ChainRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub token_id: Option<String>,
    pub token_alias: Option<String>,
    pub app_id: Option<String>,
    pub detail: String,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl ChainRow {
    fn fields(&self) -> EventFields<'_> {
        EventFields {
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            token_id: self.token_id.as_deref(),
            token_alias: self.token_alias.as_deref(),
            app_id: self.app_id.as_deref(),
            detail: &self.detail,
        }
    }
}

/// Something [`verify`] found wrong, with the event ids it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainProblem {
    /// The row's columns (or its `prev_hash`) are not what was hashed: edited, or forged
    /// without the key.
    Edited { event_id: i64 },
    /// The row is chained to an event that is not the one before it now: rows in between were
    /// deleted, or rows were inserted or reordered.
    Broken {
        event_id: i64,
        previous_id: Option<i64>,
    },
    /// A row without chain columns written after the chain began.
    Unsealed { event_id: i64 },
    /// The head is missing.
    HeadMissing,
    /// The head's own MAC does not match: it was edited.
    HeadForged,
    /// The head names a different last event or count than the rows hold: events at the end
    /// were deleted (or added without the head).
    HeadMismatch {
        head_event_id: i64,
        head_count: i64,
        last_event_id: Option<i64>,
        count: i64,
    },
    /// Rows from before the chain were deleted or added.
    LegacyMismatch { expected: i64, found: i64 },
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited { event_id } => write!(
                f,
                "event #{event_id} was changed after it was written (its hash no longer matches)"
            ),
            Self::Broken {
                event_id,
                previous_id: Some(prev),
            } => write!(
                f,
                "event #{event_id} does not follow event #{prev}: events between them were \
                 deleted, or rows were inserted or reordered"
            ),
            Self::Broken {
                event_id,
                previous_id: None,
            } => write!(
                f,
                "event #{event_id} is not the first of the chain: the events before it were deleted"
            ),
            Self::Unsealed { event_id } => write!(
                f,
                "event #{event_id} has no hash: it was inserted behind graphwarden's back"
            ),
            Self::HeadMissing => f.write_str("the event log's head record is missing"),
            Self::HeadForged => {
                f.write_str("the event log's head record was edited (its MAC does not match)")
            }
            Self::HeadMismatch {
                head_event_id,
                head_count,
                last_event_id,
                count,
            } => write!(
                f,
                "the head says the last event is #{head_event_id} of {head_count}, but the log \
                 ends at {} with {count}: events at the end were deleted",
                last_event_id.map_or("nothing".to_owned(), |id| format!("#{id}"))
            ),
            Self::LegacyMismatch { expected, found } => write!(
                f,
                "{expected} event(s) from before the chain were recorded, {found} are there now"
            ),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Chained events checked.
    pub events: i64,
    /// Events from before the chain, counted but not hashed.
    pub legacy: i64,
    /// The last event's id and hash: note them somewhere else to catch a rollback later.
    pub head_event_id: Option<i64>,
    pub head_hash: String,
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the rows in id order, page by page.
pub(crate) struct Verifier {
    key: ChainKey,
    legacy_through: i64,
    report: ChainReport,
    expected_prev: String,
    last_id: Option<i64>,
}

impl Verifier {
    pub(crate) fn new(key: ChainKey, head: Option<&ChainHead>) -> Self {
        Self {
            key,
            legacy_through: head.map_or(0, |h| h.legacy_through),
            report: ChainReport::default(),
            expected_prev: GENESIS.to_owned(),
            last_id: None,
        }
    }

    pub(crate) fn push(&mut self, row: &ChainRow) {
        let problems = &mut self.report.problems;
        let (Some(prev), Some(hash)) = (&row.prev_hash, &row.hash) else {
            if row.id <= self.legacy_through && self.report.events == 0 {
                self.report.legacy += 1;
            } else {
                problems.push(ChainProblem::Unsealed { event_id: row.id });
            }
            return;
        };
        if self.key.event_hash(prev, &row.fields()) != *hash {
            problems.push(ChainProblem::Edited { event_id: row.id });
        } else if *prev != self.expected_prev {
            problems.push(ChainProblem::Broken {
                event_id: row.id,
                previous_id: self.last_id,
            });
        }
        self.expected_prev.clone_from(hash);
        self.last_id = Some(row.id);
        self.report.events += 1;
    }

    pub(crate) fn finish(mut self, head: Option<&ChainHead>) -> ChainReport {
        let problems = &mut self.report.problems;
        match head {
            None => problems.push(ChainProblem::HeadMissing),
            Some(head) => {
                let fields = HeadFields {
                    legacy_through: head.legacy_through,
                    legacy_count: head.legacy_count,
                    event_id: head.event_id,
                    count: head.count,
                    hash: &head.hash,
                };
                let forged = match &head.mac {
                    Some(mac) => self.key.head_mac(&fields) != *mac,
                    // No MAC yet: only valid while nothing has been chained.
                    None => head.count != 0 || head.event_id != 0 || head.hash != GENESIS,
                };
                if forged {
                    problems.push(ChainProblem::HeadForged);
                }
                if head.count != self.report.events
                    || head.hash != self.expected_prev
                    || (head.count > 0 && Some(head.event_id) != self.last_id)
                {
                    problems.push(ChainProblem::HeadMismatch {
                        head_event_id: head.event_id,
                        head_count: head.count,
                        last_event_id: self.last_id,
                        count: self.report.events,
                    });
                }
                if head.legacy_count != self.report.legacy {
                    problems.push(ChainProblem::LegacyMismatch {
                        expected: head.legacy_count,
                        found: self.report.legacy,
                    });
                }
            }
        }
        self.report.head_event_id = self.last_id;
        self.report.head_hash = self.expected_prev;
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ChainKey {
        ChainKey::from_bytes([byte; 32])
    }

    fn row(id: i64, action: &str) -> ChainRow {
        ChainRow {
            id,
            at: 1_000 + id,
            actor: "cli".into(),
            action: action.into(),
            token_id: Some("t1".into()),
            token_alias: Some("acme".into()),
            app_id: None,
            detail: "{}".into(),
            prev_hash: None,
            hash: None,
        }
    }

    /// A chain of `n` rows as the store would write them, and the head after them.
    fn chain(k: &ChainKey, n: i64) -> (Vec<ChainRow>, ChainHead) {
        let mut prev = GENESIS.to_owned();
        let mut rows = Vec::new();
        for id in 1..=n {
            let mut r = row(id, "token.added");
            let hash = k.event_hash(&prev, &r.fields());
            r.prev_hash = Some(prev.clone());
            r.hash = Some(hash.clone());
            prev = hash;
            rows.push(r);
        }
        let fields = HeadFields {
            legacy_through: 0,
            legacy_count: 0,
            event_id: n,
            count: n,
            hash: &prev,
        };
        let head = ChainHead {
            legacy_through: 0,
            legacy_count: 0,
            event_id: n,
            count: n,
            mac: Some(k.head_mac(&fields)),
            hash: prev,
        };
        (rows, head)
    }

    fn verify(k: &ChainKey, rows: &[ChainRow], head: Option<&ChainHead>) -> ChainReport {
        let mut v = Verifier::new(k.clone(), head);
        rows.iter().for_each(|r| v.push(r));
        v.finish(head)
    }

    #[test]
    fn an_untouched_chain_is_intact() {
        let k = key(1);
        let (rows, head) = chain(&k, 5);
        let report = verify(&k, &rows, Some(&head));
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.events, 5);
        assert_eq!(report.head_event_id, Some(5));
    }

    #[test]
    fn edits_deletions_and_truncation_are_named() {
        let k = key(1);
        let (mut rows, head) = chain(&k, 5);
        rows[1].actor = "someone-else".into();
        assert_eq!(
            verify(&k, &rows, Some(&head)).problems,
            vec![ChainProblem::Edited { event_id: 2 }]
        );

        let (mut rows, head) = chain(&k, 5);
        rows.remove(2);
        let problems = verify(&k, &rows, Some(&head)).problems;
        assert_eq!(
            problems[0],
            ChainProblem::Broken {
                event_id: 4,
                previous_id: Some(2)
            }
        );
        // The head counted five.
        assert!(matches!(
            problems[1],
            ChainProblem::HeadMismatch { count: 4, .. }
        ));

        let (mut rows, head) = chain(&k, 5);
        rows.pop();
        let problems = verify(&k, &rows, Some(&head)).problems;
        assert!(matches!(problems[..], [ChainProblem::HeadMismatch { .. }]));

        let (rows, mut head) = chain(&k, 5);
        head.count = 4;
        let problems = verify(&k, &rows, Some(&head)).problems;
        assert!(problems.contains(&ChainProblem::HeadForged));
    }

    #[test]
    fn another_key_sees_every_row_as_edited() {
        let (rows, head) = chain(&key(1), 2);
        let problems = verify(&key(2), &rows, Some(&head)).problems;
        assert!(problems.contains(&ChainProblem::Edited { event_id: 1 }));
        assert!(problems.contains(&ChainProblem::HeadForged));
    }

    #[test]
    fn field_boundaries_matter() {
        let k = key(1);
        let mut a = row(1, "ab");
        a.actor = "x".into();
        let mut b = row(1, "b");
        b.actor = "xa".into();
        assert_ne!(
            k.event_hash(GENESIS, &a.fields()),
            k.event_hash(GENESIS, &b.fields())
        );
        let mut c = row(1, "ab");
        c.token_id = None;
        assert_ne!(
            k.event_hash(GENESIS, &a.fields()),
            k.event_hash(GENESIS, &c.fields())
        );
    }
}
