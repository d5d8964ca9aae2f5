//! Watched sources: directories the daemon backs up continuously.

use super::{JobId, Permission};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A source as configured (and persisted by the daemon).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpec {
    pub name: String,
    /// Absolute path, raw bytes.
    pub path: Vec<u8>,
    /// Repository name; `None`: the default one.
    pub repo: Option<String>,
    pub excludes: Vec<String>,
    /// Watch with inotify; without it the source is only scanned every `rescan_every`.
    pub watch: bool,
    /// Quiet time after the last change before a backup is queued.
    pub debounce: Duration,
    /// Longest time a change waits for a backup under continuous churn.
    pub max_delay: Duration,
    /// A full (metadata-only) scan this often, as a backstop.
    pub rescan_every: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchState {
    /// Setting up watches.
    Starting,
    Watching,
    /// inotify is unavailable or its limit is reached: periodic scans only (see `note`).
    Periodic,
    /// `--no-watch`: periodic scans only.
    NotWatched,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub spec: SourceSpec,
    /// Added with `backupd --watch` for this run only.
    pub transient: bool,
    pub state: WatchState,
    pub dirs_watched: u64,
    /// Changed paths waiting for the next backup.
    pub pending_paths: u64,
    /// The backup job queued or running for this source.
    pub job: Option<JobId>,
    pub last_snapshot: Option<String>,
    pub last_snapshot_ns: Option<i64>,
    /// From the first change of the last batch to its snapshot being committed.
    pub last_latency_ms: Option<u64>,
    pub scans: u64,
    pub incremental_backups: u64,
    /// Why the source is not (fully) watched, and what to do.
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceRequest {
    /// -> `Response::Source`; the first backup is queued at once.
    Add(SourceSpec),
    /// -> `Response::Sources`.
    List,
    /// -> `Response::Source` (as it was); its snapshots stay.
    Remove { name: String },
}

impl SourceRequest {
    pub fn permission(&self) -> Permission {
        match self {
            Self::Add(_) | Self::Remove { .. } => Permission::SourceManage,
            Self::List => Permission::SourceRead,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Add(_) => "source add",
            Self::List => "source list",
            Self::Remove { .. } => "source remove",
        }
    }
}
