//! What a finished job produced, as text or `--json` (`json::result`: the result plus its `job`
//! id), and the exit code it means: 1 when the job finished but left something out or a check
//! found problems.

use crate::exit::ExitCode;
use crate::json::result::{FinishedView, ResultView};
use crate::output::{count, count_as, Output};
use crate::progress::bytes;
use backupd_common::protocol::{
    BackupDryRunResult, BackupResult, CheckResult, CompactSummary, ForgetResult, JobId,
    PruneSummary, ReencryptResult, Response, RestoreResult,
};

/// The first 8 characters of an id, as tables show it (the whole id if shorter).
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

pub fn print(job: JobId, result: &Response, out: &Output) -> ExitCode {
    let Some(view) = ResultView::new(result) else {
        out.value(&serde_json::json!({ "job": job }), || {
            format!("job {job} done: {result:?}")
        });
        return ExitCode::Ok;
    };
    let finished = FinishedView { job, result: &view };
    match result {
        Response::Backup(r) => {
            out.value(&finished, || backup_text(job, r));
            if !r.skipped.is_empty() {
                eprintln!(
                    "backupctl: backup is partial: {} could not be read",
                    count(r.skipped.len() as u64, "path")
                );
                return ExitCode::Warning;
            }
        }
        Response::BackupDryRun(r) => out.value(&finished, || dry_run_text(r)),
        Response::Restore(r) => {
            out.value(&finished, || restore_text(r));
            if !r.failed.is_empty() {
                eprintln!(
                    "backupctl: restore is partial: {} could not be restored",
                    count(r.failed.len() as u64, "file")
                );
                return ExitCode::Warning;
            }
        }
        Response::Forget(r) => out.value(&finished, || forget_text(r)),
        Response::Check(r) => {
            out.value(&finished, || check_text(r));
            if !r.problems.is_empty() {
                eprintln!(
                    "backupctl: check found {} in {}",
                    count(r.problems.len() as u64, "problem"),
                    count(r.damaged_packs.len() as u64, "damaged pack")
                );
                return ExitCode::Warning;
            }
        }
        Response::RebuildIndex(r) => {
            out.value(&finished, || {
                let mut text = format!(
                    "index rebuilt: {}, {}; {} replaced",
                    count(r.packs, "pack"),
                    count(r.blobs, "blob"),
                    count(r.old_index_files, "old index file")
                );
                for (pack, why) in &r.unreadable {
                    text.push_str(&format!("\nleft out pack {pack}: {why}"));
                }
                text
            });
            if !r.unreadable.is_empty() {
                return ExitCode::Warning;
            }
        }
        Response::Reencrypt(r) | Response::Migrate(r) => {
            out.value(&finished, || reencrypt_summary(r))
        }
        Response::Prune(p) => out.value(&finished, || prune_text(p)),
        Response::Compact(c) => out.value(&finished, || compact_text(c)),
        Response::Replicate(r) => out.value(&finished, || replicate_text(r)),
        Response::RecoveryPlan(p) => out.value(&finished, || super::recovery::plan_text(p)),
        Response::Drill(d) => {
            out.value(&finished, || super::recovery_drill::text(job, d));
            if !d.ok {
                eprintln!(
                    "backupctl: recovery drill failed: {} of {} sampled file(s) did not come back \
                     as the snapshot has them",
                    d.mismatches.len(),
                    d.sampled_files
                );
                return ExitCode::Warning;
            }
        }
        Response::Noop { slept_ms } => out.value(&finished, || {
            format!("job {job} done (noop, {slept_ms} ms)")
        }),
        Response::Sync(r) => {
            out.value(&finished, || super::sync::result_text(job, r));
            if r.conflicts_pending > 0 {
                eprintln!(
                    "backupctl: sync {}: {} waiting: `backupctl sync conflicts {}` lists them, \
                     `backupctl sync resolve` settles them",
                    r.pair,
                    count(r.conflicts_pending, "conflict"),
                    r.pair
                );
                return ExitCode::Warning;
            }
            if !r.warnings.is_empty() {
                eprintln!(
                    "backupctl: sync {} is partial: {}",
                    r.pair,
                    count(r.warnings.len() as u64, "problem")
                );
                return ExitCode::Warning;
            }
        }
        _ => {}
    }
    ExitCode::Ok
}

/// What was read from the sources and what was stored in the repository, each named for what
/// it is: `bytes_added` is the plaintext of new chunks and trees, `bytes_stored` the same after
/// compression and encryption (pack headers and index files not included).
fn backup_text(job: JobId, r: &BackupResult) -> String {
    let s = &r.stats;
    let head = if r.unchanged {
        format!(
            "unchanged, snapshot {} kept (job {job}): nothing differs from it",
            short(&r.snapshot)
        )
    } else {
        format!("snapshot {} saved (job {job})", short(&r.snapshot))
    };
    let mut text = format!(
        "{head}\n{}, {}: {} in the snapshot\nread {} in {}; stored {} new ({} of new data and \
         metadata, compressed and encrypted) in {:.1}s",
        count(s.files, "file"),
        count(s.dirs, "dir"),
        bytes(s.bytes_total),
        bytes(s.bytes_read),
        count(s.files_read, "file"),
        bytes(s.bytes_stored),
        bytes(s.bytes_added),
        s.duration_ms as f64 / 1000.0
    );
    for (path, why) in &r.skipped {
        text.push_str(&format!("\nskipped {path}: {why}"));
    }
    text
}

fn dry_run_text(r: &BackupDryRunResult) -> String {
    let mut text = format!(
        "dry run, nothing written: {}, {}: {} to back up\nwould read {} in {}; about {} new \
         ({} of new data and metadata before compression and encryption)",
        count(r.files, "file"),
        count(r.dirs, "dir"),
        bytes(r.bytes_total),
        bytes(r.bytes_read),
        count(r.files_read, "file"),
        bytes(r.bytes_new_stored),
        bytes(r.bytes_new),
    );
    if let Some(parent) = &r.parent {
        text.push_str(&format!("; compared with snapshot {}", short(parent)));
    }
    for (path, why) in &r.skipped {
        text.push_str(&format!("\nwould skip {path}: {why}"));
    }
    text
}

fn restore_text(r: &RestoreResult) -> String {
    let mut text = format!(
        "restored {}, {}, {} ({}) from {} into {}",
        count(r.files, "file"),
        count(r.dirs, "dir"),
        count_as(r.other, "other", "others"),
        bytes(r.bytes),
        short(&r.snapshot),
        r.target
    );
    if r.replaced + r.unchanged + r.kept > 0 {
        text.push_str(&format!(
            "\nexisting: {} replaced, {} left as they equal the snapshot, {} left although \
             they may differ (--overwrite never)",
            r.replaced, r.unchanged, r.kept
        ));
    }
    for (path, why) in &r.failed {
        text.push_str(&format!("\nFAILED {path}: {why}"));
    }
    for (path, why) in r.warnings.iter().take(20) {
        text.push_str(&format!("\nwarning {path}: {why}"));
    }
    text
}

fn forget_text(r: &ForgetResult) -> String {
    let mut text = String::new();
    for d in &r.decisions {
        text.push_str(&format!(
            "{} {} {} {}\n",
            if d.keep { "keep  " } else { "remove" },
            short(&d.snapshot),
            d.time,
            if d.keep {
                d.reasons.join(", ")
            } else {
                String::new()
            }
        ));
    }
    text.push_str(&format!(
        "{} {}",
        count(r.removed, "snapshot"),
        if r.dry_run {
            "would be removed (dry run)"
        } else {
            "removed"
        }
    ));
    if let Some(p) = &r.prune {
        text.push('\n');
        text.push_str(&prune_text(p));
    }
    text
}

/// What a prune did (`forget --prune`, `repo prune`).
pub fn prune_text(p: &PruneSummary) -> String {
    let mut text = format!(
        "pruned: {} deleted, {} repacked into {}, {} removed; {} -> {}; {} -> {}",
        count(p.packs_deleted, "pack"),
        count(p.packs_repacked, "pack"),
        p.packs_written,
        count(p.blobs_removed, "blob"),
        bytes(p.bytes_before),
        bytes(p.bytes_after),
        count(p.index_files_before, "index file"),
        p.index_files_after
    );
    for note in &p.notes {
        text.push_str(&format!("\nnote: {note}"));
    }
    text
}

/// What a compaction did.
pub fn compact_text(c: &CompactSummary) -> String {
    if c.skipped {
        format!(
            "nothing to compact: {} hold the index of {}",
            count(c.index_files_before, "index file"),
            count(c.packs, "pack")
        )
    } else {
        format!(
            "index compacted: {} -> {} ({}, {})",
            count(c.index_files_before, "index file"),
            c.index_files_after,
            count(c.packs, "pack"),
            count(c.blobs, "blob")
        )
    }
}

fn check_text(r: &CheckResult) -> String {
    let mut text = format!(
        "{}, {}, {} in {}; {} read",
        count(r.snapshots, "snapshot"),
        count(r.trees, "tree"),
        count(r.blobs, "blob"),
        count(r.packs, "pack"),
        count(r.packs_read, "pack")
    );
    if let Some(part) = &r.subset {
        text.push_str(&format!(" (part {part} of the packs)"));
    }
    for note in &r.notes {
        text.push_str(&format!("\nnote: {note}"));
    }
    if r.problems.is_empty() {
        text.push_str("\nno problems found");
    } else {
        text.push_str(&format!(
            "\n{} in {}:",
            count(r.problems.len() as u64, "problem"),
            count(r.damaged_packs.len() as u64, "damaged pack")
        ));
        for p in &r.problems {
            text.push_str(&format!(
                "\n  pack {} blob {}: {}",
                p.pack
                    .as_deref()
                    .map(|s| &s[..s.len().min(12)])
                    .unwrap_or("-"),
                p.blob
                    .as_deref()
                    .map(|s| &s[..s.len().min(12)])
                    .unwrap_or("-"),
                p.message
            ));
            if !p.snapshots.is_empty() {
                text.push_str(&format!("\n    snapshots: {}", p.snapshots.join(", ")));
            }
            for path in p.paths.iter().take(10) {
                text.push_str(&format!("\n    {path}"));
            }
            if p.paths.len() > 10 {
                text.push_str(&format!(
                    "\n    ... and {} more",
                    count((p.paths.len() - 10) as u64, "path")
                ));
            }
        }
    }
    text
}

/// What a re-encryption did, in one paragraph.
pub fn reencrypt_summary(r: &ReencryptResult) -> String {
    let mut text = format!(
        "sealed again under data-key version {}: {} rewritten into {} ({} blobs, {} read, {} \
         written), {}, {}",
        r.current,
        count(r.packs_rewritten, "pack"),
        count(r.packs_written, "new pack"),
        r.blobs,
        bytes(r.bytes_read),
        bytes(r.bytes_written),
        count(r.index_files_rewritten, "index file"),
        count(r.snapshots_rewritten, "snapshot")
    );
    if r.leftovers_removed > 0 {
        text.push_str(&format!(
            "; {} of an interrupted run removed",
            count(r.leftovers_removed, "leftover")
        ));
    }
    match r.retired.as_slice() {
        [] => text.push_str("; no version retired"),
        versions => text.push_str(&format!(
            "; retired (key material destroyed): version {}",
            versions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    for (old, new) in &r.snapshots_renamed {
        text.push_str(&format!("\nsnapshot {old} is now {new}"));
    }
    text
}

/// What a replication copied.
pub fn replicate_text(r: &backupd_common::protocol::ReplicateResult) -> String {
    let mut text = format!(
        "replicated {} into {}: {} copied ({} already there), {} copied ({} already there, {} \
         sealed again), {} written in {} ({} copied as they were), {} ms",
        r.from,
        r.to,
        count(r.snapshots_copied, "snapshot"),
        r.snapshots_present,
        count(r.blobs_copied, "blob"),
        r.blobs_present,
        r.blobs_resealed,
        crate::progress::bytes(r.bytes_written),
        count(r.packs_copied + r.packs_written, "pack"),
        r.packs_copied,
        r.duration.as_millis()
    );
    if r.snapshots_forgotten > 0 {
        text.push_str(&format!(
            "; {} the source no longer has forgotten",
            count(r.snapshots_forgotten, "snapshot")
        ));
    }
    if r.packs_adopted > 0 {
        text.push_str(&format!(
            "; {} left by an interrupted run reused",
            count(r.packs_adopted, "pack")
        ));
    }
    if r.packs_verified > 0 {
        text.push_str(&format!(
            "; {} read back and verified",
            count(r.packs_verified, "pack")
        ));
    }
    text
}
