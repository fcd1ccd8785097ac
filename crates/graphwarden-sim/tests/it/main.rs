//! The simulator, end to end over HTTP: every behaviour of issue 3 against
//! `meta-graph-reference.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod batch;
mod callbacks;
mod control;
mod debug_token;
mod marketing;
mod oauth;
mod pages_and_users;
mod python_sdk;
mod rate_limits;
mod robustness;
mod support;
