//! `backup` and `snapshots`.

use super::operation::{blocking, stream};
use super::repo::path_of;
use super::Outcome;
use crate::context::Context;
use crate::engine::backup::{backup, BackupOptions};
use crate::repo::format_rfc3339;
use crate::repo::snapshot::{Snapshot, SnapshotStats};
use backupd_common::protocol::{
    BackupRequest, BackupResult, Response, SnapshotInfo, SnapshotStatsView, SnapshotsRequest,
};
use std::sync::Arc;

pub fn stats_view(s: &SnapshotStats) -> SnapshotStatsView {
    SnapshotStatsView {
        files: s.files,
        dirs: s.dirs,
        other: s.other,
        files_read: s.files_read,
        bytes_total: s.bytes_total,
        bytes_read: s.bytes_read,
        bytes_added: s.bytes_added,
        bytes_stored: s.bytes_stored,
        skipped: s.skipped,
        changed_during_read: s.changed_during_read,
        duration_ms: s.duration_ms,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn backup_request(ctx: &Arc<Context>, r: BackupRequest) -> Outcome {
    let registry = ctx.repos.clone();
    let state_dir = ctx.state_dir.clone();
    stream(ctx, move |progress, cancel| {
        let (_, repo) = registry.open(r.repo.as_deref())?;
        let opts = BackupOptions {
            paths: r.paths.into_iter().map(path_of).collect(),
            excludes: r.excludes,
            exclude_files: r.exclude_files.into_iter().map(path_of).collect(),
            exclude_caches: r.exclude_caches,
            one_file_system: r.one_file_system,
            tags: r.tags,
            host: r.host,
            time_ns: r.time_ns,
            force: r.force,
            always_exclude: vec![state_dir],
            ..Default::default()
        };
        let out = backup(&repo, &opts, progress, cancel)?;
        tracing::info!(snapshot = %out.id.short(), files = out.snapshot.stats.files, bytes_added = out.snapshot.stats.bytes_added, partial = out.is_partial(), "backup finished");
        Ok(Response::Backup(BackupResult {
            snapshot: out.id.to_hex(),
            parent: out.snapshot.parent.map(|p| p.to_hex()),
            stats: stats_view(&out.snapshot.stats),
            skipped: out
                .snapshot
                .skipped
                .iter()
                .map(|(p, why)| (lossy(p), why.clone()))
                .collect(),
        }))
    })
}

fn info(id: String, s: &Snapshot) -> SnapshotInfo {
    SnapshotInfo {
        id,
        time: format_rfc3339(s.time_ns),
        time_ns: s.time_ns,
        host: s.host.clone(),
        username: s.username.clone(),
        paths: s.paths.iter().map(|p| lossy(p)).collect(),
        tags: s.tags.clone(),
        parent: s.parent.map(|p| p.to_hex()),
        stats: stats_view(&s.stats),
        skipped: s.skipped.len() as u64,
    }
}

pub async fn snapshots(ctx: &Arc<Context>, r: SnapshotsRequest) -> Outcome {
    let registry = ctx.repos.clone();
    Outcome::result(
        blocking(move || {
            let (_, repo) = registry.open(r.repo.as_deref())?;
            let list = repo
                .snapshots()
                .map_err(crate::engine::EngineError::from)?
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
                .map(|(id, s)| info(id.to_hex(), &s))
                .collect();
            Ok(Response::Snapshots(list))
        })
        .await,
    )
}
