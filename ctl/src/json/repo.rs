//! Repositories, keys and snapshots.

use super::result::StatsView;
use super::time;
use backupd_common::protocol::{
    KeyChange, KeyExport, RepoDetails, RepoInfo, SnapshotInfo, StatsMode, StatsResult,
};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct RepoView {
    pub name: String,
    pub path: String,
    pub id: String,
    pub format_version: u32,
    /// `null` when the repository could not be read just now.
    pub snapshots: Option<u64>,
    pub key_file: String,
    pub is_default: bool,
}

impl From<&RepoInfo> for RepoView {
    fn from(r: &RepoInfo) -> Self {
        Self {
            name: r.name.clone(),
            path: r.path.clone(),
            id: r.id.clone(),
            format_version: r.format_version,
            snapshots: r.snapshots,
            key_file: r.key_file.clone(),
            is_default: r.is_default,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KeyView {
    pub name: String,
    pub path: String,
    pub password: String,
    /// `utf8` or `hex`.
    pub encoding: String,
}

impl From<&KeyExport> for KeyView {
    fn from(k: &KeyExport) -> Self {
        Self {
            name: k.name.clone(),
            path: k.path.clone(),
            password: k.password.clone(),
            encoding: k.encoding.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SnapshotView {
    pub id: String,
    pub time: String,
    pub time_ns: i64,
    pub host: String,
    pub username: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub parent: Option<String>,
    pub stats: StatsView,
    pub skipped: u64,
    /// The watched source that made it, if one did.
    pub source: Option<String>,
    /// The uid it was made for (a user's own backup); null: made with the daemon's rights.
    pub owner_uid: Option<u32>,
    /// Bytes of the files in the snapshot, by their sizes as read (`stats.bytes_total`).
    pub size: u64,
}

impl From<&SnapshotInfo> for SnapshotView {
    fn from(s: &SnapshotInfo) -> Self {
        Self {
            id: s.id.clone(),
            time: time(s.time_ns),
            time_ns: s.time_ns,
            host: s.host.clone(),
            username: s.username.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            parent: s.parent.clone(),
            stats: StatsView::from(&s.stats),
            skipped: s.skipped,
            source: s.source.clone(),
            owner_uid: s.owner_uid,
            size: s.stats.bytes_total,
        }
    }
}

/// `snapshots --group-by`: one group's key (only the field grouped by) and its snapshots.
#[derive(Debug, Serialize)]
pub struct SnapshotGroupView {
    pub group: serde_json::Map<String, serde_json::Value>,
    pub snapshots: Vec<SnapshotView>,
}

#[derive(Debug, Serialize)]
pub struct RepoDetailsView {
    pub name: String,
    pub location: String,
    pub id: String,
    pub format_version: u32,
    pub created: String,
    pub chunker: ChunkerView,
    pub compression: String,
    pub snapshots: u64,
    pub packs: u64,
    pub blobs: u64,
    pub index_files: u64,
    pub key_files: u64,
    pub stored_bytes: u64,
    pub original_bytes: u64,
    pub dedup_ratio: Option<f64>,
    pub compression_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ChunkerView {
    pub algorithm: &'static str,
    pub min_bytes: u32,
    pub avg_bytes: u32,
    pub max_bytes: u32,
}

impl From<&RepoDetails> for RepoDetailsView {
    fn from(d: &RepoDetails) -> Self {
        Self {
            name: d.repo.name.clone(),
            location: d.repo.path.clone(),
            id: d.repo.id.clone(),
            format_version: d.repo.format_version,
            created: d.created.clone(),
            chunker: ChunkerView {
                algorithm: "fastcdc",
                min_bytes: d.chunk_min,
                avg_bytes: d.chunk_avg,
                max_bytes: d.chunk_max,
            },
            compression: d.compression.clone(),
            snapshots: d.snapshots,
            packs: d.packs,
            blobs: d.blobs,
            index_files: d.index_files,
            key_files: d.key_files,
            stored_bytes: d.stored_bytes,
            original_bytes: d.original_bytes,
            dedup_ratio: d.dedup_ratio,
            compression_ratio: d.compression_ratio,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StatsResultView {
    /// `restore-size` or `raw`.
    pub mode: &'static str,
    pub snapshots: Vec<String>,
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawView>,
}

#[derive(Debug, Serialize)]
pub struct RawView {
    pub blobs: u64,
    pub tree_blobs: u64,
    pub data_blobs: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub packs: Option<u64>,
    pub pack_bytes: Option<u64>,
    pub dedup_ratio: Option<f64>,
    pub compression_ratio: Option<f64>,
}

pub fn mode_name(m: StatsMode) -> &'static str {
    match m {
        StatsMode::RestoreSize => "restore-size",
        StatsMode::Raw => "raw",
    }
}

impl From<&StatsResult> for StatsResultView {
    fn from(s: &StatsResult) -> Self {
        Self {
            mode: mode_name(s.mode),
            snapshots: s.snapshots.clone(),
            files: s.files,
            dirs: s.dirs,
            other: s.other,
            bytes: s.bytes,
            raw: (s.mode == StatsMode::Raw).then_some(RawView {
                blobs: s.blobs,
                tree_blobs: s.tree_blobs,
                data_blobs: s.data_blobs,
                raw_bytes: s.raw_bytes,
                stored_bytes: s.stored_bytes,
                packs: s.packs,
                pack_bytes: s.pack_bytes,
                dedup_ratio: s.dedup_ratio,
                compression_ratio: s.compression_ratio,
            }),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KeyChangeView {
    pub name: String,
    pub added: String,
    pub removed: Vec<String>,
    pub key_files: u64,
    pub daemon_key_file: Option<String>,
}

impl From<&KeyChange> for KeyChangeView {
    fn from(k: &KeyChange) -> Self {
        Self {
            name: k.name.clone(),
            added: k.added.clone(),
            removed: k.removed.clone(),
            key_files: k.key_files,
            daemon_key_file: k.daemon_key_file.clone(),
        }
    }
}
