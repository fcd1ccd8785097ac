//! The client's error type. Messages never carry tokens: request URLs are stripped from
//! transport errors, and Meta's own messages do not echo them.

use graphwarden_core::usage::Usage;

use crate::classify::{Classification, GraphErrorInfo};

/// An error envelope from Meta, classified.
#[derive(Debug, Clone)]
pub struct GraphFailure {
    pub http_status: u16,
    pub error: GraphErrorInfo,
    pub class: Classification,
    pub usage: Usage,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    /// Meta answered with an error envelope.
    #[error("Meta answered HTTP {}, code {}{}: {}", .0.http_status, .0.error.code, .0.error.subcode.map(|s| format!("/{s}")).unwrap_or_default(), .0.error.message)]
    Graph(Box<GraphFailure>),
    /// No answer: refused, reset, DNS, TLS.
    #[error("Graph could not be reached: {detail}")]
    Network { detail: String },
    /// No answer in time.
    #[error("Graph did not answer within the time-out")]
    Timeout,
    /// An answer that is not what Graph sends: not JSON, cut short, an HTML page.
    #[error(
        "Graph answered HTTP {http_status} with something that is not a Graph response ({detail})"
    )]
    BadResponse { http_status: u16, detail: String },
    /// A bad base URL or similar set-up error on our side.
    #[error("the Graph client is misconfigured: {detail}")]
    Config { detail: String },
}

impl MetaError {
    pub fn class(&self) -> Classification {
        match self {
            Self::Graph(f) => f.class.clone(),
            Self::Network { .. } | Self::Timeout | Self::BadResponse { .. } => {
                Classification::Transient
            }
            Self::Config { .. } => Classification::AppConfiguration,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class().is_transient()
    }

    /// Meta's usage headers on the error, when there were any.
    pub fn usage(&self) -> Option<&Usage> {
        match self {
            Self::Graph(f) => Some(&f.usage),
            _ => None,
        }
    }

    /// The call carried only the app's own token (`id|secret`): if Meta calls that token dead,
    /// it is the stored app secret that is wrong — a configuration problem, not a dead token.
    pub(crate) fn into_inspector_error(self) -> Self {
        match self {
            Self::Graph(mut f)
                if matches!(
                    f.class,
                    Classification::TokenDead { .. } | Classification::NeedsUserAction { .. }
                ) =>
            {
                f.class = Classification::AppConfiguration;
                Self::Graph(f)
            }
            other => other,
        }
    }

    pub(crate) fn graph(
        http_status: u16,
        error: GraphErrorInfo,
        class: Classification,
        usage: Usage,
    ) -> Self {
        Self::Graph(Box::new(GraphFailure {
            http_status,
            error,
            class,
            usage,
        }))
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return Self::Timeout;
        }
        // The URL carries the access token: never let it into a message.
        let err = err.without_url();
        if err.is_builder() {
            return Self::Config {
                detail: err.to_string(),
            };
        }
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        Self::Network { detail }
    }
}
