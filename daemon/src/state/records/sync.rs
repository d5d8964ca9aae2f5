//! Directory sync as stored: pairs in tree `sync_pairs` (key: name), and per pair its
//! interrupted transfers (`sync_partial/NAME`), conflicts (`sync_conflicts/NAME`) and runs
//! (`sync_history/NAME`). The per-file state (`sync_files/NAME`) is hot (read whole at every
//! run) and has its own compact encoding in `crate::sync::store`.

use super::{legacy_version, versioned};
use backupd_common::protocol::{
    SideVersion, SyncConflict, SyncMode, SyncResult, SyncRun, SyncSpec, SyncStrategy,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPairRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub name: String,
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    /// `mirror` or `two-way`.
    pub mode: String,
    /// `newer`, `larger`, `local`, `remote`, `keep-both` or `manual`.
    pub strategy: String,
    pub delete: bool,
    pub excludes: Vec<String>,
    pub watch: bool,
    pub debounce_ms: u64,
    pub schedule: Option<String>,
    pub every_ms: Option<u64>,
    pub bwlimit: Option<u64>,
    #[serde(default)]
    pub paused: bool,
}

versioned!(SyncPairRecord, 1);

fn mode_of(text: &str) -> SyncMode {
    match text {
        "two-way" => SyncMode::TwoWay,
        _ => SyncMode::Mirror,
    }
}

fn strategy_of(text: &str) -> SyncStrategy {
    match text {
        "larger" => SyncStrategy::Larger,
        "local" => SyncStrategy::Local,
        "remote" => SyncStrategy::Remote,
        "keep-both" => SyncStrategy::KeepBoth,
        "manual" => SyncStrategy::Manual,
        _ => SyncStrategy::Newer,
    }
}

impl SyncPairRecord {
    pub fn new(spec: &SyncSpec, paused: bool) -> Self {
        let SyncSpec {
            name,
            src,
            dst,
            mode,
            strategy,
            delete,
            excludes,
            watch,
            debounce,
            schedule,
            every,
            bwlimit,
        } = spec.clone();
        Self {
            v: 1,
            name,
            src,
            dst,
            mode: mode.as_str().to_owned(),
            strategy: strategy.as_str().to_owned(),
            delete,
            excludes,
            watch,
            debounce_ms: debounce.as_millis() as u64,
            schedule,
            every_ms: every.map(|e| e.as_millis() as u64),
            bwlimit,
            paused,
        }
    }

    pub fn spec(&self) -> SyncSpec {
        SyncSpec {
            name: self.name.clone(),
            src: self.src.clone(),
            dst: self.dst.clone(),
            mode: mode_of(&self.mode),
            strategy: strategy_of(&self.strategy),
            delete: self.delete,
            excludes: self.excludes.clone(),
            watch: self.watch,
            debounce: Duration::from_millis(self.debounce_ms),
            schedule: self.schedule.clone(),
            every: self.every_ms.map(Duration::from_millis),
            bwlimit: self.bwlimit,
        }
    }
}

/// One side's stamp as stored with a transfer or a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampRecord {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

/// A transfer that did not finish: resumed from `chunks.len()` chunks when the source is
/// still the same (`source`) and the temporary still holds them (each chunk's SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    /// The temporary's name in the target's directory.
    pub temp: Vec<u8>,
    pub source: StampRecord,
    /// Hex SHA-256 of each chunk written and synced.
    pub chunks: Vec<String>,
    pub chunk_size: u64,
}

versioned!(PartialRecord, 1);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub local: Option<(u64, i64)>,
    pub remote: Option<(u64, i64)>,
    pub detected_ns: i64,
    /// Set by `sync resolve`: `local`, `remote` or `both`; applied by the next run.
    #[serde(default)]
    pub take: Option<String>,
}

versioned!(ConflictRecord, 1);

impl ConflictRecord {
    pub fn info(&self, path: Vec<u8>) -> SyncConflict {
        let side = |s: Option<(u64, i64)>| s.map(|(size, mtime_ns)| SideVersion { size, mtime_ns });
        SyncConflict {
            path,
            local: side(self.local),
            remote: side(self.remote),
            detected_ns: self.detected_ns,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub job: Option<u64>,
    pub started_ns: i64,
    pub finished_ns: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub files_scanned: u64,
    pub files_copied: u64,
    pub bytes_copied: u64,
    pub bytes_resumed: u64,
    pub files_deleted: u64,
    pub conflicts: u64,
    pub conflicts_pending: u64,
    pub files_hashed: u64,
    pub duration_ms: u64,
}

versioned!(RunRecord, 1);

impl RunRecord {
    pub fn new(
        job: Option<u64>,
        started_ns: i64,
        finished_ns: i64,
        r: &Result<SyncResult, String>,
    ) -> Self {
        let empty = SyncResult::default();
        let (outcome, error, res) = match r {
            Ok(res) => ("succeeded", None, res),
            Err(e) => ("failed", Some(e.clone()), &empty),
        };
        Self {
            v: 1,
            job,
            started_ns,
            finished_ns,
            outcome: outcome.to_owned(),
            error,
            files_scanned: res.files_scanned,
            files_copied: res.files_copied,
            bytes_copied: res.bytes_copied,
            bytes_resumed: res.bytes_resumed,
            files_deleted: res.files_deleted,
            conflicts: res.conflicts,
            conflicts_pending: res.conflicts_pending,
            files_hashed: res.files_hashed,
            duration_ms: res.duration_ms,
        }
    }

    pub fn info(&self, pair: &str) -> SyncRun {
        let secs = (self.duration_ms as f64 / 1000.0).max(0.001);
        SyncRun {
            job: self.job,
            started_ns: self.started_ns,
            finished_ns: self.finished_ns,
            outcome: self.outcome.clone(),
            error: self.error.clone(),
            result: SyncResult {
                pair: pair.to_owned(),
                files_scanned: self.files_scanned,
                files_copied: self.files_copied,
                bytes_copied: self.bytes_copied,
                bytes_resumed: self.bytes_resumed,
                files_deleted: self.files_deleted,
                conflicts: self.conflicts,
                conflicts_pending: self.conflicts_pending,
                files_hashed: self.files_hashed,
                duration_ms: self.duration_ms,
                bytes_per_sec: (self.bytes_copied as f64 / secs) as u64,
                warnings: Vec::new(),
            },
        }
    }
}
