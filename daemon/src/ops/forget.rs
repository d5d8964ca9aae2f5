//! `forget`: drop snapshots by policy or by id, and prune what no snapshot needs any more.
//! Exclusive claim unless a dry run: it rewrites the index and deletes packs.

use super::{Claim, Operation, Run};
use crate::engine::forget::{forget, ForgetOptions, Policy, PruneReport};
use crate::engine::leftovers::kept_note;
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::format_rfc3339;
use crate::repo::registry::Registry;
use backupd_common::protocol::{
    ForgetDecision, ForgetRequest, ForgetResult, Permission, PruneSummary, Response,
};

pub struct Forget;

impl Operation for Forget {
    type Args = ForgetRequest;
    const TIMEOUT_KEY: &'static str = "forget";
    const PERMISSION: Permission = Permission::SnapshotForget;

    fn claim(args: &ForgetRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, !args.dry_run))
    }

    /// Repository name, a policy and snapshot ids: nothing to hide.
    fn redact(_: &mut ForgetRequest) {}

    /// Every named snapshot resolves to exactly one snapshot file.
    fn validate(r: &ForgetRequest, repos: &Registry) -> Result<(), Error> {
        if r.snapshots.is_empty() {
            return Ok(());
        }
        let (_, repo) = repos.open(r.repo.as_deref())?;
        for spec in &r.snapshots {
            repo.resolve_snapshot_name(spec)
                .map_err(EngineError::from)?;
        }
        Ok(())
    }

    fn run(r: ForgetRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
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
            snapshots: r.snapshots,
            paths: r.paths,
            zstd_level: crate::engine::backup::DEFAULT_ZSTD_LEVEL,
            holds: match &run.env.analytics {
                Some(analytics) => analytics.forget_holds()?,
                None => Vec::new(),
            },
        };
        let out = forget(&repo, &opts, run.progress, run.cancel)?;
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
            prune: out.prune.map(summary),
        }))
    }
}

/// What a prune did, as the wire says it (`forget --prune` and `repo prune`).
pub fn summary(p: PruneReport) -> PruneSummary {
    PruneSummary {
        packs_deleted: p.packs_deleted as u64,
        packs_repacked: p.packs_repacked as u64,
        packs_written: p.packs_written as u64,
        blobs_removed: p.blobs_removed as u64,
        bytes_before: p.bytes_before,
        bytes_after: p.bytes_after,
        unindexed_kept: p.unindexed_kept as u64,
        unindexed_kept_until: p.unindexed_kept_until_ns.map(format_rfc3339),
        notes: (p.unindexed_kept > 0)
            .then(|| kept_note(p.unindexed_kept, p.unindexed_kept_until_ns))
            .into_iter()
            .collect(),
        index_files_before: p.index_files_before,
        index_files_after: p.index_files_after,
    }
}
