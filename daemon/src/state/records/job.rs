//! A job as stored in tree `jobs` (key: big-endian id): everything needed to run it again
//! after a restart, and how its attempts went.
//!
//! Version 2 is version 1 plus `v`, read field for field; the progress sample version 1
//! carried is not kept (it is live data). Version 3 adds `acts_as` (absent: the daemon's own
//! rights, as every job before it had); the bump makes an older backupd leave such a job alone
//! instead of running a user's job with root's rights. The job's result is kept as the JSON reply it gave,
//! opaque to the state layer: a later backupd that cannot read an old result still loads the
//! job, without it. What the history needs of a result is pulled out flat when the job is
//! appended to it (see [`super::history`]).

use super::{legacy_version, versioned};
use backupd_common::error::{ErrorCode, ErrorReply};
use backupd_common::protocol::{
    ActingUser, Attempt, AttemptOutcome, BackupRequest, CheckRequest, DrillRequest, ForgetRequest,
    JobInfo, JobKind, JobState, MigrateRequest, NoopRequest, Overwrite, PathChange, Priority,
    PruneRequest, RebuildIndexRequest, RecoveryAction, RecoveryJobRequest, ReencryptRequest,
    ReplicateRequest, Response, RestoreRequest, SnapshotFilter, Subset,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub id: u64,
    pub kind: KindRecord,
    pub priority: PriorityRecord,
    pub state: StateRecord,
    pub submitter_uid: u32,
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub submitted_ns: i64,
    pub started_ns: Option<i64>,
    pub finished_ns: Option<i64>,
    pub not_before_ns: Option<i64>,
    pub attempts: Vec<AttemptRecord>,
    pub retry_base: u32,
    pub coalesced: u32,
    pub cancel_requested: bool,
    /// The reply the job gave, as JSON.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    pub error: Option<ErrorRecord>,
    /// The job's own log lines (absent before they were kept).
    #[serde(default)]
    pub log: Vec<String>,
    /// The user whose file-system rights the job runs with.
    #[serde(default)]
    pub acts_as: Option<ActingRecord>,
}

versioned!(JobRecord, 3);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActingRecord {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorityRecord {
    High,
    Normal,
    Low,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateRecord {
    Queued,
    Running,
    RetryWait,
    Succeeded,
    DeadLetter,
    Cancelled,
    TimedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeRecord {
    Running,
    Succeeded,
    Failed,
    Interrupted,
    Cancelled,
    TimedOut,
    Crashed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub number: u32,
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    pub outcome: OutcomeRecord,
    pub error: Option<ErrorRecord>,
    pub retry_in_ms: Option<u64>,
    /// Absent in records written before it existed: read as not retryable.
    #[serde(default)]
    pub retryable: bool,
}

/// An error as stored: its code by name (an unknown name reads as `Internal`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub code: String,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

/// What the job does. Externally tagged by kind, as version 1 stored it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KindRecord {
    Backup(BackupArgs),
    Restore(RestoreArgs),
    Check(CheckArgs),
    Forget(ForgetArgs),
    RebuildIndex(RepoArgs),
    Noop(NoopArgs),
    Reencrypt(ReencryptArgs),
    Migrate(MigrateArgs),
    Prune(PruneArgs),
    Sync(SyncArgs),
    Replicate(ReplicateArgs),
    Recovery(RecoveryArgs),
    Drill(DrillArgs),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryArgs {
    pub plan: String,
    /// `run` (with `step`), `rollback` or `commit`.
    pub action: String,
    #[serde(default)]
    pub step: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillArgs {
    pub repo: Option<String>,
    pub source: Option<String>,
    pub sample_percent: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncArgs {
    pub pair: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicateArgs {
    /// The replica.
    pub repo: Option<String>,
    pub from: String,
    pub verify: bool,
    pub mirror_forget: bool,
    #[serde(default)]
    pub bwlimit: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PruneArgs {
    pub repo: Option<String>,
    pub compact_only: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrateArgs {
    pub repo: Option<String>,
    pub to: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReencryptArgs {
    pub repo: Option<String>,
    pub retire_below: Option<u32>,
    pub keep_keys: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupArgs {
    pub repo: Option<String>,
    pub paths: Vec<Vec<u8>>,
    pub excludes: Vec<String>,
    pub exclude_files: Vec<Vec<u8>>,
    pub exclude_caches: bool,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time_ns: Option<i64>,
    pub force: bool,
    #[serde(default)]
    pub changes: Option<Vec<ChangeArg>>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeArg {
    pub path: Vec<u8>,
    pub tree: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoreArgs {
    pub repo: Option<String>,
    pub snapshot: String,
    pub subpath: Option<Vec<u8>>,
    /// Empty: the daemon's default target (version 1 always stored one).
    pub target: Vec<u8>,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    pub verify: bool,
    #[serde(default)]
    pub no_owner: bool,
    #[serde(default)]
    pub strip_setid: Option<bool>,
    #[serde(default)]
    pub overwrite: OverwriteArg,
    /// What narrows `latest` (absent before protocol 6: no narrowing).
    #[serde(default)]
    pub filter_host: Option<String>,
    #[serde(default)]
    pub filter_tags: Vec<String>,
    #[serde(default)]
    pub filter_source: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverwriteArg {
    Always,
    #[default]
    IfChanged,
    Never,
}

impl From<Overwrite> for OverwriteArg {
    fn from(o: Overwrite) -> Self {
        match o {
            Overwrite::Always => Self::Always,
            Overwrite::IfChanged => Self::IfChanged,
            Overwrite::Never => Self::Never,
        }
    }
}

impl From<OverwriteArg> for Overwrite {
    fn from(o: OverwriteArg) -> Self {
        match o {
            OverwriteArg::Always => Self::Always,
            OverwriteArg::IfChanged => Self::IfChanged,
            OverwriteArg::Never => Self::Never,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckArgs {
    pub repo: Option<String>,
    pub read_data_percent: u8,
    /// `[index, count]`; absent in records written before parts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data_subset: Option<(u32, u32)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForgetArgs {
    pub repo: Option<String>,
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    pub keep_within: Option<Duration>,
    pub prune: bool,
    pub dry_run: bool,
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// A source's retention: only snapshots of these paths (raw bytes).
    #[serde(default)]
    pub paths: Vec<Vec<u8>>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoArgs {
    pub repo: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoopArgs {
    pub duration: Duration,
    pub fail_attempts: u32,
    pub permanent: bool,
}

impl From<&JobInfo> for JobRecord {
    fn from(j: &JobInfo) -> Self {
        let JobInfo {
            id,
            kind,
            priority,
            state,
            submitter_uid,
            timeout_ms,
            retries,
            backoff_ms,
            submitted_ns,
            started_ns,
            finished_ns,
            not_before_ns,
            attempts,
            retry_base,
            coalesced,
            cancel_requested,
            progress: _,
            result,
            error,
            log,
            acts_as,
        } = j;
        Self {
            v: <Self as super::Record>::VERSION,
            id: *id,
            kind: kind.into(),
            priority: priority_record(*priority),
            state: state_record(*state),
            submitter_uid: *submitter_uid,
            timeout_ms: *timeout_ms,
            retries: *retries,
            backoff_ms: *backoff_ms,
            submitted_ns: *submitted_ns,
            started_ns: *started_ns,
            finished_ns: *finished_ns,
            not_before_ns: *not_before_ns,
            attempts: attempts.iter().map(AttemptRecord::from).collect(),
            retry_base: *retry_base,
            coalesced: *coalesced,
            cancel_requested: *cancel_requested,
            result: result.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            error: error.as_ref().map(ErrorRecord::from),
            log: log.clone(),
            acts_as: acts_as.map(|a| ActingRecord {
                uid: a.uid,
                gid: a.gid,
            }),
        }
    }
}

impl JobRecord {
    /// The job's result as a protocol reply, if this build can read it.
    pub fn result(&self) -> Option<Response> {
        let value = self.result.clone()?;
        match serde_json::from_value(value) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(job = self.id, error = %e, "stored job result unreadable; shown without it");
                None
            }
        }
    }
}

impl From<JobRecord> for JobInfo {
    fn from(r: JobRecord) -> Self {
        let result = r.result();
        let JobRecord {
            v: _,
            id,
            kind,
            priority,
            state,
            submitter_uid,
            timeout_ms,
            retries,
            backoff_ms,
            submitted_ns,
            started_ns,
            finished_ns,
            not_before_ns,
            attempts,
            retry_base,
            coalesced,
            cancel_requested,
            result: _,
            error,
            log,
            acts_as,
        } = r;
        Self {
            id,
            kind: kind.into(),
            priority: match priority {
                PriorityRecord::High => Priority::High,
                PriorityRecord::Normal => Priority::Normal,
                PriorityRecord::Low => Priority::Low,
            },
            state: job_state(state),
            submitter_uid,
            timeout_ms,
            retries,
            backoff_ms,
            submitted_ns,
            started_ns,
            finished_ns,
            not_before_ns,
            attempts: attempts.into_iter().map(Attempt::from).collect(),
            retry_base,
            coalesced,
            cancel_requested,
            progress: None,
            result,
            error: error.map(ErrorReply::from),
            log,
            acts_as: acts_as.map(|a| ActingUser {
                uid: a.uid,
                gid: a.gid,
            }),
        }
    }
}

fn priority_record(p: Priority) -> PriorityRecord {
    match p {
        Priority::High => PriorityRecord::High,
        Priority::Normal => PriorityRecord::Normal,
        Priority::Low => PriorityRecord::Low,
    }
}

pub fn state_record(s: JobState) -> StateRecord {
    match s {
        JobState::Queued => StateRecord::Queued,
        JobState::Running => StateRecord::Running,
        JobState::RetryWait => StateRecord::RetryWait,
        JobState::Succeeded => StateRecord::Succeeded,
        JobState::DeadLetter => StateRecord::DeadLetter,
        JobState::Cancelled => StateRecord::Cancelled,
        JobState::TimedOut => StateRecord::TimedOut,
    }
}

pub fn job_state(s: StateRecord) -> JobState {
    match s {
        StateRecord::Queued => JobState::Queued,
        StateRecord::Running => JobState::Running,
        StateRecord::RetryWait => JobState::RetryWait,
        StateRecord::Succeeded => JobState::Succeeded,
        StateRecord::DeadLetter => JobState::DeadLetter,
        StateRecord::Cancelled => JobState::Cancelled,
        StateRecord::TimedOut => JobState::TimedOut,
    }
}

impl From<&Attempt> for AttemptRecord {
    fn from(a: &Attempt) -> Self {
        let Attempt {
            number,
            started_ns,
            finished_ns,
            outcome,
            error,
            retry_in_ms,
            retryable,
        } = a;
        Self {
            number: *number,
            started_ns: *started_ns,
            finished_ns: *finished_ns,
            outcome: match outcome {
                AttemptOutcome::Running => OutcomeRecord::Running,
                AttemptOutcome::Succeeded => OutcomeRecord::Succeeded,
                AttemptOutcome::Failed => OutcomeRecord::Failed,
                AttemptOutcome::Interrupted => OutcomeRecord::Interrupted,
                AttemptOutcome::Cancelled => OutcomeRecord::Cancelled,
                AttemptOutcome::TimedOut => OutcomeRecord::TimedOut,
                AttemptOutcome::Crashed => OutcomeRecord::Crashed,
            },
            error: error.as_ref().map(ErrorRecord::from),
            retry_in_ms: *retry_in_ms,
            retryable: *retryable,
        }
    }
}

impl From<AttemptRecord> for Attempt {
    fn from(a: AttemptRecord) -> Self {
        let AttemptRecord {
            number,
            started_ns,
            finished_ns,
            outcome,
            error,
            retry_in_ms,
            retryable,
        } = a;
        Self {
            number,
            started_ns,
            finished_ns,
            outcome: match outcome {
                OutcomeRecord::Running => AttemptOutcome::Running,
                OutcomeRecord::Succeeded => AttemptOutcome::Succeeded,
                OutcomeRecord::Failed => AttemptOutcome::Failed,
                OutcomeRecord::Interrupted => AttemptOutcome::Interrupted,
                OutcomeRecord::Cancelled => AttemptOutcome::Cancelled,
                OutcomeRecord::TimedOut => AttemptOutcome::TimedOut,
                OutcomeRecord::Crashed => AttemptOutcome::Crashed,
            },
            error: error.map(ErrorReply::from),
            retry_in_ms,
            retryable,
        }
    }
}

/// Every code by its stored name; the stored names are the protocol's `as_str`, frozen here.
const CODES: [(ErrorCode, &str); 12] = [
    (ErrorCode::InvalidArgument, "InvalidArgument"),
    (ErrorCode::NotFound, "NotFound"),
    (ErrorCode::PermissionDenied, "PermissionDenied"),
    (ErrorCode::Conflict, "Conflict"),
    (ErrorCode::Busy, "Busy"),
    (ErrorCode::Unavailable, "Unavailable"),
    (ErrorCode::Internal, "Internal"),
    (ErrorCode::VersionMismatch, "VersionMismatch"),
    (ErrorCode::Malformed, "Malformed"),
    (ErrorCode::FrameTooLarge, "FrameTooLarge"),
    (ErrorCode::Timeout, "Timeout"),
    (ErrorCode::NoSpace, "NoSpace"),
];

pub fn code_name(code: ErrorCode) -> &'static str {
    CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("Internal", |(_, n)| n)
}

pub fn code_of(name: &str) -> ErrorCode {
    CODES
        .iter()
        .find(|(_, n)| *n == name)
        .map_or(ErrorCode::Internal, |(c, _)| *c)
}

impl From<&ErrorReply> for ErrorRecord {
    fn from(e: &ErrorReply) -> Self {
        Self {
            code: code_name(e.code).to_owned(),
            message: e.message.clone(),
            retry_after_ms: e.retry_after_ms,
        }
    }
}

impl From<ErrorRecord> for ErrorReply {
    fn from(e: ErrorRecord) -> Self {
        Self {
            code: code_of(&e.code),
            message: e.message,
            retry_after_ms: e.retry_after_ms,
        }
    }
}

impl From<&JobKind> for KindRecord {
    fn from(k: &JobKind) -> Self {
        match k.clone() {
            JobKind::Backup(r) => Self::Backup(backup_args(r)),
            JobKind::Restore(r) => {
                let RestoreRequest {
                    repo,
                    snapshot,
                    subpath,
                    target,
                    includes,
                    excludes,
                    verify,
                    no_owner,
                    strip_setid,
                    overwrite,
                    filter,
                } = r;
                Self::Restore(RestoreArgs {
                    filter_host: filter.host,
                    filter_tags: filter.tags,
                    filter_source: filter.source,
                    repo,
                    snapshot,
                    subpath,
                    target: target.unwrap_or_default(),
                    includes,
                    excludes,
                    verify,
                    no_owner,
                    strip_setid,
                    overwrite: overwrite.into(),
                })
            }
            JobKind::Check(CheckRequest {
                repo,
                read_data_percent,
                read_data_subset,
            }) => Self::Check(CheckArgs {
                repo,
                read_data_percent,
                read_data_subset: read_data_subset.map(|s| (s.index, s.count)),
            }),
            JobKind::Forget(r) => Self::Forget(forget_args(r)),
            JobKind::RebuildIndex(RebuildIndexRequest { repo }) => {
                Self::RebuildIndex(RepoArgs { repo })
            }
            JobKind::Reencrypt(ReencryptRequest {
                repo,
                retire_below,
                keep_keys,
            }) => Self::Reencrypt(ReencryptArgs {
                repo,
                retire_below,
                keep_keys,
            }),
            JobKind::Migrate(MigrateRequest { repo, to }) => {
                Self::Migrate(MigrateArgs { repo, to })
            }
            JobKind::Prune(PruneRequest { repo, compact_only }) => {
                Self::Prune(PruneArgs { repo, compact_only })
            }
            JobKind::Sync(s) => Self::Sync(SyncArgs { pair: s.pair }),
            JobKind::Replicate(ReplicateRequest {
                repo,
                from,
                verify,
                mirror_forget,
                bwlimit,
            }) => Self::Replicate(ReplicateArgs {
                repo,
                from,
                verify,
                mirror_forget,
                bwlimit,
            }),
            JobKind::Recovery(r) => {
                let (action, step) = match r.action {
                    RecoveryAction::Run { step } => ("run", step),
                    RecoveryAction::Rollback => ("rollback", None),
                    RecoveryAction::Commit => ("commit", None),
                };
                Self::Recovery(RecoveryArgs {
                    plan: r.plan,
                    action: action.to_owned(),
                    step,
                })
            }
            JobKind::Drill(DrillRequest {
                repo,
                source,
                sample_percent,
            }) => Self::Drill(DrillArgs {
                repo,
                source,
                sample_percent,
            }),
            JobKind::Noop(NoopRequest {
                duration,
                fail_attempts,
                permanent,
            }) => Self::Noop(NoopArgs {
                duration,
                fail_attempts,
                permanent,
            }),
        }
    }
}

fn backup_args(r: BackupRequest) -> BackupArgs {
    let BackupRequest {
        repo,
        paths,
        excludes,
        exclude_files,
        exclude_caches,
        one_file_system,
        tags,
        host,
        time_ns,
        force,
        changes,
        parent,
        source,
        dry_run,
    } = r;
    BackupArgs {
        repo,
        paths,
        excludes,
        exclude_files,
        exclude_caches,
        one_file_system,
        tags,
        host,
        time_ns,
        force,
        changes: changes.map(|c| {
            c.into_iter()
                .map(|PathChange { path, tree }| ChangeArg { path, tree })
                .collect()
        }),
        parent,
        source,
        dry_run,
    }
}

fn forget_args(r: ForgetRequest) -> ForgetArgs {
    let ForgetRequest {
        repo,
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        keep_within,
        prune,
        dry_run,
        snapshots,
        paths,
        source,
    } = r;
    ForgetArgs {
        paths,
        source,
        repo,
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        keep_within,
        prune,
        dry_run,
        snapshots,
    }
}

impl From<KindRecord> for JobKind {
    fn from(k: KindRecord) -> Self {
        match k {
            KindRecord::Backup(a) => Self::Backup(BackupRequest {
                repo: a.repo,
                paths: a.paths,
                excludes: a.excludes,
                exclude_files: a.exclude_files,
                exclude_caches: a.exclude_caches,
                one_file_system: a.one_file_system,
                tags: a.tags,
                host: a.host,
                time_ns: a.time_ns,
                force: a.force,
                changes: a.changes.map(|c| {
                    c.into_iter()
                        .map(|ChangeArg { path, tree }| PathChange { path, tree })
                        .collect()
                }),
                parent: a.parent,
                source: a.source,
                dry_run: a.dry_run,
            }),
            KindRecord::Restore(a) => Self::Restore(RestoreRequest {
                repo: a.repo,
                snapshot: a.snapshot,
                subpath: a.subpath,
                target: (!a.target.is_empty()).then_some(a.target),
                includes: a.includes,
                excludes: a.excludes,
                verify: a.verify,
                no_owner: a.no_owner,
                strip_setid: a.strip_setid,
                overwrite: a.overwrite.into(),
                filter: SnapshotFilter {
                    host: a.filter_host,
                    tags: a.filter_tags,
                    source: a.filter_source,
                    path: None,
                },
            }),
            KindRecord::Check(a) => Self::Check(CheckRequest {
                repo: a.repo,
                read_data_percent: a.read_data_percent,
                // A stored part is valid (it was checked at submission); `Subset::new` is not
                // asked again, so the record reads whatever a later limit says.
                read_data_subset: a
                    .read_data_subset
                    .map(|(index, count)| Subset { index, count }),
            }),
            KindRecord::Forget(a) => Self::Forget(ForgetRequest {
                repo: a.repo,
                keep_last: a.keep_last,
                keep_hourly: a.keep_hourly,
                keep_daily: a.keep_daily,
                keep_weekly: a.keep_weekly,
                keep_monthly: a.keep_monthly,
                keep_yearly: a.keep_yearly,
                keep_within: a.keep_within,
                prune: a.prune,
                dry_run: a.dry_run,
                snapshots: a.snapshots,
                paths: a.paths,
                source: a.source,
            }),
            KindRecord::RebuildIndex(a) => Self::RebuildIndex(RebuildIndexRequest { repo: a.repo }),
            KindRecord::Reencrypt(a) => Self::Reencrypt(ReencryptRequest {
                repo: a.repo,
                retire_below: a.retire_below,
                keep_keys: a.keep_keys,
            }),
            KindRecord::Migrate(a) => Self::Migrate(MigrateRequest {
                repo: a.repo,
                to: a.to,
            }),
            KindRecord::Prune(a) => Self::Prune(PruneRequest {
                repo: a.repo,
                compact_only: a.compact_only,
            }),
            KindRecord::Sync(a) => {
                Self::Sync(backupd_common::protocol::SyncRunRequest { pair: a.pair })
            }
            KindRecord::Replicate(a) => Self::Replicate(ReplicateRequest {
                repo: a.repo,
                from: a.from,
                verify: a.verify,
                mirror_forget: a.mirror_forget,
                bwlimit: a.bwlimit,
            }),
            KindRecord::Recovery(a) => Self::Recovery(RecoveryJobRequest {
                plan: a.plan,
                action: match a.action.as_str() {
                    "rollback" => RecoveryAction::Rollback,
                    "commit" => RecoveryAction::Commit,
                    _ => RecoveryAction::Run { step: a.step },
                },
            }),
            KindRecord::Drill(a) => Self::Drill(DrillRequest {
                repo: a.repo,
                source: a.source,
                sample_percent: a.sample_percent,
            }),
            KindRecord::Noop(a) => Self::Noop(NoopRequest {
                duration: a.duration,
                fail_attempts: a.fail_attempts,
                permanent: a.permanent,
            }),
        }
    }
}

impl KindRecord {
    /// The kind's name as users type it (`queue add NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Backup(_) => "backup",
            Self::Restore(_) => "restore",
            Self::Check(_) => "check",
            Self::Forget(_) => "forget",
            Self::RebuildIndex(_) => "rebuild-index",
            Self::Noop(_) => "noop",
            Self::Reencrypt(_) => "reencrypt",
            Self::Migrate(_) => "migrate",
            Self::Prune(_) => "prune",
            Self::Sync(_) => "sync",
            Self::Replicate(_) => "replicate",
            Self::Recovery(_) => "recovery",
            Self::Drill(_) => "drill",
        }
    }

    pub fn repo(&self) -> Option<&str> {
        match self {
            Self::Backup(a) => a.repo.as_deref(),
            Self::Restore(a) => a.repo.as_deref(),
            Self::Check(a) => a.repo.as_deref(),
            Self::Forget(a) => a.repo.as_deref(),
            Self::RebuildIndex(a) => a.repo.as_deref(),
            Self::Reencrypt(a) => a.repo.as_deref(),
            Self::Migrate(a) => a.repo.as_deref(),
            Self::Prune(a) => a.repo.as_deref(),
            Self::Replicate(a) => a.repo.as_deref(),
            Self::Drill(a) => a.repo.as_deref(),
            Self::Noop(_) | Self::Sync(_) | Self::Recovery(_) => None,
        }
    }

    pub fn source(&self) -> Option<&str> {
        match self {
            Self::Backup(a) => a.source.as_deref(),
            // A source's retention.
            Self::Forget(a) => a.source.as_deref(),
            Self::Drill(a) => a.source.as_deref(),
            _ => None,
        }
    }
}
