//! The error type of every Consul call, and which of its variants are worth retrying.

use reqwest::StatusCode;

/// What went wrong talking to Consul.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request never got an HTTP answer: connection refused, reset, timed out.
    #[error("consul unreachable at {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Consul answered with a non-success status.
    #[error("consul answered {status} for {method} {path}: {body}")]
    Status {
        method: &'static str,
        path: String,
        status: StatusCode,
        body: String,
    },
    /// The answer was not the JSON we expect.
    #[error("unexpected answer from consul for {path}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// An answer that can only be ACL filtering (Consul before 1.11 filters silently), e.g. a
    /// catalog with no node at all.
    #[error("consul answered {0}: the token is most likely missing read permissions")]
    Filtered(String),
    /// The answer was larger than the client accepts (a hostile or broken server).
    #[error("consul's answer for {path} is larger than {limit} bytes; refused")]
    TooLarge { path: String, limit: usize },
    /// The client could not be built from its configuration.
    #[error("invalid consul configuration: {0}")]
    Config(String),
}

impl Error {
    /// True when the same request may succeed later (outage, leader election, overload).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Error::Decode { .. }
            | Error::Config(_)
            | Error::Filtered(_)
            | Error::TooLarge { .. } => false,
        }
    }

    /// True when Consul refused us for want of a token or a permission.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Error::Filtered(_))
            || matches!(self, Error::Status { status, .. } if *status == StatusCode::FORBIDDEN || *status == StatusCode::UNAUTHORIZED)
    }

    /// True for a 404, which deletes and deregistrations treat as "already gone".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
