//! `repo replicate add|list|remove` and the `replicate` job's result.

use super::{ms, time};
use backupd_common::protocol::{ReplicaTrigger, ReplicateResult, ReplicationInfo};
use serde::Serialize;

/// One replication and how far its replica is behind.
#[derive(Debug, Serialize)]
pub struct ReplicationView {
    pub from: String,
    pub to: String,
    /// `manual`, `after-each-snapshot`, `schedule` or `every`.
    pub trigger: &'static str,
    /// The calendar schedule (`trigger` = `schedule`).
    pub schedule: Option<String>,
    /// The interval (`trigger` = `every`).
    pub every_ms: Option<u64>,
    pub verify: bool,
    pub mirror_forget: bool,
    /// Bytes per second.
    pub bwlimit: Option<u64>,
    pub max_lag_ms: u64,
    pub created: String,
    pub last_run: Option<String>,
    pub last_success: Option<String>,
    pub last_job: Option<u64>,
    pub last_error: Option<String>,
    pub snapshots_behind: Option<u64>,
    pub lag_ms: Option<u64>,
    pub over_lag: bool,
}

impl From<&ReplicationInfo> for ReplicationView {
    fn from(i: &ReplicationInfo) -> Self {
        let (trigger, schedule, every_ms) = match &i.spec.trigger {
            ReplicaTrigger::Manual => ("manual", None, None),
            ReplicaTrigger::AfterEachSnapshot => ("after-each-snapshot", None, None),
            ReplicaTrigger::Schedule(s) => ("schedule", Some(s.clone()), None),
            ReplicaTrigger::Every(d) => ("every", None, Some(ms(*d))),
        };
        Self {
            from: i.spec.from.clone(),
            to: i.spec.to.clone(),
            trigger,
            schedule,
            every_ms,
            verify: i.spec.verify,
            mirror_forget: i.spec.mirror_forget,
            bwlimit: i.spec.bwlimit,
            max_lag_ms: ms(i.max_lag),
            created: time(i.created_ns),
            last_run: i.last_run_ns.map(time),
            last_success: i.last_success_ns.map(time),
            last_job: i.last_job,
            last_error: i.last_error.clone(),
            snapshots_behind: i.snapshots_behind,
            lag_ms: i.lag.map(ms),
            over_lag: i.over_lag,
        }
    }
}

/// What a `replicate` job did.
#[derive(Debug, Serialize)]
pub struct ReplicateView {
    pub from: String,
    pub to: String,
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    pub snapshots_forgotten: u64,
    pub blobs_copied: u64,
    pub blobs_present: u64,
    pub blobs_resealed: u64,
    pub packs_copied: u64,
    pub packs_written: u64,
    pub packs_adopted: u64,
    pub packs_verified: u64,
    pub index_files_written: u64,
    pub bytes_written: u64,
    pub duration_ms: u64,
}

impl From<&ReplicateResult> for ReplicateView {
    fn from(r: &ReplicateResult) -> Self {
        Self {
            from: r.from.clone(),
            to: r.to.clone(),
            snapshots_copied: r.snapshots_copied,
            snapshots_present: r.snapshots_present,
            snapshots_forgotten: r.snapshots_forgotten,
            blobs_copied: r.blobs_copied,
            blobs_present: r.blobs_present,
            blobs_resealed: r.blobs_resealed,
            packs_copied: r.packs_copied,
            packs_written: r.packs_written,
            packs_adopted: r.packs_adopted,
            packs_verified: r.packs_verified,
            index_files_written: r.index_files_written,
            bytes_written: r.bytes_written,
            duration_ms: ms(r.duration),
        }
    }
}
