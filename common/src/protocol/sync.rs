//! Directory sync pairs: `backupctl sync ...`. A pair keeps DST equal to SRC (`mirror`) or
//! both equal to each other (`two-way`); each run is a job of kind `sync` ([`SyncRunRequest`]).

use super::{JobId, Permission, WatchState};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// DST follows SRC; changes made on DST are overwritten.
    #[default]
    Mirror,
    /// Changes flow both ways; a file changed on both sides is a conflict.
    TwoWay,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mirror => "mirror",
            Self::TwoWay => "two-way",
        }
    }
}

/// How a two-way conflict is decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncStrategy {
    /// The side with the later mtime wins (SRC on a tie).
    #[default]
    Newer,
    /// The larger file wins (SRC on a tie).
    Larger,
    /// SRC wins.
    Local,
    /// DST wins.
    Remote,
    /// SRC wins; DST's version is kept beside it as `NAME.conflict-HOST-TIME`.
    KeepBoth,
    /// Nothing is decided: listed by `sync conflicts`, settled with `sync resolve`.
    Manual,
}

impl SyncStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newer => "newer",
            Self::Larger => "larger",
            Self::Local => "local",
            Self::Remote => "remote",
            Self::KeepBoth => "keep-both",
            Self::Manual => "manual",
        }
    }
}

/// A pair as configured (and persisted by the daemon).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSpec {
    pub name: String,
    /// Absolute paths, raw bytes.
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    pub mode: SyncMode,
    pub strategy: SyncStrategy,
    /// Propagate deletions (into the other side's `.backupd-trash/`).
    pub delete: bool,
    pub excludes: Vec<String>,
    /// Watch SRC (and, two-way, DST) with inotify and sync after `debounce`.
    pub watch: bool,
    pub debounce: Duration,
    /// A calendar schedule (as `source add --schedule`).
    pub schedule: Option<String>,
    /// A plain interval between runs.
    pub every: Option<Duration>,
    /// The pair's own limit in bytes per second (the global `[sync] bwlimit` applies as well).
    pub bwlimit: Option<u64>,
}

/// The transfer in progress, for `sync show` and progress events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCurrent {
    pub path: Vec<u8>,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncInfo {
    pub spec: SyncSpec,
    pub paused: bool,
    pub state: WatchState,
    /// The sync job queued or running for the pair.
    pub job: Option<JobId>,
    pub last_run_ns: Option<i64>,
    /// `succeeded` or `failed`.
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    /// Files the pair's state knows.
    pub files: u64,
    /// Conflicts waiting for `sync resolve`.
    pub conflicts: u64,
    pub current: Option<SyncCurrent>,
    pub next_run_ns: Option<i64>,
    pub note: Option<String>,
}

/// The arguments of a `sync` job: one run of a pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRunRequest {
    pub pair: String,
}

/// What a sync run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncResult {
    pub pair: String,
    pub files_scanned: u64,
    pub files_copied: u64,
    pub bytes_copied: u64,
    /// Bytes of interrupted transfers that were not copied again.
    pub bytes_resumed: u64,
    /// Files moved into a trash.
    pub files_deleted: u64,
    /// Conflicts met this run (decided by the strategy, or left for `sync resolve`).
    pub conflicts: u64,
    pub conflicts_pending: u64,
    /// Files hashed because their metadata changed.
    pub files_hashed: u64,
    pub duration_ms: u64,
    /// `bytes_copied` per second of the run.
    pub bytes_per_sec: u64,
    /// Problems with single files (the run went on).
    pub warnings: Vec<String>,
}

/// One run in `sync history`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub job: Option<JobId>,
    pub started_ns: i64,
    pub finished_ns: i64,
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub result: SyncResult,
}

/// One side's version of a conflicting file (`None` in [`SyncConflict`]: deleted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideVersion {
    pub size: u64,
    pub mtime_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConflict {
    pub path: Vec<u8>,
    pub local: Option<SideVersion>,
    pub remote: Option<SideVersion>,
    pub detected_ns: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Take {
    /// SRC's version (or its deletion) wins.
    Local,
    Remote,
    /// SRC's version wins; DST's is kept beside it as `NAME.conflict-HOST-TIME`.
    Both,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// -> `Response::SyncPair`; the first run is queued at once.
    Add(Box<SyncSpec>),
    /// -> `Response::SyncPairs`.
    List,
    /// -> `Response::SyncPair`.
    Show {
        name: String,
    },
    /// -> `Response::SyncPair` (as it was); both trees stay as they are.
    Remove {
        name: String,
    },
    /// Stops watching and scheduled runs -> `Response::SyncPair`.
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// -> `Response::SyncHistory`, newest first.
    History {
        name: String,
        limit: u32,
    },
    /// -> `Response::SyncConflicts`.
    Conflicts {
        name: String,
    },
    /// Settles a conflict of a pair with `--strategy manual`; the file is synced at the next
    /// run, which is queued -> `Response::SyncConflicts` (those left).
    Resolve {
        name: String,
        path: Vec<u8>,
        take: Take,
    },
}

impl SyncRequest {
    pub fn permission(&self) -> Permission {
        match self {
            Self::List | Self::Show { .. } | Self::History { .. } | Self::Conflicts { .. } => {
                Permission::SyncRead
            }
            Self::Add(_)
            | Self::Remove { .. }
            | Self::Pause { .. }
            | Self::Resume { .. }
            | Self::Resolve { .. } => Permission::SyncManage,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Add(_) => "sync add",
            Self::List => "sync list",
            Self::Show { .. } => "sync show",
            Self::Remove { .. } => "sync remove",
            Self::Pause { .. } => "sync pause",
            Self::Resume { .. } => "sync resume",
            Self::History { .. } => "sync history",
            Self::Conflicts { .. } => "sync conflicts",
            Self::Resolve { .. } => "sync resolve",
        }
    }
}
