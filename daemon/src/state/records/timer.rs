//! A scheduled task's state as stored in tree `schedule` (key: the task's key, e.g.
//! `repo/default/prune`).

use super::{legacy_version, versioned};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    /// When the daemon first saw the timer (ns); a maintenance timer's first slot counts
    /// from here.
    pub created_ns: i64,
    /// When it last fired.
    #[serde(default)]
    pub last_run_ns: Option<i64>,
    /// The job it submitted then, and how that ended once it has.
    #[serde(default)]
    pub last_job: Option<u64>,
    #[serde(default)]
    pub last_outcome: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Read-data runs so far: the next one reads subset `position % count + 1`.
    #[serde(default)]
    pub position: u64,
}

versioned!(TimerRecord, 1);
