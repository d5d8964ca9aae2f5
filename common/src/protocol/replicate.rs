//! Repository replication: `backupctl repo init --replica-of`, `repo replicate add|list|run|
//! remove` and the `replicate` job kind. A replica shares its source's blob-id key and chunker,
//! so replication copies blobs without chunking anything again (docs/FORMAT.md, "Replicas").

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `repo init --replica-of SOURCE`: create a repository that replicates `source`
/// -> `Response::Repo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InitReplicaRequest {
    pub name: String,
    /// The location (a directory today).
    pub path: Vec<u8>,
    pub password: Option<super::Secret>,
    /// The registered repository it replicates.
    pub source: String,
    /// A data key of its own (replication then seals every blob again) instead of the
    /// source's data-key versions (packs copied as they are).
    pub own_data_key: bool,
}

/// What sets a replication off besides `repo replicate run`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaTrigger {
    /// Only `repo replicate run`.
    Manual,
    /// After every successful backup into the source (queued, coalescing).
    AfterEachSnapshot,
    /// A calendar schedule (`--schedule`, the syntax of `source add --schedule`).
    Schedule(String),
    /// An interval after the last run (`--every`).
    Every(Duration),
}

/// `repo replicate add`: one replication, from a repository to its replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationSpec {
    pub from: String,
    pub to: String,
    pub trigger: ReplicaTrigger,
    /// Read back and check what was copied.
    pub verify: bool,
    /// Forget in the replica the snapshots the source no longer has.
    pub mirror_forget: bool,
    /// Bytes per second this replication writes at most (besides `[sync] bwlimit`).
    pub bwlimit: Option<u64>,
    /// How far behind the replica may fall before `system health` is degraded (`None`: twice
    /// the interval of `--every`, else 24 h).
    pub max_lag: Option<Duration>,
}

/// A stored replication and how far its replica is behind -> `repo replicate list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationInfo {
    pub spec: ReplicationSpec,
    /// The allowed lag in effect.
    pub max_lag: Duration,
    pub created_ns: i64,
    pub last_run_ns: Option<i64>,
    pub last_success_ns: Option<i64>,
    pub last_job: Option<u64>,
    pub last_error: Option<String>,
    /// Snapshots of the source the replica lacks (`None`: one of them does not open now).
    pub snapshots_behind: Option<u64>,
    /// Age of the oldest snapshot of the source the replica lacks (zero: none missing).
    pub lag: Option<Duration>,
    /// `lag` is over `max_lag`.
    pub over_lag: bool,
}

/// The `replicate` job: copy into `repo` (the replica) what it lacks of `from`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicateRequest {
    /// The replica (the repository the job writes; pinned at submission).
    pub repo: Option<String>,
    /// The source.
    pub from: String,
    pub verify: bool,
    pub mirror_forget: bool,
    /// Bytes per second, besides `[sync] bwlimit`.
    pub bwlimit: Option<u64>,
}

/// What a `replicate` job did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicateResult {
    pub from: String,
    pub to: String,
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    pub snapshots_forgotten: u64,
    pub blobs_copied: u64,
    pub blobs_present: u64,
    pub blobs_resealed: u64,
    pub packs_copied: u64,
    pub packs_written: u64,
    pub packs_adopted: u64,
    pub packs_verified: u64,
    pub index_files_written: u64,
    pub bytes_written: u64,
    pub duration: Duration,
}
