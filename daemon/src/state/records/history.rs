//! One finished job in tree `history`: flat fields, so that listing and analysing the history
//! never decodes job arguments or results. Built from the job's record when it reaches a final
//! state; the stats are pulled out of its result here, once.

use super::job::{code_of, job_state, JobRecord, StateRecord};
use super::{legacy_version, versioned};
use backupd_common::protocol::{HistoryEntry, Response};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub id: u64,
    pub kind: String,
    pub repo: Option<String>,
    pub source: Option<String>,
    pub outcome: StateRecord,
    /// The error code's name (see `job::code_name`).
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub attempts: u32,
    pub submitted_ns: i64,
    pub finished_ns: i64,
    pub duration_ms: u64,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
    pub compression_ratio: Option<f64>,
    pub snapshot: Option<String>,
    /// A backup's new and changed files (`files` is every file its snapshot holds); 0 in
    /// entries written before it was kept.
    #[serde(default)]
    pub files_read: u64,
    /// What a backup's snapshot holds, in bytes.
    #[serde(default)]
    pub bytes_total: u64,
}

versioned!(HistoryRecord, 1);

/// Longest error message kept in the history; the job record keeps the whole one while the
/// live queue retains it.
const ERROR_CHARS: usize = 500;

impl HistoryRecord {
    /// The history entry of a job in a final state; `None` for one still in the queue's hands.
    pub fn of(job: &JobRecord) -> Option<Self> {
        if !matches!(
            job.state,
            StateRecord::Succeeded
                | StateRecord::DeadLetter
                | StateRecord::Cancelled
                | StateRecord::TimedOut
        ) {
            return None;
        }
        let finished_ns = job
            .finished_ns
            .or_else(|| job.attempts.last().and_then(|a| a.finished_ns))
            .unwrap_or(job.submitted_ns);
        let run_ns: i64 = job
            .attempts
            .iter()
            .filter_map(|a| Some(a.finished_ns?.saturating_sub(a.started_ns).max(0)))
            .sum();
        let mut entry = Self {
            v: <Self as super::Record>::VERSION,
            id: job.id,
            kind: job.kind.name().to_owned(),
            repo: job.kind.repo().map(str::to_owned),
            source: job.kind.source().map(str::to_owned),
            outcome: job.state,
            error_class: job.error.as_ref().map(|e| e.code.clone()),
            error: job
                .error
                .as_ref()
                .map(|e| e.message.chars().take(ERROR_CHARS).collect()),
            attempts: job.attempts.len() as u32,
            submitted_ns: job.submitted_ns,
            finished_ns,
            duration_ms: (run_ns / 1_000_000) as u64,
            files: 0,
            bytes_read: 0,
            bytes_added: 0,
            bytes_stored: 0,
            compression_ratio: None,
            snapshot: None,
            files_read: 0,
            bytes_total: 0,
        };
        match job.result() {
            Some(Response::Backup(b)) => {
                entry.files = b.stats.files;
                entry.files_read = b.stats.files_read;
                entry.bytes_total = b.stats.bytes_total;
                entry.bytes_read = b.stats.bytes_read;
                entry.bytes_added = b.stats.bytes_added;
                entry.bytes_stored = b.stats.bytes_stored;
                entry.compression_ratio = (b.stats.bytes_stored > 0)
                    .then(|| b.stats.bytes_added as f64 / b.stats.bytes_stored as f64);
                entry.snapshot = Some(b.snapshot);
            }
            Some(Response::Restore(r)) => {
                entry.files = r.files;
                entry.bytes_read = r.bytes;
            }
            // What the drill restored: it measures restore throughput as a restore does.
            Some(Response::Drill(d)) => {
                entry.files = d.files_restored;
                entry.bytes_read = d.bytes_restored;
                entry.snapshot = Some(d.snapshot);
            }
            _ => {}
        }
        Some(entry)
    }
}

impl From<HistoryRecord> for HistoryEntry {
    fn from(r: HistoryRecord) -> Self {
        let HistoryRecord {
            v: _,
            id,
            kind,
            repo,
            source,
            outcome,
            error_class,
            error,
            attempts,
            submitted_ns,
            finished_ns,
            duration_ms,
            files,
            bytes_read,
            bytes_added,
            bytes_stored,
            compression_ratio,
            snapshot,
            // Analytics reads them from the record; the wire's history entry predates them.
            files_read: _,
            bytes_total: _,
        } = r;
        Self {
            id,
            kind,
            repo,
            source,
            outcome: job_state(outcome),
            error_class: error_class.as_deref().map(code_of),
            error,
            attempts,
            submitted_ns,
            finished_ns,
            duration_ms,
            files,
            bytes_read,
            bytes_added,
            bytes_stored,
            compression_ratio,
            snapshot,
        }
    }
}
