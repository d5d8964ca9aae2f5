//! The repository service handlers read through: what a repository is (for `repo` listings)
//! and which snapshots it holds. Blocking; handlers call it off the async workers. Handlers
//! never open a backend or call the engine themselves.

use super::view::{path_of, stats_view};
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::format_rfc3339;
use crate::repo::registry::{Registry, RepoEntry};
use crate::repo::snapshot::SnapshotHeader;
use backupd_common::paths::escape_path;
use backupd_common::protocol::{RepoInfo, SnapshotInfo, SnapshotsRequest};

/// A registered repository as `repo list` shows it; id and snapshot count when it opens.
pub fn info(registry: &Registry, entry: &RepoEntry) -> RepoInfo {
    let opened = registry.open(Some(&entry.name)).ok();
    RepoInfo {
        name: entry.name.clone(),
        path: entry.location.to_string(),
        id: opened
            .as_ref()
            .map(|(_, r)| r.config().id.clone())
            .unwrap_or_default(),
        format_version: crate::repo::FORMAT_VERSION,
        snapshots: opened.and_then(|(_, r)| r.snapshot_count().ok().map(|n| n as u64)),
        key_file: entry.key_file.display().to_string(),
        is_default: entry.is_default,
    }
}

fn snapshot_info(id: String, s: &SnapshotHeader) -> SnapshotInfo {
    SnapshotInfo {
        id,
        time: format_rfc3339(s.time_ns),
        time_ns: s.time_ns,
        host: s.host.clone(),
        username: s.username.clone(),
        paths: s.paths.iter().map(|p| escape_path(p)).collect(),
        tags: s.tags.clone(),
        parent: s.parent.map(|p| p.to_hex()),
        stats: stats_view(&s.stats),
        skipped: s.stats.skipped,
        source: s.source.clone(),
    }
}

/// The snapshots of a repository matching the request's tag and path filters.
pub fn snapshots(registry: &Registry, r: &SnapshotsRequest) -> Result<Vec<SnapshotInfo>, Error> {
    let (_, repo) = registry.open(r.repo.as_deref())?;
    let list = repo
        .snapshot_headers()
        .map_err(EngineError::from)?
        .into_iter()
        .filter(|(_, s)| r.tag.as_ref().is_none_or(|t| s.tags.contains(t)))
        .filter(|(_, s)| {
            r.path.as_ref().is_none_or(|p| {
                let want = path_of(p.clone());
                s.paths.iter().any(|sp| {
                    let sp = path_of(sp.clone());
                    want.starts_with(&sp) || sp.starts_with(&want)
                })
            })
        })
        .map(|(id, s)| snapshot_info(id.to_hex(), &s))
        .collect();
    Ok(list)
}
