//! Directory sync pairs (`sync ...`) and sync runs.

use super::{ms, path, source::watch_state, time};
use backupd_common::protocol::{SyncConflict, SyncInfo, SyncResult, SyncRun};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct PairView {
    pub name: String,
    pub src: String,
    pub dst: String,
    /// `mirror` or `two-way`.
    pub mode: &'static str,
    /// `newer`, `larger`, `local`, `remote`, `keep-both` or `manual`.
    pub strategy: &'static str,
    pub delete: bool,
    pub excludes: Vec<String>,
    pub watch: bool,
    pub debounce_ms: u64,
    pub schedule: Option<String>,
    pub every_ms: Option<u64>,
    /// The pair's own limit in bytes per second; null: none.
    pub bwlimit: Option<u64>,
    pub paused: bool,
    /// `starting`, `watching`, `periodic` or `not-watched`.
    pub state: &'static str,
    pub job: Option<u64>,
    pub last_run: Option<String>,
    pub last_run_ns: Option<i64>,
    /// `succeeded` or `failed`.
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub files: u64,
    pub conflicts: u64,
    /// The file being copied now.
    pub current: Option<CurrentView>,
    pub next_run: Option<String>,
    pub next_run_ns: Option<i64>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CurrentView {
    pub path: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl From<&SyncInfo> for PairView {
    fn from(i: &SyncInfo) -> Self {
        let s = &i.spec;
        Self {
            name: s.name.clone(),
            src: path(&s.src),
            dst: path(&s.dst),
            mode: s.mode.as_str(),
            strategy: s.strategy.as_str(),
            delete: s.delete,
            excludes: s.excludes.clone(),
            watch: s.watch,
            debounce_ms: ms(s.debounce),
            schedule: s.schedule.clone(),
            every_ms: s.every.map(ms),
            bwlimit: s.bwlimit,
            paused: i.paused,
            state: watch_state(i.state),
            job: i.job,
            last_run: i.last_run_ns.map(time),
            last_run_ns: i.last_run_ns,
            last_outcome: i.last_outcome.clone(),
            last_error: i.last_error.clone(),
            files: i.files,
            conflicts: i.conflicts,
            current: i.current.as_ref().map(|c| CurrentView {
                path: path(&c.path),
                bytes_done: c.bytes_done,
                bytes_total: c.bytes_total,
            }),
            next_run: i.next_run_ns.map(time),
            next_run_ns: i.next_run_ns,
            note: i.note.clone(),
        }
    }
}

/// What a run did (inside a `sync` job's result, and in `sync history`).
#[derive(Debug, Serialize)]
pub struct SyncResultView {
    pub pair: String,
    pub files_scanned: u64,
    pub files_copied: u64,
    pub bytes_copied: u64,
    pub bytes_resumed: u64,
    pub files_deleted: u64,
    pub conflicts: u64,
    pub conflicts_pending: u64,
    pub files_hashed: u64,
    pub duration_ms: u64,
    pub bytes_per_sec: u64,
    pub warnings: Vec<String>,
}

impl From<&SyncResult> for SyncResultView {
    fn from(r: &SyncResult) -> Self {
        Self {
            pair: r.pair.clone(),
            files_scanned: r.files_scanned,
            files_copied: r.files_copied,
            bytes_copied: r.bytes_copied,
            bytes_resumed: r.bytes_resumed,
            files_deleted: r.files_deleted,
            conflicts: r.conflicts,
            conflicts_pending: r.conflicts_pending,
            files_hashed: r.files_hashed,
            duration_ms: r.duration_ms,
            bytes_per_sec: r.bytes_per_sec,
            warnings: r.warnings.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub job: Option<u64>,
    pub started: String,
    pub finished: String,
    pub outcome: String,
    pub error: Option<String>,
    #[serde(flatten)]
    pub result: SyncResultView,
}

impl From<&SyncRun> for RunView {
    fn from(r: &SyncRun) -> Self {
        Self {
            job: r.job,
            started: time(r.started_ns),
            finished: time(r.finished_ns),
            outcome: r.outcome.clone(),
            error: r.error.clone(),
            result: SyncResultView::from(&r.result),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SideView {
    pub size: u64,
    pub mtime: String,
}

#[derive(Debug, Serialize)]
pub struct ConflictView {
    pub path: String,
    /// SRC's version; null: deleted there.
    pub local: Option<SideView>,
    /// DST's version; null: deleted there.
    pub remote: Option<SideView>,
    pub detected: String,
}

impl From<&SyncConflict> for ConflictView {
    fn from(c: &SyncConflict) -> Self {
        let side = |s: &Option<backupd_common::protocol::SideVersion>| {
            s.as_ref().map(|s| SideView {
                size: s.size,
                mtime: time(s.mtime_ns),
            })
        };
        Self {
            path: path(&c.path),
            local: side(&c.local),
            remote: side(&c.remote),
            detected: time(c.detected_ns),
        }
    }
}
