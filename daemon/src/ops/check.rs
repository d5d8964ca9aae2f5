//! `check`: verify a repository's structure and, optionally, a share or a part of its data. Shared claim:
//! it only reads.

use super::{Claim, Operation, Run};
use crate::engine::check::{check, CheckOptions, CheckReport};
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::registry::Registry;
use backupd_common::protocol::{
    CheckProblem, CheckRequest, CheckResult, Permission, Response, Subset,
};

pub struct Check;

impl Operation for Check {
    type Args = CheckRequest;
    const TIMEOUT_KEY: &'static str = "check";
    const PERMISSION: Permission = Permission::RepoManage;

    fn claim(args: &CheckRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, false))
    }

    /// Repository name, a percentage or a part: nothing to hide.
    fn redact(_: &mut CheckRequest) {}

    fn validate(r: &CheckRequest, _: &Registry) -> Result<(), Error> {
        options(r).map(|_| ())
    }

    fn run(r: CheckRequest, run: &Run<'_>) -> Result<Response, Error> {
        let opts = options(&r)?;
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let report = check(&repo, &opts, run.progress, run.cancel)?;
        Ok(Response::Check(result(report, opts.read_data_subset)))
    }
}

/// The engine's options; a percentage and a part together are refused (which packs to read
/// would be ambiguous), as is a part that is not one.
fn options(r: &CheckRequest) -> Result<CheckOptions, Error> {
    if let Some(part) = r.read_data_subset {
        if r.read_data_percent > 0 {
            return Err(EngineError::InvalidArgument(format!(
                "read-data subset {part} and read-data percentage {}% exclude each other; give                  one (--read-data-subset N/M or --read-data-subset PCT, or --read-data for all)",
                r.read_data_percent
            ))
            .into());
        }
        Subset::new(part.index, part.count).map_err(EngineError::InvalidArgument)?;
    }
    Ok(CheckOptions {
        read_data_percent: r.read_data_percent,
        read_data_subset: r.read_data_subset,
    })
}

fn result(r: CheckReport, subset: Option<Subset>) -> CheckResult {
    CheckResult {
        subset: subset.map(|s| s.to_string()),
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
