//! Snapshot files (`snapshots/<sha256>`): sealed bincode of [`Snapshot`], written last, after
//! the packs and the index it depends on.

use backupd_common::ids::{BlobId, SnapshotId};
use serde::{Deserialize, Serialize};

pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// Nanoseconds since the Unix epoch (`--time` may set it).
    pub time_ns: i64,
    pub host: String,
    pub username: String,
    /// The backed-up paths, absolute, raw bytes.
    pub paths: Vec<Vec<u8>>,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    /// Root tree: mirrors the absolute paths from `/`.
    pub tree: BlobId,
    pub stats: SnapshotStats,
    /// Paths that could not be read, with the reason.
    pub skipped: Vec<(Vec<u8>, String)>,
    /// The uid the backup acted for (its file-system rights); `None`: the daemon's own rights.
    /// Appended last: a reader that predates it ignores the trailing bytes, and snapshots
    /// written before it decode through [`SnapshotV1`].
    pub owner_uid: Option<u32>,
}

/// A snapshot as written before `owner_uid` existed.
#[derive(Deserialize)]
pub struct SnapshotV1 {
    version: u32,
    time_ns: i64,
    host: String,
    username: String,
    paths: Vec<Vec<u8>>,
    tags: Vec<String>,
    parent: Option<SnapshotId>,
    tree: BlobId,
    stats: SnapshotStats,
    skipped: Vec<(Vec<u8>, String)>,
}

impl From<SnapshotV1> for Snapshot {
    fn from(s: SnapshotV1) -> Self {
        Self {
            version: s.version,
            time_ns: s.time_ns,
            host: s.host,
            username: s.username,
            paths: s.paths,
            tags: s.tags,
            parent: s.parent,
            tree: s.tree,
            stats: s.stats,
            skipped: s.skipped,
            owner_uid: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// Files whose content was read (not reused from the parent).
    pub files_read: u64,
    pub bytes_total: u64,
    pub bytes_read: u64,
    /// Plaintext bytes of blobs new to the repository.
    pub bytes_added: u64,
    /// Bytes written to packs for those blobs (compressed, encrypted).
    pub bytes_stored: u64,
    pub blobs_added: u64,
    pub skipped: u64,
    pub changed_during_read: u64,
    pub duration_ms: u64,
}

/// What listing snapshots and choosing a parent need of a snapshot: everything but the list
/// of skipped paths (only its count), so that a cache of headers stays small.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub time_ns: i64,
    pub host: String,
    pub username: String,
    pub paths: Vec<Vec<u8>>,
    pub tags: Vec<String>,
    pub parent: Option<SnapshotId>,
    pub tree: BlobId,
    pub stats: SnapshotStats,
    /// The watched source whose directory the snapshot holds, when the daemon knows one.
    pub source: Option<String>,
    /// The user the snapshot was made for (`None`: with the daemon's rights).
    pub owner_uid: Option<u32>,
}

impl SnapshotHeader {
    pub fn of(s: &Snapshot, source: Option<String>) -> Self {
        Self {
            time_ns: s.time_ns,
            host: s.host.clone(),
            username: s.username.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            parent: s.parent,
            tree: s.tree,
            stats: s.stats.clone(),
            source,
            owner_uid: s.owner_uid,
        }
    }
}
