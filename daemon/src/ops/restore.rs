//! `restore`: a snapshot (or part of it) back onto the file system. Shared claim: it only reads
//! the repository.

use super::view::path_of;
use super::{Claim, Operation, Run};
use crate::engine::restore::{restore, RestoreOptions};
use crate::error::Error;
use backupd_common::protocol::{
    Permission, Response, RestoreRequest, RestoreResult, SnapshotFilter,
};

pub struct Restore;

impl Operation for Restore {
    type Args = RestoreRequest;
    const TIMEOUT_KEY: &'static str = "restore";
    const PERMISSION: Permission = Permission::RestoreRun;

    fn claim(args: &RestoreRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, false))
    }

    fn redact(args: &mut RestoreRequest) {
        *args = RestoreRequest {
            repo: args.repo.take(),
            ..RestoreRequest::default()
        }
    }

    fn run(r: RestoreRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let opts = RestoreOptions {
            snapshot: r.snapshot,
            // `latest` is the newest snapshot holding what is restored.
            filter: SnapshotFilter {
                path: r.subpath.clone(),
                ..r.filter
            },
            subpath: r.subpath.map(path_of),
            target: path_of(r.target),
            includes: r.includes,
            excludes: r.excludes,
            verify: r.verify,
            no_owner: r.no_owner,
            strip_setid: r.strip_setid,
        };
        let out = restore(&repo, &opts, run.progress, run.cancel)?;
        Ok(Response::Restore(RestoreResult {
            snapshot: out.snapshot.map(|s| s.to_hex()).unwrap_or_default(),
            files: out.files,
            dirs: out.dirs,
            other: out.other,
            bytes: out.bytes,
            failed: out.failed,
            warnings: out.warnings,
        }))
    }
}
