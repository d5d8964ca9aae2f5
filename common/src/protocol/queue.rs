//! The job queue's messages: what a job is, its life cycle, and the requests that drive it.
//!
//! A job's record ([`JobInfo`]) is also what the daemon persists, so it carries everything needed
//! to run the job again after a restart.

use super::{
    BackupRequest, DrillRequest, ForgetRequest, OperationProgress, Permission, ReplicateRequest,
    Response, RestoreRequest,
};
use crate::error::ErrorReply;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Job ids are assigned by the daemon in submission order, starting at 1.
pub type JobId = u64;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    /// 0 runs first.
    pub fn rank(self) -> u32 {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    pub const ALL: [Priority; 3] = [Self::High, Self::Normal, Self::Low];
}

/// Where a job is in its life:
/// `queued → running → succeeded | retry-wait → queued | dead-letter | cancelled | timed-out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Queued,
    Running,
    /// Failed with a retryable error; queued again at `JobInfo::not_before_ns`.
    RetryWait,
    Succeeded,
    /// Failed permanently or out of retries; `queue dlq retry` runs it again.
    DeadLetter,
    Cancelled,
    TimedOut,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::RetryWait => "retry-wait",
            Self::Succeeded => "succeeded",
            Self::DeadLetter => "dead-letter",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed-out",
        }
    }

    /// No further transition happens without a user asking (`dlq retry`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::DeadLetter | Self::Cancelled | Self::TimedOut
        )
    }

    pub const ALL: [JobState; 7] = [
        Self::Queued,
        Self::Running,
        Self::RetryWait,
        Self::Succeeded,
        Self::DeadLetter,
        Self::Cancelled,
        Self::TimedOut,
    ];
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    pub repo: Option<String>,
    /// 0: structure only; 1–100: decrypt and verify that share of the packs.
    pub read_data_percent: u8,
    /// Decrypt and verify one part of the packs instead (`read_data_percent` must be 0):
    /// reading parts 1 to `count` in turn reads every pack once.
    #[serde(default)]
    pub read_data_subset: Option<Subset>,
}

/// Part `index` (1-based) of `count` of a repository's packs, as `--read-data-subset 3/20`
/// names it: the parts 1..=count partition the packs, whatever they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subset {
    pub index: u32,
    pub count: u32,
}

impl Subset {
    /// The largest `count`: beyond it a part holds too few packs to mean anything.
    pub const MAX_COUNT: u32 = 10_000;

    /// `N/M` with 1 ≤ N ≤ M ≤ [`Self::MAX_COUNT`].
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > Self::MAX_COUNT {
            return Err(format!(
                "{index}/{count}: the number of parts must be 1 to {}",
                Self::MAX_COUNT
            ));
        }
        if index == 0 || index > count {
            return Err(format!(
                "{index}/{count}: the part must be 1 to {count} (parts count from 1)"
            ));
        }
        Ok(Self { index, count })
    }

    /// Whether the pack whose id starts with `id` is in this part. Pack ids are keyed hashes,
    /// so their first bytes spread the packs evenly over the parts.
    pub fn holds(&self, id: &[u8]) -> bool {
        let mut first = [0u8; 8];
        let n = id.len().min(8);
        first[..n].copy_from_slice(&id[..n]);
        u64::from_be_bytes(first) % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Subset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (n, m) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a part such as 3/20"))?;
        let number = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?} is not a part such as 3/20"))
        };
        Self::new(number(n)?, number(m)?)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildIndexRequest {
    pub repo: Option<String>,
}

/// `repo prune`: delete the data no snapshot needs and compact the index, forgetting no
/// snapshot. With `compact_only` (`repo compact`), only merge the index files: no snapshot
/// tree is walked and no pack is touched. Answered by `Response::Prune` or `Response::Compact`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneRequest {
    pub repo: Option<String>,
    pub compact_only: bool,
}

/// `repo key reencrypt`: seal again under the current data-key version everything sealed by
/// an older one, then retire those versions (their key material destroyed from the key files).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReencryptRequest {
    pub repo: Option<String>,
    /// Only versions below this one (`None`: every version but the current).
    pub retire_below: Option<u32>,
    /// Seal again but keep the old versions' key material.
    pub keep_keys: bool,
}

/// `repo migrate --to V`: convert a repository in place to format `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateRequest {
    pub repo: Option<String>,
    pub to: u32,
}

/// Waits, then succeeds: for probing the queue and for tests. It can be told to fail its first
/// `fail_attempts` attempts, retryably or (with `permanent`) not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoopRequest {
    pub duration: Duration,
    pub fail_attempts: u32,
    pub permanent: bool,
}

/// What a job's arguments say about themselves on the wire. The daemon's operation for the kind
/// (`daemon/src/ops/`) decides everything else: its claims, permission, timeout and run.
pub trait JobArgs {
    /// The repository field (`None` inside: the default one); `None` for a kind that works on
    /// no repository.
    fn repo(&self) -> Option<&Option<String>> {
        None
    }

    /// The same field, for the daemon to pin the name it resolved at submission.
    fn repo_mut(&mut self) -> Option<&mut Option<String>> {
        None
    }
}

macro_rules! repo_args {
    ($($args:ty),* $(,)?) => {$(
        impl JobArgs for $args {
            fn repo(&self) -> Option<&Option<String>> {
                Some(&self.repo)
            }

            fn repo_mut(&mut self) -> Option<&mut Option<String>> {
                Some(&mut self.repo)
            }
        }
    )*};
}

repo_args!(
    BackupRequest,
    RestoreRequest,
    CheckRequest,
    ForgetRequest,
    RebuildIndexRequest,
    ReencryptRequest,
    MigrateRequest,
    PruneRequest,
    ReplicateRequest,
    DrillRequest
);

impl JobArgs for NoopRequest {}
impl JobArgs for super::SyncRunRequest {}
impl JobArgs for super::RecoveryJobRequest {}

/// Declares [`JobKind`] and its per-kind accessors from one list, so a new kind is one line
/// here (the wire enum) and one operation in the daemon. Order is the wire encoding: append only.
macro_rules! job_kinds {
    ($($variant:ident($args:ty) = $name:literal),* $(,)?) => {
        /// What a job does, with the arguments the engine needs.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum JobKind {
            $($variant($args),)*
        }

        impl JobKind {
            /// Every kind's name, in wire order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The kind's name as users type it (`queue add NAME`) and as config keys spell it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)*
                }
            }

            fn args(&self) -> &dyn JobArgs {
                match self {
                    $(Self::$variant(a) => a,)*
                }
            }

            fn args_mut(&mut self) -> &mut dyn JobArgs {
                match self {
                    $(Self::$variant(a) => a,)*
                }
            }
        }
    };
}

job_kinds! {
    Backup(BackupRequest) = "backup",
    Restore(RestoreRequest) = "restore",
    Check(CheckRequest) = "check",
    Forget(ForgetRequest) = "forget",
    RebuildIndex(RebuildIndexRequest) = "rebuild-index",
    Noop(NoopRequest) = "noop",
    Reencrypt(ReencryptRequest) = "reencrypt",
    Migrate(MigrateRequest) = "migrate",
    Prune(PruneRequest) = "prune",
    Sync(super::SyncRunRequest) = "sync",
    Replicate(ReplicateRequest) = "replicate",
    Recovery(super::RecoveryJobRequest) = "recovery",
    Drill(DrillRequest) = "drill",
}

impl JobKind {
    /// The repository the job works on (`None`: the default one), if any.
    pub fn repo(&self) -> Option<Option<&str>> {
        self.args().repo().map(|r| r.as_deref())
    }

    /// The repository field, for the daemon to pin the name it resolved at submission.
    pub fn repo_mut(&mut self) -> Option<&mut Option<String>> {
        self.args_mut().repo_mut()
    }
}

/// Per-job settings; `None` takes the daemon's configured default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOptions {
    pub priority: Priority,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    /// Delay before the first retry; each further retry doubles it (plus up to 25 % jitter).
    pub backoff: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub kind: JobKind,
    pub options: JobOptions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    Failed,
    /// The daemon stopped gracefully while it ran; does not count against the retries.
    Interrupted,
    Cancelled,
    TimedOut,
    /// The daemon died (crash, kill -9, power loss) while it ran. Does not count against the
    /// retries, but `queue.max_crashes` in a row send the job to the dead-letter queue.
    Crashed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    pub outcome: AttemptOutcome,
    pub error: Option<ErrorReply>,
    /// After a retryable failure: how long the job waited before the next attempt.
    pub retry_in_ms: Option<u64>,
    /// It failed with an error that a later attempt may not meet (the error's class, decided
    /// by the daemon): only then does running it again (`queue dlq retry`) make sense.
    pub retryable: bool,
}

/// A job as the daemon keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: JobId,
    pub kind: JobKind,
    pub priority: Priority,
    pub state: JobState,
    /// The caller that submitted it (uid from SO_PEERCRED).
    pub submitter_uid: u32,
    /// Effective limits (the job's options or the configured defaults).
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub submitted_ns: i64,
    /// Start of the latest attempt.
    pub started_ns: Option<i64>,
    /// When the job reached a final state.
    pub finished_ns: Option<i64>,
    /// In `retry-wait`: when it becomes runnable again.
    pub not_before_ns: Option<i64>,
    pub attempts: Vec<Attempt>,
    /// Failed attempts before this index do not count against `retries` (set by `dlq retry`).
    pub retry_base: u32,
    /// Further submissions merged into this one while it was queued.
    pub coalesced: u32,
    /// A cancellation was asked for while it ran; it stops at its next safe point.
    pub cancel_requested: bool,
    /// Latest progress sample while running (not persisted between transitions).
    pub progress: Option<OperationProgress>,
    pub result: Option<Response>,
    /// The error that ended the job (dead-letter) or the last retryable one (retry-wait).
    pub error: Option<ErrorReply>,
    /// The job's own log lines over all its attempts, oldest first; the last 200 lines and at
    /// most 64 KiB are kept (`backupctl queue log ID`).
    pub log: Vec<String>,
    /// Whose file-system rights the job's work on files runs with; `None`: the daemon's own.
    /// Decided by the daemon when the job is submitted (a submitter without `backup.any` /
    /// `restore.any` gets its own), never taken from a request.
    pub acts_as: Option<ActingUser>,
}

/// A user a job acts for: the kernel checks the job's reads and writes of files against this
/// uid, its primary gid and its groups (looked up when the job runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActingUser {
    pub uid: u32,
    /// The gid the submitter connected with; used only when the user database does not know
    /// `uid` (else its primary group there).
    pub gid: u32,
}

impl JobInfo {
    /// Failed attempts that count against the retries.
    pub fn failures(&self) -> u32 {
        self.attempts
            .iter()
            .skip(self.retry_base as usize)
            .filter(|a| a.outcome == AttemptOutcome::Failed)
            .count() as u32
    }

    /// Daemon crashes in a row during the latest attempts (since `retry_base`): the job may be
    /// what crashes the daemon.
    pub fn consecutive_crashes(&self) -> u32 {
        self.attempts
            .iter()
            .skip(self.retry_base as usize)
            .rev()
            .take_while(|a| a.outcome == AttemptOutcome::Crashed)
            .count() as u32
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub id: JobId,
    /// An equal job was already queued; this submission was merged into it.
    pub coalesced: bool,
    pub state: JobState,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    pub workers: u32,
    /// Jobs per state and priority, zeros left out.
    pub counts: Vec<StateCount>,
    pub running: Vec<JobInfo>,
    /// Jobs waiting to run, in the order they would start now.
    pub next: Vec<JobInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCount {
    pub state: JobState,
    pub priority: Priority,
    pub count: u64,
}

/// A job's transition (`from` → `state`) or, with `progress`, a progress sample of a running job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Increases by one per event since the daemon started.
    pub seq: u64,
    pub time_ns: i64,
    pub job: JobId,
    pub kind: String,
    pub priority: Priority,
    pub from: Option<JobState>,
    pub state: JobState,
    pub attempt: u32,
    pub progress: Option<OperationProgress>,
    pub error: Option<String>,
    /// The snapshot a backup made, on its transition to `succeeded`.
    pub snapshot: Option<String>,
    /// Who submitted the job: only that uid (and admins) read the event's error text.
    pub submitter_uid: u32,
}

/// Which finished jobs `queue history` lists. Filters combine (all must match).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// At most this many entries (newest first).
    pub limit: u32,
    /// Only jobs that finished within this long before now.
    pub since: Option<Duration>,
    /// Only backups of this watched source.
    pub source: Option<String>,
    /// Only jobs on this repository (by name).
    pub repo: Option<String>,
    /// Only jobs of this kind (`JobKind::name`: `backup`, `noop`, ...).
    pub kind: Option<String>,
}

/// One finished job in the history: flat fields, the stats pulled out of its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: JobId,
    pub kind: String,
    pub repo: Option<String>,
    pub source: Option<String>,
    /// The final state: succeeded, dead-letter, cancelled or timed-out.
    pub outcome: JobState,
    /// The class of the error that ended it, if it failed.
    pub error_class: Option<crate::error::ErrorCode>,
    pub error: Option<String>,
    pub attempts: u32,
    pub submitted_ns: i64,
    pub finished_ns: i64,
    /// Time spent running, over all attempts.
    pub duration_ms: u64,
    /// Files in the snapshot (backup) or restored (restore).
    pub files: u64,
    pub bytes_read: u64,
    /// Plaintext bytes new to the repository (backup).
    pub bytes_added: u64,
    /// Bytes written to packs for them, compressed and encrypted (backup).
    pub bytes_stored: u64,
    /// `bytes_added / bytes_stored` when something was stored.
    pub compression_ratio: Option<f64>,
    /// The snapshot a backup made.
    pub snapshot: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QueueRequest {
    /// -> [`Response::Submitted`], or `Busy` (with `retry_after_ms`) over the submission rate.
    Submit(Box<JobSpec>),
    /// -> [`Response::QueueStatus`].
    Status,
    /// -> [`Response::Job`].
    Job { id: JobId },
    /// Streams `Progress::Operation` while the job runs, then [`Response::Job`] once it is final.
    Wait { id: JobId },
    /// -> [`Response::Job`]: a queued job is cancelled at once; a running one stops at its next
    /// safe point, and the reply waits (up to 10 s) for that.
    Cancel { id: JobId },
    /// -> [`Response::Jobs`]: the dead-letter queue, oldest first.
    DeadLetters,
    /// Queue a dead-letter job again with a fresh retry budget -> [`Response::Job`].
    RetryDeadLetter { id: JobId },
    /// Delete every dead-letter job -> [`Response::Purged`].
    PurgeDeadLetters,
    /// -> [`Response::History`]: finished jobs from the history (kept apart from the live
    /// queue, under `[history]` retention), newest first.
    History(HistoryQuery),
    /// Set the number of workers (1–8) when `Some`; -> [`Response::Workers`].
    Workers { count: Option<u32> },
    /// Streams `Progress::Event` (the last `backlog` events first); with `follow` until the
    /// client goes away, else then [`Response::Done`].
    Events { follow: bool, backlog: u32 },
}

impl QueueRequest {
    pub fn permission(&self) -> Permission {
        match self {
            // The floor every submission needs; the daemon's operation for the kind names the
            // exact permission (restore, repository administration), checked in the same place.
            Self::Submit(_) => Permission::BackupOwn,
            Self::Status
            | Self::Job { .. }
            | Self::Wait { .. }
            | Self::DeadLetters
            | Self::History(_)
            | Self::Events { .. }
            | Self::Workers { count: None } => Permission::QueueRead,
            Self::Cancel { .. }
            | Self::RetryDeadLetter { .. }
            | Self::PurgeDeadLetters
            | Self::Workers { count: Some(_) } => Permission::QueueManage,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Submit(_) => "queue add",
            Self::Status => "queue status",
            Self::Job { .. } => "queue job",
            Self::Wait { .. } => "queue wait",
            Self::Cancel { .. } => "queue cancel",
            Self::DeadLetters => "queue dlq list",
            Self::RetryDeadLetter { .. } => "queue dlq retry",
            Self::PurgeDeadLetters => "queue dlq purge",
            Self::History(_) => "queue history",
            Self::Workers { .. } => "queue workers",
            Self::Events { .. } => "events",
        }
    }
}

#[cfg(test)]
mod subset_tests {
    use super::Subset;

    #[test]
    fn parts_parse_as_n_of_m_and_bad_ones_say_why() {
        let s: Subset = "3/20".parse().expect("parses");
        assert_eq!(
            s,
            Subset {
                index: 3,
                count: 20
            }
        );
        assert_eq!(s.to_string(), "3/20");
        for bad in ["0/20", "21/20", "1/0", "3", "a/b", "1/20000"] {
            assert!(bad.parse::<Subset>().is_err(), "{bad}");
        }
        assert!("0/5"
            .parse::<Subset>()
            .expect_err("zero")
            .contains("count from 1"));
    }
}
