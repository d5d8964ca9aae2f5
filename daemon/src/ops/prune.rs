//! `prune`: delete the data no snapshot needs and compact the index, forgetting no snapshot
//! (`repo prune`, and the scheduler's weekly run); with `compact_only`, merge the index files
//! and nothing else (`repo compact`). Exclusive claim: both rewrite the index every other job
//! reads. One kind for both, because compaction is prune's last step: the same lock, claim,
//! permission and timeout.

use super::{Claim, Operation, Run};
use crate::engine::compact::{compact, CompactOptions};
use crate::engine::forget::prune;
use crate::error::Error;
use backupd_common::protocol::{CompactSummary, Permission, PruneRequest, Response};

pub struct Prune;

impl Operation for Prune {
    type Args = PruneRequest;
    const TIMEOUT_KEY: &'static str = "prune";
    /// It deletes data, as `forget --prune` does.
    const PERMISSION: Permission = Permission::SnapshotForget;
    /// A weekly prune queued behind a running one has nothing left to do.
    const COALESCES: bool = true;

    fn claim(args: &PruneRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, true))
    }

    fn redact(_: &mut PruneRequest) {}

    fn run(r: PruneRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        if r.compact_only {
            let out = compact(&repo, &CompactOptions::default(), run.progress, run.cancel)?;
            return Ok(Response::Compact(CompactSummary {
                index_files_before: out.index_files_before,
                index_files_after: out.index_files_after,
                packs: out.packs,
                blobs: out.blobs,
                skipped: out.skipped,
            }));
        }
        let p = prune(
            &repo,
            crate::engine::backup::DEFAULT_ZSTD_LEVEL,
            run.progress,
            run.cancel,
        )?;
        Ok(Response::Prune(super::forget::summary(p)))
    }
}
