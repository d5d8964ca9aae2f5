//! Bottleneck rules, pure: which resources a sample shows short ([`detect`]), how a detection
//! opens, escalates and ends a [`Bottleneck`] ([`Tracker::on_sample`]), and where a disk's
//! growth leads ([`forecast`]).
//!
//! Hysteresis: a bottleneck opens when its metric crosses the threshold and ends only when the
//! metric is [`CLEAR_MARGIN`] points below it, so a value hovering at the threshold does not
//! open and close one every 30 s.

use backupd_common::config::perf::PerfConfig;
use backupd_common::protocol::{
    Bottleneck, BottleneckKind, DiskForecast, DiskUsage, PerfSample, Severity,
};

/// Points below the threshold a metric must fall for its bottleneck to end.
pub const CLEAR_MARGIN: f64 = 5.0;
/// A disk full within `INFO_HORIZON` × `disk_full_warning` is reported as `info`.
const INFO_HORIZON: i64 = 7;
/// The least history a growth rate is fitted on.
const MIN_FIT_NS: i64 = 10 * 60 * 1_000_000_000;

const HOUR_NS: f64 = 3_600_000_000_000.0;

/// A resource short in one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub kind: BottleneckKind,
    pub subject: String,
    pub severity: Severity,
    pub value: f64,
    pub reason: String,
}

fn level(value: f64, warn: f64, crit: f64, open: bool) -> Option<Severity> {
    let margin = if open { CLEAR_MARGIN } else { 0.0 };
    if value > crit {
        Some(Severity::Critical)
    } else if value > warn - margin {
        Some(Severity::Warning)
    } else {
        None
    }
}

/// What `sample` shows short. `is_open(kind, subject)` says which bottlenecks are open now
/// (they end only below the threshold minus the margin).
pub fn detect(
    sample: &PerfSample,
    forecasts: &[DiskForecast],
    c: &PerfConfig,
    is_open: impl Fn(BottleneckKind, &str) -> bool,
) -> Vec<Detection> {
    let mut out = Vec::new();
    let mut check = |kind: BottleneckKind, subject: &str, value: f64, warn: f64, crit: f64| {
        if let Some(severity) = level(value, warn, crit, is_open(kind, subject)) {
            let limit = if severity == Severity::Critical {
                crit
            } else {
                warn
            };
            out.push(Detection {
                kind,
                subject: subject.to_owned(),
                severity,
                value,
                reason: format!("{subject} {value:.1} % (threshold {limit} %)"),
            });
        }
    };
    check(
        BottleneckKind::Cpu,
        "cpu",
        f64::from(sample.cpu_percent),
        c.cpu_percent,
        c.cpu_critical_percent,
    );
    check(
        BottleneckKind::Memory,
        "memory",
        sample.memory_percent(),
        c.memory_percent,
        c.memory_critical_percent,
    );
    // I/O: the worse of iowait and pressure, each against its own threshold.
    let io_pressure = sample.pressure.map_or(0.0, |p| f64::from(p.io_some));
    let iowait = f64::from(sample.iowait_percent);
    if io_pressure > c.io_pressure_percent && iowait <= c.iowait_percent {
        check(
            BottleneckKind::Io,
            "io",
            io_pressure,
            c.io_pressure_percent,
            c.io_pressure_percent.max(c.iowait_critical_percent),
        );
    } else {
        check(
            BottleneckKind::Io,
            "io",
            iowait,
            c.iowait_percent,
            c.iowait_critical_percent,
        );
    }
    for d in &sample.disks {
        check(
            BottleneckKind::Disk,
            &d.path,
            d.used_percent(),
            c.disk_percent,
            c.disk_critical_percent,
        );
    }
    // A disk that is not (yet) past its threshold but filling fast.
    let warning_ns = i64::try_from(c.disk_full_warning.as_nanos()).unwrap_or(i64::MAX);
    for f in forecasts {
        if out
            .iter()
            .any(|d| d.kind == BottleneckKind::Disk && d.subject == f.path)
        {
            continue;
        }
        let Some(full_at) = f.full_at_ns else {
            continue;
        };
        let left = full_at - sample.time_ns;
        let severity = if left <= warning_ns {
            Severity::Warning
        } else if left <= warning_ns.saturating_mul(INFO_HORIZON) {
            Severity::Info
        } else {
            continue;
        };
        out.push(Detection {
            kind: BottleneckKind::Disk,
            subject: f.path.clone(),
            severity,
            value: f.used_percent,
            reason: format!(
                "{} {:.1} % full, growing {:.0} MB/h: full in about {:.0} h",
                f.path,
                f.used_percent,
                f.growth_bytes_per_hour / 1e6,
                left as f64 / HOUR_NS
            ),
        });
    }
    out
}

/// The open bottlenecks, updated sample by sample.
#[derive(Debug, Default)]
pub struct Tracker {
    pub open: Vec<Bottleneck>,
}

/// What one sample changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub opened: Vec<Bottleneck>,
    /// Open ones whose severity or peak changed.
    pub updated: Vec<Bottleneck>,
    pub ended: Vec<Bottleneck>,
}

impl Tracker {
    pub fn is_open(&self, kind: BottleneckKind, subject: &str) -> bool {
        self.open
            .iter()
            .any(|b| b.kind == kind && b.subject == subject)
    }

    /// Applies one sample's detections at `now_ns`; `next_id` numbers new bottlenecks.
    pub fn on_sample(
        &mut self,
        detections: Vec<Detection>,
        now_ns: i64,
        mut next_id: impl FnMut() -> u64,
    ) -> Changes {
        let mut changes = Changes::default();
        let mut still = Vec::with_capacity(self.open.len());
        for mut b in std::mem::take(&mut self.open) {
            match detections
                .iter()
                .find(|d| d.kind == b.kind && d.subject == b.subject)
            {
                Some(d) => {
                    let worse = d.severity > b.severity;
                    let peak = d.value > b.peak;
                    if worse {
                        b.severity = d.severity;
                        b.reason = d.reason.clone();
                    }
                    if peak {
                        b.peak = d.value;
                    }
                    if worse || peak {
                        changes.updated.push(b.clone());
                    }
                    still.push(b);
                }
                None => {
                    b.ended_ns = Some(now_ns);
                    changes.ended.push(b);
                }
            }
        }
        for d in detections {
            if still
                .iter()
                .any(|b| b.kind == d.kind && b.subject == d.subject)
            {
                continue;
            }
            let b = Bottleneck {
                id: next_id(),
                kind: d.kind,
                subject: d.subject,
                severity: d.severity,
                started_ns: now_ns,
                ended_ns: None,
                reason: d.reason,
                peak: d.value,
                actions: Vec::new(),
            };
            changes.opened.push(b.clone());
            still.push(b);
        }
        self.open = still;
        changes
    }
}

/// Fits each disk's used bytes over `samples` (oldest first) with least squares and says
/// when it will be full. A disk seen over less than ten minutes has no forecast.
pub fn forecast(samples: &[PerfSample]) -> Vec<DiskForecast> {
    let Some(last) = samples.last() else {
        return Vec::new();
    };
    last.disks
        .iter()
        .map(|disk| {
            let points: Vec<(i64, f64)> = samples
                .iter()
                .filter_map(|s| {
                    s.disks
                        .iter()
                        .find(|d| d.path == disk.path)
                        .map(|d| (s.time_ns, d.used_bytes as f64))
                })
                .collect();
            let slope_per_ns = fit_slope(&points);
            let growth = slope_per_ns.map_or(0.0, |s| s * HOUR_NS);
            DiskForecast {
                path: disk.path.clone(),
                holds: disk.holds.clone(),
                used_percent: disk.used_percent(),
                growth_bytes_per_hour: growth,
                full_at_ns: slope_per_ns
                    .filter(|s| *s > 0.0)
                    .map(|s| last.time_ns + (disk.available_bytes as f64 / s) as i64),
            }
        })
        .collect()
}

/// Bytes per ns, or `None` with too little history.
fn fit_slope(points: &[(i64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < 3 || last.0 - first.0 < MIN_FIT_NS {
        return None;
    }
    let n = points.len() as f64;
    let t0 = first.0;
    let xs = points.iter().map(|(t, _)| (t - t0) as f64);
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for ((_, y), x) in points.iter().zip(xs) {
        num += (x - mean_x) * (y - mean_y);
        den += (x - mean_x) * (x - mean_x);
    }
    (den > 0.0).then(|| num / den)
}

/// The disk usage a sample shows for `path`, if any.
pub fn disk<'a>(sample: &'a PerfSample, path: &str) -> Option<&'a DiskUsage> {
    sample.disks.iter().find(|d| d.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    fn sample(time_ns: i64, cpu: f32, used: u64) -> PerfSample {
        PerfSample {
            time_ns,
            span_secs: 30,
            cpu_percent: cpu,
            memory_used_bytes: 1,
            memory_total_bytes: 10,
            disks: vec![DiskUsage {
                path: "/srv".into(),
                holds: vec!["repository default".into()],
                total_bytes: 1000,
                used_bytes: used,
                available_bytes: 1000 - used,
            }],
            ..Default::default()
        }
    }

    fn run(tracker: &mut Tracker, s: &PerfSample, c: &PerfConfig) -> Changes {
        let d = detect(s, &[], c, |k, subj| tracker.is_open(k, subj));
        let mut id = tracker.open.len() as u64;
        tracker.on_sample(d, s.time_ns, || {
            id += 1;
            id
        })
    }

    #[test]
    fn cpu_opens_above_80_escalates_above_95_and_ends_only_below_75() {
        let c = PerfConfig::default();
        let mut t = Tracker::default();
        assert!(run(&mut t, &sample(0, 79.0, 10), &c).opened.is_empty());
        let ch = run(&mut t, &sample(1, 85.0, 10), &c);
        assert_eq!(ch.opened.len(), 1);
        assert_eq!(ch.opened[0].severity, Severity::Warning);
        let ch = run(&mut t, &sample(2, 97.0, 10), &c);
        assert_eq!(ch.updated[0].severity, Severity::Critical);
        assert_eq!(ch.updated[0].peak, 97.0);
        // 78 % is below the threshold but within the margin: still open.
        assert!(run(&mut t, &sample(3, 78.0, 10), &c).ended.is_empty());
        let ch = run(&mut t, &sample(4, 70.0, 10), &c);
        assert_eq!(ch.ended.len(), 1);
        assert_eq!(ch.ended[0].ended_ns, Some(4));
        assert_eq!(ch.ended[0].severity, Severity::Critical, "keeps its worst");
        assert!(t.open.is_empty());
    }

    #[test]
    fn a_full_disk_is_critical_and_each_disk_is_its_own_subject() {
        let c = PerfConfig::default();
        let d = detect(&sample(0, 0.0, 980), &[], &c, |_, _| false);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].kind, d[0].severity),
            (BottleneckKind::Disk, Severity::Critical)
        );
        assert_eq!(d[0].subject, "/srv");
    }

    #[test]
    fn a_disk_growing_to_full_within_a_day_warns_before_90_percent() {
        let c = PerfConfig::default();
        // 500 of 1000 bytes used, +10 bytes a minute: full in 50 minutes.
        let history: Vec<PerfSample> = (0..20)
            .map(|i| sample(i * MIN, 0.0, 310 + 10 * i as u64))
            .collect();
        let f = forecast(&history);
        assert_eq!(f.len(), 1);
        let full_in = f[0].full_at_ns.expect("growing") - history[19].time_ns;
        assert!((full_in - 50 * MIN).abs() < MIN, "{full_in}");
        assert!((f[0].growth_bytes_per_hour - 600.0).abs() < 1.0);
        let d = detect(history.last().expect("last"), &f, &c, |_, _| false);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].severity, Severity::Warning);
        assert!(d[0].reason.contains("full in about"), "{}", d[0].reason);
    }

    #[test]
    fn a_shrinking_or_young_disk_has_no_forecast() {
        let shrinking: Vec<PerfSample> = (0..20)
            .map(|i| sample(i * MIN, 0.0, 900 - i as u64))
            .collect();
        assert_eq!(forecast(&shrinking)[0].full_at_ns, None);
        let young: Vec<PerfSample> = (0..3)
            .map(|i| sample(i * MIN, 0.0, 100 + i as u64))
            .collect();
        assert_eq!(forecast(&young)[0].full_at_ns, None);
    }
}
