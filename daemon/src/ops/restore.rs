//! `restore`: a snapshot (or part of it) back onto the file system. Shared claim: it only reads
//! the repository. Without a target it restores into `<state_dir>/restore/<snapshot short id>`:
//! the state dir is the one place the daemon can always write (under the systemd unit,
//! `ProtectSystem=strict` makes nearly everything else read-only).

use super::view::path_of;
use super::{Claim, Operation, Run};
use crate::engine::restore::{restore, Filter, RestoreOptions};
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::registry::Registry;
use backupd_common::paths::escape_path;
use backupd_common::protocol::{
    Permission, Response, RestoreRequest, RestoreResult, SnapshotFilter,
};
use std::os::unix::ffi::OsStrExt;

pub struct Restore;

impl Operation for Restore {
    type Args = RestoreRequest;
    const TIMEOUT_KEY: &'static str = "restore";
    const PERMISSION: Permission = Permission::RestoreOwn;

    fn claim(args: &RestoreRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, false))
    }

    fn redact(args: &mut RestoreRequest) {
        *args = RestoreRequest {
            repo: args.repo.take(),
            ..RestoreRequest::default()
        }
    }

    /// The snapshot resolves, the globs compile, the target can be a directory.
    fn validate(r: &RestoreRequest, repos: &Registry) -> Result<(), Error> {
        Filter::new(&r.includes, &r.excludes)?;
        // Restore creates missing directories of the target, so only a non-directory where one
        // must be is wrong at submission. Without a target the daemon picks its own directory.
        if let Some(target) = r.target.clone().map(path_of) {
            let existing = target.ancestors().find(|a| a.symlink_metadata().is_ok());
            if let Some(found) = existing.filter(|a| !a.is_dir()) {
                return Err(EngineError::Target {
                    path: target.display().to_string(),
                    reason: format!("{} exists and is not a directory", found.display()),
                }
                .into());
            }
        }
        super::repos::resolve(repos, r.repo.as_deref(), &r.snapshot, &latest_filter(r))?;
        Ok(())
    }

    fn run(r: RestoreRequest, run: &Run<'_>) -> Result<Response, Error> {
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let filter = latest_filter(&r);
        let (snapshot, target) = match r.target {
            Some(target) => (r.snapshot, path_of(target)),
            None => {
                // Resolved once, here: the directory is named after the snapshot it holds even
                // if `latest` moves on before the restore starts.
                let (id, _) = repo
                    .find_snapshot(&r.snapshot, &filter)
                    .map_err(EngineError::from)?;
                let target = run.env.state_dir.join("restore").join(id.short());
                (id.to_hex(), target)
            }
        };
        let opts = RestoreOptions {
            snapshot,
            filter,
            subpath: r.subpath.map(path_of),
            target: target.clone(),
            includes: r.includes,
            excludes: r.excludes,
            verify: r.verify,
            no_owner: r.no_owner,
            strip_setid: r.strip_setid,
            overwrite: r.overwrite,
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
            target: escape_path(target.as_os_str().as_bytes()),
            replaced: out.replaced,
            unchanged: out.unchanged,
            kept: out.kept,
        }))
    }
}

/// `latest` is the newest snapshot holding what is restored (the sub-path, or the whole
/// snapshot) among those the request's filter accepts.
fn latest_filter(r: &RestoreRequest) -> SnapshotFilter {
    SnapshotFilter {
        path: r.subpath.clone(),
        ..r.filter.clone()
    }
}
