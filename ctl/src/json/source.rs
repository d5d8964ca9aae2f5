//! Watched sources.

use super::{ms, path, time};
use backupd_common::protocol::{SourceInfo, WatchState};
use serde::Serialize;

pub fn watch_state(s: WatchState) -> &'static str {
    match s {
        WatchState::Starting => "starting",
        WatchState::Watching => "watching",
        WatchState::Periodic => "periodic",
        WatchState::NotWatched => "not-watched",
    }
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    pub name: String,
    pub path: String,
    pub repo: Option<String>,
    pub excludes: Vec<String>,
    pub watch: bool,
    pub debounce_ms: u64,
    pub max_delay_ms: u64,
    pub rescan_every_ms: u64,
    /// Added with `backupd --watch` for this run only.
    pub transient: bool,
    pub state: &'static str,
    pub dirs_watched: u64,
    pub pending_paths: u64,
    pub job: Option<u64>,
    pub last_snapshot: Option<String>,
    pub last_snapshot_time: Option<String>,
    pub last_snapshot_ns: Option<i64>,
    pub last_latency_ms: Option<u64>,
    pub scans: u64,
    pub incremental_backups: u64,
    pub note: Option<String>,
}

impl From<&SourceInfo> for SourceView {
    fn from(s: &SourceInfo) -> Self {
        Self {
            name: s.spec.name.clone(),
            path: path(&s.spec.path),
            repo: s.spec.repo.clone(),
            excludes: s.spec.excludes.clone(),
            watch: s.spec.watch,
            debounce_ms: ms(s.spec.debounce),
            max_delay_ms: ms(s.spec.max_delay),
            rescan_every_ms: ms(s.spec.rescan_every),
            transient: s.transient,
            state: watch_state(s.state),
            dirs_watched: s.dirs_watched,
            pending_paths: s.pending_paths,
            job: s.job,
            last_snapshot: s.last_snapshot.clone(),
            last_snapshot_time: s.last_snapshot_ns.map(time),
            last_snapshot_ns: s.last_snapshot_ns,
            last_latency_ms: s.last_latency_ms,
            scans: s.scans,
            incremental_backups: s.incremental_backups,
            note: s.note.clone(),
        }
    }
}
