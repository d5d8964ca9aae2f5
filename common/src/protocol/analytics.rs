//! Analytics over the job history: success prediction and its backtest, duration estimates,
//! three-sigma anomalies and the mass-encryption signal with its retention hold, trends, the
//! risk score, recommendations and the report. `backupctl analytics ...`; docs/ANALYTICS.md
//! explains the models.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `backupctl analytics ...`. Reading needs `system.read`; releasing a hold `system.manage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnalyticsRequest {
    /// The success rate of each source's backups over the next `days`
    /// -> [`crate::protocol::Response::Predictions`].
    Predict { source: Option<String>, days: u32 },
    /// How the success model did on held-out history, per source and on the synthetic
    /// histories -> [`crate::protocol::Response::Backtest`].
    Backtest { source: Option<String>, days: u32 },
    /// The expected duration of the next backup of each source, or of one that reads `bytes`
    /// in `files` (a client's metadata scan of a path) -> [`crate::protocol::Response::Estimates`].
    Estimate {
        source: Option<String>,
        bytes: Option<u64>,
        files: Option<u64>,
    },
    /// Anomalies raised within `since`, newest first -> [`crate::protocol::Response::Anomalies`].
    Anomalies {
        since: Option<Duration>,
        source: Option<String>,
    },
    /// -> [`crate::protocol::Response::Trends`].
    Trends { source: Option<String>, days: u32 },
    /// -> [`crate::protocol::Response::Risk`].
    Risk { source: Option<String> },
    /// -> [`crate::protocol::Response::Recommendations`].
    Recommendations,
    /// Everything above for every source over the last `days`
    /// -> [`crate::protocol::Response::AnalyticsReport`].
    Report { days: u32 },
    /// Retention holds in force -> [`crate::protocol::Response::Holds`].
    Holds,
    /// Releases a source's retention hold -> [`crate::protocol::Response::HoldReleased`], or
    /// `NotFound` when the source has none.
    Release { source: String },
}

impl AnalyticsRequest {
    pub fn changes_state(&self) -> bool {
        matches!(self, Self::Release { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Predict { .. } => "analytics predict",
            Self::Backtest { .. } => "analytics predict --backtest",
            Self::Estimate { .. } => "analytics estimate",
            Self::Anomalies { .. } => "analytics anomalies",
            Self::Trends { .. } => "analytics trends",
            Self::Risk { .. } => "analytics risk",
            Self::Recommendations => "analytics recommendations",
            Self::Report { .. } => "analytics report",
            Self::Holds => "analytics hold list",
            Self::Release { .. } => "analytics hold release",
        }
    }
}

/// The predicted success rate of one source's backups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub source: String,
    pub days: u32,
    /// Posterior mean, 0–1.
    pub success_rate: f64,
    /// The 90 % credible interval.
    pub low: f64,
    pub high: f64,
    /// Effective number of jobs behind it, after the decay.
    pub evidence: f64,
    /// Half-life of the evidence, in days (chosen for the horizon, docs/ANALYTICS.md).
    pub half_life_days: f64,
    /// Backups of the source per day lately, and how many are expected over the horizon to
    /// fail.
    pub jobs_per_day: f64,
    pub expected_failures: f64,
    /// Outcomes the model saw.
    pub jobs: u64,
}

/// How well the success model predicted held-out outcomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BacktestScore {
    /// A source's name, or `synthetic:NAME` for a generated history.
    pub history: String,
    pub horizon_days: u32,
    pub half_life_days: f64,
    /// Forecasts scored.
    pub forecasts: u64,
    /// Mean squared error of the predicted rate against each forecast window's outcomes (lower
    /// is better), and the same for the all-time rate as the forecast.
    pub brier: f64,
    pub naive_brier: f64,
    pub calibration: Vec<CalibrationBin>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub jobs: u64,
    /// Mean predicted and observed success rate of the jobs in the bin.
    pub predicted: f64,
    pub observed: f64,
}

/// The duration estimate's error on held-out backups of a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EstimateBacktest {
    pub source: String,
    pub jobs: u64,
    /// Median of |estimate − actual| / actual.
    pub median_error: f64,
    /// Share of actual durations inside the estimate's interval.
    pub within_interval: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BacktestReport {
    pub scores: Vec<BacktestScore>,
    pub estimates: Vec<EstimateBacktest>,
}

/// The expected duration of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// `None` for a path estimated from the throughput of all sources.
    pub source: Option<String>,
    /// What the backup is expected to read.
    pub bytes: u64,
    pub files: u64,
    pub expected_ms: u64,
    /// The 90 % prediction interval.
    pub low_ms: u64,
    pub high_ms: u64,
    /// Bytes read per second of the jobs it is fitted on.
    pub throughput_bps: f64,
    /// Backups the regression is fitted on.
    pub jobs: u64,
}

/// One value of a metric beyond three robust standard deviations of the source's recent ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyInfo {
    pub id: u64,
    pub time_ns: i64,
    pub source: String,
    pub repo: Option<String>,
    pub job: u64,
    pub snapshot: Option<String>,
    /// `duration_s`, `bytes_added`, `files_changed`, `compression_ratio`, `dedup_ratio`, or
    /// `mass_encryption` (the ransomware signal, critical).
    pub metric: String,
    pub value: f64,
    /// The recent median and the band of three robust standard deviations around it.
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    /// Distance from the median in robust standard deviations (signed).
    pub sigmas: f64,
    pub critical: bool,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrendDirection {
    Improving,
    Stable,
    Declining,
}

impl TrendDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Improving => "improving",
            Self::Stable => "stable",
            Self::Declining => "declining",
        }
    }
}

/// A metric's trend over the window, from its daily values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendInfo {
    pub source: String,
    /// `success_rate`, `duration_s`, `size_bytes` or `throughput_bps`.
    pub metric: String,
    pub direction: TrendDirection,
    pub slope_per_day: f64,
    /// The slope over 30 days relative to the mean (0.1 = 10 %).
    pub change_30d: f64,
    /// Two-sided p-value of the slope's t-test (`None`: too few days to test).
    pub p_value: Option<f64>,
    pub days: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskFactor {
    pub name: String,
    /// Points of the 100 this factor can add.
    pub weight: f64,
    /// 0–1: how much of the weight applies.
    pub level: f64,
    pub evidence: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceRisk {
    pub source: String,
    pub repo: String,
    /// 0 (no known risk) to 100.
    pub score: f64,
    pub factors: Vec<RiskFactor>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskReport {
    /// The highest of the sources' scores (a chain is as weak as its weakest source).
    pub overall: f64,
    pub sources: Vec<SourceRisk>,
}

/// Something to do, with what triggered it and the command or setting that does it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// `release-hold`, `investigate-failures`, `add-retention`, `raise-debounce`, `add-replica`,
    /// `schedule-verification`, `raise-inotify-watches`, `rotate-key`, `quieter-hour`.
    pub kind: String,
    /// The source or repository it is about.
    pub subject: String,
    pub severity: super::audit::Severity,
    pub evidence: String,
    pub action: String,
}

/// A retention hold: the source's snapshots made up to `before_ns` are kept by every forget
/// until an admin releases the hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldInfo {
    pub source: String,
    pub repo: Option<String>,
    pub placed_ns: i64,
    /// Snapshots at or before this time are held (the last one before the anomaly).
    pub before_ns: i64,
    /// The backup that raised it, and its snapshot.
    pub job: u64,
    pub snapshot: Option<String>,
    pub reason: String,
}

/// One day of a source's backups, for the report's charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayPoint {
    /// Midnight UTC of the day.
    pub day_ns: i64,
    pub jobs: u32,
    pub failed: u32,
    pub mean_duration_ms: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub source: String,
    pub prediction: Prediction,
    pub estimate: Option<Estimate>,
    pub trends: Vec<TrendInfo>,
    pub risk: SourceRisk,
    pub anomalies: Vec<AnomalyInfo>,
    pub hold: Option<HoldInfo>,
    pub days: Vec<DayPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsReport {
    pub generated_ns: i64,
    pub days: u32,
    pub overall_risk: f64,
    pub sources: Vec<SourceReport>,
    pub recommendations: Vec<Recommendation>,
}
