//! The health score: 100 minus a bounded penalty per factor (docs/OPERATIONS.md, "Health
//! score", lists the weights). [`score`] is pure; [`assess`] is the one place its inputs are
//! gathered from the services, for `system health` and the metrics endpoint alike, so the two
//! cannot disagree.

use crate::perf::Perf;
use crate::queue::Queue;
use crate::schedule::{report, Timers};
use backupd_common::config::Config;
use backupd_common::protocol::{
    Bottleneck, DiskForecast, HealthFactor, HealthLevel, HealthScore, RepoMaintenance, Severity,
    SourceHealth,
};

/// The score with what it was computed from that its readers also show.
#[derive(Debug)]
pub struct Assessment {
    pub score: HealthScore,
    /// The scheduler's view: per source and per repository, and the notes that make
    /// `system health` degraded.
    pub schedule: report::Report,
    /// The bottlenecks open now.
    pub bottlenecks: Vec<Bottleneck>,
    /// Jobs in the dead-letter queue.
    pub dead_letters: u64,
}

/// Gathers the inputs from the services and scores them. Cheap: every read is from memory.
pub fn assess(perf: &Perf, timers: &Timers, queue: &Queue, config: &Config) -> Assessment {
    let schedule = timers.health();
    let bottlenecks = perf.open_bottlenecks();
    let forecasts = perf.forecasts();
    let dead_letters = queue.dead_letter_count();
    let score = score(&Inputs {
        bottlenecks: &bottlenecks,
        sources: &schedule.sources,
        repositories: &schedule.repositories,
        dead_letters,
        forecasts: &forecasts,
        now_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX),
        disk_full_warning_ns: i64::try_from(config.perf.disk_full_warning.as_nanos())
            .unwrap_or(i64::MAX),
    });
    Assessment {
        score,
        schedule,
        bottlenecks,
        dead_letters,
    }
}

/// What the score is computed from.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub bottlenecks: &'a [Bottleneck],
    pub sources: &'a [SourceHealth],
    pub repositories: &'a [RepoMaintenance],
    pub dead_letters: u64,
    pub forecasts: &'a [DiskForecast],
    pub now_ns: i64,
    /// A disk filling within this many ns counts against the score.
    pub disk_full_warning_ns: i64,
}

/// Penalty per item and the most one factor can take off.
const BOTTLENECK_CRITICAL: u32 = 25;
const BOTTLENECK_WARNING: u32 = 10;
const BOTTLENECK_INFO: u32 = 2;
const BOTTLENECK_CAP: u32 = 40;
const FAILING_SOURCE: u32 = 10;
const FAILING_CAP: u32 = 30;
const DEAD_LETTER: u32 = 5;
const DEAD_LETTER_CAP: u32 = 20;
const PAST_RPO: u32 = 15;
const RPO_CAP: u32 = 45;
const UNVERIFIED: u32 = 10;
const UNVERIFIED_CAP: u32 = 20;
const DISK_FILLING: u32 = 15;
const DISK_CAP: u32 = 30;

/// `ok` from this score up (and nothing critical), `failing` below `FAILING_BELOW`.
const OK_FROM: u32 = 80;
const FAILING_BELOW: u32 = 50;

pub fn score(i: &Inputs<'_>) -> HealthScore {
    let mut factors = Vec::new();
    let mut add = |name: &str, penalty: u32, cap: u32, detail: Vec<String>| {
        if penalty > 0 {
            factors.push(HealthFactor {
                name: name.to_owned(),
                penalty: penalty.min(cap),
                detail: detail.join("; "),
            });
        }
    };

    let open: Vec<&Bottleneck> = i
        .bottlenecks
        .iter()
        .filter(|b| b.ended_ns.is_none())
        .collect();
    add(
        "bottlenecks",
        open.iter()
            .map(|b| match b.severity {
                Severity::Critical => BOTTLENECK_CRITICAL,
                Severity::Warning => BOTTLENECK_WARNING,
                _ => BOTTLENECK_INFO,
            })
            .sum(),
        BOTTLENECK_CAP,
        open.iter()
            .map(|b| format!("{} {}: {}", b.severity.as_str(), b.subject, b.reason))
            .collect(),
    );

    let failing: Vec<&SourceHealth> = i
        .sources
        .iter()
        .filter(|s| s.last_failure_ns > s.last_success_ns)
        .collect();
    add(
        "failing_jobs",
        FAILING_SOURCE * failing.len() as u32,
        FAILING_CAP,
        failing
            .iter()
            .map(|s| {
                format!(
                    "source {}: last backup failed ({})",
                    s.name,
                    s.last_error.as_deref().unwrap_or("no message")
                )
            })
            .collect(),
    );

    add(
        "dead_letters",
        DEAD_LETTER.saturating_mul(u32::try_from(i.dead_letters).unwrap_or(u32::MAX)),
        DEAD_LETTER_CAP,
        if i.dead_letters > 0 {
            vec![format!(
                "{} job(s) in the dead-letter queue (`backupctl queue dlq list`)",
                i.dead_letters
            )]
        } else {
            Vec::new()
        },
    );

    let late: Vec<&SourceHealth> = i.sources.iter().filter(|s| !s.within_rpo).collect();
    add(
        "rpo",
        PAST_RPO * late.len() as u32,
        RPO_CAP,
        late.iter()
            .map(|s| format!("source {}: no backup within its RPO", s.name))
            .collect(),
    );

    let unverified: Vec<&RepoMaintenance> = i
        .repositories
        .iter()
        .filter(|r| r.check.overdue || r.read_data.overdue)
        .collect();
    add(
        "verification",
        UNVERIFIED * unverified.len() as u32,
        UNVERIFIED_CAP,
        unverified
            .iter()
            .map(|r| format!("repository {}: its scheduled check is overdue", r.name))
            .collect(),
    );

    let filling: Vec<&DiskForecast> = i
        .forecasts
        .iter()
        .filter(|f| {
            f.full_at_ns
                .is_some_and(|t| t - i.now_ns <= i.disk_full_warning_ns)
        })
        .collect();
    add(
        "disk_forecast",
        DISK_FILLING * filling.len() as u32,
        DISK_CAP,
        filling
            .iter()
            .map(|f| {
                let hours = f
                    .full_at_ns
                    .map_or(0, |t| (t - i.now_ns).max(0) / 3_600_000_000_000);
                format!(
                    "{} ({}) full in about {hours} h",
                    f.path,
                    f.holds.join(", ")
                )
            })
            .collect(),
    );

    let penalty: u32 = factors.iter().map(|f| f.penalty).sum();
    let score = 100u32.saturating_sub(penalty);
    let critical = open.iter().any(|b| b.severity == Severity::Critical);
    let level = if score < FAILING_BELOW {
        HealthLevel::Failing
    } else if score < OK_FROM || critical {
        HealthLevel::Degraded
    } else {
        HealthLevel::Ok
    };
    HealthScore {
        score,
        level,
        factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{BottleneckKind, TimerState};

    fn source(name: &str, within_rpo: bool, failed: bool) -> SourceHealth {
        SourceHealth {
            name: name.into(),
            last_success_ns: Some(10),
            last_failure_ns: failed.then_some(20),
            last_error: failed.then(|| "disk full".into()),
            next_run_ns: None,
            snapshots: Some(1),
            rpo_ms: 3_600_000,
            within_rpo,
            retention: TimerState::default(),
        }
    }

    fn bottleneck(severity: Severity, ended: bool) -> Bottleneck {
        Bottleneck {
            id: 1,
            kind: BottleneckKind::Cpu,
            subject: "cpu".into(),
            severity,
            started_ns: 0,
            ended_ns: ended.then_some(5),
            reason: "cpu 97 % > 95 %".into(),
            peak: 97.0,
            actions: Vec::new(),
        }
    }

    #[test]
    fn a_quiet_daemon_scores_100_and_is_ok() {
        let sources = [source("www", true, false)];
        let s = score(&Inputs {
            sources: &sources,
            ..Default::default()
        });
        assert_eq!((s.score, s.level), (100, HealthLevel::Ok));
        assert!(s.factors.is_empty());
    }

    #[test]
    fn each_factor_takes_off_its_penalty_within_its_cap() {
        let sources = [
            source("a", false, true),
            source("b", false, true),
            source("c", false, false),
            source("d", false, false),
        ];
        let s = score(&Inputs {
            sources: &sources,
            dead_letters: 10,
            ..Default::default()
        });
        let of = |name: &str| s.factors.iter().find(|f| f.name == name).map(|f| f.penalty);
        assert_eq!(of("failing_jobs"), Some(20));
        assert_eq!(of("rpo"), Some(RPO_CAP));
        assert_eq!(of("dead_letters"), Some(DEAD_LETTER_CAP));
        assert_eq!(s.score, 100 - 20 - 45 - 20);
        assert_eq!(s.level, HealthLevel::Failing);
        assert!(s.factors[0].detail.contains("disk full"), "{:?}", s.factors);
    }

    #[test]
    fn an_open_critical_bottleneck_degrades_and_an_ended_one_does_not_count() {
        let open = [bottleneck(Severity::Critical, false)];
        let s = score(&Inputs {
            bottlenecks: &open,
            ..Default::default()
        });
        assert_eq!((s.score, s.level), (75, HealthLevel::Degraded));
        let ended = [bottleneck(Severity::Critical, true)];
        let s = score(&Inputs {
            bottlenecks: &ended,
            ..Default::default()
        });
        assert_eq!(s.score, 100);
    }

    #[test]
    fn a_disk_filling_within_the_warning_window_counts() {
        let hour = 3_600_000_000_000i64;
        let forecasts = [
            DiskForecast {
                path: "/srv".into(),
                holds: vec!["repository default".into()],
                used_percent: 70.0,
                growth_bytes_per_hour: 1e9,
                full_at_ns: Some(5 * hour),
            },
            DiskForecast {
                path: "/home".into(),
                holds: vec!["source home".into()],
                used_percent: 50.0,
                growth_bytes_per_hour: 1e6,
                full_at_ns: Some(500 * hour),
            },
        ];
        let s = score(&Inputs {
            forecasts: &forecasts,
            disk_full_warning_ns: 24 * hour,
            ..Default::default()
        });
        assert_eq!(s.score, 100 - DISK_FILLING);
        assert!(s.factors[0].detail.contains("/srv"), "{:?}", s.factors);
    }
}
