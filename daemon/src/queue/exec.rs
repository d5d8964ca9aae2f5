//! What each job kind does: the engine call with the job's arguments, on a blocking thread.
//! Cancellation reaches the engine through `cancel`; it stops at its next safe point.

use crate::context::Context;
use crate::engine::backup::{backup, BackupOptions};
use crate::engine::check::{check, CheckOptions, CheckReport};
use crate::engine::forget::{forget, ForgetOptions, Policy};
use crate::engine::incremental::Change;
use crate::engine::progress::Progress;
use crate::engine::rebuild::rebuild_index;
use crate::engine::restore::{restore, RestoreOptions};
use crate::engine::EngineError;
use crate::error::Error;
use crate::repo::format_rfc3339;
use crate::repo::snapshot::SnapshotStats;
use backupd_common::ids::SnapshotId;
use backupd_common::protocol::{
    BackupRequest, BackupResult, CheckProblem, CheckRequest, CheckResult, ForgetDecision,
    ForgetRequest, ForgetResult, JobKind, NoopRequest, PruneSummary, RebuildResult, Response,
    RestoreRequest, RestoreResult, SnapshotStatsView,
};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs attempt number `attempt` of a job.
pub fn run(
    ctx: &Context,
    kind: JobKind,
    attempt: u32,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Response, Error> {
    match kind {
        JobKind::Backup(r) => run_backup(ctx, r, attempt > 1, progress, cancel),
        JobKind::Restore(r) => run_restore(ctx, r, progress, cancel),
        JobKind::Check(r) => run_check(ctx, r, progress, cancel),
        JobKind::Forget(r) => run_forget(ctx, r, progress, cancel),
        JobKind::RebuildIndex(r) => {
            let (_, repo) = ctx.repos.open(r.repo.as_deref())?;
            let out = rebuild_index(&repo, progress, cancel)?;
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
        JobKind::Noop(r) => run_noop(&r, attempt, cancel),
    }
}

fn run_noop(r: &NoopRequest, attempt: u32, cancel: &CancellationToken) -> Result<Response, Error> {
    let started = Instant::now();
    while started.elapsed() < r.duration {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled.into());
        }
        let left = r.duration.saturating_sub(started.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
    if attempt <= r.fail_attempts {
        return Err(Error::PlannedFailure {
            attempt,
            retryable: !r.permanent,
        });
    }
    Ok(Response::Noop {
        slept_ms: started.elapsed().as_millis() as u64,
    })
}

pub fn stats_view(s: &SnapshotStats) -> SnapshotStatsView {
    SnapshotStatsView {
        files: s.files,
        dirs: s.dirs,
        other: s.other,
        files_read: s.files_read,
        bytes_total: s.bytes_total,
        bytes_read: s.bytes_read,
        bytes_added: s.bytes_added,
        bytes_stored: s.bytes_stored,
        skipped: s.skipped,
        changed_during_read: s.changed_during_read,
        duration_ms: s.duration_ms,
    }
}

fn run_backup(
    ctx: &Context,
    r: BackupRequest,
    retry: bool,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Response, Error> {
    let (_, repo) = ctx.repos.open(r.repo.as_deref())?;
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
        always_exclude: vec![ctx.state_dir.clone()],
        parent,
        changes,
        reuse_unindexed: retry,
        ..Default::default()
    };
    let out = backup(&repo, &opts, progress, cancel)?;
    tracing::info!(snapshot = %out.id.short(), files = out.snapshot.stats.files, bytes_added = out.snapshot.stats.bytes_added, partial = out.is_partial(), "backup finished");
    Ok(Response::Backup(BackupResult {
        snapshot: out.id.to_hex(),
        parent: out.snapshot.parent.map(|p| p.to_hex()),
        stats: stats_view(&out.snapshot.stats),
        dirs_scanned: out.dirs_scanned,
        incremental: out.incremental,
        skipped: out
            .snapshot
            .skipped
            .iter()
            .map(|(p, why)| (lossy(p), why.clone()))
            .collect(),
    }))
}

fn run_restore(
    ctx: &Context,
    r: RestoreRequest,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Response, Error> {
    let (_, repo) = ctx.repos.open(r.repo.as_deref())?;
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
    let out = restore(&repo, &opts, progress, cancel)?;
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

fn run_check(
    ctx: &Context,
    r: CheckRequest,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Response, Error> {
    let (_, repo) = ctx.repos.open(r.repo.as_deref())?;
    let opts = CheckOptions {
        read_data_percent: r.read_data_percent,
    };
    let report = check(&repo, &opts, progress, cancel)?;
    Ok(Response::Check(check_result(report)))
}

fn check_result(r: CheckReport) -> CheckResult {
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

fn run_forget(
    ctx: &Context,
    r: ForgetRequest,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Response, Error> {
    let (_, repo) = ctx.repos.open(r.repo.as_deref())?;
    let opts = ForgetOptions {
        policy: Policy {
            last: r.keep_last,
            hourly: r.keep_hourly,
            daily: r.keep_daily,
            weekly: r.keep_weekly,
            monthly: r.keep_monthly,
            yearly: r.keep_yearly,
            within: r.keep_within,
        },
        prune: r.prune,
        dry_run: r.dry_run,
        snapshots: r.snapshots,
        zstd_level: crate::engine::backup::DEFAULT_ZSTD_LEVEL,
    };
    let out = forget(&repo, &opts, progress, cancel)?;
    Ok(Response::Forget(ForgetResult {
        dry_run: out.dry_run,
        removed: out.removed as u64,
        decisions: out
            .decisions
            .into_iter()
            .map(|d| ForgetDecision {
                time: format_rfc3339(d.time_ns),
                snapshot: d.snapshot,
                host: d.host,
                keep: d.keep,
                reasons: d.reasons,
            })
            .collect(),
        prune: out.prune.map(|p| PruneSummary {
            packs_deleted: p.packs_deleted as u64,
            packs_repacked: p.packs_repacked as u64,
            packs_written: p.packs_written as u64,
            blobs_removed: p.blobs_removed as u64,
            bytes_before: p.bytes_before,
            bytes_after: p.bytes_after,
        }),
    }))
}
