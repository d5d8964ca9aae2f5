//! Operations over a repository: backup, restore, check, forget/prune. Each takes the open
//! repository, its options, a [`progress::Progress`] to update and a cancellation token it
//! checks at safe points (between files, between packs). All of it blocks: callers run it on
//! a blocking thread. Never sees a socket.

pub mod adopt;
pub mod backup;
pub mod check;
pub mod chunker;
pub mod dirfd;
pub mod excludes;
pub mod forget;
pub mod fsmeta;
pub mod incremental;
pub mod leftovers;
pub mod progress;
pub mod rebuild;
pub mod restore;
pub mod sources;
pub mod stats;

use crate::repo::RepoError;

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
}

impl From<crate::repo::backend::BackendError> for EngineError {
    fn from(e: crate::repo::backend::BackendError) -> Self {
        Self::Repo(e.into())
    }
}
