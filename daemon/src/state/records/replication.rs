//! A replication as stored in tree `replications` (key: the replica's name): the protocol's
//! `ReplicationSpec` in a shape of its own, and how its runs went.

use super::versioned;
use backupd_common::protocol::{ReplicaTrigger, ReplicationSpec};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationRecord {
    pub v: u32,
    pub from: String,
    pub to: String,
    pub trigger: TriggerRecord,
    pub verify: bool,
    pub mirror_forget: bool,
    /// Bytes per second.
    #[serde(default)]
    pub bwlimit: Option<u64>,
    #[serde(default)]
    pub max_lag_ms: Option<u64>,
    pub created_ns: i64,
    /// When the daemon last queued it (any trigger).
    #[serde(default)]
    pub last_run_ns: Option<i64>,
    #[serde(default)]
    pub last_job: Option<u64>,
    #[serde(default)]
    pub last_success_ns: Option<i64>,
    #[serde(default)]
    pub last_error: Option<String>,
}

versioned!(ReplicationRecord, 1);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TriggerRecord {
    Manual,
    AfterEachSnapshot,
    Schedule { text: String },
    Every { ms: u64 },
}

impl ReplicationRecord {
    pub fn new(spec: ReplicationSpec, created_ns: i64) -> Self {
        Self {
            v: 1,
            from: spec.from,
            to: spec.to,
            trigger: match spec.trigger {
                ReplicaTrigger::Manual => TriggerRecord::Manual,
                ReplicaTrigger::AfterEachSnapshot => TriggerRecord::AfterEachSnapshot,
                ReplicaTrigger::Schedule(text) => TriggerRecord::Schedule { text },
                ReplicaTrigger::Every(d) => TriggerRecord::Every {
                    ms: d.as_millis() as u64,
                },
            },
            verify: spec.verify,
            mirror_forget: spec.mirror_forget,
            bwlimit: spec.bwlimit,
            max_lag_ms: spec.max_lag.map(|d| d.as_millis() as u64),
            created_ns,
            last_run_ns: None,
            last_job: None,
            last_success_ns: None,
            last_error: None,
        }
    }

    pub fn spec(&self) -> ReplicationSpec {
        ReplicationSpec {
            from: self.from.clone(),
            to: self.to.clone(),
            trigger: match &self.trigger {
                TriggerRecord::Manual => ReplicaTrigger::Manual,
                TriggerRecord::AfterEachSnapshot => ReplicaTrigger::AfterEachSnapshot,
                TriggerRecord::Schedule { text } => ReplicaTrigger::Schedule(text.clone()),
                TriggerRecord::Every { ms } => ReplicaTrigger::Every(Duration::from_millis(*ms)),
            },
            verify: self.verify,
            mirror_forget: self.mirror_forget,
            bwlimit: self.bwlimit,
            max_lag: self.max_lag_ms.map(Duration::from_millis),
        }
    }
}
