//! `queue history`: one flat entry per finished job, read from the daemon's history tree.
//! New history fields go here (and in `docs/json/queue-history.json`).

use super::time;
use backupd_common::protocol::HistoryEntry;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct HistoryEntryView {
    pub id: u64,
    pub kind: String,
    pub repo: Option<String>,
    pub source: Option<String>,
    /// The final state: `succeeded`, `dead-letter`, `cancelled` or `timed-out`.
    pub outcome: &'static str,
    /// Code of the error that ended the job (the codes of `{"error":{"code"}}`), if it failed.
    pub error_class: Option<&'static str>,
    pub error: Option<String>,
    pub attempts: u32,
    pub submitted: String,
    pub submitted_ns: i64,
    pub finished: String,
    pub finished_ns: i64,
    /// Time spent running, over all attempts.
    pub duration_ms: u64,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
    /// `bytes_added / bytes_stored`; `null` when nothing was stored.
    pub compression_ratio: Option<f64>,
    pub snapshot: Option<String>,
}

impl From<&HistoryEntry> for HistoryEntryView {
    fn from(e: &HistoryEntry) -> Self {
        Self {
            id: e.id,
            kind: e.kind.clone(),
            repo: e.repo.clone(),
            source: e.source.clone(),
            outcome: e.outcome.as_str(),
            error_class: e.error_class.map(|c| c.as_str()),
            error: e.error.clone(),
            attempts: e.attempts,
            submitted: time(e.submitted_ns),
            submitted_ns: e.submitted_ns,
            finished: time(e.finished_ns),
            finished_ns: e.finished_ns,
            duration_ms: e.duration_ms,
            files: e.files,
            bytes_read: e.bytes_read,
            bytes_added: e.bytes_added,
            bytes_stored: e.bytes_stored,
            compression_ratio: e.compression_ratio,
            snapshot: e.snapshot.clone(),
        }
    }
}

pub fn history(entries: &[HistoryEntry]) -> Vec<HistoryEntryView> {
    entries.iter().map(HistoryEntryView::from).collect()
}
