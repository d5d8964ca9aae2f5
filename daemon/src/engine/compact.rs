//! Index compaction: merges the many small index files that incremental backups leave (one
//! each) into as few as [`Repository::write_index`] splits the entries into, without reading
//! a snapshot or a pack. Prune ends the same way (it rewrites the whole index), so this is the
//! cheap half of it, for repositories that only grow.
//!
//! Ordering, the same as prune's: the merged files are written first, the last of them naming
//! every index file that was on disk as superseded; only then are the old files deleted. A
//! crash before that last file leaves the old files live beside some new ones that name the
//! same packs (the loader keeps the first copy of each pack); a crash after it leaves old files
//! that every reader skips and the next compaction or prune deletes.
//!
//! It holds the exclusive lock: a reader that lists an index file and then finds it deleted
//! would take it for unreadable (and prune would then refuse to run), and the scheduler runs
//! maintenance when no backup of the repository runs anyway.

use super::progress::Progress;
use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::index::IndexedPack;
use crate::repo::lock::LockMode;
use crate::repo::{Repository, INDEX_FILE_BLOBS, LOCK_WAIT};
use backupd_common::ids::IndexId;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Compaction is skipped while the index lies in fewer than this many files beyond the fewest
/// its entries need: reading a handful of files costs nothing worth a rewrite.
pub const SMALL_FILES_THRESHOLD: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct CompactOptions {
    /// Merge even when there are few index files.
    pub force: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CompactReport {
    pub index_files_before: u64,
    pub index_files_after: u64,
    /// Packs and blob entries the index holds (unchanged by compaction).
    pub packs: u64,
    pub blobs: u64,
    /// Nothing to do: the index was already in few files.
    pub skipped: bool,
}

pub fn compact(
    repo: &Repository,
    opts: &CompactOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<CompactReport, EngineError> {
    let _lock = repo.lock_waiting(LockMode::Exclusive, "compact", LOCK_WAIT, cancel)?;
    compact_locked(repo, opts, progress, cancel)
}

/// Refuses to rewrite the index while an index file cannot be read: superseding it would
/// drop its packs from the index, and the next prune would delete them as leftovers.
pub(super) fn refuse_unreadable(repo: &Repository, what: &str) -> Result<(), EngineError> {
    match repo.with_index(|i| i.unreadable().first().cloned()) {
        Some((name, reason)) => Err(EngineError::InvalidArgument(format!(
            "refusing to {what}: index file {name} is unreadable ({reason}); its packs would look \
             unused. Run `backupctl repo rebuild-index` first"
        ))),
        None => Ok(()),
    }
}

/// Every index file on disk, superseded or not.
pub(super) fn index_files(repo: &Repository) -> Result<Vec<IndexId>, EngineError> {
    Ok(repo
        .backend()
        .list(FileKind::Index)?
        .iter()
        .filter_map(|n| IndexId::from_hex(n))
        .collect())
}

/// Writes `packs` as the whole index, superseding `old`, then deletes `old`. The caller holds
/// the exclusive lock. Returns how many index files there are afterwards.
pub(super) fn replace_index(
    repo: &Repository,
    packs: Vec<IndexedPack>,
    old: &[IndexId],
) -> Result<u64, EngineError> {
    let new = repo.write_index(packs, old.to_vec())?;
    // Sealing uses a fresh nonce, so a new file never has an old one's name; the check costs
    // nothing and rules out deleting what was just written.
    for id in old.iter().filter(|id| !new.contains(id)) {
        repo.backend().delete(Key::index(&id.to_hex()))?;
    }
    repo.reload_index()?;
    Ok(repo.backend().list(FileKind::Index)?.len() as u64)
}

/// [`compact`] for a caller that holds the exclusive lock.
pub fn compact_locked(
    repo: &Repository,
    opts: &CompactOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<CompactReport, EngineError> {
    repo.reload_index()?;
    refuse_unreadable(repo, "compact the index")?;
    let on_disk = index_files(repo)?;
    let (live, mut packs) = repo.with_index(|i| {
        let packs: Vec<IndexedPack> = i
            .packs()
            .map(|(id, blobs)| IndexedPack {
                id: *id,
                blobs: blobs.clone(),
            })
            .collect();
        (i.files().len(), packs)
    });
    let blobs: usize = packs.iter().map(|p| p.blobs.len()).sum();
    let needed = blobs.div_ceil(INDEX_FILE_BLOBS).max(1);
    let mut report = CompactReport {
        index_files_before: on_disk.len() as u64,
        index_files_after: on_disk.len() as u64,
        packs: packs.len() as u64,
        blobs: blobs as u64,
        skipped: false,
    };
    // Superseded files still on disk are a crashed run's leftovers: always worth finishing.
    let leftovers = on_disk.len() > live;
    if !opts.force && !leftovers && live < needed + SMALL_FILES_THRESHOLD {
        report.skipped = true;
        return Ok(report);
    }
    // The last safe point: from here the run writes, and it is short.
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    progress.set_totals(on_disk.len() as u64, 0);
    // Sorted, so that the same index compacts to the same split however the map iterates.
    packs.sort_by_key(|p| p.id);
    report.index_files_after = replace_index(repo, packs, &on_disk)?;
    progress.add(on_disk.len() as u64, 0);
    tracing::info!(
        before = report.index_files_before,
        after = report.index_files_after,
        packs = report.packs,
        "index compacted"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::{BlobKind, PackBuilder};
    use crate::repo::test_kdf;
    use std::collections::BTreeMap;

    /// A repository with `n` one-blob packs, each in an index file of its own, as `n`
    /// incremental backups leave it.
    fn repo_with_packs(dir: &std::path::Path, n: usize) -> Repository {
        let repo = Repository::init_with(&dir.join("repo"), b"pw", test_kdf()).expect("init");
        for i in 0..n {
            let data = format!("blob {i}").into_bytes();
            let mut b = PackBuilder::new();
            b.add(
                repo.blob_id(&data),
                BlobKind::Data,
                &repo.encode_blob(&data, 1),
                data.len(),
            );
            let (bytes, entries) = b.finish(repo.keys());
            let id = repo.write_pack(&bytes, &entries).expect("pack");
            repo.write_index(vec![IndexedPack { id, blobs: entries }], vec![])
                .expect("index");
        }
        repo
    }

    fn packs_of(repo: &Repository) -> BTreeMap<String, usize> {
        repo.with_index(|i| {
            i.packs()
                .map(|(id, e)| (id.to_hex(), e.len()))
                .collect::<BTreeMap<_, _>>()
        })
    }

    fn run(repo: &Repository, force: bool) -> CompactReport {
        compact(
            repo,
            &CompactOptions { force },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("compact")
    }

    #[test]
    fn many_small_index_files_merge_into_one_naming_every_pack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_packs(dir.path(), 20);
        let before = packs_of(&repo);
        let report = run(&repo, false);
        assert!(!report.skipped);
        assert_eq!(
            (report.index_files_before, report.index_files_after),
            (20, 1)
        );
        let reopened = Repository::open(&dir.path().join("repo"), b"pw").expect("open");
        assert_eq!(packs_of(&reopened), before);
        assert_eq!(reopened.with_index(|i| i.blob_count()), 20);
    }

    #[test]
    fn a_few_index_files_are_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_packs(dir.path(), SMALL_FILES_THRESHOLD);
        let report = run(&repo, false);
        assert!(report.skipped);
        assert_eq!(report.index_files_after, SMALL_FILES_THRESHOLD as u64);
        assert_eq!(run(&repo, true).index_files_after, 1, "force merges anyway");
    }

    #[test]
    fn a_crash_between_new_index_written_and_old_files_deleted_loses_no_pack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_packs(dir.path(), 12);
        let before = packs_of(&repo);
        let all: Vec<IndexedPack> = repo.with_index(|i| {
            i.packs()
                .map(|(id, blobs)| IndexedPack {
                    id: *id,
                    blobs: blobs.clone(),
                })
                .collect()
        });
        // A crash before the superseding file: a new file without `supersedes` names packs the
        // old ones name too.
        repo.write_index(all[..5].to_vec(), vec![])
            .expect("partial");
        let reopened = Repository::open(&dir.path().join("repo"), b"pw").expect("open");
        assert_eq!(
            packs_of(&reopened),
            before,
            "each pack once, with its entries"
        );
        // The run again, crashed after its superseding file, before any old file was deleted.
        let old = index_files(&repo).expect("list");
        repo.write_index(all, old).expect("superseding");
        let reopened = Repository::open(&dir.path().join("repo"), b"pw").expect("open");
        assert_eq!(packs_of(&reopened), before);
        assert_eq!(reopened.with_index(|i| i.files().len()), 1);
        // The next run finishes the job whatever the threshold says.
        let report = run(&reopened, false);
        assert_eq!(
            (report.index_files_before, report.index_files_after),
            (14, 1)
        );
        let reopened = Repository::open(&dir.path().join("repo"), b"pw").expect("open");
        assert_eq!(packs_of(&reopened), before);
    }
}
