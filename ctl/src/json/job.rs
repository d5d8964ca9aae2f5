//! Jobs: a job record, its kind and arguments, attempts, progress, queue status and events.

use super::result::ResultView;
use super::{ms, path, time};
use backupd_common::error::ErrorReply;
use backupd_common::protocol::{
    Attempt, AttemptOutcome, JobEvent, JobInfo, JobKind, JobState, OperationProgress, QueueStatus,
    RecoveryAction, Submitted,
};
use serde::Serialize;

/// What a job does: `"kind"` and the kind's arguments as fields beside it.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KindView {
    Backup {
        repo: Option<String>,
        paths: Vec<String>,
        excludes: Vec<String>,
        exclude_files: Vec<String>,
        exclude_caches: bool,
        one_file_system: bool,
        tags: Vec<String>,
        host: Option<String>,
        /// The snapshot time asked for, if any.
        snapshot_time: Option<String>,
        snapshot_time_ns: Option<i64>,
        force: bool,
        /// Only these paths changed (a watched source's incremental backup).
        changes: Option<Vec<ChangeView>>,
        parent: Option<String>,
        source: Option<String>,
        /// Walk only, write nothing (`backup --dry-run`).
        dry_run: bool,
    },
    Restore {
        repo: Option<String>,
        snapshot: String,
        subpath: Option<String>,
        /// `None`: the daemon's default (`<state_dir>/restore/<snapshot>`).
        target: Option<String>,
        includes: Vec<String>,
        excludes: Vec<String>,
        verify: bool,
        no_owner: bool,
        strip_setid: Option<bool>,
        /// `always`, `if-changed` or `never`.
        overwrite: &'static str,
    },
    Check {
        repo: Option<String>,
        read_data_percent: u8,
        /// The part of the packs to read, `3/20`.
        read_data_subset: Option<String>,
    },
    Forget {
        repo: Option<String>,
        snapshots: Vec<String>,
        keep_last: u32,
        keep_hourly: u32,
        keep_daily: u32,
        keep_weekly: u32,
        keep_monthly: u32,
        keep_yearly: u32,
        keep_within_ms: Option<u64>,
        prune: bool,
        dry_run: bool,
        /// A source's retention: the source, and the paths its snapshots hold.
        source: Option<String>,
        paths: Vec<String>,
    },
    RebuildIndex {
        repo: Option<String>,
    },
    Reencrypt {
        repo: Option<String>,
        retire_below: Option<u32>,
        keep_keys: bool,
    },
    Migrate {
        repo: Option<String>,
        to: u32,
    },
    Prune {
        repo: Option<String>,
        /// `repo compact`: only the index files are merged.
        compact_only: bool,
    },
    Sync {
        pair: String,
    },
    Drill {
        repo: Option<String>,
        source: Option<String>,
        /// Null: the daemon's maintenance.drill_sample.
        sample_percent: Option<f64>,
    },
    Replicate {
        /// The replica.
        repo: Option<String>,
        /// The source (empty: the stored replication's, read when the job runs).
        from: String,
        verify: bool,
        mirror_forget: bool,
        bwlimit: Option<u64>,
    },
    Recovery {
        plan: String,
        /// `run`, `rollback` or `commit`.
        action: &'static str,
        /// `run --step N`; `null`: every step not done.
        step: Option<u32>,
    },
    Noop {
        /// How long it sleeps (`sleep_ms`, not `duration_ms`: history entries carry a
        /// `duration_ms` of their own beside the arguments).
        sleep_ms: u64,
        fail_attempts: u32,
        permanent: bool,
    },
}

#[derive(Debug, Serialize)]
pub struct ChangeView {
    pub path: String,
    pub tree: bool,
}

impl From<&JobKind> for KindView {
    fn from(kind: &JobKind) -> Self {
        match kind {
            JobKind::Backup(r) => Self::Backup {
                repo: r.repo.clone(),
                paths: r.paths.iter().map(|p| path(p)).collect(),
                excludes: r.excludes.clone(),
                exclude_files: r.exclude_files.iter().map(|p| path(p)).collect(),
                exclude_caches: r.exclude_caches,
                one_file_system: r.one_file_system,
                tags: r.tags.clone(),
                host: r.host.clone(),
                snapshot_time: r.time_ns.map(time),
                snapshot_time_ns: r.time_ns,
                force: r.force,
                changes: r.changes.as_ref().map(|c| {
                    c.iter()
                        .map(|c| ChangeView {
                            path: path(&c.path),
                            tree: c.tree,
                        })
                        .collect()
                }),
                parent: r.parent.clone(),
                source: r.source.clone(),
                dry_run: r.dry_run,
            },
            JobKind::Restore(r) => Self::Restore {
                repo: r.repo.clone(),
                snapshot: r.snapshot.clone(),
                subpath: r.subpath.as_deref().map(path),
                target: r.target.as_deref().map(path),
                includes: r.includes.clone(),
                excludes: r.excludes.clone(),
                verify: r.verify,
                no_owner: r.no_owner,
                strip_setid: r.strip_setid,
                overwrite: r.overwrite.as_str(),
            },
            JobKind::Check(r) => Self::Check {
                repo: r.repo.clone(),
                read_data_percent: r.read_data_percent,
                read_data_subset: r.read_data_subset.map(|s| s.to_string()),
            },
            JobKind::Forget(r) => Self::Forget {
                repo: r.repo.clone(),
                snapshots: r.snapshots.clone(),
                keep_last: r.keep_last,
                keep_hourly: r.keep_hourly,
                keep_daily: r.keep_daily,
                keep_weekly: r.keep_weekly,
                keep_monthly: r.keep_monthly,
                keep_yearly: r.keep_yearly,
                keep_within_ms: r.keep_within.map(ms),
                prune: r.prune,
                dry_run: r.dry_run,
                source: r.source.clone(),
                paths: r.paths.iter().map(|p| super::path(p)).collect(),
            },
            JobKind::RebuildIndex(r) => Self::RebuildIndex {
                repo: r.repo.clone(),
            },
            JobKind::Noop(r) => Self::Noop {
                sleep_ms: ms(r.duration),
                fail_attempts: r.fail_attempts,
                permanent: r.permanent,
            },
            JobKind::Reencrypt(r) => Self::Reencrypt {
                repo: r.repo.clone(),
                retire_below: r.retire_below,
                keep_keys: r.keep_keys,
            },
            JobKind::Migrate(r) => Self::Migrate {
                repo: r.repo.clone(),
                to: r.to,
            },
            JobKind::Prune(r) => Self::Prune {
                repo: r.repo.clone(),
                compact_only: r.compact_only,
            },
            JobKind::Sync(r) => Self::Sync {
                pair: r.pair.clone(),
            },
            JobKind::Drill(d) => Self::Drill {
                repo: d.repo.clone(),
                source: d.source.clone(),
                sample_percent: d.sample_percent,
            },
            JobKind::Replicate(r) => Self::Replicate {
                repo: r.repo.clone(),
                from: r.from.clone(),
                verify: r.verify,
                mirror_forget: r.mirror_forget,
                bwlimit: r.bwlimit,
            },
            JobKind::Recovery(r) => {
                let (action, step) = match r.action {
                    RecoveryAction::Run { step } => ("run", step),
                    RecoveryAction::Rollback => ("rollback", None),
                    RecoveryAction::Commit => ("commit", None),
                };
                Self::Recovery {
                    plan: r.plan.clone(),
                    action,
                    step,
                }
            }
        }
    }
}

/// `queue log ID`: the job's own log lines, oldest first.
#[derive(Debug, Serialize)]
pub struct LogView<'a> {
    pub id: u64,
    pub state: &'static str,
    pub lines: &'a [String],
}

/// An error the daemon reported: the same shape as a failed command's `error` object.
#[derive(Debug, Serialize)]
pub struct ErrorView {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl From<&ErrorReply> for ErrorView {
    fn from(e: &ErrorReply) -> Self {
        Self {
            code: e.code.as_str(),
            message: e.message.clone(),
            retry_after_ms: e.retry_after_ms,
        }
    }
}

/// The wire's kebab-case state name (`retry-wait`, `dead-letter`, ...).
pub fn state(s: JobState) -> &'static str {
    s.as_str()
}

pub fn outcome(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Running => "running",
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Interrupted => "interrupted",
        AttemptOutcome::Cancelled => "cancelled",
        AttemptOutcome::TimedOut => "timed-out",
        AttemptOutcome::Crashed => "crashed",
    }
}

#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub number: u32,
    pub started: String,
    pub started_ns: i64,
    pub finished: Option<String>,
    pub finished_ns: Option<i64>,
    pub outcome: &'static str,
    pub error: Option<ErrorView>,
    pub retry_in_ms: Option<u64>,
    pub retryable: bool,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            number: a.number,
            started: time(a.started_ns),
            started_ns: a.started_ns,
            finished: a.finished_ns.map(time),
            finished_ns: a.finished_ns,
            outcome: outcome(a.outcome),
            error: a.error.as_ref().map(ErrorView::from),
            retry_in_ms: a.retry_in_ms,
            retryable: a.retryable,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProgressView {
    pub files_done: u64,
    pub bytes_done: u64,
    pub files_total: Option<u64>,
    pub bytes_total: Option<u64>,
    pub errors: u64,
    pub elapsed_ms: u64,
}

impl From<&OperationProgress> for ProgressView {
    fn from(p: &OperationProgress) -> Self {
        Self {
            files_done: p.files_done,
            bytes_done: p.bytes_done,
            files_total: p.files_total,
            bytes_total: p.bytes_total,
            errors: p.errors,
            elapsed_ms: p.elapsed_ms,
        }
    }
}

/// A job as `queue job`, `queue status`, `queue dlq list` and `queue cancel` show it.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: u64,
    #[serde(flatten)]
    pub kind: KindView,
    pub state: &'static str,
    pub priority: &'static str,
    pub submitter_uid: u32,
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub submitted: String,
    pub submitted_ns: i64,
    pub started: Option<String>,
    pub started_ns: Option<i64>,
    pub finished: Option<String>,
    pub finished_ns: Option<i64>,
    pub not_before: Option<String>,
    pub not_before_ns: Option<i64>,
    pub attempts: Vec<AttemptView>,
    pub coalesced: u32,
    pub cancel_requested: bool,
    /// The uid whose file-system rights the job works with; null: the daemon's.
    pub acts_as_uid: Option<u32>,
    pub progress: Option<ProgressView>,
    pub result: Option<ResultView>,
    pub error: Option<ErrorView>,
}

impl From<&JobInfo> for JobView {
    fn from(j: &JobInfo) -> Self {
        Self {
            id: j.id,
            kind: KindView::from(&j.kind),
            state: state(j.state),
            priority: j.priority.as_str(),
            submitter_uid: j.submitter_uid,
            timeout_ms: j.timeout_ms,
            retries: j.retries,
            backoff_ms: j.backoff_ms,
            submitted: time(j.submitted_ns),
            submitted_ns: j.submitted_ns,
            started: j.started_ns.map(time),
            started_ns: j.started_ns,
            finished: j.finished_ns.map(time),
            finished_ns: j.finished_ns,
            not_before: j.not_before_ns.map(time),
            not_before_ns: j.not_before_ns,
            attempts: j.attempts.iter().map(AttemptView::from).collect(),
            coalesced: j.coalesced,
            cancel_requested: j.cancel_requested,
            acts_as_uid: j.acts_as.map(|a| a.uid),
            progress: j.progress.as_ref().map(ProgressView::from),
            result: j.result.as_ref().and_then(ResultView::new),
            error: j.error.as_ref().map(ErrorView::from),
        }
    }
}

pub fn jobs(list: &[JobInfo]) -> Vec<JobView> {
    list.iter().map(JobView::from).collect()
}

/// What `--no-wait` prints: the job is durably queued.
#[derive(Debug, Serialize)]
pub struct SubmittedView {
    pub id: u64,
    pub kind: &'static str,
    /// An equal job was already queued and covers this request.
    pub coalesced: bool,
    pub state: &'static str,
}

impl SubmittedView {
    pub fn new(s: &Submitted, kind: &'static str) -> Self {
        Self {
            id: s.id,
            kind,
            coalesced: s.coalesced,
            state: state(s.state),
        }
    }
}

/// What a wait interrupted by Ctrl-C prints: the job goes on.
#[derive(Debug, Serialize)]
pub struct DetachedView {
    pub id: u64,
    pub detached: bool,
}

#[derive(Debug, Serialize)]
pub struct StateCountView {
    pub state: &'static str,
    pub priority: &'static str,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct QueueStatusView {
    pub workers: u32,
    pub counts: Vec<StateCountView>,
    pub running: Vec<JobView>,
    pub next: Vec<JobView>,
}

impl From<&QueueStatus> for QueueStatusView {
    fn from(s: &QueueStatus) -> Self {
        Self {
            workers: s.workers,
            counts: s
                .counts
                .iter()
                .map(|c| StateCountView {
                    state: state(c.state),
                    priority: c.priority.as_str(),
                    count: c.count,
                })
                .collect(),
            running: jobs(&s.running),
            next: jobs(&s.next),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub time: String,
    pub time_ns: i64,
    pub job: u64,
    pub kind: String,
    pub priority: &'static str,
    pub from: Option<&'static str>,
    pub state: &'static str,
    pub attempt: u32,
    pub progress: Option<ProgressView>,
    pub error: Option<String>,
    pub snapshot: Option<String>,
}

impl From<&JobEvent> for EventView {
    fn from(e: &JobEvent) -> Self {
        Self {
            seq: e.seq,
            time: time(e.time_ns),
            time_ns: e.time_ns,
            job: e.job,
            kind: e.kind.clone(),
            priority: e.priority.as_str(),
            from: e.from.map(state),
            state: state(e.state),
            attempt: e.attempt,
            progress: e.progress.as_ref().map(ProgressView::from),
            error: e.error.clone(),
            snapshot: e.snapshot.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{
        BackupRequest, CheckRequest, ForgetRequest, JobKind, JobState, MigrateRequest, NoopRequest,
        Priority, PruneRequest, RebuildIndexRequest, ReencryptRequest, RestoreRequest,
    };

    /// serde's flatten would write a clashing name twice; JSON readers keep one of the two.
    #[test]
    fn kind_arguments_never_clash_with_job_fields() {
        let kinds = [
            JobKind::Backup(BackupRequest::default()),
            JobKind::Restore(RestoreRequest::default()),
            JobKind::Check(CheckRequest::default()),
            JobKind::Forget(ForgetRequest::default()),
            JobKind::RebuildIndex(RebuildIndexRequest::default()),
            JobKind::Noop(NoopRequest::default()),
            JobKind::Reencrypt(ReencryptRequest::default()),
            JobKind::Migrate(MigrateRequest::default()),
            JobKind::Prune(PruneRequest::default()),
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
                log: Vec::new(),
                acts_as: None,
            };
            let args = serde_json::to_value(KindView::from(&kind)).expect("kind");
            let entry = serde_json::to_string(&JobView::from(&job)).expect("job");
            for arg in args.as_object().expect("object").keys() {
                if arg == "kind" {
                    continue;
                }
                assert_eq!(
                    entry.matches(&format!("\"{arg}\":")).count(),
                    1,
                    "{}: argument {arg} clashes with a job field",
                    kind.name()
                );
            }
        }
    }
}
