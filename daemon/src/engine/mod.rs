//! Operations over a repository: backup, restore, check, forget/prune. Each takes the open
//! repository, its options, a [`progress::Progress`] to update and a cancellation token it
//! checks at safe points (between files, between packs). All of it blocks: callers run it on
//! a blocking thread. Never sees a socket.

pub mod adopt;
pub mod backup;
pub mod browse;
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
mod pack_buffers;
pub mod progress;
pub mod rebuild;
pub mod reencrypt;
pub mod replicate;
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

/// How a background job's engine threads run: how many, and at which CPU and I/O priority
/// (the tuner's `threads`, `nice` and `io_class`). `None` where a job runs on the shared pool
/// at the daemon's own priority (restores: someone is waiting for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lane {
    pub threads: usize,
    pub nice: i32,
    pub io: backupd_common::protocol::IoClass,
}

/// Pools kept for lanes. Few lanes exist at once (the tuner moves one step per round); the
/// oldest beyond this is dropped and its threads end once its last job does.
const LANE_POOLS: usize = 6;

fn lane_pool(lane: Lane) -> Result<Arc<rayon::ThreadPool>, EngineError> {
    static POOLS: std::sync::Mutex<Vec<(Lane, Arc<rayon::ThreadPool>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, pool)) = pools.iter().find(|(l, _)| *l == lane) {
        return Ok(pool.clone());
    }
    let pool = Arc::new(build_pool("engine-bg", lane.threads, Some(lane), None)?);
    if pools.len() >= LANE_POOLS {
        pools.remove(0);
    }
    pools.push((lane, pool.clone()));
    Ok(pool)
}

fn build_pool(
    name: &'static str,
    threads: usize,
    lane: Option<Lane>,
    identity: Option<Arc<FsIdentity>>,
) -> Result<rayon::ThreadPool, EngineError> {
    let own = rayon::ThreadPoolBuilder::new()
        .thread_name(move |i| format!("{name}-{i}"))
        .stack_size(WORKER_STACK)
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| EngineError::Workers(e.to_string()))?;
    // `broadcast` runs once on every thread of the pool and waits for all of them.
    for done in own.broadcast(|_| -> Result<(), EngineError> {
        if let Some(lane) = lane {
            // A priority that cannot be set (a container without the capability) costs the
            // machine some responsiveness, not the backup: log and go on.
            if let Err(e) = crate::perf::priority::apply_to_this_thread(lane.nice, lane.io) {
                tracing::debug!(error = %e, "cannot set an engine thread's priority");
            }
        }
        if let Some(identity) = &identity {
            fsid::become_user(identity)?;
        }
        Ok(())
    }) {
        done?;
    }
    Ok(own)
}

/// Runs `work` on the engine's workers: the shared pool, or the pool of `lane` for a
/// background job; for a job acting for a user, a pool of its own whose every thread has
/// switched to the user's file-system identity before `work` starts (a shared worker would
/// carry one job's identity into another's tasks). Such a pool ends with the job.
pub fn on_workers<R: Send>(
    identity: Option<&Arc<FsIdentity>>,
    lane: Option<Lane>,
    work: impl FnOnce() -> Result<R, EngineError> + Send,
) -> Result<R, EngineError> {
    match (identity, lane) {
        (None, None) => pool().install(work),
        (None, Some(lane)) => lane_pool(lane)?.install(work),
        (Some(identity), lane) => {
            let threads = lane.map_or(pool().current_num_threads(), |l| l.threads);
            build_pool("engine-user", threads, lane, Some(identity.clone()))?.install(work)
        }
    }
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
