//! Token lifecycles against the simulator, graphwarden and the simulator sharing one manual
//! clock: months pass in milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod lifecycle;
mod support;
