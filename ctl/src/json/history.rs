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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::job::KindView;
    use backupd_common::protocol::JobKind;
    use backupd_common::protocol::{
        BackupRequest, CheckRequest, ForgetRequest, JobState, NoopRequest, Priority,
        RebuildIndexRequest, RestoreRequest,
    };

    fn keys(v: serde_json::Value) -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// serde's flatten would write a clashing name twice; JSON readers keep one of the two.
    #[test]
    fn kind_arguments_never_clash_with_job_or_history_fields() {
        let kinds = [
            JobKind::Backup(BackupRequest::default()),
            JobKind::Restore(RestoreRequest::default()),
            JobKind::Check(CheckRequest::default()),
            JobKind::Forget(ForgetRequest::default()),
            JobKind::RebuildIndex(RebuildIndexRequest::default()),
            JobKind::Noop(NoopRequest::default()),
        ];
        for kind in kinds {
            let job = JobInfo {
                id: 1,
                kind: kind.clone(),
                priority: Priority::Normal,
                state: JobState::Queued,
                submitter_uid: 0,
                timeout_ms: 0,
                retries: 0,
                backoff_ms: 0,
                submitted_ns: 0,
                started_ns: None,
                finished_ns: None,
                not_before_ns: None,
                attempts: Vec::new(),
                retry_base: 0,
                coalesced: 0,
                cancel_requested: false,
                progress: None,
                result: None,
                error: None,
            };
            let args = keys(serde_json::to_value(KindView::from(&kind)).expect("kind"));
            let entry = serde_json::to_string(&HistoryEntryView::from(&job)).expect("entry");
            for arg in args.iter().filter(|a| *a != "kind") {
                assert_eq!(
                    entry.matches(&format!("\"{arg}\":")).count(),
                    1,
                    "{}: argument {arg} clashes with a job or history field",
                    kind.name()
                );
            }
        }
    }
}
