//! `backupctl recovery fitness|select|plan|status|list` (requests in [`super::RecoveryRequest`])
//! and the `recovery` job kind (`run`, `rollback`, `commit`): picking the snapshot to recover
//! from and recovering it in steps that can be undone. docs/OPERATIONS.md, "Recovering data",
//! describes the steps.

use serde::{Deserialize, Serialize};

/// Which snapshots to score, and for what.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FitnessRequest {
    /// The repository (`None`: the default one).
    pub repo: Option<String>,
    /// Only this watched source's snapshots.
    pub source: Option<String>,
    /// These snapshots (ids or prefixes); empty: all that match the rest.
    pub snapshots: Vec<String>,
    /// An absolute path the snapshot must hold (as a file or directory).
    pub path: Option<Vec<u8>>,
    /// The point in time wanted (ns since the epoch; `None`: now). Later snapshots do not
    /// qualify; recency is measured back from it.
    pub at_ns: Option<i64>,
}

/// One snapshot's fitness for recovery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitnessReport {
    pub snapshot: String,
    pub time_ns: i64,
    /// The repository the report is for (a replica's name when scored there).
    pub repo: String,
    pub source: Option<String>,
    /// 0–100: the weighted sum of the factors.
    pub score: u32,
    pub factors: Vec<FitnessFactor>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitnessFactor {
    /// `integrity`, `completeness`, `recency` or `accessibility`.
    pub name: String,
    /// 0–100.
    pub score: u32,
    /// Percent of the total score (the four weights add up to 100).
    pub weight: u32,
    /// What the score rests on, one fact per line.
    pub evidence: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub chosen: FitnessReport,
    pub runner_up: Option<FitnessReport>,
    /// Why the chosen one won (and the runner-up lost), in words.
    pub reason: String,
    /// How many snapshots qualified.
    pub candidates: u32,
}

/// What of the snapshot's path a plan restores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnlyMode {
    /// Everything selected: the target becomes the snapshot's tree.
    #[default]
    All,
    /// Only entries the target lacks; nothing that exists is touched.
    Missing,
    /// Entries the target lacks or holds with other content; equal ones are not touched.
    Different,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    pub repo: Option<String>,
    pub source: Option<String>,
    /// The absolute path to recover, as it was backed up.
    pub path: Vec<u8>,
    /// Where it goes (`None`: back where it was, `path`).
    pub target: Option<Vec<u8>>,
    /// The point in time (ns); `None`: the newest fit snapshot.
    pub at_ns: Option<i64>,
    /// A given snapshot instead of a selection.
    pub snapshot: Option<String>,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// Only these paths (relative to `path`).
    pub paths: Vec<Vec<u8>>,
    /// Only files that changed between the newest snapshot at or before this time and the
    /// plan's snapshot.
    pub changed_since_ns: Option<i64>,
    pub only: OnlyMode,
    /// Recover from a replica even when the repository itself is fine.
    pub from_replica: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanState {
    /// Worked out; nothing done yet.
    Planned,
    /// A step is running.
    Running,
    /// A step was running when the daemon stopped; `run` continues, `rollback` undoes.
    Interrupted,
    /// A step failed; the target is as the failed step left it (see the step), `run` retries.
    Failed,
    /// Every step done; the previous state is kept until `commit`.
    Done,
    /// The rollback copy is deleted; the recovery is final.
    Committed,
    /// The target is back as it was before the plan ran.
    RolledBack,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Running => "running",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
            Self::Done => "done",
            Self::Committed => "committed",
            Self::RolledBack => "rolled-back",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    Preflight,
    Fetch,
    Restore,
    Verify,
    Swap,
    PostCheck,
    Cleanup,
}

impl StepKind {
    pub const ALL: [StepKind; 7] = [
        Self::Preflight,
        Self::Fetch,
        Self::Restore,
        Self::Verify,
        Self::Swap,
        Self::PostCheck,
        Self::Cleanup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preflight => "preflight",
            Self::Fetch => "fetch",
            Self::Restore => "restore",
            Self::Verify => "verify",
            Self::Swap => "swap",
            Self::PostCheck => "post-check",
            Self::Cleanup => "cleanup",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    Interrupted,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    /// 1-based, as `recovery run --step N` takes it.
    pub number: u32,
    pub kind: StepKind,
    pub state: StepState,
    pub estimate_ms: u64,
    /// Bytes the step reads or writes (estimate until it ran, then what it did).
    pub bytes: u64,
    pub files: u64,
    pub started_ns: Option<i64>,
    pub finished_ns: Option<i64>,
    /// The job that ran it last.
    pub job: Option<u64>,
    /// What it found or did, or why it failed.
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanInfo {
    pub id: String,
    pub state: PlanState,
    pub created_ns: i64,
    /// The repository the plan was made for.
    pub repo: String,
    /// Where the data comes from: `repo`, or a replica of it after a failover.
    pub reading_from: String,
    /// Why the plan reads from a replica, when it does.
    pub failover: Option<String>,
    pub snapshot: String,
    pub snapshot_time_ns: i64,
    pub at_ns: Option<i64>,
    /// How far before the requested time the snapshot is (the effective RPO).
    pub effective_rpo_ms: Option<u64>,
    pub path: Vec<u8>,
    pub target: Vec<u8>,
    /// What of `path` is restored, in words (`everything`, `only missing`, globs...).
    pub selection: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    /// Estimated time to recover, from this machine's measured restore throughput.
    pub rto_estimate_ms: u64,
    /// Bytes per second the estimate assumes, and whether it was measured here.
    pub throughput: u64,
    pub throughput_measured: bool,
    pub fitness: Option<FitnessReport>,
    pub steps: Vec<StepInfo>,
    /// Where the previous state of the target is kept until `commit`.
    pub rollback_dir: Option<Vec<u8>>,
    pub notes: Vec<String>,
}

/// What a `recovery` job does with its plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryAction {
    /// One step (1-based) or, with `None`, every step not done yet, in order.
    Run { step: Option<u32> },
    /// Puts the target back as it was before the plan ran.
    Rollback,
    /// Deletes the rollback copy.
    Commit,
}

/// The `recovery` job kind's arguments -> [`crate::protocol::Response::RecoveryPlan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryJobRequest {
    pub plan: String,
    pub action: RecoveryAction,
}

impl Default for RecoveryJobRequest {
    fn default() -> Self {
        Self {
            plan: String::new(),
            action: RecoveryAction::Run { step: None },
        }
    }
}
