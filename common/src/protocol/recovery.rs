//! Recovery: drills that prove a snapshot restores, and the recovery objectives (RPO, RTO)
//! they and the snapshots measure: `backupctl recovery ...`. A drill is a queued job of kind
//! `drill` ([`DrillRequest`], answered by [`DrillResult`]); the requests here only read.

use super::{FitnessRequest, JobId, Permission, PlanRequest};
use serde::{Deserialize, Serialize};

/// The arguments of a `drill` job: restore a sample of the latest snapshot of a source (or of
/// a repository) into a scratch directory, verify it, measure the restore and delete it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillRequest {
    /// The repository (`None`: the source's, else the default one; pinned at submission).
    pub repo: Option<String>,
    /// The watched source whose latest snapshot is drilled; `None`: the repository's latest
    /// snapshot, whatever it holds.
    pub source: Option<String>,
    /// The share of the snapshot's files restored, in percent (0 < p ≤ 100); `None`:
    /// `[maintenance] drill_sample`.
    pub sample_percent: Option<f64>,
}

/// A file of the sample that did not come back as the snapshot (or the live file) has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillMismatch {
    /// The file's path in the snapshot (absolute), escaped as `--json` writes paths.
    pub path: String,
    pub reason: String,
}

/// What a drill did. `ok` is false when any sampled file failed to restore or did not match;
/// the job still succeeds (its result is the verdict), as a check that finds damage does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillResult {
    pub repo: String,
    pub source: Option<String>,
    /// The snapshot drilled (full id) and when it was taken.
    pub snapshot: String,
    pub snapshot_time_ns: i64,
    pub sample_percent: f64,
    /// Files and bytes in the whole snapshot.
    pub snapshot_files: u64,
    pub snapshot_bytes: u64,
    /// Files chosen for the sample.
    pub sampled_files: u64,
    /// What the restore wrote.
    pub files_restored: u64,
    pub bytes_restored: u64,
    /// Restored files whose content (blob hashes), size and mode matched the snapshot.
    pub verified: u64,
    /// Of those, files whose live copy was unchanged since the snapshot (same size and mtime)
    /// and compared equal byte for byte.
    pub live_compared: u64,
    /// Live files changed (or gone) since the snapshot: not compared, and not a mismatch.
    pub live_changed: u64,
    pub mismatches: Vec<DrillMismatch>,
    /// Time the restore took (the verification not included), and over the whole drill.
    pub restore_ms: u64,
    pub duration_ms: u64,
    /// Restore throughput measured: bytes and files per second of `restore_ms`.
    pub bytes_per_sec: u64,
    pub files_per_sec: f64,
    /// Restore time per GB (10^9 bytes) at that throughput; `None` when nothing was restored.
    pub rto_per_gb_ms: Option<u64>,
    pub ok: bool,
    /// What else the drill has to say (files it could not sample, the scratch directory).
    pub notes: Vec<String>,
}

/// `backupctl recovery ...` requests (drills and running plans are jobs). None is streamed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RecoveryRequest {
    /// -> [`super::Response::Objectives`]: per source RPO and RTO, achieved and targeted.
    Objectives,
    /// -> [`super::Response::Fitness`]: the scored snapshots, best first.
    Fitness(FitnessRequest),
    /// -> [`super::Response::Selection`].
    Select(FitnessRequest),
    /// Works out and stores a plan (nothing on disk changes) ->
    /// [`super::Response::RecoveryPlan`], or `NotFound` when no snapshot qualifies.
    Plan(Box<PlanRequest>),
    /// -> [`super::Response::RecoveryPlan`].
    Status { plan: String },
    /// -> [`super::Response::RecoveryPlans`], newest first.
    List,
}

impl RecoveryRequest {
    pub fn permission(&self) -> Permission {
        match self {
            Self::Objectives
            | Self::Fitness(_)
            | Self::Select(_)
            | Self::Status { .. }
            | Self::List => Permission::SnapshotList,
            // A plan names a target the daemon will replace as root.
            Self::Plan(_) => Permission::RestoreAny,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Objectives => "recovery objectives",
            Self::Fitness(_) => "recovery fitness",
            Self::Select(_) => "recovery select",
            Self::Plan(_) => "recovery plan",
            Self::Status { .. } => "recovery status",
            Self::List => "recovery list",
        }
    }
}

/// The restore throughput an RTO estimate uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputInfo {
    pub bytes_per_sec: u64,
    pub files_per_sec: f64,
    /// Finished restores and drills it was measured from (0: assumed).
    pub samples: u32,
    pub measured: bool,
    /// How it was obtained, e.g. "median of 4 restores and drills" or "no measurement;
    /// assumed 50 MB/s".
    pub note: String,
}

/// The last drill of a source, as the daemon keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillSummary {
    pub job: JobId,
    pub time_ns: i64,
    pub ok: bool,
    pub snapshot: Option<String>,
    pub sampled_files: u64,
    pub bytes_restored: u64,
    pub mismatches: u64,
    pub rto_per_gb_ms: Option<u64>,
    /// Why it failed (the first mismatch, or the job's error).
    pub error: Option<String>,
}

/// One source's recovery objectives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceObjectives {
    pub name: String,
    pub repo: Option<String>,
    /// The newest snapshot of the source in its repository.
    pub last_snapshot: Option<String>,
    pub last_snapshot_ns: Option<i64>,
    /// RPO achieved: the age of that snapshot (`None`: there is none).
    pub rpo_ms: Option<u64>,
    /// The oldest the newest snapshot was at any moment of the last 30 days (up to now).
    pub worst_gap_ms: Option<u64>,
    pub rpo_target_ms: u64,
    /// The newest snapshot is younger than the target.
    pub rpo_met: bool,
    /// Over the last 30 days the worst gap stayed within the target.
    pub worst_gap_met: bool,
    /// What restoring the newest snapshot means: its files and bytes.
    pub snapshot_files: Option<u64>,
    pub snapshot_bytes: Option<u64>,
    /// Estimated restore time of that snapshot at the measured throughput.
    pub rto_estimate_ms: Option<u64>,
    pub rto_target_ms: u64,
    /// The estimate is within the target (false without a snapshot to estimate).
    pub rto_met: bool,
    pub last_drill: Option<DrillSummary>,
    /// Why something could not be measured (the repository did not open).
    pub note: Option<String>,
}

/// `recovery objectives`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Objectives {
    pub time_ns: i64,
    pub throughput: ThroughputInfo,
    pub sources: Vec<SourceObjectives>,
}

/// Reads a sample share as users write it: `1%`, `0.5%`, `100%` or a bare number of percent.
pub fn parse_sample(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let digits = t.strip_suffix('%').unwrap_or(t).trim();
    match digits.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!(
            "{text:?} is not a share of the files: give a percentage above 0 and at most 100 \
             (`1%`, `0.5%`, `100%`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_sample;

    #[test]
    fn sample_shares_parse_as_percentages_and_bad_ones_say_why() {
        assert_eq!(parse_sample("1%"), Ok(1.0));
        assert_eq!(parse_sample(" 0.5 % "), Ok(0.5));
        assert_eq!(parse_sample("100"), Ok(100.0));
        for bad in ["0%", "101%", "-1", "x", "", "NaN%"] {
            assert!(parse_sample(bad).is_err(), "{bad}");
        }
    }
}
