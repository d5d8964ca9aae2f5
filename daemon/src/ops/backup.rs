//! `backup`: snapshot paths into a repository, incrementally when the source loop names the
//! changes. Shared claim: backups of one repository run side by side.

use super::view::{path_of, stats_view};
use super::{Claim, Operation, Run};
use crate::engine::backup::{backup, dry_run, BackupOptions};
use crate::engine::excludes::Excludes;
use crate::engine::incremental::Change;
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::registry::Registry;
use backupd_common::ids::SnapshotId;
use backupd_common::paths::escape_path;
use backupd_common::protocol::{
    BackupDryRunResult, BackupRequest, BackupResult, Permission, Response,
};

pub struct Backup;

impl Operation for Backup {
    type Args = BackupRequest;
    const TIMEOUT_KEY: &'static str = "backup";
    const PERMISSION: Permission = Permission::BackupOwn;
    const ANY: Option<Permission> = Some(Permission::BackupAny);
    /// Two backups of the same paths with the same options make the same snapshot.
    const COALESCES: bool = true;

    fn claim(args: &BackupRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, false))
    }

    fn redact(args: &mut BackupRequest) {
        *args = BackupRequest {
            repo: args.repo.take(),
            ..BackupRequest::default()
        }
    }

    /// The paths exist, the exclude globs compile and the exclude files read.
    fn validate(r: &BackupRequest, _: &Registry) -> Result<(), Error> {
        // Validation runs with the rights the job will have (see `handlers::queue::submit`).
        if crate::security::fsid::acting().is_some() {
            user_may_ask(r)?;
        }
        for p in &r.paths {
            let path = path_of(p.clone());
            if let Err(e) = path.symlink_metadata() {
                return Err(EngineError::Source {
                    path: path.display().to_string(),
                    reason: format!("cannot back it up: {e}"),
                }
                .into());
            }
        }
        let files: Vec<_> = r.exclude_files.iter().cloned().map(path_of).collect();
        Excludes::new(&r.excludes, &files).map_err(EngineError::from)?;
        Ok(())
    }

    fn run(r: BackupRequest, run: &Run<'_>) -> Result<Response, Error> {
        let identity = run.identity()?;
        if identity.is_some() {
            user_may_ask(&r)?;
        }
        let (_, repo) = run.env.repos.open(r.repo.as_deref())?;
        let parent = match &r.parent {
            Some(hex) => Some(SnapshotId::from_hex(hex).ok_or_else(|| {
                EngineError::InvalidArgument(format!("parent {hex:?} is not a snapshot id"))
            })?),
            None => None,
        };
        let changes = r.changes.map(|list| {
            list.into_iter()
                .map(|c| {
                    let change = if c.tree { Change::Tree } else { Change::Entry };
                    (path_of(c.path), change)
                })
                .collect()
        });
        let tuned = run.env.tuning.get();
        let opts = BackupOptions {
            paths: r.paths.into_iter().map(path_of).collect(),
            excludes: r.excludes,
            exclude_files: r.exclude_files.into_iter().map(path_of).collect(),
            exclude_caches: r.exclude_caches,
            one_file_system: r.one_file_system,
            tags: r.tags,
            host: r.host,
            time_ns: r.time_ns,
            force: r.force,
            always_exclude: vec![run.env.state_dir.clone()],
            parent,
            changes,
            // A retry may adopt the packs its failed attempt left unindexed.
            reuse_unindexed: run.attempt > 1,
            identity,
            zstd_level: tuned.zstd_level,
            pack_bytes: usize::try_from(tuned.pack_bytes).unwrap_or(usize::MAX),
            lane: Some(run.env.tuning.lane()),
        };
        if r.dry_run {
            let out = dry_run(&repo, &opts, run.progress, run.cancel)?;
            let snap = &out.snapshot;
            let s = &snap.stats;
            return Ok(Response::BackupDryRun(BackupDryRunResult {
                parent: snap.parent.map(|p| p.to_hex()),
                files: s.files,
                dirs: s.dirs,
                other: s.other,
                bytes_total: s.bytes_total,
                files_read: s.files_read,
                bytes_read: s.bytes_read,
                bytes_new: s.bytes_added,
                bytes_new_stored: s.bytes_stored,
                blobs_new: s.blobs_added,
                skipped: skipped_view(&snap.skipped),
                duration_ms: s.duration_ms,
            }));
        }
        let out = backup(&repo, &opts, run.progress, run.cancel)?;
        tracing::info!(snapshot = %out.id.short(), files = out.snapshot.stats.files, bytes_added = out.snapshot.stats.bytes_added, partial = out.is_partial(), unchanged = out.unchanged, "backup finished");
        Ok(Response::Backup(BackupResult {
            snapshot: out.id.to_hex(),
            parent: out.snapshot.parent.map(|p| p.to_hex()),
            stats: stats_view(&out.snapshot.stats),
            dirs_scanned: out.dirs_scanned,
            incremental: out.incremental,
            skipped: skipped_view(&out.snapshot.skipped),
            unchanged: out.unchanged,
        }))
    }
}

/// A named parent or a list of changed paths builds the snapshot from the parent's tree
/// without looking at the rest: on behalf of a user, that would copy someone else's snapshot
/// (the daemon's watched sources use them; users' backups walk what they name).
fn user_may_ask(r: &BackupRequest) -> Result<(), Error> {
    let named = match (&r.parent, &r.changes) {
        (Some(_), _) => "--parent",
        (_, Some(_)) => "a list of changed paths",
        (None, None) => return Ok(()),
    };
    Err(EngineError::InvalidArgument(format!(
        "a backup on behalf of a user cannot name {named}: it reads everything it stores with \
         the user's rights (leave it out; unchanged files are still not read again)"
    ))
    .into())
}

fn skipped_view(skipped: &[(Vec<u8>, String)]) -> Vec<(String, String)> {
    skipped
        .iter()
        .map(|(p, why)| (escape_path(p), why.clone()))
        .collect()
}
