//! `restore`: a snapshot (or part of it) back onto the file system. Shared claim: it only reads
//! the repository. A restore acting for a user writes with the user's rights, restores only the
//! user's own snapshots and needs a target. Without a target (the daemon's own restores) it
//! restores into `<state_dir>/restore/<snapshot short id>`:
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
    const ANY: Option<Permission> = Some(Permission::RestoreAny);

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
        // Validation runs with the rights the job will have (see `handlers::queue::submit`).
        if crate::security::fsid::acting().is_some() && r.target.is_none() {
            return Err(target_required());
        }
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
        match crate::security::fsid::acting() {
            Some(user) => {
                let (_, repo) = repos.open(r.repo.as_deref())?;
                own_snapshot(&repo, &r.snapshot, &latest_filter(r), user.uid)?;
            }
            None => {
                super::repos::resolve(repos, r.repo.as_deref(), &r.snapshot, &latest_filter(r))?;
            }
        }
        Ok(())
    }

    fn run(r: RestoreRequest, run: &Run<'_>) -> Result<Response, Error> {
        let identity = run.identity()?;
        if identity.is_some() && r.target.is_none() {
            return Err(target_required());
        }
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let filter = latest_filter(&r);
        let (snapshot, target) = match (r.target, &identity) {
            (Some(target), None) => (r.snapshot, path_of(target)),
            (Some(target), Some(user)) => {
                // Resolved once, here, and restored by full id: the snapshot checked to be the
                // user's is the one restored.
                let id = own_snapshot(&repo, &r.snapshot, &filter, user.uid)?;
                (id.to_hex(), path_of(target))
            }
            (None, _) => {
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
            identity,
            only: None,
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

/// The snapshot `spec` names, when it is one `uid` made. Another's answers exactly as a
/// snapshot that does not exist would: a user learns nothing of what others backed up.
fn own_snapshot(
    repo: &crate::repo::Repository,
    spec: &str,
    filter: &SnapshotFilter,
    uid: u32,
) -> Result<backupd_common::ids::SnapshotId, Error> {
    let not_found = || {
        EngineError::from(crate::repo::RepoError::SnapshotNotFound {
            prefix: spec.to_owned(),
        })
    };
    use crate::repo::RepoError;
    // Looked up among the user's own snapshots, so these errors speak only of them; any other
    // (an unreadable file, say) could be someone else's and reads as not found.
    match repo.find_snapshot_in(spec, filter, crate::repo::Scope::OwnedBy(uid)) {
        Ok((id, _)) => Ok(id),
        Err(e @ (RepoError::NoMatchingSnapshot { .. } | RepoError::AmbiguousSnapshot { .. })) => {
            Err(EngineError::from(e).into())
        }
        Err(_) => Err(not_found().into()),
    }
}

/// A restore on behalf of a user has no default target: the daemon's restore area
/// (`<state_dir>/restore`) is root's, and no place is the user's by default.
fn target_required() -> Error {
    EngineError::InvalidArgument(
        "a restore on behalf of a user needs --target DIR: a directory you can write (the \
         default, the daemon's restore area, is root's)"
            .into(),
    )
    .into()
}

/// `latest` is the newest snapshot holding what is restored (the sub-path, or the whole
/// snapshot) among those the request's filter accepts.
fn latest_filter(r: &RestoreRequest) -> SnapshotFilter {
    SnapshotFilter {
        path: r.subpath.clone(),
        ..r.filter.clone()
    }
}
