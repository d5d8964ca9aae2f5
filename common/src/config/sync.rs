//! `[sync]`: directory sync pairs and repository replication share these limits
//! (docs/OPERATIONS.md, "Sync and replication").

use crate::rate::Rate;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// One limit shared by every sync transfer and replication at once (`off`: none). A pair's
    /// or replication's own `--bwlimit` applies as well; the lower one wins.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    #[serde(with = "crate::rate::limit")]
    pub bwlimit: Option<Rate>,
    /// Sync jobs that may run at the same time.
    pub max_transfers: u32,
    /// Days a file removed or replaced by a sync stays in `DST/.backupd-trash/`.
    pub trash_days: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            bwlimit: None,
            max_transfers: 3,
            trash_days: 7,
        }
    }
}

impl SyncConfig {
    /// The key that is wrong and why, for `Config::validate`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=64).contains(&self.max_transfers) {
            return Some((
                "sync.max_transfers",
                format!("is {}; expected 1 to 64", self.max_transfers),
            ));
        }
        if self.trash_days > 3650 {
            return Some((
                "sync.trash_days",
                format!("is {}; expected 0 to 3650", self.trash_days),
            ));
        }
        None
    }
}
