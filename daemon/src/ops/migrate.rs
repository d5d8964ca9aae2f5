//! `repo migrate --to V`: converts a repository in place to format V (`engine::reencrypt::
//! migrate`), with re-encryption's ordering and crash guarantees. Exclusive claim; resumable.

use super::{Claim, Operation, Run};
use crate::engine::reencrypt::migrate;
use crate::error::Error;
use backupd_common::protocol::{MigrateRequest, Permission, Response};

pub struct Migrate;

impl Operation for Migrate {
    type Args = MigrateRequest;
    const TIMEOUT_KEY: &'static str = "migrate";
    const PERMISSION: Permission = Permission::RepoManage;

    fn claim(args: &MigrateRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, true))
    }

    fn redact(_: &mut MigrateRequest) {}

    fn run(r: MigrateRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (entry, repo) = run.env.repos.open(r.repo.as_deref())?;
        let result = migrate(&repo, r.to, run.progress, run.cancel);
        // The repository's config changed (or may have, before a failure): the next job opens
        // it afresh, with the seal layout the config names now.
        run.env.repos.forget(&entry.name);
        let report = result?;
        tracing::info!(repo = %entry.name, to = r.to, packs = report.packs_rewritten, snapshots = report.snapshots_rewritten, "repository migrated");
        Ok(Response::Migrate(Box::new(super::reencrypt::result(
            &report,
            Vec::new(),
        ))))
    }
}
