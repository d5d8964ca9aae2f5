//! The performance monitor and tuner: samples of the machine and the daemon, bottlenecks, the
//! tunables the tuner sets and the changes it made, and the health score built from them.
//! `backupctl perf ...`, `backupctl dashboard`, and the `score` of `system health`.

use super::audit::Severity;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `backupctl perf ...`. Reading needs `system.read`; changing the tuner `system.manage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PerfRequest {
    /// -> [`crate::protocol::Response::PerfCurrent`].
    Current,
    /// Averages, peaks, time in each bottleneck and recommendations over the last `since_ms`
    /// -> [`crate::protocol::Response::PerfReport`].
    Report { since_ms: u64 },
    /// The stored samples of the last `since_ms`, oldest first, at most `max_points` (evenly
    /// thinned; 0 = all) -> [`crate::protocol::Response::PerfSamples`].
    Metrics { since_ms: u64, max_points: u32 },
    /// Open bottlenecks and those that ended within `since_ms`, newest first
    /// -> [`crate::protocol::Response::Bottlenecks`].
    Bottlenecks { since_ms: u64 },
    /// The tuner's changes within `since_ms`, newest first
    /// -> [`crate::protocol::Response::TuningHistory`].
    History { since_ms: u64 },
    /// One tuning round now, whether or not automatic tuning is on
    /// -> [`crate::protocol::Response::Optimized`].
    Optimize,
    /// Turns automatic tuning on or off (persisted) -> [`crate::protocol::Response::Optimized`]
    /// with no changes and the tunables in force.
    Auto { on: bool },
}

impl PerfRequest {
    pub fn changes_state(&self) -> bool {
        matches!(self, Self::Optimize | Self::Auto { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Current => "perf current",
            Self::Report { .. } => "perf report",
            Self::Metrics { .. } => "perf metrics",
            Self::Bottlenecks { .. } => "perf bottlenecks",
            Self::History { .. } => "perf history",
            Self::Optimize => "perf optimize",
            Self::Auto { .. } => "perf auto",
        }
    }
}

/// Pressure-stall averages over the last 10 s (`/proc/pressure/*`), in percent of wall time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub cpu_some: f32,
    pub memory_some: f32,
    pub memory_full: f32,
    pub io_some: f32,
    pub io_full: f32,
}

/// One file system that holds a source, a repository or the state directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// The first path that led to it (a source, repository or state directory).
    pub path: String,
    /// What it holds: `state`, `repository <name>`, `source <name>`.
    pub holds: Vec<String>,
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Bytes an unprivileged writer can still use.
    pub available_bytes: u64,
}

impl DiskUsage {
    /// Used share of what writers can use, in percent (what `df` prints).
    pub fn used_percent(&self) -> f64 {
        let usable = self.used_bytes + self.available_bytes;
        if usable == 0 {
            0.0
        } else {
            self.used_bytes as f64 * 100.0 / usable as f64
        }
    }
}

/// One reading of the machine and the daemon.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerfSample {
    pub time_ns: i64,
    /// Seconds this sample stands for: the sampling interval, or 300 for a downsampled one.
    pub span_secs: u32,
    /// All CPUs together, in percent.
    pub cpu_percent: f32,
    /// The daemon's CPU time in percent of all CPUs.
    pub daemon_cpu_percent: f32,
    /// Share of wall time the CPUs waited for I/O (`/proc/stat` iowait), in percent.
    pub iowait_percent: f32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub daemon_rss_bytes: u64,
    /// `None`: the kernel has no pressure-stall information.
    pub pressure: Option<Pressure>,
    pub disks: Vec<DiskUsage>,
    /// What the daemon's jobs read from sources, stored into repositories and restored, per
    /// second over the sample's span.
    pub read_bps: u64,
    pub stored_bps: u64,
    pub restored_bps: u64,
    /// Jobs waiting, and running.
    pub queued: u32,
    pub running: u32,
}

impl PerfSample {
    pub fn memory_percent(&self) -> f64 {
        if self.memory_total_bytes == 0 {
            0.0
        } else {
            self.memory_used_bytes as f64 * 100.0 / self.memory_total_bytes as f64
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BottleneckKind {
    Cpu,
    Memory,
    Disk,
    Io,
}

impl BottleneckKind {
    pub const ALL: [Self; 4] = [Self::Cpu, Self::Memory, Self::Disk, Self::Io];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Disk => "disk",
            Self::Io => "io",
        }
    }
}

impl fmt::Display for BottleneckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource past its threshold, from the first sample that showed it to the first that did
/// not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bottleneck {
    pub id: u64,
    pub kind: BottleneckKind,
    /// What is short: `cpu`, `memory`, `io`, or the disk's path.
    pub subject: String,
    /// The worst severity it reached: `info`, `warning` or `critical`.
    pub severity: Severity,
    pub started_ns: i64,
    /// `None` while it lasts.
    pub ended_ns: Option<i64>,
    /// The metric and the threshold it crossed, e.g. `cpu 93.1 % > 80 %`, or a forecast.
    pub reason: String,
    /// The worst value seen (percent).
    pub peak: f64,
    /// What the daemon did about it (tuning changes, or why none).
    pub actions: Vec<String>,
}

/// I/O scheduling class of the daemon's job threads (`ioprio_set(2)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IoClass {
    /// Best-effort with a level from 0 (first) to 7 (last).
    BestEffort(u8),
    /// Only when no one else uses the disk.
    Idle,
}

impl fmt::Display for IoClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BestEffort(level) => write!(f, "best-effort/{level}"),
            Self::Idle => f.write_str("idle"),
        }
    }
}

/// What the tuner sets, and jobs read when they start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunables {
    /// Jobs the queue runs at once (at most `queue.workers`).
    pub workers: u32,
    /// Threads one backup or restore works with.
    pub threads: u32,
    /// zstd level for new blobs.
    pub zstd_level: i32,
    /// Size a pack is closed at (bytes): what a backup thread holds in memory.
    pub pack_bytes: u64,
    /// CPU niceness of backup, check and prune threads (0..=19).
    pub nice: i32,
    pub io_class: IoClass,
}

/// One change the tuner made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TuningChange {
    pub time_ns: i64,
    /// The tunable's name, as in [`Tunables`].
    pub tunable: String,
    pub old: String,
    pub new: String,
    /// The metric that triggered it and its value, e.g. `cpu 91.2 %`.
    pub metric: String,
    pub reason: String,
    /// `auto` (the 5-minute round) or `manual` (`perf optimize`).
    pub trigger: String,
}

/// What a tuning round did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimized {
    pub auto: bool,
    pub changes: Vec<TuningChange>,
    /// Why nothing (else) changed, one line per rule that held back.
    pub notes: Vec<String>,
    pub tunables: Tunables,
}

/// Median of the samples of one hour of the day over the last week.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub hour: u8,
    pub samples: u32,
    pub cpu_percent: f32,
    pub memory_percent: f32,
    pub iowait_percent: f32,
}

/// `perf current`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerfCurrent {
    /// The newest sample; `None` before the first one.
    pub sample: Option<PerfSample>,
    /// The baseline of this hour of the day, once a sample of it is stored.
    pub baseline: Option<Baseline>,
    pub open_bottlenecks: Vec<Bottleneck>,
    pub auto: bool,
    pub tunables: Tunables,
    /// The configured (untuned) values.
    pub configured: Tunables,
    pub sample_interval_ms: u64,
    pub optimize_interval_ms: u64,
}

/// Average and peak of one metric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub avg: f64,
    pub peak: f64,
}

/// `perf report`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerfReport {
    pub since_ns: i64,
    pub until_ns: i64,
    pub samples: u32,
    pub cpu_percent: Stat,
    pub daemon_cpu_percent: Stat,
    pub memory_percent: Stat,
    pub daemon_rss_bytes: Stat,
    pub iowait_percent: Stat,
    /// `None` without pressure-stall information.
    pub io_pressure: Option<Stat>,
    pub read_bps: Stat,
    pub stored_bps: Stat,
    pub restored_bps: Stat,
    pub queued: Stat,
    /// Per disk: usage now and the forecast.
    pub disks: Vec<DiskForecast>,
    /// Milliseconds spent in each kind of bottleneck within the window.
    pub bottleneck_ms: Vec<(BottleneckKind, u64)>,
    pub bottlenecks: u32,
    pub tuning_changes: u32,
    pub recommendations: Vec<String>,
}

/// A disk's usage and where its growth leads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskForecast {
    pub path: String,
    pub holds: Vec<String>,
    pub used_percent: f64,
    /// Bytes per hour over the fit window (negative: shrinking).
    pub growth_bytes_per_hour: f64,
    /// When it will be full at that rate; `None`: not growing.
    pub full_at_ns: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthLevel {
    Ok,
    Degraded,
    Failing,
}

impl HealthLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
        }
    }
}

/// One reason the health score is below 100.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFactor {
    /// `bottlenecks`, `failing_jobs`, `dead_letters`, `rpo`, `verification`, `disk_forecast`.
    pub name: String,
    /// Points taken off.
    pub penalty: u32,
    pub detail: String,
}

/// The health score: 100 minus the factors' penalties (at least 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthScore {
    pub score: u32,
    pub level: HealthLevel,
    pub factors: Vec<HealthFactor>,
}
