//! The daemon's integration tests: the HTTP API over a real socket, against the simulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alerts;
mod api;
mod callbacks;
mod dashboard;
mod prometheus;
mod proxy;
mod scheduler;
mod support;
