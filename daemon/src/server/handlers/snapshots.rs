//! `snapshots`: listing what a repository holds.

use super::{blocking, Outcome};
use crate::context::Context;
use crate::queue::exec::{lossy, path_of, stats_view};
use crate::repo::format_rfc3339;
use crate::repo::snapshot::SnapshotHeader;
use backupd_common::protocol::{Response, SnapshotInfo, SnapshotsRequest};
use std::sync::Arc;

fn info(id: String, s: &SnapshotHeader) -> SnapshotInfo {
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
        skipped: s.stats.skipped,
        source: s.source.clone(),
    }
}

pub async fn snapshots(ctx: &Arc<Context>, r: SnapshotsRequest) -> Outcome {
    let registry = ctx.repos.clone();
    Outcome::result(
        blocking(move || {
            let (_, repo) = registry.open(r.repo.as_deref())?;
            let list = repo
                .snapshot_headers()
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
