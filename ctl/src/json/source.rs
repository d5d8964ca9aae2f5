//! Watched sources.

use super::{ms, path, time};
use backupd_common::protocol::{KeepRules, Retention, SourceDetail, SourceInfo, WatchState};
use serde::Serialize;

pub fn watch_state(s: WatchState) -> &'static str {
    match s {
        WatchState::Starting => "starting",
        WatchState::Watching => "watching",
        WatchState::Periodic => "periodic",
        WatchState::NotWatched => "not-watched",
    }
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    pub name: String,
    pub path: String,
    pub repo: Option<String>,
    pub excludes: Vec<String>,
    pub watch: bool,
    pub debounce_ms: u64,
    pub max_delay_ms: u64,
    pub rescan_every_ms: u64,
    /// Added with `backupd --watch` for this run only.
    pub transient: bool,
    pub state: &'static str,
    pub dirs_watched: u64,
    pub pending_paths: u64,
    pub job: Option<u64>,
    pub last_snapshot: Option<String>,
    pub last_snapshot_time: Option<String>,
    pub last_snapshot_ns: Option<i64>,
    pub last_latency_ms: Option<u64>,
    pub scans: u64,
    pub incremental_backups: u64,
    pub note: Option<String>,
    /// Calendar schedule as given (`daily 02:00`), or null.
    pub schedule: Option<String>,
    /// Plain interval between scheduled backups, or null.
    pub every_ms: Option<u64>,
    pub jitter_ms: u64,
    /// The next scheduled backup, when the source has a schedule.
    pub next_run: Option<String>,
    pub next_run_ns: Option<i64>,
    /// `default`, `keep-all` or `keep`.
    pub retention: &'static str,
    /// The rules in force (the default's when `retention` is `default`); null with `keep-all`.
    pub keep: Option<KeepView>,
    /// Null: the daemon's `maintenance.retention_every`.
    pub retention_every_ms: Option<u64>,
    /// The RPO in force (explicit, or 1 h watched / 24 h not watched).
    pub rpo_ms: u64,
    /// The RTO in force (explicit, or 4 h).
    pub rto_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct KeepView {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within_ms: Option<u64>,
}

impl From<&KeepRules> for KeepView {
    fn from(k: &KeepRules) -> Self {
        Self {
            last: k.last,
            hourly: k.hourly,
            daily: k.daily,
            weekly: k.weekly,
            monthly: k.monthly,
            yearly: k.yearly,
            within_ms: k.within.map(ms),
        }
    }
}

/// `source show --json`.
#[derive(Debug, Serialize)]
pub struct SourceDetailView {
    pub source: SourceView,
    pub next_retention: Option<String>,
    pub next_retention_ns: Option<i64>,
    /// What retention would do if it ran now (a dry run): the `forget` result shape.
    pub retention_plan: Option<super::result::ResultView>,
    pub retention_error: Option<String>,
}

impl From<&SourceDetail> for SourceDetailView {
    fn from(d: &SourceDetail) -> Self {
        Self {
            source: SourceView::from(&d.info),
            next_retention: d.next_retention_ns.map(time),
            next_retention_ns: d.next_retention_ns,
            retention_plan: d
                .retention_plan
                .as_ref()
                .map(super::result::ResultView::of_forget),
            retention_error: d.retention_error.clone(),
        }
    }
}

impl From<&SourceInfo> for SourceView {
    fn from(s: &SourceInfo) -> Self {
        Self {
            name: s.spec.name.clone(),
            path: path(&s.spec.path),
            repo: s.spec.repo.clone(),
            excludes: s.spec.excludes.clone(),
            watch: s.spec.watch,
            debounce_ms: ms(s.spec.debounce),
            max_delay_ms: ms(s.spec.max_delay),
            rescan_every_ms: ms(s.spec.rescan_every),
            transient: s.transient,
            state: watch_state(s.state),
            dirs_watched: s.dirs_watched,
            pending_paths: s.pending_paths,
            job: s.job,
            last_snapshot: s.last_snapshot.clone(),
            last_snapshot_time: s.last_snapshot_ns.map(time),
            last_snapshot_ns: s.last_snapshot_ns,
            last_latency_ms: s.last_latency_ms,
            scans: s.scans,
            incremental_backups: s.incremental_backups,
            note: s.note.clone(),
            schedule: s.spec.policy.schedule.clone(),
            every_ms: s.spec.policy.every.map(ms),
            jitter_ms: ms(s.spec.policy.jitter),
            next_run: s.next_run_ns.map(time),
            next_run_ns: s.next_run_ns,
            retention: match s.spec.policy.retention {
                Retention::Default => "default",
                Retention::KeepAll => "keep-all",
                Retention::Keep(_) => "keep",
            },
            keep: s.spec.policy.retention.rules().as_ref().map(KeepView::from),
            retention_every_ms: s.spec.policy.retention_every.map(ms),
            rpo_ms: ms(s.spec.policy.rpo_for(s.spec.watch)),
            rto_ms: ms(s.spec.policy.rto_or_default()),
        }
    }
}
