//! One source's running statistics in tree `analytics.sources` (key: the source name): the
//! recent values of each judged metric and the recent job outcomes, updated as each of its jobs
//! finishes, so that no request reads the whole history.

use super::versioned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatsRecord {
    pub v: u32,
    /// Metric name → its recent values, oldest first (at most `baseline::WINDOW`).
    pub metrics: BTreeMap<String, Vec<f64>>,
    /// Recent outcomes of the source's backups, oldest first: (finished ns, succeeded).
    pub outcomes: Vec<(i64, bool)>,
    /// The source's first successful backup was seen (and left out of the baselines: a full
    /// backup is not what later incremental ones are judged by).
    pub seen_first: bool,
}

versioned!(SourceStatsRecord, 1);
