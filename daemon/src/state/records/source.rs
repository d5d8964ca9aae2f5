//! A watched source as stored in tree `sources` (key: its name).

use super::{legacy_version, versioned};
use backupd_common::protocol::SourceSpec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Version 2: version 1 plus `v`. Durations are serde's `{secs, nanos}`, as version 1 wrote.
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
}

versioned!(SourceRecord, 2);

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
        }
    }
}
