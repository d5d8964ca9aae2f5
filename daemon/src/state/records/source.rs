//! A watched source as stored in tree `sources` (key: its name).

use super::{legacy_version, versioned};
use backupd_common::protocol::{KeepRules, Retention, SourcePolicy, SourceSpec};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Version 2: version 1 plus `v`. Version 3: plus `policy` (absent in older records: no
/// schedule, default retention). Durations are serde's `{secs, nanos}`, as version 1 wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub name: String,
    /// Absolute path, raw bytes.
    pub path: Vec<u8>,
    /// Repository name; `None`: the default one.
    pub repo: Option<String>,
    pub excludes: Vec<String>,
    pub watch: bool,
    pub debounce: Duration,
    pub max_delay: Duration,
    pub rescan_every: Duration,
    #[serde(default)]
    pub policy: PolicyRecord,
}

versioned!(SourceRecord, 3);

/// A source's schedule, retention and RPO as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub schedule: Option<String>,
    pub every: Option<Duration>,
    pub jitter: Duration,
    /// `default`, `keep-all` or `keep` (with `keep`).
    pub retention: String,
    pub keep: Option<KeepRecord>,
    pub retention_every: Option<Duration>,
    pub rpo: Option<Duration>,
    /// Absent in records written before it existed (and ignored by backupd that predates it):
    /// the default RTO.
    #[serde(default)]
    pub rto: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepRecord {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<Duration>,
}

impl From<&SourcePolicy> for PolicyRecord {
    fn from(p: &SourcePolicy) -> Self {
        let SourcePolicy {
            schedule,
            every,
            jitter,
            retention,
            retention_every,
            rpo,
            rto,
        } = p.clone();
        let (retention, keep) = match retention {
            Retention::Default => ("default", None),
            Retention::KeepAll => ("keep-all", None),
            Retention::Keep(k) => {
                let KeepRules {
                    last,
                    hourly,
                    daily,
                    weekly,
                    monthly,
                    yearly,
                    within,
                } = k;
                (
                    "keep",
                    Some(KeepRecord {
                        last,
                        hourly,
                        daily,
                        weekly,
                        monthly,
                        yearly,
                        within,
                    }),
                )
            }
        };
        Self {
            schedule,
            every,
            jitter,
            retention: retention.to_owned(),
            keep,
            retention_every,
            rpo,
            rto,
        }
    }
}

impl From<PolicyRecord> for SourcePolicy {
    fn from(r: PolicyRecord) -> Self {
        let retention = match (r.retention.as_str(), r.keep) {
            ("keep-all", _) => Retention::KeepAll,
            ("keep", Some(k)) => Retention::Keep(KeepRules {
                last: k.last,
                hourly: k.hourly,
                daily: k.daily,
                weekly: k.weekly,
                monthly: k.monthly,
                yearly: k.yearly,
                within: k.within,
            }),
            // Older records, and anything unreadable: the default keeps more than it forgets.
            _ => Retention::Default,
        };
        Self {
            schedule: r.schedule,
            every: r.every,
            jitter: r.jitter,
            retention,
            retention_every: r.retention_every,
            rpo: r.rpo,
            rto: r.rto,
        }
    }
}

impl From<&SourceSpec> for SourceRecord {
    fn from(spec: &SourceSpec) -> Self {
        let SourceSpec {
            name,
            path,
            repo,
            excludes,
            watch,
            debounce,
            max_delay,
            rescan_every,
            policy,
        } = spec.clone();
        Self {
            v: <Self as super::Record>::VERSION,
            name,
            path,
            repo,
            excludes,
            watch,
            debounce,
            max_delay,
            rescan_every,
            policy: PolicyRecord::from(&policy),
        }
    }
}

impl From<SourceRecord> for SourceSpec {
    fn from(r: SourceRecord) -> Self {
        let SourceRecord {
            v: _,
            name,
            path,
            repo,
            excludes,
            watch,
            debounce,
            max_delay,
            rescan_every,
            policy,
        } = r;
        Self {
            name,
            path,
            repo,
            excludes,
            watch,
            debounce,
            max_delay,
            rescan_every,
            policy: policy.into(),
        }
    }
}
