//! `restore`: a snapshot (or part of it) back onto the file system. Shared claim: it only reads
//! the repository.

use super::view::path_of;
use super::{Claim, Operation, Run};
use crate::engine::restore::{restore, Filter, RestoreOptions};
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::registry::Registry;
use backupd_common::protocol::{Permission, Response, RestoreRequest, RestoreResult};

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

    /// The snapshot resolves, the globs compile, the target's parent exists.
    fn validate(r: &RestoreRequest, repos: &Registry) -> Result<(), Error> {
        Filter::new(&r.includes, &r.excludes)?;
        let target = path_of(r.target.clone());
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(EngineError::Target {
                    path: target.display().to_string(),
                    reason: format!("{} is not an existing directory", parent.display()),
                }
                .into());
            }
        }
        let (_, repo) = repos.open(r.repo.as_deref())?;
        repo.find_snapshot(&r.snapshot).map_err(EngineError::from)?;
        Ok(())
    }

    fn run(r: RestoreRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let opts = RestoreOptions {
            snapshot: r.snapshot,
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
