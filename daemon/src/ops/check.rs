//! `check`: verify a repository's structure and, optionally, a share of its data. Shared claim:
//! it only reads.

use super::{Claim, Operation, Run};
use crate::engine::check::{check, CheckOptions, CheckReport};
use crate::error::Error;
use backupd_common::protocol::{CheckProblem, CheckRequest, CheckResult, Permission, Response};

pub struct Check;

impl Operation for Check {
    type Args = CheckRequest;
    const TIMEOUT_KEY: &'static str = "check";
    const PERMISSION: Permission = Permission::RepoManage;

    fn claim(args: &CheckRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, false))
    }

    /// Repository name and a percentage: nothing to hide.
    fn redact(_: &mut CheckRequest) {}

    fn run(r: CheckRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let opts = CheckOptions {
            read_data_percent: r.read_data_percent,
        };
        let report = check(&repo, &opts, run.progress, run.cancel)?;
        Ok(Response::Check(result(report)))
    }
}

fn result(r: CheckReport) -> CheckResult {
    CheckResult {
        snapshots: r.snapshots as u64,
        trees: r.trees as u64,
        blobs: r.blobs as u64,
        packs: r.packs as u64,
        packs_read: r.packs_read as u64,
        damaged_packs: r.damaged_packs,
        problems: r
            .problems
            .into_iter()
            .map(|p| CheckProblem {
                message: p.message,
                pack: p.pack,
                blob: p.blob,
                snapshots: p.snapshots,
                paths: p.paths,
            })
            .collect(),
        notes: r.notes,
    }
}
