//! Repositories, keys and snapshots.

use super::result::StatsView;
use super::time;
use backupd_common::protocol::{KeyExport, RepoInfo, SnapshotInfo};
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
        }
    }
}
