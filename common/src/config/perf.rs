//! `[perf]`: the performance monitor, its bottleneck thresholds and the tuner; `[metrics]`: the
//! optional Prometheus endpoint (docs/OPERATIONS.md, "Performance and health").

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct PerfConfig {
    /// How often the machine and the daemon are sampled.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub sample_every: Duration,
    /// How often the tuner looks at the samples (when `auto` is on).
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub optimize_every: Duration,
    /// Whether the tuner changes anything on its own; `backupctl perf auto on|off` overrides
    /// it until the next change of this key.
    pub auto: bool,
    /// Samples are kept this long (at full resolution for `keep_full`, then one per 5
    /// minutes).
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub keep: Duration,
    /// Samples are kept at full resolution for this long, then one per 5 minutes until `keep`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub keep_full: Duration,
    /// CPU use in percent above which the CPU is a bottleneck (a warning).
    pub cpu_percent: f64,
    /// CPU use in percent above which the bottleneck is critical.
    pub cpu_critical_percent: f64,
    /// Memory use in percent above which memory is a bottleneck (a warning).
    pub memory_percent: f64,
    /// Memory use in percent above which the bottleneck is critical.
    pub memory_critical_percent: f64,
    /// Use of the file system holding the state or a repository, in percent, above which the
    /// disk is a bottleneck (a warning).
    pub disk_percent: f64,
    /// Disk use in percent above which the bottleneck is critical.
    pub disk_critical_percent: f64,
    /// CPU time waiting for I/O in percent above which I/O is a bottleneck (a warning).
    pub iowait_percent: f64,
    /// I/O wait in percent above which the bottleneck is critical.
    pub iowait_critical_percent: f64,
    /// `/proc/pressure/io` "some avg10" above this also counts as I/O pressure.
    pub io_pressure_percent: f64,
    /// A disk whose growth would fill it within this time is a warning before it crosses
    /// `disk_percent`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub disk_full_warning: Duration,
    /// Nice level backups, checks and prunes start with. Restores always run at the daemon's
    /// own priority.
    pub nice: i32,
    /// I/O class backups, checks and prunes start with: `best-effort/0` to `best-effort/7`, or
    /// `idle`.
    pub io_class: String,
}

impl Default for PerfConfig {
    fn default() -> Self {
        Self {
            sample_every: Duration::from_secs(30),
            optimize_every: Duration::from_secs(300),
            auto: true,
            keep: Duration::from_secs(7 * 86_400),
            keep_full: Duration::from_secs(86_400),
            cpu_percent: 80.0,
            cpu_critical_percent: 95.0,
            memory_percent: 85.0,
            memory_critical_percent: 95.0,
            disk_percent: 90.0,
            disk_critical_percent: 97.0,
            iowait_percent: 30.0,
            iowait_critical_percent: 60.0,
            io_pressure_percent: 40.0,
            disk_full_warning: Duration::from_secs(86_400),
            nice: 10,
            io_class: "best-effort/7".into(),
        }
    }
}

/// `best-effort/N` or `idle` as (class is idle, best-effort level).
pub fn parse_io_class(text: &str) -> Result<Option<u8>, String> {
    let text = text.trim();
    if text == "idle" {
        return Ok(None);
    }
    let level = text
        .strip_prefix("best-effort/")
        .or_else(|| text.strip_prefix("best-effort:"))
        .ok_or_else(|| {
            format!("is {text:?}; expected `best-effort/0` .. `best-effort/7` or `idle`")
        })?;
    match level.parse::<u8>() {
        Ok(n) if n <= 7 => Ok(Some(n)),
        _ => Err(format!(
            "is {text:?}; the best-effort level goes from 0 (first) to 7 (last)"
        )),
    }
}

impl PerfConfig {
    /// The key that is wrong and why, for `Config::validate`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.sample_every < Duration::from_secs(1) {
            return Some(("perf.sample_every", "is shorter than 1s".into()));
        }
        if self.optimize_every < self.sample_every {
            return Some((
                "perf.optimize_every",
                "is shorter than perf.sample_every; the tuner needs samples to look at".into(),
            ));
        }
        if self.keep_full > self.keep {
            return Some(("perf.keep_full", "is longer than perf.keep".into()));
        }
        for (key, warn, crit) in [
            (
                "perf.cpu_percent",
                self.cpu_percent,
                self.cpu_critical_percent,
            ),
            (
                "perf.memory_percent",
                self.memory_percent,
                self.memory_critical_percent,
            ),
            (
                "perf.disk_percent",
                self.disk_percent,
                self.disk_critical_percent,
            ),
            (
                "perf.iowait_percent",
                self.iowait_percent,
                self.iowait_critical_percent,
            ),
        ] {
            if !(0.0..=100.0).contains(&warn) || !(0.0..=100.0).contains(&crit) {
                return Some((
                    key,
                    "and its _critical twin must be between 0 and 100".into(),
                ));
            }
            if crit < warn {
                return Some((
                    key,
                    format!("is {warn}, above its critical threshold {crit}"),
                ));
            }
        }
        if !(0.0..=100.0).contains(&self.io_pressure_percent) {
            return Some((
                "perf.io_pressure_percent",
                "must be between 0 and 100".into(),
            ));
        }
        if !(0..=19).contains(&self.nice) {
            return Some(("perf.nice", format!("is {}; expected 0 to 19", self.nice)));
        }
        if let Err(e) = parse_io_class(&self.io_class) {
            return Some(("perf.io_class", e));
        }
        None
    }
}

/// The Prometheus endpoint. Off unless `listen` is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address to serve `GET /metrics` on, e.g. `127.0.0.1:9911`.
    pub listen: Option<SocketAddr>,
    /// Required for an address that is not loopback: the metrics name sources, repositories
    /// and paths, so serving them beyond this machine must be a decision.
    pub allow_public: bool,
}

impl MetricsConfig {
    pub fn problem(&self) -> Option<(&'static str, String)> {
        match self.listen {
            Some(addr) if !addr.ip().is_loopback() && !self.allow_public => Some((
                "metrics.listen",
                format!(
                    "is {addr}, which is not a loopback address; the metrics name sources, \
                     repositories and paths: set metrics.allow_public = true to serve them there"
                ),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_classes_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_io_class("idle"), Ok(None));
        assert_eq!(parse_io_class("best-effort/7"), Ok(Some(7)));
        assert!(parse_io_class("best-effort/8")
            .expect_err("level 8 is refused")
            .contains("0 (first)"));
        assert!(parse_io_class("realtime")
            .expect_err("realtime is refused")
            .contains("idle"));
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(PerfConfig::default().problem(), None);
        let c = PerfConfig {
            cpu_percent: 99.0,
            ..PerfConfig::default()
        };
        assert_eq!(c.problem().map(|p| p.0), Some("perf.cpu_percent"));
        let m = MetricsConfig {
            listen: Some("0.0.0.0:9911".parse().expect("addr")),
            allow_public: false,
        };
        assert_eq!(m.problem().map(|p| p.0), Some("metrics.listen"));
        let m = MetricsConfig {
            listen: Some("127.0.0.1:9911".parse().expect("addr")),
            allow_public: false,
        };
        assert_eq!(m.problem(), None);
    }
}
