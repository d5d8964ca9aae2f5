//! The daemon's error type and the one place that maps it to protocol error codes.

use crate::engine::EngineError;
use crate::repo::backend::{BackendError, ErrorKind};
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
    Audit(#[from] crate::security::audit::AuditError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The metrics endpoint cannot serve where `metrics.listen` says (on a reload).
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// `security encrypt|decrypt`.
    #[error(transparent)]
    FileCrypt(#[from] crate::security::file_crypt::FileCryptError),
    #[error("the daemon is shutting down; retry once it is back")]
    ShuttingDown,
    #[error(
        "permission denied: `{request}` needs permission `{permission}`, which uid {uid} does \
         not hold (held: {held}); an administrator can grant a role that has it with \
         `backupctl security grant ROLE --uid {uid}`"
    )]
    PermissionDenied {
        request: &'static str,
        permission: &'static str,
        /// The roles held for this request, with where each comes from.
        held: String,
        uid: u32,
    },
    #[error(transparent)]
    Binding(#[from] crate::security::bindings::BindingError),
    /// Suspicious-activity detection: a lockout, an unknown alert.
    #[error(transparent)]
    Detect(#[from] crate::security::detect::DetectError),
    /// A submission whose arguments are wrong: nothing was queued.
    #[error("`{command}` refused, nothing was queued: {source}")]
    Refused {
        command: &'static str,
        source: Box<Error>,
    },
    /// A `before` hook failed, so the job's work did not run.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error("internal error: {0}")]
    Internal(String),
    /// A task panicked or was aborted: a bug, which retrying would only repeat.
    #[error("{task} failed: {source}; this is a bug, please report it with the daemon's log")]
    TaskFailed {
        task: String,
        #[source]
        source: tokio::task::JoinError,
    },
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
    /// `repo replicate add|run|remove`.
    #[error(transparent)]
    Replication(#[from] crate::replication::ReplicationError),
    /// `recovery ...`.
    #[error(transparent)]
    Recovery(#[from] crate::recovery::RecoveryError),
    /// `analytics ...`, and the holds forget reads.
    #[error(transparent)]
    Analytics(#[from] crate::analytics::AnalyticsError),
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

/// The one classification of an error type: its wire code and its retryability, decided
/// together so they cannot disagree. Every error type the daemon can end a request or a job
/// with implements it (here, in one file); a wrapper asks what it wraps. The queue retries a
/// failed job exactly when [`Error::is_retryable`] says so and decides nothing itself.
pub trait Classify {
    fn class(&self) -> Class;
}

impl Error {
    /// Whether retrying the same operation later can succeed (the queue relies on this bit).
    pub fn is_retryable(&self) -> bool {
        self.class().retryable
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

impl Classify for Error {
    fn class(&self) -> Class {
        use ErrorCode::*;
        match self {
            Self::Config(_) => class(InvalidArgument, false),
            Self::ShuttingDown => class(Unavailable, true),
            Self::Engine(e) => e.class(),
            Self::Registry(e) => e.class(),
            Self::PermissionDenied { .. } => class(PermissionDenied, false),
            Self::Binding(e) => e.class(),
            Self::Detect(e) => class(e.code(), false),
            Self::Refused { source, .. } => class(source.class().code, false),
            Self::State(e) => e.class(),
            Self::Listen(_) | Self::Internal(_) | Self::TaskFailed { .. } | Self::Audit(_) => {
                class(Internal, false)
            }
            Self::Metrics(e) => e.class(),
            Self::JobNotFound { .. } => class(NotFound, false),
            Self::Source(e) => e.class(),
            Self::Sync(e) => e.class(),
            Self::JobState { .. } => class(Conflict, false),
            Self::Export(_) => class(InvalidArgument, false),
            Self::FileCrypt(e) => e.class(),
            Self::Hook(e) => e.class(),
            Self::RateLimited { .. } => class(Busy, true),
            Self::InvalidWorkers(_) => class(InvalidArgument, false),
            Self::Replication(e) => {
                use crate::replication::ReplicationError as E;
                match e {
                    E::NotFound { .. } => class(NotFound, false),
                    E::Invalid(_) => class(InvalidArgument, false),
                    E::State(e) => e.class(),
                    E::Sled(_) => class(Internal, false),
                }
            }
            Self::Recovery(e) => {
                use crate::recovery::RecoveryError as E;
                match e {
                    E::NotFound { .. } | E::NoSnapshot { .. } => class(NotFound, false),
                    E::Invalid(_) => class(InvalidArgument, false),
                    E::State { .. } => class(Conflict, false),
                    E::Io { .. } => class(Unavailable, false),
                    E::Store(e) => e.class(),
                    E::Sled(_) => class(Internal, false),
                }
            }
            Self::Analytics(e) => {
                use crate::analytics::AnalyticsError as E;
                match e {
                    E::State(e) => e.class(),
                    E::NoHold { .. } | E::UnknownSource { .. } => class(NotFound, false),
                    E::Aggregate(_) | E::Storage { .. } | E::Record(_) => class(Internal, false),
                }
            }
            Self::PlannedFailure { retryable, .. } => {
                if *retryable {
                    class(Unavailable, true)
                } else {
                    class(InvalidArgument, false)
                }
            }
        }
    }
}

impl Classify for crate::metrics::MetricsError {
    /// An address another process holds is a conflict the administrator resolves; one this
    /// user may not bind (a port below 1024) is a permission; any other is a wrong address.
    fn class(&self) -> Class {
        use crate::metrics::MetricsError as E;
        use std::io::ErrorKind as K;
        match self {
            E::Bind { source, .. } => match source.kind() {
                K::AddrInUse => class(ErrorCode::Conflict, false),
                K::PermissionDenied => class(ErrorCode::PermissionDenied, false),
                _ => class(ErrorCode::InvalidArgument, false),
            },
            E::Render(_) => class(ErrorCode::Internal, false),
        }
    }
}

impl Classify for crate::hooks::HookError {
    /// A hook that ran and failed reports a precondition that may hold later (a database busy,
    /// a mount missing): the attempt counts as failed and the queue retries it with back-off.
    /// A hook that cannot start is a mistake in the config file; retrying cannot fix it.
    fn class(&self) -> Class {
        use crate::hooks::HookError as E;
        match self {
            E::Spawn { .. } => class(ErrorCode::InvalidArgument, false),
            E::Failed { .. } | E::TimedOut { .. } | E::Stopped { .. } => {
                class(ErrorCode::Unavailable, true)
            }
        }
    }
}

impl Classify for crate::security::bindings::BindingError {
    fn class(&self) -> Class {
        use crate::security::bindings::BindingError as E;
        match self {
            E::TooStrong { .. } => class(ErrorCode::PermissionDenied, false),
            E::NeverNotAllowed { .. }
            | E::ZeroExpiry
            | E::BadRepo { .. }
            | E::TooManyRepos { .. } => class(ErrorCode::InvalidArgument, false),
            E::NotFound { .. } | E::NoneMatch { .. } => class(ErrorCode::NotFound, false),
            E::Declared { .. } | E::TooMany { .. } => class(ErrorCode::Conflict, false),
            E::State(e) => e.class(),
        }
    }
}

impl Classify for crate::security::file_crypt::FileCryptError {
    fn class(&self) -> Class {
        use crate::repo::sealed_file::SealedFileError as S;
        use crate::security::file_crypt::FileCryptError as E;
        use ErrorCode::*;
        match self {
            E::Descriptors { .. } | E::Descriptor { .. } | E::SameFile { .. } => {
                class(InvalidArgument, false)
            }
            E::Registry(e) => e.class(),
            E::Sealed { source, .. } => match source {
                // What the client passed is not (or no longer) a sound sealed file.
                S::NotSealed { .. }
                | S::UnknownFormat { .. }
                | S::NoMatchingKey
                | S::Truncated { .. }
                | S::Authentication { .. } => class(InvalidArgument, false),
                // The key that would open it is gone for good.
                S::Retired { .. } => class(NotFound, false),
                S::Read(e) | S::Write(e)
                    if matches!(
                        e.raw_os_error().map(nix::errno::Errno::from_raw),
                        Some(nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT)
                    ) =>
                {
                    class(NoSpace, false)
                }
                // The client's file cannot be read or written (a closed pipe, an I/O error).
                S::Read(_) | S::Write(_) => class(Unavailable, false),
                S::Stopped { .. } => class(Unavailable, true),
            },
        }
    }
}

/// The backend decided the kind (see `repo::backend`'s module doc); this is what it means.
impl Classify for BackendError {
    fn class(&self) -> Class {
        use ErrorCode::*;
        match self.kind {
            // The repository names its objects: one it asks for and does not find is lost
            // data, which `repo check` reports and no retry brings back.
            ErrorKind::NotFound => class(Internal, false),
            ErrorKind::Unreachable => class(Unavailable, true),
            // Nothing is wrong with the request or the repository: once space is freed the
            // same job succeeds, so it backs off and retries.
            ErrorKind::NoSpace => class(NoSpace, true),
            // A read-only mount or missing permissions: an admin must act first.
            ErrorKind::Denied => class(Unavailable, false),
            ErrorKind::Transient => class(Unavailable, true),
            ErrorKind::Permanent => class(Internal, false),
        }
    }
}

impl Classify for LockError {
    fn class(&self) -> Class {
        match self {
            Self::Busy { .. } => class(ErrorCode::Busy, true),
            // Writing the lock failed: that is about the storage, not about another holder.
            Self::Backend(b) => b.class(),
        }
    }
}

impl Classify for RepoError {
    fn class(&self) -> Class {
        use ErrorCode::*;
        match self {
            Self::NotEmpty { .. }
            | Self::NotARepository { .. }
            | Self::UnsupportedVersion { .. }
            | Self::WrongPassword { .. }
            | Self::NoKeys { .. } => class(InvalidArgument, false),
            Self::SnapshotNotFound { .. }
            | Self::AmbiguousSnapshot { .. }
            | Self::NoMatchingSnapshot { .. } => class(NotFound, false),
            Self::Lock(e) => e.class(),
            Self::Backend(b) => b.class(),
            Self::Unreachable { .. } => class(Unavailable, true),
            Self::MissingBlob { .. }
            | Self::DamagedBlob { .. }
            | Self::DamagedPack { .. }
            | Self::Corrupt { .. }
            | Self::NameMismatch { .. }
            | Self::KeyFile { .. } => class(Internal, false),
            // The repository's state, not the request, is what must change first.
            Self::LatestUnknown { .. } => class(Conflict, false),
        }
    }
}

impl Classify for RegistryError {
    fn class(&self) -> Class {
        use ErrorCode::*;
        match self {
            Self::Unknown { .. } | Self::None => class(NotFound, false),
            Self::Exists { .. }
            | Self::KeyFileTaken { .. }
            | Self::SameRepository { .. }
            | Self::InUse { .. }
            | Self::Declared { .. } => class(Conflict, false),
            Self::PasswordCommand { .. } | Self::SamePassphrase { .. } => {
                class(InvalidArgument, false)
            }
            Self::KeyNotFound { .. } => class(NotFound, false),
            Self::KeyAmbiguous { .. } => class(InvalidArgument, false),
            Self::LastKey { .. }
            | Self::DaemonKey { .. }
            | Self::KeyStillHeld { .. }
            | Self::KeyStillUsed { .. } => class(Conflict, false),
            Self::InvalidName(_) | Self::Location(_) | Self::Credentials(_) => {
                class(InvalidArgument, false)
            }
            Self::Repo(r) => r.class(),
            // The state directory is full: nothing was created (see `write_new_durably`).
            Self::KeyFile { source, .. }
                if matches!(
                    source.raw_os_error().map(nix::errno::Errno::from_raw),
                    Some(nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT)
                ) =>
            {
                class(NoSpace, true)
            }
            Self::KeyFile { .. } | Self::Password { .. } | Self::Corrupt { .. } => {
                class(Internal, false)
            }
            Self::State(e) => e.class(),
        }
    }
}

impl Classify for EngineError {
    fn class(&self) -> Class {
        use ErrorCode::*;
        match self {
            Self::Repo(r) => r.class(),
            Self::Exclude(_)
            | Self::Source { .. }
            | Self::Target { .. }
            | Self::ReadOnlyTarget { .. }
            | Self::InvalidArgument(_) => class(InvalidArgument, false),
            Self::NotInSnapshot { .. } => class(NotFound, false),
            Self::Cancelled => class(Unavailable, false),
            // Acting for a user is refused by the system, not by chance: retrying is no help.
            Self::Identity(_) => class(PermissionDenied, false),
            Self::Workers(_) => class(Internal, true),
        }
    }
}

impl Classify for StateError {
    fn class(&self) -> Class {
        // The database is locked by another process, or a write failed: both may pass.
        class(
            ErrorCode::Internal,
            matches!(self, Self::Locked { .. } | Self::Write { .. }),
        )
    }
}

impl Classify for SourceError {
    fn class(&self) -> Class {
        use ErrorCode::*;
        match self {
            Self::Exists(_) | Self::SamePath { .. } => class(Conflict, false),
            Self::Unknown(_) => class(NotFound, false),
            Self::State(e) => e.class(),
            Self::InvalidName(_) | Self::Path { .. } | Self::Invalid { .. } => {
                class(InvalidArgument, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::Cause;
    use crate::repo::Location;
    use ErrorCode::*;

    fn backend(kind: ErrorKind) -> BackendError {
        BackendError::new(
            kind,
            "read",
            "/r/data/ab/ab01".into(),
            Cause::Injected("test"),
        )
    }

    fn errno(e: nix::errno::Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(e as i32)
    }

    #[test]
    fn every_variant_has_one_class_and_wrappers_ask_what_they_wrap() {
        let repo = || Location::local("/r");
        let table: Vec<(Error, ErrorCode, bool)> = vec![
            // Backend kinds, as a job sees them (engine → repo → backend).
            (
                EngineError::Repo(backend(ErrorKind::NotFound).into()).into(),
                Internal,
                false,
            ),
            (
                EngineError::Repo(backend(ErrorKind::Unreachable).into()).into(),
                Unavailable,
                true,
            ),
            (
                EngineError::Repo(backend(ErrorKind::NoSpace).into()).into(),
                NoSpace,
                true,
            ),
            (
                EngineError::Repo(backend(ErrorKind::Denied).into()).into(),
                Unavailable,
                false,
            ),
            (
                EngineError::Repo(backend(ErrorKind::Transient).into()).into(),
                Unavailable,
                true,
            ),
            (
                EngineError::Repo(backend(ErrorKind::Permanent).into()).into(),
                Internal,
                false,
            ),
            // A full disk while writing the lock file is NoSpace, not Busy.
            (
                EngineError::Repo(RepoError::Lock(LockError::Backend(backend(
                    ErrorKind::NoSpace,
                ))))
                .into(),
                NoSpace,
                true,
            ),
            (
                RegistryError::Repo(backend(ErrorKind::NoSpace).into()).into(),
                NoSpace,
                true,
            ),
            (
                RegistryError::Repo(RepoError::Unreachable { location: repo() }).into(),
                Unavailable,
                true,
            ),
            (
                RegistryError::Repo(RepoError::WrongPassword { location: repo() }).into(),
                InvalidArgument,
                false,
            ),
            (
                RegistryError::Repo(RepoError::SnapshotNotFound {
                    prefix: "ab".into(),
                })
                .into(),
                NotFound,
                false,
            ),
            (
                RegistryError::Repo(RepoError::MissingBlob {
                    id: backupd_common::ids::BlobId([0; 32]),
                })
                .into(),
                Internal,
                false,
            ),
            (
                RegistryError::KeyFile {
                    action: "write",
                    path: "/s/keys/a.key".into(),
                    source: errno(nix::errno::Errno::ENOSPC),
                }
                .into(),
                NoSpace,
                true,
            ),
            (
                RegistryError::KeyFile {
                    action: "write",
                    path: "/s/keys/a.key".into(),
                    source: errno(nix::errno::Errno::EIO),
                }
                .into(),
                Internal,
                false,
            ),
            (
                RegistryError::KeyFileTaken { path: "/k".into() }.into(),
                Conflict,
                false,
            ),
            (
                RegistryError::Location(crate::repo::LocationError::Relative("r".into())).into(),
                InvalidArgument,
                false,
            ),
            (RegistryError::None.into(), NotFound, false),
            (EngineError::Cancelled.into(), Unavailable, false),
            (
                EngineError::InvalidArgument("x".into()).into(),
                InvalidArgument,
                false,
            ),
            (Error::ShuttingDown, Unavailable, true),
            (
                Error::RateLimited {
                    uid: 1,
                    retry_after: Duration::from_millis(5),
                },
                Busy,
                true,
            ),
            (
                Error::PlannedFailure {
                    attempt: 1,
                    retryable: true,
                },
                Unavailable,
                true,
            ),
            (
                Error::PlannedFailure {
                    attempt: 1,
                    retryable: false,
                },
                InvalidArgument,
                false,
            ),
            (Error::JobNotFound { id: 3 }, NotFound, false),
            (Error::Internal("bug".into()), Internal, false),
        ];
        for (e, code, retryable) in table {
            assert_eq!(e.class(), Class { code, retryable }, "{e}");
            assert_eq!(e.to_reply().code, code, "{e}");
            assert_eq!(e.is_retryable(), retryable, "{e}");
        }
    }

    #[test]
    fn sizes_in_messages_are_readable() {
        use crate::repo::backend::human_bytes;
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(8 << 20), "8.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
