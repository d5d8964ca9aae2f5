//! `restore` and `forget`.

use super::operation::stream;
use super::repo::path_of;
use super::Outcome;
use crate::context::Context;
use crate::engine::forget::{forget, ForgetOptions, Policy};
use crate::engine::restore::{restore, RestoreOptions};
use crate::repo::format_rfc3339;
use backupd_common::protocol::{
    ForgetDecision, ForgetRequest, ForgetResult, PruneSummary, Response, RestoreRequest,
    RestoreResult,
};
use std::sync::Arc;

pub fn restore_request(ctx: &Arc<Context>, r: RestoreRequest) -> Outcome {
    let registry = ctx.repos.clone();
    stream(ctx, move |progress, cancel| {
        let (_, repo) = registry.open(r.repo.as_deref())?;
        let opts = RestoreOptions {
            snapshot: r.snapshot,
            subpath: r.subpath.map(path_of),
            target: path_of(r.target),
            includes: r.includes,
            excludes: r.excludes,
            verify: r.verify,
        };
        let out = restore(&repo, &opts, progress, cancel)?;
        Ok(Response::Restore(RestoreResult {
            snapshot: out.snapshot.map(|s| s.to_hex()).unwrap_or_default(),
            files: out.files,
            dirs: out.dirs,
            other: out.other,
            bytes: out.bytes,
            failed: out.failed,
            warnings: out.warnings,
        }))
    })
}

pub fn forget_request(ctx: &Arc<Context>, r: ForgetRequest) -> Outcome {
    let registry = ctx.repos.clone();
    stream(ctx, move |progress, cancel| {
        let (_, repo) = registry.open(r.repo.as_deref())?;
        let opts = ForgetOptions {
            policy: Policy {
                last: r.keep_last,
                hourly: r.keep_hourly,
                daily: r.keep_daily,
                weekly: r.keep_weekly,
                monthly: r.keep_monthly,
                yearly: r.keep_yearly,
                within: r.keep_within,
            },
            prune: r.prune,
            dry_run: r.dry_run,
            zstd_level: crate::engine::backup::DEFAULT_ZSTD_LEVEL,
        };
        let out = forget(&repo, &opts, progress, cancel)?;
        Ok(Response::Forget(ForgetResult {
            dry_run: out.dry_run,
            removed: out.removed as u64,
            decisions: out
                .decisions
                .into_iter()
                .map(|d| ForgetDecision {
                    time: format_rfc3339(d.time_ns),
                    snapshot: d.snapshot,
                    host: d.host,
                    keep: d.keep,
                    reasons: d.reasons,
                })
                .collect(),
            prune: out.prune.map(|p| PruneSummary {
                packs_deleted: p.packs_deleted as u64,
                packs_repacked: p.packs_repacked as u64,
                packs_written: p.packs_written as u64,
                blobs_removed: p.blobs_removed as u64,
                bytes_before: p.bytes_before,
                bytes_after: p.bytes_after,
            }),
        }))
    })
}
