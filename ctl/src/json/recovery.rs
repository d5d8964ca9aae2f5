//! `recovery drill` (the result of a `drill` job) and `recovery objectives`.

use super::time;
use backupd_common::protocol::{DrillResult, DrillSummary, Objectives, SourceObjectives};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct MismatchView {
    pub path: String,
    pub reason: String,
}

/// A drill's result (beside `job` and `kind` in a waited command's output).
#[derive(Debug, Serialize)]
pub struct DrillView {
    pub ok: bool,
    pub repo: String,
    pub source: Option<String>,
    pub snapshot: String,
    pub snapshot_time: String,
    pub sample_percent: f64,
    pub snapshot_files: u64,
    pub snapshot_bytes: u64,
    pub sampled_files: u64,
    pub files_restored: u64,
    pub bytes_restored: u64,
    pub verified: u64,
    pub live_compared: u64,
    pub live_changed: u64,
    pub mismatches: Vec<MismatchView>,
    pub restore_ms: u64,
    pub duration_ms: u64,
    pub bytes_per_sec: u64,
    pub files_per_sec: f64,
    pub rto_per_gb_ms: Option<u64>,
    pub notes: Vec<String>,
}

impl From<&DrillResult> for DrillView {
    fn from(r: &DrillResult) -> Self {
        Self {
            ok: r.ok,
            repo: r.repo.clone(),
            source: r.source.clone(),
            snapshot: r.snapshot.clone(),
            snapshot_time: time(r.snapshot_time_ns),
            sample_percent: r.sample_percent,
            snapshot_files: r.snapshot_files,
            snapshot_bytes: r.snapshot_bytes,
            sampled_files: r.sampled_files,
            files_restored: r.files_restored,
            bytes_restored: r.bytes_restored,
            verified: r.verified,
            live_compared: r.live_compared,
            live_changed: r.live_changed,
            mismatches: r
                .mismatches
                .iter()
                .map(|m| MismatchView {
                    path: m.path.clone(),
                    reason: m.reason.clone(),
                })
                .collect(),
            restore_ms: r.restore_ms,
            duration_ms: r.duration_ms,
            bytes_per_sec: r.bytes_per_sec,
            files_per_sec: r.files_per_sec,
            rto_per_gb_ms: r.rto_per_gb_ms,
            notes: r.notes.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LastDrillView {
    pub job: u64,
    pub time: String,
    pub ok: bool,
    pub snapshot: Option<String>,
    pub sampled_files: u64,
    pub bytes_restored: u64,
    pub mismatches: u64,
    pub rto_per_gb_ms: Option<u64>,
    pub error: Option<String>,
}

impl From<&DrillSummary> for LastDrillView {
    fn from(d: &DrillSummary) -> Self {
        Self {
            job: d.job,
            time: time(d.time_ns),
            ok: d.ok,
            snapshot: d.snapshot.clone(),
            sampled_files: d.sampled_files,
            bytes_restored: d.bytes_restored,
            mismatches: d.mismatches,
            rto_per_gb_ms: d.rto_per_gb_ms,
            error: d.error.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RpoView {
    pub target_ms: u64,
    pub achieved_ms: Option<u64>,
    pub worst_gap_ms: Option<u64>,
    pub met: bool,
    pub worst_gap_met: bool,
}

#[derive(Debug, Serialize)]
pub struct RtoView {
    pub target_ms: u64,
    pub estimate_ms: Option<u64>,
    pub snapshot_files: Option<u64>,
    pub snapshot_bytes: Option<u64>,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct SourceObjectivesView {
    pub name: String,
    pub repo: Option<String>,
    pub last_snapshot: Option<String>,
    pub last_snapshot_time: Option<String>,
    pub rpo: RpoView,
    pub rto: RtoView,
    pub last_drill: Option<LastDrillView>,
    pub note: Option<String>,
}

impl From<&SourceObjectives> for SourceObjectivesView {
    fn from(s: &SourceObjectives) -> Self {
        Self {
            name: s.name.clone(),
            repo: s.repo.clone(),
            last_snapshot: s.last_snapshot.clone(),
            last_snapshot_time: s.last_snapshot_ns.map(time),
            rpo: RpoView {
                target_ms: s.rpo_target_ms,
                achieved_ms: s.rpo_ms,
                worst_gap_ms: s.worst_gap_ms,
                met: s.rpo_met,
                worst_gap_met: s.worst_gap_met,
            },
            rto: RtoView {
                target_ms: s.rto_target_ms,
                estimate_ms: s.rto_estimate_ms,
                snapshot_files: s.snapshot_files,
                snapshot_bytes: s.snapshot_bytes,
                met: s.rto_met,
            },
            last_drill: s.last_drill.as_ref().map(LastDrillView::from),
            note: s.note.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ThroughputView {
    pub bytes_per_sec: u64,
    pub files_per_sec: f64,
    pub samples: u32,
    pub measured: bool,
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct ObjectivesView {
    pub time: String,
    pub throughput: ThroughputView,
    pub sources: Vec<SourceObjectivesView>,
}

impl From<&Objectives> for ObjectivesView {
    fn from(o: &Objectives) -> Self {
        let t = &o.throughput;
        Self {
            time: time(o.time_ns),
            throughput: ThroughputView {
                bytes_per_sec: t.bytes_per_sec,
                files_per_sec: t.files_per_sec,
                samples: t.samples,
                measured: t.measured,
                note: t.note.clone(),
            },
            sources: o.sources.iter().map(SourceObjectivesView::from).collect(),
        }
    }
}
