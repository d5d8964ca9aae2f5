//! `recovery fitness|select|plan|status|list|run|rollback|commit`.

use super::{path, time};
use backupd_common::protocol::{FitnessReport, PlanInfo, Selection, StepInfo};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct FitnessView {
    pub snapshot: String,
    pub time: String,
    pub time_ns: i64,
    pub repo: String,
    pub source: Option<String>,
    /// 0–100.
    pub score: u32,
    pub factors: Vec<FactorView>,
}

#[derive(Debug, Serialize)]
pub struct FactorView {
    /// `integrity`, `completeness`, `recency` or `accessibility`.
    pub name: String,
    pub score: u32,
    /// Percent of the total; the four add up to 100.
    pub weight: u32,
    pub evidence: Vec<String>,
}

impl From<&FitnessReport> for FitnessView {
    fn from(r: &FitnessReport) -> Self {
        Self {
            snapshot: r.snapshot.clone(),
            time: time(r.time_ns),
            time_ns: r.time_ns,
            repo: r.repo.clone(),
            source: r.source.clone(),
            score: r.score,
            factors: r
                .factors
                .iter()
                .map(|f| FactorView {
                    name: f.name.clone(),
                    score: f.score,
                    weight: f.weight,
                    evidence: f.evidence.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SelectionView {
    pub chosen: FitnessView,
    pub runner_up: Option<FitnessView>,
    pub reason: String,
    pub candidates: u32,
}

impl From<&Selection> for SelectionView {
    fn from(s: &Selection) -> Self {
        Self {
            chosen: FitnessView::from(&s.chosen),
            runner_up: s.runner_up.as_ref().map(FitnessView::from),
            reason: s.reason.clone(),
            candidates: s.candidates,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub number: u32,
    /// `preflight`, `fetch`, `restore`, `verify`, `swap`, `post-check`, `cleanup`.
    pub kind: &'static str,
    /// `pending`, `running`, `done`, `failed`, `interrupted`.
    pub state: &'static str,
    pub estimate_ms: u64,
    pub bytes: u64,
    pub files: u64,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub job: Option<u64>,
    pub detail: Option<String>,
}

impl From<&StepInfo> for StepView {
    fn from(s: &StepInfo) -> Self {
        Self {
            number: s.number,
            kind: s.kind.as_str(),
            state: s.state.as_str(),
            estimate_ms: s.estimate_ms,
            bytes: s.bytes,
            files: s.files,
            started: s.started_ns.map(time),
            finished: s.finished_ns.map(time),
            job: s.job,
            detail: s.detail.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PlanView {
    pub id: String,
    /// `planned`, `running`, `interrupted`, `failed`, `done`, `committed`, `rolled-back`.
    pub state: &'static str,
    pub created: String,
    pub repo: String,
    pub reading_from: String,
    pub failover: Option<String>,
    pub snapshot: String,
    pub snapshot_time: String,
    pub snapshot_time_ns: i64,
    pub at: Option<String>,
    pub at_ns: Option<i64>,
    pub effective_rpo_ms: Option<u64>,
    pub path: String,
    pub target: String,
    pub selection: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub rto_estimate_ms: u64,
    /// Bytes per second the estimate assumes.
    pub throughput: u64,
    pub throughput_measured: bool,
    pub fitness: Option<FitnessView>,
    pub steps: Vec<StepView>,
    pub rollback_dir: Option<String>,
    pub notes: Vec<String>,
}

impl From<&PlanInfo> for PlanView {
    fn from(p: &PlanInfo) -> Self {
        Self {
            id: p.id.clone(),
            state: p.state.as_str(),
            created: time(p.created_ns),
            repo: p.repo.clone(),
            reading_from: p.reading_from.clone(),
            failover: p.failover.clone(),
            snapshot: p.snapshot.clone(),
            snapshot_time: time(p.snapshot_time_ns),
            snapshot_time_ns: p.snapshot_time_ns,
            at: p.at_ns.map(time),
            at_ns: p.at_ns,
            effective_rpo_ms: p.effective_rpo_ms,
            path: path(&p.path),
            target: path(&p.target),
            selection: p.selection.clone(),
            files: p.files,
            bytes: p.bytes,
            rto_estimate_ms: p.rto_estimate_ms,
            throughput: p.throughput,
            throughput_measured: p.throughput_measured,
            fitness: p.fitness.as_ref().map(FitnessView::from),
            steps: p.steps.iter().map(StepView::from).collect(),
            rollback_dir: p.rollback_dir.as_deref().map(path),
            notes: p.notes.clone(),
        }
    }
}
