//! The last recovery drill of a source (or of a repository drilled as a whole), as stored in
//! tree `drills` (key `source/NAME` or `repo/NAME`): when, on which snapshot, and its verdict.

use super::versioned;
use backupd_common::protocol::DrillSummary;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    pub v: u32,
    pub job: u64,
    /// When it finished (ns since the epoch).
    pub time_ns: i64,
    /// The sample came back as the snapshot has it.
    pub ok: bool,
    pub repo: Option<String>,
    pub snapshot: Option<String>,
    pub sampled_files: u64,
    pub bytes_restored: u64,
    pub mismatches: u64,
    pub rto_per_gb_ms: Option<u64>,
    /// The first mismatch, or the error that stopped the drill.
    pub error: Option<String>,
}

versioned!(DrillRecord, 1);

impl From<DrillRecord> for DrillSummary {
    fn from(r: DrillRecord) -> Self {
        let DrillRecord {
            v: _,
            job,
            time_ns,
            ok,
            repo: _,
            snapshot,
            sampled_files,
            bytes_restored,
            mismatches,
            rto_per_gb_ms,
            error,
        } = r;
        Self {
            job,
            time_ns,
            ok,
            snapshot,
            sampled_files,
            bytes_restored,
            mismatches,
            rto_per_gb_ms,
            error,
        }
    }
}
