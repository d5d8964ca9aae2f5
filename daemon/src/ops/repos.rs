//! The repository service handlers read through: what a repository is (for `repo` listings)
//! and which snapshots it holds. Blocking; handlers call it off the async workers. Handlers
//! never open a backend or call the engine themselves.

use super::view::stats_view;
use crate::engine::stats::{self, ratio};
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::format_rfc3339;
use crate::repo::registry::{Registry, RepoEntry};
use crate::repo::snapshot::SnapshotHeader;
use crate::repo::snapshots::{matches, Scope};
use backupd_common::paths::escape_path;
use backupd_common::protocol::{
    JobInfo, KeyChange, RepoDetails, RepoInfo, SnapshotFilter, SnapshotInfo, SnapshotsRequest,
    SourceInfo, StatsMode, StatsRequest, StatsResult,
};
use tokio_util::sync::CancellationToken;

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
        // A repository that does not open now is reported in the format this build writes.
        format_version: opened
            .as_ref()
            .map_or(crate::repo::FORMAT_VERSION, |(_, r)| r.config().version),
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
        owner_uid: s.owner_uid,
    }
}

/// The snapshots of a repository that the request's filter accepts, oldest first.
pub fn snapshots(
    registry: &Registry,
    r: &SnapshotsRequest,
    scope: Scope,
) -> Result<Vec<SnapshotInfo>, Error> {
    let (_, repo) = registry.open(r.repo.as_deref())?;
    let list = repo
        .snapshot_headers()
        .map_err(EngineError::from)?
        .into_iter()
        .filter(|(_, s)| scope.admits(s.owner_uid) && matches(&r.filter, s))
        .map(|(id, s)| snapshot_info(id.to_hex(), &s))
        .collect();
    Ok(list)
}

/// The full id a snapshot spec names in a repository (`latest` narrowed by `filter`, whose
/// path `latest` must hold): for checking a spec before work is queued on it.
pub fn resolve(
    registry: &Registry,
    repo: Option<&str>,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<String, Error> {
    let (_, repo) = registry.open(repo)?;
    let (id, _) = repo
        .find_snapshot(spec, filter)
        .map_err(EngineError::from)?;
    Ok(id.to_hex())
}

/// `repo info`: the repository's format, counts and sizes.
pub fn details(registry: &Registry, name: Option<&str>) -> Result<RepoDetails, Error> {
    let (entry, repo) = registry.open(name)?;
    let config = repo.config().clone();
    let headers = repo.snapshot_headers().map_err(EngineError::from)?;
    repo.refresh_index().map_err(EngineError::from)?;
    let blobs = stats::blob_totals(&repo, None);
    let (packs, pack_bytes) = stats::pack_totals(&repo)?;
    let count = |kind| -> Result<u64, Error> {
        Ok(repo.backend().list(kind).map_err(EngineError::from)?.len() as u64)
    };
    let snapshot_bytes: u64 = headers.iter().map(|(_, h)| h.stats.bytes_total).sum();
    Ok(RepoDetails {
        repo: info(registry, &entry),
        created: config.created,
        chunk_min: config.chunk_min,
        chunk_avg: config.chunk_avg,
        chunk_max: config.chunk_max,
        compression: format!(
            "zstd level {} per blob (stored uncompressed when that is smaller)",
            crate::engine::backup::DEFAULT_ZSTD_LEVEL
        ),
        snapshots: headers.len() as u64,
        packs,
        blobs: blobs.blobs,
        index_files: count(crate::repo::backend::FileKind::Index)?,
        key_files: count(crate::repo::backend::FileKind::Key)?,
        stored_bytes: pack_bytes,
        original_bytes: blobs.raw_bytes,
        dedup_ratio: ratio(snapshot_bytes, blobs.data_raw_bytes),
        compression_ratio: ratio(blobs.raw_bytes, blobs.stored_bytes),
    })
}

/// `stats`: restore size or raw sizes of the snapshots asked for (all that `filter` accepts
/// when none are named).
pub fn stats(
    registry: &Registry,
    r: &StatsRequest,
    scope: Scope,
    cancel: &CancellationToken,
) -> Result<StatsResult, Error> {
    let (_, repo) = registry.open(r.repo.as_deref())?;
    let chosen: Vec<(String, crate::repo::snapshot::SnapshotHeader)> = if r.snapshots.is_empty() {
        repo.snapshot_headers()
            .map_err(EngineError::from)?
            .into_iter()
            .filter(|(_, h)| scope.admits(h.owner_uid) && matches(&r.filter, h))
            .map(|(id, h)| (id.to_hex(), h))
            .collect()
    } else {
        let mut out = Vec::new();
        for spec in &r.snapshots {
            let (id, s) = repo
                .find_snapshot_in(spec, &r.filter, scope)
                .map_err(EngineError::from)?;
            out.push((id.to_hex(), SnapshotHeader::of(&s, None)));
        }
        out
    };
    let roots: Vec<_> = chosen.iter().map(|(_, h)| h.tree).collect();
    let walk = stats::walk(&repo, &roots, cancel)?;
    let mut result = StatsResult {
        mode: r.mode,
        snapshots: chosen.into_iter().map(|(id, _)| id).collect(),
        files: walk.size.files,
        dirs: walk.size.dirs,
        other: walk.size.other,
        bytes: walk.size.bytes,
        ..StatsResult::default()
    };
    if r.mode == StatsMode::Raw {
        // The packs on storage are everyone's: only a whole-repository view counts them.
        let whole =
            r.snapshots.is_empty() && r.filter == SnapshotFilter::default() && scope == Scope::All;
        let blobs = stats::blob_totals(&repo, (!whole).then_some(&walk.blobs));
        if whole {
            let (packs, pack_bytes) = stats::pack_totals(&repo)?;
            result.packs = Some(packs);
            result.pack_bytes = Some(pack_bytes);
        }
        result.blobs = blobs.blobs;
        result.tree_blobs = blobs.tree_blobs;
        result.data_blobs = blobs.data_blobs;
        result.raw_bytes = blobs.raw_bytes;
        result.stored_bytes = blobs.stored_bytes;
        result.dedup_ratio = ratio(walk.size.bytes, blobs.data_raw_bytes);
        result.compression_ratio = ratio(blobs.raw_bytes, blobs.stored_bytes);
    }
    Ok(result)
}

/// What still uses repository `name` (`is_default`: jobs and sources naming no repository use
/// it too): unfinished jobs and watched sources, named for the refusal.
pub fn users(
    name: &str,
    is_default: bool,
    jobs: &[JobInfo],
    sources: &[SourceInfo],
) -> Vec<String> {
    let mut out: Vec<String> = jobs
        .iter()
        .filter(|j| match j.kind.repo() {
            Some(Some(r)) => r == name,
            Some(None) => is_default,
            None => false,
        })
        .map(|j| format!("{} job {} ({})", j.kind.name(), j.id, j.state.as_str()))
        .collect();
    out.extend(
        sources
            .iter()
            .filter(|s| match &s.spec.repo {
                Some(r) => r == name,
                None => is_default,
            })
            .map(|s| format!("source {}", s.spec.name)),
    );
    out
}

/// A key change as the protocol reports it.
pub fn key_change(o: crate::repo::registry::keys::KeyChangeOutcome, passwd: bool) -> KeyChange {
    KeyChange {
        name: o.entry.name,
        added: o.added,
        removed: o.removed,
        key_files: o.key_files as u64,
        daemon_key_file: passwd.then(|| o.entry.key_file.display().to_string()),
    }
}
