//! `perf ...` and the health score of `system health`.

use super::time;
use backupd_common::protocol::{
    Baseline, Bottleneck, DiskForecast, DiskUsage, HealthScore, IoClass, Optimized, PerfCurrent,
    PerfReport, PerfSample, Pressure, Stat, Tunables, TuningChange,
};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct DiskView {
    pub path: String,
    /// `state`, `repository NAME`, `source NAME` (non-admins see the kind only).
    pub holds: Vec<String>,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub used_percent: f64,
}

impl From<&DiskUsage> for DiskView {
    fn from(d: &DiskUsage) -> Self {
        Self {
            path: d.path.clone(),
            holds: d.holds.clone(),
            total_bytes: d.total_bytes,
            used_bytes: d.used_bytes,
            available_bytes: d.available_bytes,
            used_percent: round2(d.used_percent()),
        }
    }
}

fn round2(v: f64) -> f64 {
    super::round(v, 2)
}

#[derive(Debug, Serialize)]
pub struct PressureView {
    pub cpu_some: f32,
    pub memory_some: f32,
    pub memory_full: f32,
    pub io_some: f32,
    pub io_full: f32,
}

impl From<&Pressure> for PressureView {
    fn from(p: &Pressure) -> Self {
        Self {
            cpu_some: p.cpu_some,
            memory_some: p.memory_some,
            memory_full: p.memory_full,
            io_some: p.io_some,
            io_full: p.io_full,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SampleView {
    pub time: String,
    pub time_ns: i64,
    pub span_ms: u64,
    pub cpu_percent: f32,
    pub daemon_cpu_percent: f32,
    pub iowait_percent: f32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub memory_percent: f64,
    pub daemon_rss_bytes: u64,
    /// Null where the kernel has no pressure-stall information.
    pub pressure: Option<PressureView>,
    pub disks: Vec<DiskView>,
    pub read_bytes_per_sec: u64,
    pub stored_bytes_per_sec: u64,
    pub restored_bytes_per_sec: u64,
    pub queued: u32,
    pub running: u32,
}

impl From<&PerfSample> for SampleView {
    fn from(s: &PerfSample) -> Self {
        Self {
            time: time(s.time_ns),
            time_ns: s.time_ns,
            span_ms: u64::from(s.span_secs) * 1000,
            cpu_percent: s.cpu_percent,
            daemon_cpu_percent: s.daemon_cpu_percent,
            iowait_percent: s.iowait_percent,
            memory_used_bytes: s.memory_used_bytes,
            memory_total_bytes: s.memory_total_bytes,
            memory_percent: round2(s.memory_percent()),
            daemon_rss_bytes: s.daemon_rss_bytes,
            pressure: s.pressure.as_ref().map(PressureView::from),
            disks: s.disks.iter().map(DiskView::from).collect(),
            read_bytes_per_sec: s.read_bps,
            stored_bytes_per_sec: s.stored_bps,
            restored_bytes_per_sec: s.restored_bps,
            queued: s.queued,
            running: s.running,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BottleneckView {
    pub id: u64,
    /// `cpu`, `memory`, `disk`, `io`.
    pub kind: &'static str,
    pub subject: String,
    /// `info`, `warning`, `critical`.
    pub severity: &'static str,
    pub started: String,
    /// Null while it lasts.
    pub ended: Option<String>,
    pub reason: String,
    pub peak: f64,
    pub actions: Vec<String>,
}

impl From<&Bottleneck> for BottleneckView {
    fn from(b: &Bottleneck) -> Self {
        Self {
            id: b.id,
            kind: b.kind.as_str(),
            subject: b.subject.clone(),
            severity: b.severity.as_str(),
            started: time(b.started_ns),
            ended: b.ended_ns.map(time),
            reason: b.reason.clone(),
            peak: round2(b.peak),
            actions: b.actions.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TunablesView {
    pub workers: u32,
    pub threads: u32,
    pub zstd_level: i32,
    pub pack_bytes: u64,
    pub nice: i32,
    /// `best-effort/0` .. `best-effort/7` or `idle`.
    pub io_class: String,
}

impl From<&Tunables> for TunablesView {
    fn from(t: &Tunables) -> Self {
        Self {
            workers: t.workers,
            threads: t.threads,
            zstd_level: t.zstd_level,
            pack_bytes: t.pack_bytes,
            nice: t.nice,
            io_class: io_class(t.io_class),
        }
    }
}

pub fn io_class(c: IoClass) -> String {
    c.to_string()
}

#[derive(Debug, Serialize)]
pub struct BaselineView {
    pub hour: u8,
    pub samples: u32,
    pub cpu_percent: f32,
    pub memory_percent: f32,
    pub iowait_percent: f32,
}

impl From<&Baseline> for BaselineView {
    fn from(b: &Baseline) -> Self {
        Self {
            hour: b.hour,
            samples: b.samples,
            cpu_percent: b.cpu_percent,
            memory_percent: b.memory_percent,
            iowait_percent: b.iowait_percent,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CurrentView {
    pub sample: Option<SampleView>,
    pub baseline: Option<BaselineView>,
    pub bottlenecks: Vec<BottleneckView>,
    pub auto: bool,
    pub tunables: TunablesView,
    pub configured: TunablesView,
    pub sample_interval_ms: u64,
    pub optimize_interval_ms: u64,
}

impl From<&PerfCurrent> for CurrentView {
    fn from(c: &PerfCurrent) -> Self {
        Self {
            sample: c.sample.as_ref().map(SampleView::from),
            baseline: c.baseline.as_ref().map(BaselineView::from),
            bottlenecks: c
                .open_bottlenecks
                .iter()
                .map(BottleneckView::from)
                .collect(),
            auto: c.auto,
            tunables: TunablesView::from(&c.tunables),
            configured: TunablesView::from(&c.configured),
            sample_interval_ms: c.sample_interval_ms,
            optimize_interval_ms: c.optimize_interval_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StatView {
    pub avg: f64,
    pub peak: f64,
}

impl From<&Stat> for StatView {
    fn from(s: &Stat) -> Self {
        Self {
            avg: round2(s.avg),
            peak: round2(s.peak),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ForecastView {
    pub path: String,
    pub holds: Vec<String>,
    pub used_percent: f64,
    pub growth_bytes_per_hour: f64,
    /// Null: not growing (or too little history).
    pub full_at: Option<String>,
}

impl From<&DiskForecast> for ForecastView {
    fn from(f: &DiskForecast) -> Self {
        Self {
            path: f.path.clone(),
            holds: f.holds.clone(),
            used_percent: round2(f.used_percent),
            growth_bytes_per_hour: f.growth_bytes_per_hour.round(),
            full_at: f.full_at_ns.map(time),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BottleneckTime {
    pub kind: &'static str,
    pub ms: u64,
}

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub since: String,
    pub until: String,
    pub samples: u32,
    pub cpu_percent: StatView,
    pub daemon_cpu_percent: StatView,
    pub memory_percent: StatView,
    pub daemon_rss_bytes: StatView,
    pub iowait_percent: StatView,
    pub io_pressure_percent: Option<StatView>,
    pub read_bytes_per_sec: StatView,
    pub stored_bytes_per_sec: StatView,
    pub restored_bytes_per_sec: StatView,
    pub queued: StatView,
    pub disks: Vec<ForecastView>,
    pub time_in_bottlenecks: Vec<BottleneckTime>,
    pub bottlenecks: u32,
    pub tuning_changes: u32,
    pub recommendations: Vec<String>,
}

impl From<&PerfReport> for ReportView {
    fn from(r: &PerfReport) -> Self {
        Self {
            since: time(r.since_ns),
            until: time(r.until_ns),
            samples: r.samples,
            cpu_percent: StatView::from(&r.cpu_percent),
            daemon_cpu_percent: StatView::from(&r.daemon_cpu_percent),
            memory_percent: StatView::from(&r.memory_percent),
            daemon_rss_bytes: StatView::from(&r.daemon_rss_bytes),
            iowait_percent: StatView::from(&r.iowait_percent),
            io_pressure_percent: r.io_pressure.as_ref().map(StatView::from),
            read_bytes_per_sec: StatView::from(&r.read_bps),
            stored_bytes_per_sec: StatView::from(&r.stored_bps),
            restored_bytes_per_sec: StatView::from(&r.restored_bps),
            queued: StatView::from(&r.queued),
            disks: r.disks.iter().map(ForecastView::from).collect(),
            time_in_bottlenecks: r
                .bottleneck_ms
                .iter()
                .map(|(k, ms)| BottleneckTime {
                    kind: k.as_str(),
                    ms: *ms,
                })
                .collect(),
            bottlenecks: r.bottlenecks,
            tuning_changes: r.tuning_changes,
            recommendations: r.recommendations.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChangeView {
    pub time: String,
    pub tunable: String,
    pub old: String,
    pub new: String,
    pub metric: String,
    pub reason: String,
    /// `auto` or `manual`.
    pub trigger: String,
}

impl From<&TuningChange> for ChangeView {
    fn from(c: &TuningChange) -> Self {
        Self {
            time: time(c.time_ns),
            tunable: c.tunable.clone(),
            old: c.old.clone(),
            new: c.new.clone(),
            metric: c.metric.clone(),
            reason: c.reason.clone(),
            trigger: c.trigger.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OptimizedView {
    pub auto: bool,
    pub changes: Vec<ChangeView>,
    pub notes: Vec<String>,
    pub tunables: TunablesView,
}

impl From<&Optimized> for OptimizedView {
    fn from(o: &Optimized) -> Self {
        Self {
            auto: o.auto,
            changes: o.changes.iter().map(ChangeView::from).collect(),
            notes: o.notes.clone(),
            tunables: TunablesView::from(&o.tunables),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FactorView {
    pub name: String,
    pub penalty: u32,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct ScoreView {
    pub score: u32,
    /// `ok`, `degraded`, `failing`.
    pub level: &'static str,
    pub factors: Vec<FactorView>,
}

impl From<&HealthScore> for ScoreView {
    fn from(s: &HealthScore) -> Self {
        Self {
            score: s.score,
            level: s.level.as_str(),
            factors: s
                .factors
                .iter()
                .map(|f| FactorView {
                    name: f.name.clone(),
                    penalty: f.penalty,
                    detail: f.detail.clone(),
                })
                .collect(),
        }
    }
}
