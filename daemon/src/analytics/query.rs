//! What the requests ask of one source's statistics: the prediction, the trends, the duration
//! estimate, the backtest and the daily figures. Pure functions of a source's [`SourceStats`]
//! and the time, so that a request reads a few hundred small records per source and never the
//! history.

use super::aggregates::SourceStats;
use super::backtest;
use super::estimate::{self, Fit};
use super::predict::Model;
use super::synthetic::{self, Spec};
use super::trends::{self, Direction};
use crate::state::records::analytics::DayRecord;
use backupd_common::protocol::{
    BacktestScore, CalibrationBin, DayPoint, Estimate, EstimateBacktest, Prediction,
    TrendDirection, TrendInfo,
};

const DAY_NS: i64 = 86_400_000_000_000;
/// Jobs per day are measured over the last week.
const RATE_WINDOW_DAYS: f64 = 7.0;

/// The evidence's half-life for a horizon: twice the horizon, so that what happened over the
/// last horizon weighs about as much as everything before it (docs/ANALYTICS.md shows the
/// backtest behind the choice).
pub fn half_life(days: u32) -> f64 {
    2.0 * f64::from(days.max(1))
}

pub fn prediction(source: &str, stats: &SourceStats, days: u32, now: i64) -> Prediction {
    let model = Model {
        half_life_days: half_life(days),
        ..Model::default()
    };
    let p = model.predict_counts(&stats.outcomes_at(now), f64::from(days));
    let (recent, _) = stats.jobs_within(now, RATE_WINDOW_DAYS as i64);
    let jobs_per_day = f64::from(recent) / RATE_WINDOW_DAYS;
    Prediction {
        source: source.to_owned(),
        days,
        success_rate: p.rate,
        low: p.low,
        high: p.high,
        evidence: p.evidence,
        half_life_days: model.half_life_days,
        jobs_per_day,
        expected_failures: jobs_per_day * f64::from(days) * (1.0 - p.rate),
        jobs: stats.jobs(),
    }
}

fn score(history: String, days: u32, report: backtest::Report) -> BacktestScore {
    BacktestScore {
        history,
        horizon_days: days,
        half_life_days: half_life(days),
        forecasts: report.scored as u64,
        brier: report.brier,
        naive_brier: report.naive_brier,
        calibration: report
            .calibration
            .into_iter()
            .map(|b| CalibrationBin {
                from: b.from,
                to: b.to,
                jobs: b.jobs as u64,
                predicted: b.predicted,
                observed: b.observed,
            })
            .collect(),
    }
}

/// The model's backtest on the source's own outcomes: a forecast every day after a
/// fortnight's warm-up, scored on the following `days`.
pub fn backtest_source(source: &str, stats: &SourceStats, days: u32) -> BacktestScore {
    // A day's jobs spread evenly over the day, in their day's order of outcomes unknown:
    // failures first would favour no model, so they are interleaved.
    let first = stats.days.keys().next().copied().unwrap_or(0);
    let mut jobs = Vec::new();
    for (day, d) in &stats.days {
        for i in 0..d.jobs {
            jobs.push(synthetic::Job {
                day: (day - first) as f64 + (f64::from(i) + 0.5) / f64::from(d.jobs),
                success: u64::from(i) * u64::from(d.failed) / u64::from(d.jobs)
                    == u64::from(i + 1) * u64::from(d.failed) / u64::from(d.jobs),
            });
        }
    }
    let model = Model {
        half_life_days: half_life(days),
        ..Model::default()
    };
    score(
        source.to_owned(),
        days,
        backtest::run(&model, &jobs, f64::from(days), 14.0, 1.0),
    )
}

/// The same on the documented synthetic histories (seeds 1–3 of `Spec::standard`).
pub fn backtest_synthetic(days: u32) -> Vec<BacktestScore> {
    let model = Model {
        half_life_days: half_life(days),
        ..Model::default()
    };
    (1..=3)
        .map(|seed| {
            let jobs = Spec::standard(seed).generate();
            score(
                format!("synthetic:standard-{seed}"),
                days,
                backtest::run(&model, &jobs, f64::from(days), 14.0, 1.0),
            )
        })
        .collect()
}

pub fn backtest_estimate(source: &str, stats: &SourceStats) -> Option<EstimateBacktest> {
    let (jobs, median_error, within_interval) = estimate::backtest(&stats.runs);
    (jobs > 0).then(|| EstimateBacktest {
        source: source.to_owned(),
        jobs: jobs as u64,
        median_error,
        within_interval,
    })
}

/// The expected duration of a backup reading `bytes` in `files`; without them, of one like the
/// source's typical recent backup (the median run).
pub fn estimate(
    source: Option<&str>,
    stats: &SourceStats,
    size: Option<(u64, u64)>,
) -> Option<Estimate> {
    let fit = Fit::new(&stats.runs)?;
    let (bytes, files) = size.unwrap_or_else(|| {
        let mut runs = stats.runs.clone();
        runs.sort_by_key(|r| r.bytes_read);
        let mid = runs[runs.len() / 2];
        (mid.bytes_read, mid.files_read)
    });
    let e = fit.expect(bytes, files);
    Some(Estimate {
        source: source.map(str::to_owned),
        bytes,
        files,
        expected_ms: e.ms.round() as u64,
        low_ms: e.low_ms.round() as u64,
        high_ms: e.high_ms.round() as u64,
        throughput_bps: fit.throughput_bps,
        jobs: fit.runs as u64,
    })
}

/// The source's days within the last `days`, oldest first.
pub fn day_points(stats: &SourceStats, days: u32, now: i64) -> Vec<DayPoint> {
    let today = now.div_euclid(DAY_NS);
    stats
        .days
        .range(today - i64::from(days) + 1..=today)
        .map(|(day, d)| {
            let ok = d.jobs.saturating_sub(d.failed);
            DayPoint {
                day_ns: day * DAY_NS,
                jobs: d.jobs,
                failed: d.failed,
                mean_duration_ms: d.duration_ms / u64::from(ok.max(1)),
                bytes_read: d.bytes_read,
                bytes_added: d.bytes_added,
            }
        })
        .collect()
}

/// Success rate, duration, size and throughput over the last `days`, one value per day.
pub fn trends(source: &str, stats: &SourceStats, days: u32, now: i64) -> Vec<TrendInfo> {
    let today = now.div_euclid(DAY_NS);
    let window: Vec<(f64, &DayRecord)> = stats
        .days
        .range(today - i64::from(days) + 1..=today)
        .map(|(day, d)| ((day - today) as f64, d))
        .collect();
    type Value = fn(&DayRecord) -> Option<f64>;
    let metrics: [(&str, bool, Value); 4] = [
        ("success_rate", true, |d| {
            (d.jobs > 0).then(|| f64::from(d.jobs - d.failed) / f64::from(d.jobs))
        }),
        ("duration_s", false, |d| {
            (d.jobs > d.failed)
                .then(|| d.duration_ms as f64 / 1000.0 / f64::from(d.jobs - d.failed))
        }),
        // Growth of what the source's snapshots hold: more to store and to restore.
        ("size_bytes", false, |d| {
            (d.size_bytes > 0).then_some(d.size_bytes as f64)
        }),
        ("throughput_bps", true, |d| {
            (d.duration_ms > 0 && d.bytes_read > 0)
                .then(|| d.bytes_read as f64 / (d.duration_ms as f64 / 1000.0))
        }),
    ];
    metrics
        .iter()
        .map(|(name, higher_is_better, value)| {
            let points: Vec<(f64, f64)> = window
                .iter()
                .filter_map(|(x, d)| value(d).map(|v| (*x, v)))
                .collect();
            let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len().max(1) as f64;
            match trends::trend(&points, *higher_is_better) {
                Some(t) => TrendInfo {
                    source: source.to_owned(),
                    metric: (*name).to_owned(),
                    direction: match t.direction {
                        Direction::Improving => TrendDirection::Improving,
                        Direction::Stable => TrendDirection::Stable,
                        Direction::Declining => TrendDirection::Declining,
                    },
                    slope_per_day: t.slope_per_day,
                    change_30d: if mean.abs() > 0.0 {
                        t.slope_per_day * trends::PER_DAYS / mean.abs()
                    } else {
                        0.0
                    },
                    p_value: Some(t.p_value),
                    days: points.len() as u32,
                },
                None => TrendInfo {
                    source: source.to_owned(),
                    metric: (*name).to_owned(),
                    direction: TrendDirection::Stable,
                    slope_per_day: 0.0,
                    change_30d: 0.0,
                    p_value: None,
                    days: points.len() as u32,
                },
            }
        })
        .collect()
}
