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

/// Text safe inside HTML elements and double- or single-quoted attributes (the email receiver's
/// and the audit report's hand-written HTML).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
