//! `rebuild-index`: a new index from the packs alone. Exclusive claim: it replaces the index
//! every other job reads.

use super::{Claim, Operation, Run};
use crate::engine::rebuild::rebuild_index;
use crate::error::Error;
use backupd_common::protocol::{Permission, RebuildIndexRequest, RebuildResult, Response};

pub struct RebuildIndex;

impl Operation for RebuildIndex {
    type Args = RebuildIndexRequest;
    const TIMEOUT_KEY: &'static str = "rebuild-index";
    const PERMISSION: Permission = Permission::RepoManage;

    fn claim(args: &RebuildIndexRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, true))
    }

    fn redact(_: &mut RebuildIndexRequest) {}

    fn run(r: RebuildIndexRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let out = rebuild_index(&repo, run.progress, run.cancel)?;
        tracing::info!(
            packs = out.packs,
            blobs = out.blobs,
            unreadable = out.unreadable.len(),
            "index rebuilt"
        );
        Ok(Response::RebuildIndex(RebuildResult {
            packs: out.packs,
            blobs: out.blobs,
            unreadable: out.unreadable,
            old_index_files: out.old_index_files,
        }))
    }
}
