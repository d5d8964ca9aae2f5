//! `[audit]`: the tamper-evident audit log (docs/SECURITY.md, "Audit log").

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record audited requests. Off only to measure what auditing costs; compliance reports a
    /// disabled log as a failure.
    pub enabled: bool,
    /// How long entries are kept (in the state database and the daily files); at least one
    /// day.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// A signed checkpoint after this many entries, or after `checkpoint_interval`, whichever
    /// comes first.
    pub checkpoint_every: u64,
    /// A signed checkpoint when the last one is older than this, or after `checkpoint_every`
    /// entries, whichever comes first.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Also send each entry to the systemd journal when running under systemd.
    pub journal: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retention: Duration::from_secs(400 * 86_400),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(600),
            journal: true,
        }
    }
}

impl AuditConfig {
    /// The key that is wrong and why, for `Config::validate`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.retention < Duration::from_secs(86_400) {
            return Some((
                "audit.retention",
                format!(
                    "is {}; expected at least 1d",
                    humantime_serde::re::humantime::format_duration(self.retention)
                ),
            ));
        }
        if self.checkpoint_every == 0 {
            return Some((
                "audit.checkpoint_every",
                "is 0; expected at least 1".to_owned(),
            ));
        }
        if self.checkpoint_interval < Duration::from_secs(1) {
            return Some((
                "audit.checkpoint_interval",
                "is below 1s; expected a duration such as \"10m\"".to_owned(),
            ));
        }
        None
    }

    /// Retention in whole days.
    pub fn retention_days(&self) -> u64 {
        self.retention.as_secs() / 86_400
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        audit: AuditConfig,
    }

    #[test]
    fn retention_parses_as_a_duration_and_must_reach_a_day() {
        let doc: Doc = toml::from_str("[audit]\nretention = \"30d\"").expect("parses");
        assert_eq!(doc.audit.retention_days(), 30);
        assert!(doc.audit.problem().is_none());
        let doc: Doc = toml::from_str("[audit]\nretention = \"2h\"").expect("parses");
        assert_eq!(doc.audit.problem().map(|p| p.0), Some("audit.retention"));
        assert!(AuditConfig::default().retention_days() >= 365);
        assert!(toml::from_str::<Doc>("[audit]\nretain = \"1d\"").is_err());
    }
}
