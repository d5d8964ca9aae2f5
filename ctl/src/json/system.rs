//! `system ...`: health, identity, reload, import.

use super::time;
use backupd_common::protocol::{
    HealthReport, HealthStatus, Identity, ImportItem, ImportReport, ReloadReport, RepoMaintenance,
    RunMode, SourceHealth, TimerState,
};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct HealthView {
    /// `ok`, `degraded` (see `notes`) or `stopping`.
    pub status: &'static str,
    pub version: String,
    pub protocol_version: u32,
    pub uptime_ms: u64,
    pub pid: u32,
    /// `system` or `user`.
    pub mode: &'static str,
    pub socket: String,
    pub socket_activated: bool,
    pub state_dir: String,
    pub config_file: Option<String>,
    pub connections: u32,
    pub notes: Vec<String>,
    pub sources: Vec<SourceHealthView>,
    pub repositories: Vec<RepoMaintenanceView>,
    /// The health score (0-100), its level and what lowered it.
    pub score: super::perf::ScoreView,
}

/// A scheduled operation.
#[derive(Debug, Serialize)]
pub struct TimerView {
    /// `daily 04:00`, `every 1h`; null: not scheduled.
    pub schedule: Option<String>,
    pub last_run: Option<String>,
    pub next_run: Option<String>,
    pub last_job: Option<u64>,
    /// How its last job ended (`succeeded`, `dead-letter`, `problems`, ...), `nothing new`,
    /// `requested`, or null while it runs.
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub overdue: bool,
}

impl From<&TimerState> for TimerView {
    fn from(t: &TimerState) -> Self {
        Self {
            schedule: t.schedule.clone(),
            last_run: t.last_run_ns.map(time),
            next_run: t.next_run_ns.map(time),
            last_job: t.last_job,
            last_outcome: t.last_outcome.clone(),
            last_error: t.last_error.clone(),
            overdue: t.overdue,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SourceHealthView {
    pub name: String,
    pub last_success: Option<String>,
    pub last_failure: Option<String>,
    pub last_error: Option<String>,
    pub next_run: Option<String>,
    /// Its snapshots in the repository; null when not counted yet.
    pub snapshots: Option<u64>,
    pub rpo_ms: u64,
    pub within_rpo: bool,
    pub retention: TimerView,
}

#[derive(Debug, Serialize)]
pub struct RepoMaintenanceView {
    pub name: String,
    pub prune: TimerView,
    pub check: TimerView,
    pub read_data: TimerView,
    /// The subset the next read-data run reads, as `N/M`.
    pub read_data_next: String,
}

impl From<&SourceHealth> for SourceHealthView {
    fn from(s: &SourceHealth) -> Self {
        Self {
            name: s.name.clone(),
            last_success: s.last_success_ns.map(time),
            last_failure: s.last_failure_ns.map(time),
            last_error: s.last_error.clone(),
            next_run: s.next_run_ns.map(time),
            snapshots: s.snapshots,
            rpo_ms: s.rpo_ms,
            within_rpo: s.within_rpo,
            retention: TimerView::from(&s.retention),
        }
    }
}

impl From<&RepoMaintenance> for RepoMaintenanceView {
    fn from(r: &RepoMaintenance) -> Self {
        Self {
            name: r.name.clone(),
            prune: TimerView::from(&r.prune),
            check: TimerView::from(&r.check),
            read_data: TimerView::from(&r.read_data),
            read_data_next: format!("{}/{}", r.read_data_next.0, r.read_data_next.1),
        }
    }
}

impl From<&HealthReport> for HealthView {
    fn from(h: &HealthReport) -> Self {
        Self {
            status: match h.status {
                HealthStatus::Ok => "ok",
                HealthStatus::Degraded => "degraded",
                HealthStatus::Stopping => "stopping",
            },
            version: h.version.clone(),
            protocol_version: h.protocol_version,
            uptime_ms: h.uptime_secs.saturating_mul(1000),
            pid: h.pid,
            mode: match h.mode {
                RunMode::System => "system",
                RunMode::User => "user",
            },
            socket: h.socket.clone(),
            socket_activated: h.socket_activated,
            state_dir: h.state_dir.clone(),
            config_file: h.config_file.clone(),
            connections: h.connections,
            notes: h.notes.clone(),
            sources: h.sources.iter().map(SourceHealthView::from).collect(),
            repositories: h
                .repositories
                .iter()
                .map(RepoMaintenanceView::from)
                .collect(),
            score: super::perf::ScoreView::from(&h.score),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IdentityView {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub role: &'static str,
}

impl From<&Identity> for IdentityView {
    fn from(i: &Identity) -> Self {
        Self {
            uid: i.uid,
            gid: i.gid,
            pid: i.pid,
            role: i.role.map_or("none", |r| r.as_str()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReloadView {
    pub config_file: Option<String>,
    pub applied: Vec<String>,
    pub restart_required: Vec<String>,
}

impl From<&ReloadReport> for ReloadView {
    fn from(r: &ReloadReport) -> Self {
        Self {
            config_file: r.config_file.clone(),
            applied: r.applied.clone(),
            restart_required: r.restart_required.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ImportItemView {
    pub kind: String,
    pub name: String,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImportView {
    pub added: Vec<ImportItemView>,
    pub skipped: Vec<ImportItemView>,
}

impl From<&ImportReport> for ImportView {
    fn from(r: &ImportReport) -> Self {
        let items = |list: &[ImportItem]| {
            list.iter()
                .map(|i| ImportItemView {
                    kind: i.kind.clone(),
                    name: i.name.clone(),
                    reason: i.reason.clone(),
                })
                .collect()
        };
        Self {
            added: items(&r.added),
            skipped: items(&r.skipped),
        }
    }
}
