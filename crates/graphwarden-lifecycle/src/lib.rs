//! `graphwarden-lifecycle`: the jobs that keep tokens watched — inspection today — shared by the
//! CLI and, later, the daemon's scheduler.
//!
//! What lives here: deciding which Graph calls to make for which tokens, pacing them on Meta's
//! usage headers, and turning the answers into store updates and a report. What does not: HTTP
//! details (`graphwarden-meta`), SQL and crypto (`graphwarden-store`), presentation (the binary).

pub mod audit;
pub mod check;
pub mod derive;
pub mod login;
pub mod renew;
pub mod revoke;

pub use check::{
    CheckPolicy, CheckReport, Checked, Checker, Selection, Severity, inspection_for,
    kind_from_meta, probe,
};
pub use renew::{FaultHook, FaultPoint, Plan, RenewPolicy, RenewReport, Renewal, Renewer, plan};
