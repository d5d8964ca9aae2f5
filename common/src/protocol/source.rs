//! Watched sources: directories the daemon backs up continuously.

use super::{JobId, Permission};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A source as configured (and persisted by the daemon).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpec {
    pub name: String,
    /// Absolute path, raw bytes.
    pub path: Vec<u8>,
    /// Repository name; `None`: the default one.
    pub repo: Option<String>,
    pub excludes: Vec<String>,
    /// Watch with inotify; without it the source is only scanned every `rescan_every`.
    pub watch: bool,
    /// Quiet time after the last change before a backup is queued.
    pub debounce: Duration,
    /// Longest time a change waits for a backup under continuous churn.
    pub max_delay: Duration,
    /// A full (metadata-only) scan this often, as a backstop.
    pub rescan_every: Duration,
    /// When it is backed up besides (or instead of) watching, what retention keeps, and how
    /// long it may go without a snapshot.
    pub policy: SourcePolicy,
}

/// A source's operations policy: its schedule, its retention and its recovery point objective.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePolicy {
    /// A calendar schedule (`daily 02:00`, `weekly Sun 03:00`, `*-*-* 04:00:00`, `0 2 * * *`;
    /// see `backupd_common::schedule`). A source that is not watched and has neither this nor
    /// `every` is scanned every 10 minutes, as before schedules existed.
    pub schedule: Option<String>,
    /// A plain interval between scheduled backups.
    pub every: Option<Duration>,
    /// Each scheduled run starts up to this much later, by an amount fixed per host, source
    /// and slot, so that a fleet does not start together.
    pub jitter: Duration,
    pub retention: Retention,
    /// Retention runs at most this often; `None`: `[maintenance] retention_every`.
    pub retention_every: Option<Duration>,
    /// Longest time without a successful snapshot before `system health` is degraded; `None`:
    /// 1 h for a watched source, 24 h for one that is not.
    pub rpo: Option<Duration>,
    /// Longest acceptable time to restore the newest snapshot (recovery time objective),
    /// against the measured restore throughput; `None`: [`DEFAULT_RTO`].
    #[serde(default)]
    pub rto: Option<Duration>,
}

/// The RTO of a source that sets none: 4 hours.
pub const DEFAULT_RTO: Duration = Duration::from_secs(4 * 3600);

impl SourcePolicy {
    /// The RPO in force: the one set, else 1 h for a watched source and 24 h for one that is
    /// not.
    pub fn rpo_for(&self, watched: bool) -> Duration {
        self.rpo
            .unwrap_or(Duration::from_secs(if watched { 3600 } else { 86_400 }))
    }

    /// The RTO in force: the one set, else [`DEFAULT_RTO`].
    pub fn rto_or_default(&self) -> Duration {
        self.rto.unwrap_or(DEFAULT_RTO)
    }

    /// Backed up on a schedule or an interval.
    pub fn is_scheduled(&self) -> bool {
        self.schedule.is_some() || self.every.is_some()
    }
}

/// What retention keeps of a source's snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retention {
    /// [`KeepRules::SOURCE_DEFAULT`].
    #[default]
    Default,
    /// Nothing is ever forgotten automatically.
    KeepAll,
    Keep(KeepRules),
}

impl Retention {
    /// The rules in force; `None`: keep everything.
    pub fn rules(&self) -> Option<KeepRules> {
        match self {
            Self::Default => Some(KeepRules::SOURCE_DEFAULT),
            Self::KeepAll => None,
            Self::Keep(rules) => Some(rules.clone()),
        }
    }
}

/// Keep rules with restic's meaning (`forget --keep-*`). The newest snapshot of a source is
/// always kept as well, whatever the rules say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepRules {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<Duration>,
}

impl KeepRules {
    /// Everything for 1 h, then hourly for 48 h, daily for 30 days, weekly for 8 weeks and
    /// monthly for 12 months.
    pub const SOURCE_DEFAULT: KeepRules = KeepRules {
        last: 0,
        hourly: 48,
        daily: 30,
        weekly: 8,
        monthly: 12,
        yearly: 0,
        within: Some(Duration::from_secs(3600)),
    };

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `last 10, within 2d, hourly 48`: the rules that are set, for tables and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.last > 0 {
            parts.push(format!("last {}", self.last));
        }
        if let Some(w) = self.within {
            parts.push(format!("within {}", humantime::format_duration(w)));
        }
        for (name, n) in [
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ] {
            if n > 0 {
                parts.push(format!("{name} {n}"));
            }
        }
        parts.join(", ")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchState {
    /// Setting up watches.
    Starting,
    Watching,
    /// inotify is unavailable or its limit is reached: periodic scans only (see `note`).
    Periodic,
    /// `--no-watch`: periodic scans only.
    NotWatched,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub spec: SourceSpec,
    /// Added with `backupd --watch` for this run only.
    pub transient: bool,
    pub state: WatchState,
    pub dirs_watched: u64,
    /// Changed paths waiting for the next backup.
    pub pending_paths: u64,
    /// The backup job queued or running for this source.
    pub job: Option<JobId>,
    pub last_snapshot: Option<String>,
    pub last_snapshot_ns: Option<i64>,
    /// From the first change of the last batch to its snapshot being committed.
    pub last_latency_ms: Option<u64>,
    pub scans: u64,
    pub incremental_backups: u64,
    /// Why the source is not (fully) watched, and what to do.
    pub note: Option<String>,
    /// The next scheduled backup (ns since the epoch), when it has a schedule.
    pub next_run_ns: Option<i64>,
}

/// `source show`: the source, its schedule and what retention would do now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceDetail {
    pub info: SourceInfo,
    /// The rules retention applies (`None`: keeps everything).
    pub retention: Option<KeepRules>,
    /// When retention runs next (ns since the epoch).
    pub next_retention_ns: Option<i64>,
    /// What retention would keep and forget if it ran now (a dry run), oldest first; `None`
    /// with `retention_error` when it could not be worked out.
    pub retention_plan: Option<super::ForgetResult>,
    pub retention_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceRequest {
    /// -> `Response::Source`; the first backup is queued at once.
    Add(Box<SourceSpec>),
    /// -> `Response::Sources`.
    List,
    /// Replace a source's spec (same name) and restart it -> `Response::Source`.
    Set(Box<SourceSpec>),
    /// -> `Response::SourceDetail`.
    Show { name: String },
    /// -> `Response::Source` (as it was); its snapshots stay.
    Remove { name: String },
}

impl SourceRequest {
    pub fn permission(&self) -> Permission {
        match self {
            Self::Add(_) | Self::Set(_) | Self::Remove { .. } => Permission::SourceManage,
            Self::List | Self::Show { .. } => Permission::SourceRead,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Add(_) => "source add",
            Self::List => "source list",
            Self::Set(_) => "source set",
            Self::Show { .. } => "source show",
            Self::Remove { .. } => "source remove",
        }
    }
}
