//! `queue history`: one entry per finished job. The job's fields, plus flat figures taken from
//! its result so scripts need not dig into `result` by kind. New history fields go here.

use super::job::JobView;
use backupd_common::protocol::{JobInfo, Response};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct HistoryEntryView {
    #[serde(flatten)]
    pub job: JobView,
    /// From the start of the last attempt to the job's end.
    pub duration_ms: Option<u64>,
    /// Error code of the error that ended the job, if it failed.
    pub error_class: Option<&'static str>,
    /// Backups only: files in the snapshot, bytes read, new and stored.
    pub files: Option<u64>,
    pub bytes_read: Option<u64>,
    pub bytes_added: Option<u64>,
    pub bytes_stored: Option<u64>,
}

impl From<&JobInfo> for HistoryEntryView {
    fn from(j: &JobInfo) -> Self {
        let stats = match &j.result {
            Some(Response::Backup(r)) => Some(&r.stats),
            _ => None,
        };
        let duration_ms = match (j.started_ns, j.finished_ns) {
            (Some(s), Some(f)) => Some(u64::try_from(f.saturating_sub(s) / 1_000_000).unwrap_or(0)),
            _ => None,
        };
        Self {
            job: JobView::from(j),
            duration_ms,
            error_class: j.error.as_ref().map(|e| e.code.as_str()),
            files: stats.map(|s| s.files),
            bytes_read: stats.map(|s| s.bytes_read),
            bytes_added: stats.map(|s| s.bytes_added),
            bytes_stored: stats.map(|s| s.bytes_stored),
        }
    }
}

pub fn history(jobs: &[JobInfo]) -> Vec<HistoryEntryView> {
    jobs.iter().map(HistoryEntryView::from).collect()
}
