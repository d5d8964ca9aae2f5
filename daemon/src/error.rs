//! The daemon's error type and the one place that maps it to protocol error codes.

use crate::engine::EngineError;
use crate::repo::registry::RegistryError;
use crate::repo::RepoError;
use crate::server::listener::ListenError;
use crate::state::StateError;
use crate::watch::SourceError;
use backupd_common::config::ConfigError;
use backupd_common::error::{ErrorCode, ErrorReply};
use backupd_common::protocol::JobState;
use std::time::Duration;

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
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
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
    #[error("job {id} not found; `backupctl queue history` lists finished jobs")]
    JobNotFound { id: u64 },
    #[error("job {id} is {}, not {wanted}", state.as_str())]
    JobState {
        id: u64,
        state: JobState,
        wanted: &'static str,
    },
    #[error(
        "uid {uid} submits jobs faster than queue.submit_rate allows; retry in {} ms",
        retry_after.as_millis().max(1)
    )]
    RateLimited { uid: u32, retry_after: Duration },
    #[error("{0} workers asked for; the queue runs 1 to 8")]
    InvalidWorkers(u32),
    #[error("noop job: attempt {attempt} fails as it was asked to ({})", if *retryable { "retryable" } else { "permanent" })]
    PlannedFailure { attempt: u32, retryable: bool },
}

impl Error {
    /// Whether retrying the same operation later can succeed (the queue relies on this bit).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ShuttingDown | Self::RateLimited { .. } => true,
            Self::PlannedFailure { retryable, .. } => *retryable,
            Self::JobNotFound { .. } | Self::JobState { .. } | Self::InvalidWorkers(_) => false,
            Self::State(e) => e.is_retryable(),
            Self::Engine(e) => e.is_retryable(),
            Self::Registry(RegistryError::Repo(e)) => e.is_retryable(),
            Self::Registry(_) | Self::Source(_) | Self::Export(_) => false,
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
                | RegistryError::Password { .. }
                | RegistryError::State(_)
                | RegistryError::Corrupt { .. } => ErrorCode::Internal,
            },
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::State(_) | Self::Listen(_) | Self::Internal(_) => ErrorCode::Internal,
            Self::JobNotFound { .. } => ErrorCode::NotFound,
            Self::Source(e) => match e {
                SourceError::Exists(_) => ErrorCode::Conflict,
                SourceError::Unknown(_) => ErrorCode::NotFound,
                SourceError::State(_) => ErrorCode::Internal,
                SourceError::InvalidName(_)
                | SourceError::Path { .. }
                | SourceError::Invalid { .. } => ErrorCode::InvalidArgument,
            },
            Self::JobState { .. } => ErrorCode::Conflict,
            Self::Export(_) => ErrorCode::InvalidArgument,
            Self::RateLimited { .. } => ErrorCode::Busy,
            Self::InvalidWorkers(_) => ErrorCode::InvalidArgument,
            Self::PlannedFailure { retryable, .. } => {
                if *retryable {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::InvalidArgument
                }
            }
        };
        let mut reply = ErrorReply::new(code, self.to_string());
        if let Self::RateLimited { retry_after, .. } = self {
            reply.retry_after_ms = Some(retry_after.as_millis().max(1) as u64);
        }
        reply
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
        RepoError::Unreachable { .. } => ErrorCode::Unavailable,
        RepoError::Backend(b) if b.is_unreachable() => ErrorCode::Unavailable,
        RepoError::Backend(b) if b.is_not_found() => ErrorCode::Unavailable,
        RepoError::Backend(_)
        | RepoError::MissingBlob { .. }
        | RepoError::DamagedBlob { .. }
        | RepoError::DamagedPack { .. }
        | RepoError::Corrupt { .. }
        | RepoError::NameMismatch { .. }
        | RepoError::KeyFile { .. } => ErrorCode::Internal,
        // The repository's state, not the request, is what must change first.
        RepoError::LatestUnknown { .. } => ErrorCode::Conflict,
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
