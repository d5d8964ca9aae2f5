//! The daemon's error type and the one place that maps it to protocol error codes.

use crate::engine::EngineError;
use crate::repo::registry::RegistryError;
use crate::repo::RepoError;
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
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
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
            Self::Engine(e) => e.is_retryable(),
            Self::Registry(RegistryError::Repo(e)) => e.is_retryable(),
            Self::Registry(_) => false,
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
            Self::Engine(e) => engine_code(e),
            Self::Registry(e) => match e {
                RegistryError::Unknown { .. } | RegistryError::None => ErrorCode::NotFound,
                RegistryError::Exists { .. } => ErrorCode::Conflict,
                RegistryError::InvalidName(_) | RegistryError::RelativePath(_) => {
                    ErrorCode::InvalidArgument
                }
                RegistryError::Repo(r) => repo_code(r),
                RegistryError::KeyFile { .. }
                | RegistryError::State(_)
                | RegistryError::Corrupt { .. } => ErrorCode::Internal,
            },
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::State(_) | Self::Listen(_) | Self::Internal(_) => ErrorCode::Internal,
        };
        ErrorReply::new(code, self.to_string())
    }
}

fn repo_code(e: &RepoError) -> ErrorCode {
    match e {
        RepoError::NotEmpty { .. }
        | RepoError::NotARepository { .. }
        | RepoError::UnsupportedVersion { .. }
        | RepoError::WrongPassword { .. }
        | RepoError::NoKeys { .. } => ErrorCode::InvalidArgument,
        RepoError::SnapshotNotFound { .. } | RepoError::AmbiguousSnapshot { .. } => {
            ErrorCode::NotFound
        }
        RepoError::Lock(_) => ErrorCode::Busy,
        RepoError::Backend(b) if b.is_not_found() => ErrorCode::Unavailable,
        RepoError::Backend(_)
        | RepoError::MissingBlob { .. }
        | RepoError::DamagedBlob { .. }
        | RepoError::DamagedPack { .. }
        | RepoError::Corrupt { .. }
        | RepoError::KeyFile { .. } => ErrorCode::Internal,
    }
}

fn engine_code(e: &EngineError) -> ErrorCode {
    match e {
        EngineError::Repo(r) => repo_code(r),
        EngineError::Exclude(_)
        | EngineError::Source { .. }
        | EngineError::Target { .. }
        | EngineError::InvalidArgument(_) => ErrorCode::InvalidArgument,
        EngineError::NotInSnapshot { .. } => ErrorCode::NotFound,
        EngineError::Cancelled => ErrorCode::Unavailable,
    }
}
