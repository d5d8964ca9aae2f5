//! `[maintenance]`: what the daemon does to keep its repositories and sources in shape on its
//! own (docs/OPERATIONS.md, "Operations that run themselves"). Schedules are calendar
//! schedules or `every DURATION` (see `crate::schedule`), or `off`.

use crate::schedule::When;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Apply each source's retention at most this often (after it made snapshots); a source's
    /// `retention_every` overrides it.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub retention_every: Duration,
    /// Prune (and compact the index of) every repository.
    pub prune: String,
    /// Check every repository's structure.
    pub check: String,
    /// Read and verify one subset of every repository's packs, the next one each time.
    pub read_data: String,
    /// How many subsets the packs are split into: all data is read once every this many
    /// `read_data` runs (20 weekly runs: 5 % a week, everything in 20 weeks).
    pub read_data_subsets: u32,
    /// Run a recovery drill of every source (restore a sample of its newest snapshot into a
    /// scratch directory, verify it, measure the throughput, delete it).
    pub drill: String,
    /// The share of a source's files a scheduled drill restores (`1%`, `100%`).
    pub drill_sample: String,
    /// A scheduled maintenance run starts up to this much later (fixed per host, repository
    /// and slot).
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            retention_every: Duration::from_secs(3600),
            prune: "weekly Sun 03:00".into(),
            check: "daily 04:00".into(),
            read_data: "weekly Sat 04:30".into(),
            read_data_subsets: 20,
            drill: "weekly Sun 05:00".into(),
            drill_sample: "1%".into(),
            jitter: Duration::from_secs(600),
        }
    }
}

/// A maintenance schedule: `off`, or when.
pub fn when(text: &str) -> Result<Option<When>, crate::schedule::ScheduleError> {
    if text.trim() == "off" {
        return Ok(None);
    }
    When::parse(text).map(Some)
}

impl MaintenanceConfig {
    /// `drill_sample` in percent (validated with the configuration; 1 % if it does not read).
    pub fn drill_sample_percent(&self) -> f64 {
        crate::protocol::parse_sample(&self.drill_sample).unwrap_or(1.0)
    }

    /// The key that is wrong and why, for `Config::validate`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        for (key, text) in [
            ("maintenance.prune", &self.prune),
            ("maintenance.check", &self.check),
            ("maintenance.read_data", &self.read_data),
            ("maintenance.drill", &self.drill),
        ] {
            if let Err(e) = when(text) {
                return Some((key, format!("is {text:?}: {}", e.reason)));
            }
        }
        if let Err(e) = crate::protocol::parse_sample(&self.drill_sample) {
            return Some(("maintenance.drill_sample", e));
        }
        if self.retention_every < crate::schedule::MIN_EVERY {
            return Some(("maintenance.retention_every", "is shorter than 1s".into()));
        }
        if !(1..=1000).contains(&self.read_data_subsets) {
            return Some((
                "maintenance.read_data_subsets",
                format!("is {}; expected 1 to 1000", self.read_data_subsets),
            ));
        }
        None
    }
}
