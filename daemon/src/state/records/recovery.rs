//! Recovery plans as stored: tree `recovery_plans` (key: the plan id), one record per plan with
//! its steps; the swap's journal and the selected paths, which can be large, under their own
//! keys (`ID/swap`, `ID/only`) in the same tree, written once each.

use super::versioned;
use backupd_common::protocol::{
    FitnessReport, OnlyMode, PlanInfo, PlanState, StepInfo, StepKind, StepState,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub v: u32,
    pub id: String,
    /// `planned`, `running`, `interrupted`, `failed`, `done`, `committed`, `rolled-back`.
    pub state: String,
    pub created_ns: i64,
    pub created_by: u32,
    pub repo: String,
    pub reading_from: String,
    pub failover: Option<String>,
    pub snapshot: String,
    pub snapshot_time_ns: i64,
    pub at_ns: Option<i64>,
    pub path: Vec<u8>,
    pub target: Vec<u8>,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// `all`, `missing` or `different`.
    pub only: String,
    /// Whether the restore is limited to the paths stored under `ID/only`.
    pub limited: bool,
    pub selection: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub rto_estimate_ms: u64,
    pub throughput: u64,
    pub throughput_measured: bool,
    /// The fitness report as shown when the plan was made (JSON of the wire type: it is
    /// display data, never read back into decisions).
    pub fitness: Option<serde_json::Value>,
    pub steps: Vec<StepRecord>,
    /// The target did not exist; the swap created it (rollback removes it again).
    pub created_target: bool,
    pub notes: Vec<String>,
    /// When the swap finished (the rollback copy's age counts from here).
    pub swapped_ns: Option<i64>,
}

versioned!(PlanRecord, 1);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// `preflight`, `fetch`, `restore`, `verify`, `swap`, `post-check`, `cleanup`.
    pub kind: String,
    /// `pending`, `running`, `done`, `failed`, `interrupted`.
    pub state: String,
    pub estimate_ms: u64,
    pub bytes: u64,
    pub files: u64,
    pub started_ns: Option<i64>,
    pub finished_ns: Option<i64>,
    pub job: Option<u64>,
    pub detail: Option<String>,
}

/// One entry the swap moves: `rel` (relative to the target; empty: the target itself), and
/// whether something stood there before (it goes into the rollback copy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapUnit {
    pub rel: Vec<u8>,
    pub had_original: bool,
    /// Nothing is staged for it: the original only moves aside (a full recovery removes what
    /// the snapshot does not hold).
    pub remove_only: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapJournal {
    pub v: u32,
    pub units: Vec<SwapUnit>,
}

versioned!(SwapJournal, 1);

pub fn state_name(s: PlanState) -> &'static str {
    s.as_str()
}

pub fn parse_state(s: &str) -> PlanState {
    match s {
        "running" => PlanState::Running,
        "interrupted" => PlanState::Interrupted,
        "failed" => PlanState::Failed,
        "done" => PlanState::Done,
        "committed" => PlanState::Committed,
        "rolled-back" => PlanState::RolledBack,
        _ => PlanState::Planned,
    }
}

pub fn parse_step_kind(s: &str) -> StepKind {
    StepKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .unwrap_or(StepKind::Cleanup)
}

pub fn parse_step_state(s: &str) -> StepState {
    match s {
        "running" => StepState::Running,
        "done" => StepState::Done,
        "failed" => StepState::Failed,
        "interrupted" => StepState::Interrupted,
        _ => StepState::Pending,
    }
}

pub fn only_name(o: OnlyMode) -> &'static str {
    match o {
        OnlyMode::All => "all",
        OnlyMode::Missing => "missing",
        OnlyMode::Different => "different",
    }
}

pub fn parse_only(s: &str) -> OnlyMode {
    match s {
        "missing" => OnlyMode::Missing,
        "different" => OnlyMode::Different,
        _ => OnlyMode::All,
    }
}

impl PlanRecord {
    pub fn plan_state(&self) -> PlanState {
        parse_state(&self.state)
    }

    pub fn info(&self) -> PlanInfo {
        PlanInfo {
            id: self.id.clone(),
            state: self.plan_state(),
            created_ns: self.created_ns,
            repo: self.repo.clone(),
            reading_from: self.reading_from.clone(),
            failover: self.failover.clone(),
            snapshot: self.snapshot.clone(),
            snapshot_time_ns: self.snapshot_time_ns,
            at_ns: self.at_ns,
            effective_rpo_ms: self
                .at_ns
                .map(|at| (at.saturating_sub(self.snapshot_time_ns).max(0) / 1_000_000) as u64),
            path: self.path.clone(),
            target: self.target.clone(),
            selection: self.selection.clone(),
            files: self.files,
            bytes: self.bytes,
            rto_estimate_ms: self.rto_estimate_ms,
            throughput: self.throughput,
            throughput_measured: self.throughput_measured,
            fitness: self
                .fitness
                .clone()
                .and_then(|v| serde_json::from_value::<FitnessReport>(v).ok()),
            steps: self
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepInfo {
                    number: i as u32 + 1,
                    kind: parse_step_kind(&s.kind),
                    state: parse_step_state(&s.state),
                    estimate_ms: s.estimate_ms,
                    bytes: s.bytes,
                    files: s.files,
                    started_ns: s.started_ns,
                    finished_ns: s.finished_ns,
                    job: s.job,
                    detail: s.detail.clone(),
                })
                .collect(),
            rollback_dir: None,
            notes: self.notes.clone(),
        }
    }
}
