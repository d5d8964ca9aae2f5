//! `--json` views of `analytics ...` and the anomaly lines of `events`.
//!
//! Rates and shares stay fractions (0–1) as the daemon computes them; the human text turns
//! them into percentages. The report's per-source daily series is `daily`, so that `days`
//! always means the length of a window.

use super::{round, time};
use backupd_common::protocol::{
    AnalyticsReport, AnomalyInfo, BacktestReport, BacktestScore, CalibrationBin, DayPoint,
    Estimate, EstimateBacktest, HoldInfo, Prediction, Recommendation, RiskFactor, RiskReport,
    SourceReport, SourceRisk, TrendInfo,
};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct PredictionView {
    pub source: String,
    pub days: u32,
    pub success_rate: f64,
    /// The 90 % credible interval of `success_rate`.
    pub low: f64,
    pub high: f64,
    pub evidence: f64,
    pub half_life_days: f64,
    pub jobs_per_day: f64,
    pub expected_failures: f64,
    pub jobs: u64,
}

impl From<&Prediction> for PredictionView {
    fn from(p: &Prediction) -> Self {
        Self {
            source: p.source.clone(),
            days: p.days,
            success_rate: round(p.success_rate, 4),
            low: round(p.low, 4),
            high: round(p.high, 4),
            evidence: round(p.evidence, 2),
            half_life_days: round(p.half_life_days, 2),
            jobs_per_day: round(p.jobs_per_day, 2),
            expected_failures: round(p.expected_failures, 2),
            jobs: p.jobs,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CalibrationView {
    pub from: f64,
    pub to: f64,
    pub jobs: u64,
    pub predicted: f64,
    pub observed: f64,
}

impl From<&CalibrationBin> for CalibrationView {
    fn from(b: &CalibrationBin) -> Self {
        Self {
            from: round(b.from, 4),
            to: round(b.to, 4),
            jobs: b.jobs,
            predicted: round(b.predicted, 4),
            observed: round(b.observed, 4),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ScoreView {
    /// A source's name, or `synthetic:NAME`.
    pub history: String,
    pub horizon_days: u32,
    pub half_life_days: f64,
    pub forecasts: u64,
    pub brier: f64,
    pub naive_brier: f64,
    pub calibration: Vec<CalibrationView>,
}

impl From<&BacktestScore> for ScoreView {
    fn from(s: &BacktestScore) -> Self {
        Self {
            history: s.history.clone(),
            horizon_days: s.horizon_days,
            half_life_days: round(s.half_life_days, 2),
            forecasts: s.forecasts,
            brier: round(s.brier, 6),
            naive_brier: round(s.naive_brier, 6),
            calibration: s.calibration.iter().map(CalibrationView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EstimateBacktestView {
    pub source: String,
    pub jobs: u64,
    pub median_error: f64,
    pub within_interval: f64,
}

impl From<&EstimateBacktest> for EstimateBacktestView {
    fn from(e: &EstimateBacktest) -> Self {
        Self {
            source: e.source.clone(),
            jobs: e.jobs,
            median_error: round(e.median_error, 4),
            within_interval: round(e.within_interval, 4),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BacktestView {
    pub scores: Vec<ScoreView>,
    pub estimates: Vec<EstimateBacktestView>,
}

impl From<&BacktestReport> for BacktestView {
    fn from(b: &BacktestReport) -> Self {
        Self {
            scores: b.scores.iter().map(ScoreView::from).collect(),
            estimates: b.estimates.iter().map(EstimateBacktestView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EstimateView {
    /// Null for a path estimated from the throughput of all sources.
    pub source: Option<String>,
    pub bytes: u64,
    pub files: u64,
    pub expected_ms: u64,
    /// The 90 % prediction interval.
    pub low_ms: u64,
    pub high_ms: u64,
    pub throughput_bytes_per_sec: f64,
    pub jobs: u64,
}

impl From<&Estimate> for EstimateView {
    fn from(e: &Estimate) -> Self {
        Self {
            source: e.source.clone(),
            bytes: e.bytes,
            files: e.files,
            expected_ms: e.expected_ms,
            low_ms: e.low_ms,
            high_ms: e.high_ms,
            throughput_bytes_per_sec: e.throughput_bps.round(),
            jobs: e.jobs,
        }
    }
}

/// What `analytics estimate --path` found under the path, before asking the daemon.
#[derive(Debug, Serialize)]
pub struct ScanView {
    pub path: String,
    pub files: u64,
    pub bytes: u64,
    /// Entries that could not be read (listed or stat'ed); their contents are not counted.
    pub unreadable: u64,
}

#[derive(Debug, Serialize)]
pub struct EstimatesView {
    /// Null without --path.
    pub scan: Option<ScanView>,
    pub estimates: Vec<EstimateView>,
}

#[derive(Debug, Serialize)]
pub struct AnomalyView {
    pub id: u64,
    pub time: String,
    pub time_ns: i64,
    pub source: String,
    pub repo: Option<String>,
    pub job: u64,
    pub snapshot: Option<String>,
    pub metric: String,
    pub value: f64,
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    pub sigmas: f64,
    pub critical: bool,
    pub detail: String,
}

impl From<&AnomalyInfo> for AnomalyView {
    fn from(a: &AnomalyInfo) -> Self {
        Self {
            id: a.id,
            time: time(a.time_ns),
            time_ns: a.time_ns,
            source: a.source.clone(),
            repo: a.repo.clone(),
            job: a.job,
            snapshot: a.snapshot.clone(),
            metric: a.metric.clone(),
            value: round(a.value, 4),
            expected: round(a.expected, 4),
            low: round(a.low, 4),
            high: round(a.high, 4),
            sigmas: round(a.sigmas, 2),
            critical: a.critical,
            detail: a.detail.clone(),
        }
    }
}

/// An anomaly on `events`: `{"anomaly": {...}}`, apart from job events and alerts by its one
/// key.
#[derive(Debug, Serialize)]
pub struct AnomalyEventView {
    pub anomaly: AnomalyView,
}

#[derive(Debug, Serialize)]
pub struct TrendView {
    pub source: String,
    pub metric: String,
    /// `improving`, `stable`, `declining`.
    pub direction: &'static str,
    pub slope_per_day: f64,
    pub change_30d: f64,
    /// Null: too few days to test.
    pub p_value: Option<f64>,
    pub days: u32,
}

impl From<&TrendInfo> for TrendView {
    fn from(t: &TrendInfo) -> Self {
        Self {
            source: t.source.clone(),
            metric: t.metric.clone(),
            direction: t.direction.as_str(),
            slope_per_day: round(t.slope_per_day, 6),
            change_30d: round(t.change_30d, 4),
            p_value: t.p_value.map(|p| round(p, 6)),
            days: t.days,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FactorView {
    pub name: String,
    pub weight: f64,
    pub level: f64,
    /// `weight * level`: what the factor adds to the score.
    pub points: f64,
    pub evidence: String,
}

impl From<&RiskFactor> for FactorView {
    fn from(f: &RiskFactor) -> Self {
        Self {
            name: f.name.clone(),
            weight: round(f.weight, 2),
            level: round(f.level, 4),
            points: round(f.weight * f.level, 2),
            evidence: f.evidence.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SourceRiskView {
    pub source: String,
    pub repo: String,
    pub score: f64,
    pub factors: Vec<FactorView>,
}

impl From<&SourceRisk> for SourceRiskView {
    fn from(r: &SourceRisk) -> Self {
        Self {
            source: r.source.clone(),
            repo: r.repo.clone(),
            score: round(r.score, 1),
            factors: r.factors.iter().map(FactorView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RiskView {
    pub overall: f64,
    pub sources: Vec<SourceRiskView>,
}

impl From<&RiskReport> for RiskView {
    fn from(r: &RiskReport) -> Self {
        Self {
            overall: round(r.overall, 1),
            sources: r.sources.iter().map(SourceRiskView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RecommendationView {
    pub kind: String,
    pub subject: String,
    /// `debug`, `info`, `notice`, `warning`, `critical`.
    pub severity: &'static str,
    pub evidence: String,
    pub action: String,
}

impl From<&Recommendation> for RecommendationView {
    fn from(r: &Recommendation) -> Self {
        Self {
            kind: r.kind.clone(),
            subject: r.subject.clone(),
            severity: r.severity.as_str(),
            evidence: r.evidence.clone(),
            action: r.action.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct HoldView {
    pub source: String,
    pub repo: Option<String>,
    pub placed: String,
    pub placed_ns: i64,
    /// Snapshots taken at or before this time are held.
    pub before: String,
    pub before_ns: i64,
    pub job: u64,
    pub snapshot: Option<String>,
    pub reason: String,
}

impl From<&HoldInfo> for HoldView {
    fn from(h: &HoldInfo) -> Self {
        Self {
            source: h.source.clone(),
            repo: h.repo.clone(),
            placed: time(h.placed_ns),
            placed_ns: h.placed_ns,
            before: time(h.before_ns),
            before_ns: h.before_ns,
            job: h.job,
            snapshot: h.snapshot.clone(),
            reason: h.reason.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DayView {
    /// Midnight UTC of the day.
    pub day: String,
    pub jobs: u32,
    pub failed: u32,
    pub mean_duration_ms: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
}

impl From<&DayPoint> for DayView {
    fn from(d: &DayPoint) -> Self {
        Self {
            day: time(d.day_ns),
            jobs: d.jobs,
            failed: d.failed,
            mean_duration_ms: d.mean_duration_ms,
            bytes_read: d.bytes_read,
            bytes_added: d.bytes_added,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SourceReportView {
    pub source: String,
    pub prediction: PredictionView,
    pub estimate: Option<EstimateView>,
    pub trends: Vec<TrendView>,
    pub risk: SourceRiskView,
    pub anomalies: Vec<AnomalyView>,
    pub hold: Option<HoldView>,
    pub daily: Vec<DayView>,
}

impl From<&SourceReport> for SourceReportView {
    fn from(s: &SourceReport) -> Self {
        Self {
            source: s.source.clone(),
            prediction: PredictionView::from(&s.prediction),
            estimate: s.estimate.as_ref().map(EstimateView::from),
            trends: s.trends.iter().map(TrendView::from).collect(),
            risk: SourceRiskView::from(&s.risk),
            anomalies: s.anomalies.iter().map(AnomalyView::from).collect(),
            hold: s.hold.as_ref().map(HoldView::from),
            daily: s.days.iter().map(DayView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub generated: String,
    pub generated_ns: i64,
    pub days: u32,
    pub overall_risk: f64,
    pub sources: Vec<SourceReportView>,
    pub recommendations: Vec<RecommendationView>,
}

impl From<&AnalyticsReport> for ReportView {
    fn from(r: &AnalyticsReport) -> Self {
        Self {
            generated: time(r.generated_ns),
            generated_ns: r.generated_ns,
            days: r.days,
            overall_risk: round(r.overall_risk, 1),
            sources: r.sources.iter().map(SourceReportView::from).collect(),
            recommendations: r
                .recommendations
                .iter()
                .map(RecommendationView::from)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::analytics_html::tests::sample_report;
    use backupd_common::protocol::{BacktestReport, BacktestScore, CalibrationBin};
    use serde_json::Value;

    /// `view` as JSON, checked against `docs/json/{schema}.json`, the interface it documents.
    fn conforming<T: Serialize>(schema: &str, view: &T) -> Value {
        let path = format!("{}/../docs/json/{schema}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("schema file");
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let value = serde_json::to_value(view).expect("serialises");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{path}: {errors:?}\n{value:#}");
        value
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn the_report_serialises_by_its_schema_with_times_as_rfc3339_beside_ns() {
        let report = sample_report("web");
        let v = conforming("analytics-report", &ReportView::from(&report));
        assert_eq!(
            keys(&v),
            [
                "days",
                "generated",
                "generated_ns",
                "overall_risk",
                "recommendations",
                "sources"
            ]
        );
        let source = &v["sources"][0];
        assert_eq!(
            keys(source),
            [
                "anomalies",
                "daily",
                "estimate",
                "hold",
                "prediction",
                "risk",
                "source",
                "trends"
            ]
        );
        assert_eq!(v["generated"], "2026-11-30T00:53:20.000Z");
        assert_eq!(
            source["daily"][0]["day"].as_str().map(|d| &d[10..]),
            Some("T00:00:00.000Z")
        );
        assert_eq!(source["trends"][0]["direction"], "declining");
        assert_eq!(source["risk"]["factors"][0]["points"], 10.0);
        assert_eq!(source["hold"]["placed_ns"], 1_796_000_000_000_000_000i64);
        assert_eq!(source["estimate"]["throughput_bytes_per_sec"], 17_600_000.0);
        assert_eq!(v["recommendations"][0]["severity"], "critical");
    }

    #[test]
    fn each_command_view_matches_its_schema() {
        let r = sample_report("web");
        let s = &r.sources[0];
        let predictions = [PredictionView::from(&s.prediction)];
        let p = conforming("analytics-predict", &predictions);
        assert_eq!(
            keys(&p[0]),
            [
                "days",
                "evidence",
                "expected_failures",
                "half_life_days",
                "high",
                "jobs",
                "jobs_per_day",
                "low",
                "source",
                "success_rate"
            ]
        );
        let backtest = BacktestReport {
            scores: vec![BacktestScore {
                history: "synthetic:flaky".into(),
                horizon_days: 1,
                half_life_days: 3.0,
                forecasts: 200,
                brier: 0.046_512_345,
                naive_brier: 0.0484,
                calibration: vec![CalibrationBin {
                    from: 0.9,
                    to: 1.0,
                    jobs: 150,
                    predicted: 0.95,
                    observed: 0.94,
                }],
            }],
            estimates: vec![EstimateBacktest {
                source: "web".into(),
                jobs: 20,
                median_error: 0.12,
                within_interval: 0.9,
            }],
        };
        let b = conforming("analytics-predict", &BacktestView::from(&backtest));
        assert_eq!(b["scores"][0]["brier"], 0.046512);
        let estimates = EstimatesView {
            scan: Some(ScanView {
                path: "/srv/data".into(),
                files: 3,
                bytes: 120,
                unreadable: 1,
            }),
            estimates: s.estimate.iter().map(EstimateView::from).collect(),
        };
        let e = conforming("analytics-estimate", &estimates);
        assert_eq!(keys(&e), ["estimates", "scan"]);
        conforming(
            "analytics-estimate",
            &EstimatesView {
                scan: None,
                estimates: vec![],
            },
        );
        let anomalies: Vec<_> = s.anomalies.iter().map(AnomalyView::from).collect();
        let a = conforming("analytics-anomalies", &anomalies);
        assert_eq!(a[0]["time_ns"], 1_796_000_000_000_000_000i64);
        let trends: Vec<_> = s.trends.iter().map(TrendView::from).collect();
        conforming("analytics-trends", &trends);
        let risk = RiskReport {
            overall: 42.0,
            sources: vec![s.risk.clone()],
        };
        let rv = conforming("analytics-risk", &RiskView::from(&risk));
        assert_eq!(
            keys(&rv["sources"][0]["factors"][0]),
            ["evidence", "level", "name", "points", "weight"]
        );
        let recs: Vec<_> = r
            .recommendations
            .iter()
            .map(RecommendationView::from)
            .collect();
        conforming("analytics-recommendations", &recs);
        let holds: Vec<_> = s.hold.iter().map(HoldView::from).collect();
        conforming("analytics-hold-list", &holds);
        let released = s.hold.as_ref().map(HoldView::from).expect("a hold");
        let h = conforming("analytics-hold-release", &released);
        assert_eq!(
            keys(&h),
            [
                "before",
                "before_ns",
                "job",
                "placed",
                "placed_ns",
                "reason",
                "repo",
                "snapshot",
                "source"
            ]
        );
    }

    #[test]
    fn the_schemas_are_closed() {
        let path = format!(
            "{}/../docs/json/analytics-risk.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("JSON");
        let validator = jsonschema::validator_for(&schema).expect("compiles");
        assert!(validator.is_valid(&serde_json::json!({"overall": 0.0, "sources": []})));
        assert!(!validator.is_valid(&serde_json::json!({"overall": 0.0, "sources": [], "x": 1})));
        assert!(!validator.is_valid(&serde_json::json!({"overall": "0", "sources": []})));
    }

    #[test]
    fn an_anomaly_on_events_is_one_key_apart_from_jobs_and_alerts() {
        let r = sample_report("web");
        let event = AnomalyEventView {
            anomaly: AnomalyView::from(&r.sources[0].anomalies[0]),
        };
        let v = conforming("events", &event);
        assert_eq!(keys(&v), ["anomaly"]);
        assert_eq!(v["anomaly"]["critical"], true);
    }
}
