//! The daemon's error type and the one place that maps it to protocol error codes.

use crate::engine::EngineError;
use crate::repo::backend::BackendError;
use crate::repo::lock::LockError;
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

/// How an error travels: its protocol code, and whether the queue retries the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    pub code: ErrorCode,
    pub retryable: bool,
}

const fn class(code: ErrorCode, retryable: bool) -> Class {
    Class { code, retryable }
}

impl Error {
    /// Whether retrying the same operation later can succeed (the queue relies on this bit).
    pub fn is_retryable(&self) -> bool {
        self.class().retryable
    }

    /// The one mapping from daemon errors to protocol codes and retryability: both are decided
    /// here, together, so they cannot disagree.
    pub fn class(&self) -> Class {
        use ErrorCode::*;
        match self {
            Self::Config(_) => class(InvalidArgument, false),
            Self::ShuttingDown => class(Unavailable, true),
            Self::Engine(e) => engine_class(e),
            Self::Registry(e) => match e {
                RegistryError::Unknown { .. } | RegistryError::None => class(NotFound, false),
                RegistryError::Exists { .. } => class(Conflict, false),
                RegistryError::InvalidName(_) | RegistryError::RelativePath(_) => {
                    class(InvalidArgument, false)
                }
                RegistryError::Repo(r) => repo_class(r),
                // The state directory is full: nothing was created (see `write_new_durably`).
                RegistryError::KeyFile { source, .. }
                    if matches!(
                        source.raw_os_error().map(nix::errno::Errno::from_raw),
                        Some(nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT)
                    ) =>
                {
                    class(NoSpace, true)
                }
                RegistryError::KeyFile { .. }
                | RegistryError::Password { .. }
                | RegistryError::State(_)
                | RegistryError::Corrupt { .. } => class(Internal, false),
            },
            Self::PermissionDenied { .. } => class(PermissionDenied, false),
            // The database is locked by another process, or a write failed: both may pass.
            Self::State(e) => class(
                Internal,
                matches!(e, StateError::Locked { .. } | StateError::Write { .. }),
            ),
            Self::Listen(_) | Self::Internal(_) => class(Internal, false),
            Self::JobNotFound { .. } => class(NotFound, false),
            Self::Source(e) => match e {
                SourceError::Exists(_) => class(Conflict, false),
                SourceError::Unknown(_) => class(NotFound, false),
                SourceError::State(_) => class(Internal, false),
                SourceError::InvalidName(_)
                | SourceError::Path { .. }
                | SourceError::Invalid { .. } => class(InvalidArgument, false),
            },
            Self::JobState { .. } => class(Conflict, false),
            Self::Export(_) => class(InvalidArgument, false),
            Self::RateLimited { .. } => class(Busy, true),
            Self::InvalidWorkers(_) => class(InvalidArgument, false),
            Self::PlannedFailure { retryable, .. } => {
                if *retryable {
                    class(Unavailable, true)
                } else {
                    class(InvalidArgument, false)
                }
            }
        }
    }

    /// The protocol's view of this error.
    pub fn to_reply(&self) -> ErrorReply {
        let mut reply = ErrorReply::new(self.class().code, self.to_string());
        if let Self::RateLimited { retry_after, .. } = self {
            reply.retry_after_ms = Some(retry_after.as_millis().max(1) as u64);
        }
        reply
    }
}

fn backend_class(b: &BackendError) -> Class {
    use ErrorCode::*;
    if b.is_no_space() {
        // Nothing is wrong with the request or the repository: once space is freed the same
        // job succeeds, so it backs off and retries.
        class(NoSpace, true)
    } else if b.is_unreachable() {
        class(Unavailable, true)
    } else if b.is_not_found() {
        class(Unavailable, false)
    } else {
        // Some other I/O error (EIO, a flaky mount): worth another try.
        class(Internal, true)
    }
}

fn repo_class(e: &RepoError) -> Class {
    use ErrorCode::*;
    match e {
        RepoError::NotEmpty { .. }
        | RepoError::NotARepository { .. }
        | RepoError::UnsupportedVersion { .. }
        | RepoError::WrongPassword { .. }
        | RepoError::NoKeys { .. } => class(InvalidArgument, false),
        RepoError::SnapshotNotFound { .. } | RepoError::AmbiguousSnapshot { .. } => {
            class(NotFound, false)
        }
        RepoError::Lock(LockError::Busy { .. }) => class(Busy, true),
        // Writing the lock failed: that is about the disk, not about another holder.
        RepoError::Lock(LockError::Backend(b)) | RepoError::Backend(b) => backend_class(b),
        RepoError::Unreachable { .. } => class(Unavailable, true),
        RepoError::MissingBlob { .. }
        | RepoError::DamagedBlob { .. }
        | RepoError::DamagedPack { .. }
        | RepoError::Corrupt { .. }
        | RepoError::NameMismatch { .. }
        | RepoError::KeyFile { .. } => class(Internal, false),
        // The repository's state, not the request, is what must change first.
        RepoError::LatestUnknown { .. } => class(Conflict, false),
    }
}

fn engine_class(e: &EngineError) -> Class {
    use ErrorCode::*;
    match e {
        EngineError::Repo(r) => repo_class(r),
        EngineError::Exclude(_)
        | EngineError::Source { .. }
        | EngineError::Target { .. }
        | EngineError::InvalidArgument(_) => class(InvalidArgument, false),
        EngineError::NotInSnapshot { .. } => class(NotFound, false),
        EngineError::Cancelled => class(Unavailable, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn io(errno: nix::errno::Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(errno as i32)
    }

    #[test]
    fn a_full_disk_is_no_space_and_retryable_even_when_the_lock_write_hits_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let full = BackendError::new(
            "create",
            &dir.path().join("locks/x"),
            io(nix::errno::Errno::ENOSPC),
        );
        let space = full.space.clone().expect("statvfs of the parent");
        assert!(space.total > 0 && !space.quota);
        let msg = full.to_string();
        assert!(
            msg.contains("is full") && msg.contains("queue dlq retry"),
            "{msg}"
        );
        assert!(msg.contains(&space.mount.display().to_string()), "{msg}");
        let want = Class {
            code: ErrorCode::NoSpace,
            retryable: true,
        };
        let lock = Error::Engine(EngineError::Repo(RepoError::Lock(LockError::Backend(full))));
        assert_eq!(lock.class(), want, "not Busy: nobody holds a lock");
        let quota = BackendError::new(
            "write",
            Path::new("/nonexistent/x"),
            io(nix::errno::Errno::EDQUOT),
        );
        assert!(quota.space.as_ref().is_some_and(|s| s.quota), "{quota}");
        let e = Error::Registry(RegistryError::Repo(RepoError::Backend(quota)));
        assert_eq!(e.class(), want);
        assert_eq!(e.to_reply().code, ErrorCode::NoSpace);
        let key = Error::Registry(RegistryError::KeyFile {
            action: "write",
            path: dir.path().join("keys/a.key"),
            source: io(nix::errno::Errno::ENOSPC),
        });
        assert_eq!(key.class().code, ErrorCode::NoSpace);
        let eio = BackendError::new("write", dir.path(), io(nix::errno::Errno::EIO));
        assert!(eio.space.is_none());
        assert_eq!(
            Error::Engine(EngineError::Repo(RepoError::Backend(eio)))
                .class()
                .code,
            ErrorCode::Internal
        );
    }

    #[test]
    fn sizes_in_messages_are_readable() {
        use crate::repo::backend::human_bytes;
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(8 << 20), "8.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
