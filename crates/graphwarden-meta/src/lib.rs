//! `graphwarden-meta`: the Graph API client.
//!
//! What lives here: talking to Graph (or the simulator) — `debug_token`, batched; exchanges;
//! Page, system-user and login tokens; revoke; `appsecret_proof`; reading usage headers; decoding
//! and classifying errors (`meta-graph-reference.md` §7); tolerant parsing of payloads; and the
//! pure mapping from a `debug_token` answer to a token status.
//!
//! What does not: policy (when to renew, what to alert on) and storage.

pub mod api;
pub mod classify;
pub mod client;
pub mod error;
pub mod inspect;
pub mod parse;
pub mod proof;
pub mod signed_request;

pub use api::{EventQuality, IssuedToken, MAX_BATCH, PageAccount, parse_dataset_quality};
pub use classify::{Classification, GraphErrorInfo};
pub use client::{AppCredentials, GraphClient, GraphConfig, GraphResponse, Method, Params};
pub use error::{GraphFailure, MetaError};
pub use inspect::{Assessment, assess};
pub use parse::DebugData;
pub use signed_request::{SignedRequest, SignedRequestError, parse_signed_request, sign_request};
