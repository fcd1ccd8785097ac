//! How results are shown: tables for people (`comfy-table`, colours only on a terminal and never
//! with `NO_COLOR`), JSON for scripts, and the time formats both use.

use std::io::IsTerminal;

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use graphwarden_core::TokenStatus;
use graphwarden_core::duration::format_duration_short;
use graphwarden_store::Expiry;
use jiff::Timestamp;
use serde::Serialize;

use crate::exit::{self, CliError, CliResult};

pub fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// A borderless table with a header row, wrapped to the terminal when there is one.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    if !colour_enabled() {
        table.force_no_tty();
    }
    table.set_header(header.iter().map(Cell::new));
    table
}

pub fn print_table(table: &Table) {
    // comfy-table pads every line on the right; trailing blanks are noise in logs and diffs.
    for line in table.to_string().lines() {
        println!("{}", line.trim_end());
    }
}

/// Pretty JSON on stdout, written as it is rendered (a large inventory never sits in memory
/// twice).
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> CliResult {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| CliError::new(exit::IO, format!("could not write JSON: {e}")))?;
    writeln!(out)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(exit::IO, format!("could not write JSON: {e}")))
}

pub fn status_cell(status: TokenStatus) -> Cell {
    let colour = match status {
        TokenStatus::Valid => Some(Color::Green),
        TokenStatus::Expiring | TokenStatus::Unknown => Some(Color::Yellow),
        _ => Some(Color::Red),
    };
    let cell = Cell::new(status.as_str());
    match colour {
        Some(c) if colour_enabled() => cell.fg(c),
        _ => cell,
    }
}

/// `2026-01-01T00:00:00Z`: UTC, to the second.
pub fn time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The table's "expires in" text: `3d 4h`, `never`, `unknown`, or `expired 2d ago`.
pub fn expires_in(expiry: Expiry, now: Timestamp) -> String {
    match expiry {
        Expiry::Unknown => "unknown".to_owned(),
        Expiry::Never => "never".to_owned(),
        Expiry::At(at) => {
            let left = now.duration_until(at);
            if left.is_negative() || left.is_zero() {
                format!("expired {} ago", format_duration_short(left))
            } else {
                format_duration_short(left)
            }
        }
    }
}

/// Seconds until expiry (negative once past); `None` when unknown or never.
pub fn expires_in_seconds(expiry: Expiry, now: Timestamp) -> Option<i64> {
    expiry.remaining(now).map(|d| d.as_secs())
}

/// A sequence serialized straight from an iterator, so a large JSON array is never collected.
pub struct Seq<I>(std::cell::RefCell<Option<I>>);

impl<I> Seq<I> {
    pub fn new(iter: I) -> Self {
        Self(std::cell::RefCell::new(Some(iter)))
    }
}

impl<I, T> Serialize for Seq<I>
where
    I: Iterator<Item = T>,
    T: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let iter = self.0.borrow_mut().take();
        serializer.collect_seq(iter.into_iter().flatten())
    }
}
