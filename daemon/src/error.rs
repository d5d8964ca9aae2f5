//! The daemon's error type and the one place that maps it to protocol error codes.

use crate::server::listener::ListenError;
use crate::state::StateError;
use backupd_common::config::ConfigError;
use backupd_common::error::{ErrorCode, ErrorReply};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("the daemon is shutting down; retry once it is back")]
    ShuttingDown,
    #[error(
        "permission denied: `{request}` needs permission `{permission}`, which role `{role}` \
         (uid {uid}) does not have; run it as root or as the daemon's user"
    )]
    PermissionDenied {
        request: &'static str,
        permission: &'static str,
        role: &'static str,
        uid: u32,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether retrying the same operation later can succeed (the queue relies on this bit).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ShuttingDown => true,
            Self::State(e) => e.is_retryable(),
            Self::Listen(_)
            | Self::Config(_)
            | Self::PermissionDenied { .. }
            | Self::Internal(_) => false,
        }
    }

    /// The protocol's view of this error: the one mapping from daemon errors to codes.
    pub fn to_reply(&self) -> ErrorReply {
        let code = match self {
            Self::Config(_) => ErrorCode::InvalidArgument,
            Self::ShuttingDown => ErrorCode::Unavailable,
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::State(_) | Self::Listen(_) | Self::Internal(_) => ErrorCode::Internal,
        };
        ErrorReply::new(code, self.to_string())
    }
}
