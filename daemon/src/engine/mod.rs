//! Operations over a repository: backup, restore, check, forget/prune. Each takes the open
//! repository, its options, a [`progress::Progress`] to update and a cancellation token it
//! checks at safe points (between files, between packs). All of it blocks: callers run it on
//! a blocking thread. Never sees a socket.

pub mod adopt;
pub mod backup;
pub mod check;
pub mod chunker;
pub mod compact;
pub mod dirfd;
pub mod excludes;
pub mod forget;
pub mod fsmeta;
pub mod incremental;
pub mod key_usage;
pub mod leftovers;
pub mod progress;
pub mod rebuild;
pub mod reencrypt;
pub mod restore;
pub mod sources;
pub mod stats;

use crate::repo::RepoError;
use crate::security::fsid::{self, FsIdentity};
use std::sync::Arc;

/// Stack of each engine worker thread. The backup walk recurses once per directory level (up
/// to [`backup::MAX_DEPTH`]); only the pages actually used are ever committed.
const WORKER_STACK: usize = 64 << 20;

/// The thread pool backup and restore run their parallel work on (rayon's global pool has
/// 2 MiB stacks, too small for deep trees).
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("engine-{i}"))
            .stack_size(WORKER_STACK)
            .build()
            // Only fails when threads cannot be spawned at all; then nothing could run.
            .unwrap_or_else(|e| panic!("cannot start the engine's worker threads: {e}"))
    })
}

/// Runs `work` on the engine's workers: the shared pool for the daemon's own jobs; for a job
/// acting for a user, a pool of its own whose every thread has switched to the user's
/// file-system identity before `work` starts (a shared worker would carry one job's identity
/// into another's tasks). Such a pool ends with the job.
pub fn on_workers<R: Send>(
    identity: Option<&Arc<FsIdentity>>,
    work: impl FnOnce() -> Result<R, EngineError> + Send,
) -> Result<R, EngineError> {
    let Some(identity) = identity else {
        return pool().install(work);
    };
    let own = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("engine-user-{i}"))
        .stack_size(WORKER_STACK)
        .num_threads(pool().current_num_threads())
        .build()
        .map_err(|e| EngineError::Workers(e.to_string()))?;
    // `broadcast` runs once on every thread of the pool and waits for all of them.
    for switched in own.broadcast(|_| fsid::become_user(identity)) {
        switched?;
    }
    own.install(work)
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Exclude(#[from] excludes::ExcludeError),
    #[error("{path}: {reason}")]
    Source { path: String, reason: String },
    #[error("restore target {path}: {reason}")]
    Target { path: String, reason: String },
    #[error(
        "restore target {path} is on a read-only file system. Under the systemd unit, \
         `ProtectSystem=strict` leaves only /var/lib/backupd writable: restore there (leave out \
         --target to restore into /var/lib/backupd/restore/<snapshot>), or allow the target with \
         a `ReadWritePaths=` drop-in (docs/OPERATIONS.md, \"Restoring under systemd\")"
    )]
    ReadOnlyTarget { path: String },
    #[error("path {path:?} is not in snapshot {snapshot}")]
    NotInSnapshot { path: String, snapshot: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Identity(#[from] crate::security::fsid::FsIdError),
    #[error("cannot start worker threads for a job acting for a user: {0}")]
    Workers(String),
}

impl From<crate::repo::backend::BackendError> for EngineError {
    fn from(e: crate::repo::backend::BackendError) -> Self {
        Self::Repo(e.into())
    }
}
