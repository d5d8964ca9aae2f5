//! What the daemon does on its own, as `system health` reports it: per source its backups,
//! schedule and retention; per repository its prune and verification schedules.

use serde::{Deserialize, Serialize};

/// One scheduled operation's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerState {
    /// What it runs on (`daily 04:00`, `every 1h`); `None`: not scheduled.
    pub schedule: Option<String>,
    /// When it last fired (ns since the epoch).
    pub last_run_ns: Option<i64>,
    /// When it fires next.
    pub next_run_ns: Option<i64>,
    /// The job it submitted last, and how that ended (`JobState` name) once it has.
    pub last_job: Option<u64>,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    /// It should have run by now and has not (the daemon is busy or the job keeps failing).
    pub overdue: bool,
}

/// One source's health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    pub name: String,
    /// Finish time (ns) of the newest successful backup of the source in the history.
    pub last_success_ns: Option<i64>,
    pub last_failure_ns: Option<i64>,
    pub last_error: Option<String>,
    /// The next scheduled backup, when it has a schedule.
    pub next_run_ns: Option<i64>,
    /// Its snapshots in the repository now (`None`: not known, the repository is not open).
    pub snapshots: Option<u64>,
    pub rpo_ms: u64,
    /// Its newest successful backup is younger than the RPO.
    pub within_rpo: bool,
    pub retention: TimerState,
}

/// One repository's maintenance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoMaintenance {
    pub name: String,
    pub prune: TimerState,
    /// Structure check.
    pub check: TimerState,
    /// The rotating `--read-data-subset`.
    pub read_data: TimerState,
    /// The subset the next read-data check reads: (index, count), 1-based.
    pub read_data_next: (u32, u32),
}
