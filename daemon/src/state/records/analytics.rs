//! Analytics records. One source's running statistics are kept in small pieces so that a
//! finished job writes a few hundred bytes, not the source's whole history: its summary in tree
//! `analytics.sources` (key: the source name), one [`DayRecord`] per day in `analytics.days`
//! and one [`RunSample`] per recent successful backup in `analytics.runs` (keys: the source
//! name, a 0 byte, then the day or the finish time and job id, big-endian). The anomalies
//! raised are in tree `analytics.anomalies` and the retention holds in `analytics.holds` (key:
//! the source name).

use super::versioned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatsRecord {
    pub v: u32,
    /// Metric name → its recent values, oldest first (at most `baseline::WINDOW`).
    pub metrics: BTreeMap<String, Vec<f64>>,
    /// The source's first successful backup was seen (and left out of the baselines: a full
    /// backup is not what later incremental ones are judged by).
    pub seen_first: bool,
    /// The last jobs taken in (at most `aggregates::RECENT_JOBS`): a job written twice (its
    /// history entry rewritten, the history replayed after a partial replay) counts once.
    pub recent_jobs: Vec<u64>,
    pub repo: Option<String>,
    pub last_success_ns: Option<i64>,
    /// Run samples kept in `analytics.runs`.
    pub runs: u32,
}

versioned!(SourceStatsRecord, 1);

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSample {
    #[serde(default = "super::legacy_version")]
    pub v: u32,
    pub finished_ns: i64,
    pub duration_ms: u64,
    pub files_read: u64,
    pub bytes_read: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayRecord {
    #[serde(default = "super::legacy_version")]
    pub v: u32,
    pub jobs: u32,
    pub failed: u32,
    /// Of the successful ones.
    pub duration_ms: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    /// What the source's snapshots hold (bytes), at the day's last successful backup.
    pub size_bytes: u64,
}

versioned!(RunSample, 1);
versioned!(DayRecord, 1);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    pub v: u32,
    pub id: u64,
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

versioned!(AnomalyRecord, 1);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub v: u32,
    pub source: String,
    pub repo: Option<String>,
    /// The paths the source backs up: the held snapshots are those of exactly these paths.
    pub paths: Vec<Vec<u8>>,
    pub placed_ns: i64,
    pub before_ns: i64,
    pub job: u64,
    pub snapshot: Option<String>,
    pub reason: String,
}

versioned!(HoldRecord, 1);
