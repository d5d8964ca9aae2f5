//! `[security.detect]` and `[security.compliance]`: the thresholds of suspicious-activity
//! detection and the policies compliance checks measure against. `security.lockout` itself is
//! in [`super::security::SecurityConfig`].

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Largest count threshold accepted: a window keeps at most this many timestamps per uid.
pub const MAX_THRESHOLD: u32 = 10_000;

/// Suspicious-activity patterns, per uid. Durations are written like "10m" or "1h".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Brute force: an alert when a uid makes this many denied or failed requests (and failed
    /// handshakes) within `brute_force_window`.
    pub brute_force_failures: u32,
    /// The window `brute_force_failures` are counted in.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub brute_force_window: Duration,
    /// Mass export: an alert when a uid makes this many restores of more than
    /// `mass_export_files` files (or `mass_export_key_exports` key exports) within
    /// `mass_export_window`.
    pub mass_export_restores: u32,
    /// Mass export: the file count a restore must exceed to count towards
    /// `mass_export_restores`.
    pub mass_export_files: u64,
    /// Mass export: an alert when a uid exports this many repository keys within
    /// `mass_export_window`.
    pub mass_export_key_exports: u32,
    /// The window mass exports are counted in.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub mass_export_window: Duration,
    /// Unusual access: an alert when a uid that is not an admin makes more than this many
    /// requests within `unusual_window`.
    pub unusual_requests: u32,
    /// The window `unusual_requests` are counted in.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub unusual_window: Duration,
    /// How many uids the detector follows at once; the one seen least recently is forgotten
    /// first, so a flood of uids cannot grow the daemon's memory.
    pub max_tracked_uids: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            brute_force_failures: 5,
            brute_force_window: Duration::from_secs(600),
            mass_export_restores: 3,
            mass_export_files: 1000,
            mass_export_key_exports: 1,
            mass_export_window: Duration::from_secs(3600),
            unusual_requests: 100,
            unusual_window: Duration::from_secs(3600),
            max_tracked_uids: 4096,
        }
    }
}

impl DetectConfig {
    /// The first bad key (relative to `[security.detect]`) and what is wrong with it.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        let counts = [
            ("brute_force_failures", self.brute_force_failures),
            ("mass_export_restores", self.mass_export_restores),
            ("mass_export_key_exports", self.mass_export_key_exports),
            ("unusual_requests", self.unusual_requests),
        ];
        for (key, n) in counts {
            if !(1..=MAX_THRESHOLD).contains(&n) {
                return Some((key, format!("is {n}; expected 1 to {MAX_THRESHOLD}")));
            }
        }
        let windows = [
            ("brute_force_window", self.brute_force_window),
            ("mass_export_window", self.mass_export_window),
            ("unusual_window", self.unusual_window),
        ];
        for (key, w) in windows {
            if w.is_zero() || w > Duration::from_secs(7 * 86_400) {
                return Some((
                    key,
                    format!("is {w:?}; expected more than 0 and at most 7d"),
                ));
            }
        }
        if !(1..=1_000_000).contains(&self.max_tracked_uids) {
            let n = self.max_tracked_uids;
            return Some(("max_tracked_uids", format!("is {n}; expected 1 to 1000000")));
        }
        None
    }
}

/// Policies the compliance controls measure against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceConfig {
    /// Oldest a repository's current data-key version may be (`security.key_rotation` takes
    /// its place when set).
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub key_max_age: Duration,
    /// A full `check --read-data` must have succeeded within this long.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub read_data_check_within: Duration,
    /// A restore (recovery drill) must have succeeded within this long.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub restore_drill_within: Duration,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            key_max_age: Duration::from_secs(365 * 86_400),
            read_data_check_within: Duration::from_secs(30 * 86_400),
            restore_drill_within: Duration::from_secs(90 * 86_400),
        }
    }
}

impl ComplianceConfig {
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        let spans = [
            ("key_max_age", self.key_max_age),
            ("read_data_check_within", self.read_data_check_within),
            ("restore_drill_within", self.restore_drill_within),
        ];
        spans
            .into_iter()
            .find(|(_, d)| d.is_zero())
            .map(|(key, _)| (key, "is 0; expected a duration such as \"30d\"".to_owned()))
    }
}
