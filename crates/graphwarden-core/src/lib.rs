//! Domain types and pure logic for graphwarden.
//!
//! What lives here: validated identifiers (Meta app ids, token aliases, tags, scopes), token kinds,
//! the token status model with the action each status asks of a person, the checks applied to
//! secret text a user hands us, human duration parsing, the proxy's pacing and call records, and the [`clock::Clock`] every other crate
//! reads time from.
//!
//! What does not: any I/O. No network, no files, no database, no wall-clock reads outside
//! `clock.rs`.

pub mod access;
pub mod alert;
pub mod call;
pub mod clock;
pub mod duration;
pub mod id;
pub mod pacing;
pub mod secret;
pub mod token;
pub mod usage;

pub use access::Role;
pub use clock::{Clock, ManualClock, Stopwatch, SystemClock};
pub use id::{AppId, InvalidInput, MetaId, Scope, Tag, TokenAlias, free_text, parse_scope_list};
pub use token::{TokenKind, TokenStatus};
