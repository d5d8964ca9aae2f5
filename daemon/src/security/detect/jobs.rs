//! Feeds detection and the compliance evidence from finished jobs: each restore that succeeds
//! counts toward mass export for the uid that submitted it and is a recovery drill (as is a
//! `drill` job that passed); a check
//! that read all the data is recorded per repository. Runs as one task on the tracker until
//! cancelled; a follower that falls behind loses those events (logged) and goes on.

use super::Detector;
use crate::queue::Queue;
use backupd_common::protocol::{JobKind, JobState, Response};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// The drill key of the last full read-data check of `repo`.
pub fn read_data_key(repo: &str) -> String {
    format!("check-read-data:{repo}")
}

/// The drill key of the last successful restore.
pub const RESTORE_KEY: &str = "restore";

pub async fn watch(detector: Arc<Detector>, queue: Arc<Queue>, cancel: CancellationToken) {
    let mut events = queue.subscribe();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.recv() => e,
        };
        let event = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "security detection fell behind the job events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if event.state != JobState::Succeeded || event.progress.is_some() {
            continue;
        }
        let Some(job) = queue.job(event.job) else {
            continue;
        };
        let finished = job.finished_ns.unwrap_or(event.time_ns);
        let drills = detector.drills();
        let recorded = match (&job.kind, &job.result) {
            (JobKind::Restore(_), Some(Response::Restore(r))) => {
                detector.restore_finished(job.submitter_uid, r.files);
                drills.put_drill(RESTORE_KEY, finished)
            }
            // A drill that passed is a test restore too (into scratch space: not an export).
            (JobKind::Drill(_), Some(Response::Drill(d))) if d.ok => {
                drills.put_drill(RESTORE_KEY, finished)
            }
            (JobKind::Check(c), Some(Response::Check(_)))
                if c.read_data_percent >= 100 && c.read_data_subset.is_none() =>
            {
                let repo = c.repo.clone().unwrap_or_default();
                drills.put_drill(&read_data_key(&repo), finished)
            }
            _ => Ok(()),
        };
        if let Err(e) = recorded {
            tracing::warn!(job = event.job, error = %e, "cannot record a recovery drill");
        }
    }
}
