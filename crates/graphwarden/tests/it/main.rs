//! The `graphwarden` command line, end to end: the real binary against real SQLite files (and
//! PostgreSQL when `GRAPHWARDEN_TEST_DATABASE_URL` is set), output checked with insta snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod bad_input;
mod browser;
mod check;
mod config;
mod demo;
mod events;
mod inventory;
mod postgres;
mod proxy;
mod renewal;
mod revoke;
mod rotation;
mod scan;
mod secrets;
mod serve;
mod sim;
mod support;
