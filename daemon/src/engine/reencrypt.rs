//! Re-encryption (`backupctl repo key reencrypt`): every object sealed by an old data-key
//! version is sealed again under the current one, so the old versions can be retired (their key
//! material destroyed). Runs under the exclusive lock, one index file at a time:
//!
//! 1. the blobs of its old packs are opened and sealed again (no recompression) into new packs,
//!    each verified (decrypted, decompressed, re-hashed) before it is written;
//! 2. one new index file names the new packs and the file's other packs and supersedes it;
//! 3. the old index file is deleted, then the old packs.
//!
//! A crash at any point leaves every blob indexed in a pack that exists: before step 2 the old
//! file still names the old packs (the new ones are unindexed leftovers, sealed by the current
//! version, which prune removes); after it, readers skip the superseded file. A re-run picks up
//! the index files still naming old packs, then removes what an interrupted run left behind:
//! superseded index files, and unindexed packs sealed by an old version whose every blob is
//! indexed elsewhere. Index files and snapshots sealed by an old version are sealed again last.

use super::progress::Progress;
use super::rebuild::sealed_pack_header;
use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::crypto::SealFormat;
use crate::repo::index::IndexedPack;
use crate::repo::lock::LockMode;
use crate::repo::pack::{self, PackBuilder, PackEntry};
use crate::repo::RepoConfig;
use crate::repo::{RepoError, Repository, FORMAT_VERSION, LOCK_WAIT};
use backupd_common::ids::{IndexId, PackId, SnapshotId};
use std::collections::{BTreeMap, HashSet};
use tokio_util::sync::CancellationToken;

/// What a re-encryption did and what is left.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReencryptReport {
    /// The versions whose objects were sealed again (all below this one, except the current);
    /// 0 for a migration.
    pub below: u32,
    pub current: u32,
    pub packs_rewritten: u64,
    pub packs_written: u64,
    pub blobs: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub index_files_rewritten: u64,
    pub snapshots_rewritten: u64,
    /// Snapshots whose id changed (format 1 names a snapshot by its sealed bytes): old, new.
    pub snapshots_renamed: Vec<(SnapshotId, SnapshotId)>,
    /// Leftovers of an interrupted run removed: superseded index files and old packs.
    pub leftovers_removed: u64,
    /// Objects still sealed by each old version after the run (empty when it is done).
    pub remaining: BTreeMap<u32, u64>,
}

/// Seals again everything sealed by a version below `below` (other than the current one);
/// `None`: every version but the current. The caller retires the versions afterwards if
/// `remaining` is empty.
pub fn reencrypt(
    repo: &Repository,
    below: Option<u32>,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ReencryptReport, EngineError> {
    let current = repo.keys().current;
    let below = below.unwrap_or(current);
    if below > current {
        return Err(EngineError::InvalidArgument(format!(
            "--retire-below {below}: version {current} is the current data key and cannot be \
             retired; rotate first (`backupctl repo key rotate`), then re-encrypt"
        )));
    }
    let _lock = repo.lock_waiting(LockMode::Exclusive, "key reencrypt", LOCK_WAIT, cancel)?;
    let keys = repo.keys();
    let old = |sealed: &[u8]| keys.key_version_of(sealed).is_ok_and(|v| v < below);
    let mut report = reseal_locked(repo, &old, progress, cancel)?;
    report.below = below;
    Ok(report)
}

/// `repo migrate --to 2`: converts a format 1 repository in place. The config first says
/// format 2 with `migrating_from: 1` (readers then take either layout, writers seal format 2),
/// then every object in the format 1 layout is sealed again as re-encryption does, then the
/// config says format 2 alone. A re-run after a crash continues; on a format 2 repository it
/// does nothing. Returns the report and the repository as it is now (its seal format changed:
/// the caller drops cached handles).
pub fn migrate(
    repo: &Repository,
    to: u32,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ReencryptReport, EngineError> {
    if to != FORMAT_VERSION {
        return Err(EngineError::InvalidArgument(format!(
            "--to {to}: this build migrates to format {FORMAT_VERSION} only"
        )));
    }
    let config = repo.config().clone();
    if config.version == to && config.migrating_from.is_none() {
        return Ok(ReencryptReport {
            current: repo.keys().current,
            ..Default::default()
        });
    }
    let _lock = repo.lock_waiting(LockMode::Exclusive, "migrate", LOCK_WAIT, cancel)?;
    let migrating = repo.rewrite_config(RepoConfig {
        version: to,
        migrating_from: Some(config.migrating_from.unwrap_or(config.version)),
        ..config.clone()
    })?;
    let keys = migrating.keys();
    let v1 = |sealed: &[u8]| keys.layout_of(sealed) == SealFormat::V1;
    let report = reseal_locked(&migrating, &v1, progress, cancel)?;
    if !report.remaining.is_empty() {
        return Err(EngineError::InvalidArgument(format!(
            "objects still in the format 1 layout after the migration ({}): packs no index \
             names (run `backupctl repo rebuild-index`) or objects `backupctl repo check` \
             reports; the repository stays readable in both layouts, run the migration again \
             afterwards",
            report.remaining.values().sum::<u64>()
        )));
    }
    migrating.rewrite_config(RepoConfig {
        version: to,
        migrating_from: None,
        ..config
    })?;
    Ok(report)
}

/// Seals again, under the current version and layout, every object `stale` selects (by its
/// sealed bytes). The caller holds the exclusive lock.
fn reseal_locked(
    repo: &Repository,
    stale: &impl Fn(&[u8]) -> bool,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ReencryptReport, EngineError> {
    repo.reload_index()?;
    if let Some((name, reason)) = repo.with_index(|i| i.unreadable().first().cloned()) {
        return Err(EngineError::InvalidArgument(format!(
            "refusing to re-encrypt: index file {name} is unreadable ({reason}); run \
             `backupctl repo rebuild-index` first"
        )));
    }
    let mut report = ReencryptReport {
        current: repo.keys().current,
        ..Default::default()
    };
    let plan = plan(repo, stale, cancel)?;
    let total_packs: usize = plan.iter().map(|f| f.old_packs.len()).sum();
    let total_bytes: u64 = plan.iter().map(|f| f.old_bytes).sum();
    progress.set_totals(total_packs as u64, total_bytes);
    for file in plan {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        rewrite_index_file(repo, file, progress, cancel, &mut report)?;
    }
    repo.reload_index()?;
    report.leftovers_removed = remove_leftovers(repo, stale)?;
    reseal_snapshots(repo, stale, cancel, &mut report)?;
    report.remaining = census(repo, stale)?;
    Ok(report)
}

/// One live index file and what of it needs sealing again.
struct FilePlan {
    id: IndexId,
    packs: Vec<IndexedPack>,
    old_packs: HashSet<PackId>,
    old_bytes: u64,
    sealed_old: bool,
}

fn plan(
    repo: &Repository,
    stale: &impl Fn(&[u8]) -> bool,
    cancel: &CancellationToken,
) -> Result<Vec<FilePlan>, EngineError> {
    let mut files: Vec<IndexId> = repo.with_index(|i| i.files().iter().copied().collect());
    files.sort_by_key(|id| id.to_hex());
    let mut plan = Vec::new();
    for id in files {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let name = id.to_hex();
        let sealed_old = stale(&repo.backend().get(Key::index(&name))?);
        let packs = repo.read_index_file(&name)?.packs;
        let mut old_packs = HashSet::new();
        let mut old_bytes = 0;
        for p in &packs {
            let pack_name = p.id.to_hex();
            let (header, _) = sealed_pack_header(repo, &pack_name).map_err(|reason| {
                unreadable("pack", &pack_name, reason, "run `backupctl repo check`")
            })?;
            // A pack whose version no held key names cannot be sealed again: say so.
            repo.keys()
                .key_version_of(&header)
                .map_err(|e| unreadable("pack", &pack_name, e.to_string(), KEY_HINT))?;
            if stale(&header) {
                old_packs.insert(p.id);
                old_bytes += repo.backend().size(Key::pack(&pack_name))?;
            }
        }
        if sealed_old || !old_packs.is_empty() {
            plan.push(FilePlan {
                id,
                packs,
                old_packs,
                old_bytes,
                sealed_old,
            });
        }
    }
    Ok(plan)
}

const KEY_HINT: &str = "the version that sealed it is not held by the key files; run `backupctl \
                        repo key list` and `backupctl repo check`";

fn unreadable(what: &'static str, name: &str, reason: String, hint: &'static str) -> EngineError {
    EngineError::Repo(RepoError::Corrupt {
        what,
        name: name.to_owned(),
        reason,
        hint,
    })
}

fn rewrite_index_file(
    repo: &Repository,
    file: FilePlan,
    progress: &Progress,
    cancel: &CancellationToken,
    report: &mut ReencryptReport,
) -> Result<(), EngineError> {
    let mut kept: Vec<IndexedPack> = Vec::with_capacity(file.packs.len());
    let mut builder = PackBuilder::new();
    let mut written: Vec<IndexedPack> = Vec::new();
    let flush = |b: PackBuilder,
                 written: &mut Vec<IndexedPack>,
                 report: &mut ReencryptReport|
     -> Result<(), EngineError> {
        if b.is_empty() {
            return Ok(());
        }
        let (bytes, entries) = b.finish(repo.keys());
        // write_pack verifies every blob before the pack is stored.
        let id = repo.write_pack(&bytes, &entries)?;
        report.packs_written += 1;
        report.bytes_written += bytes.len() as u64;
        written.push(IndexedPack { id, blobs: entries });
        Ok(())
    };
    for p in file.packs {
        if !file.old_packs.contains(&p.id) {
            kept.push(p);
            continue;
        }
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let name = p.id.to_hex();
        let bytes = repo.backend().get(Key::pack(&name))?;
        for e in &p.blobs {
            let sealed = resealed_blob(repo, &bytes, e, p.id)?;
            if builder.would_overflow(sealed.len()) {
                flush(std::mem::take(&mut builder), &mut written, report)?;
            }
            builder.add(e.id, e.kind, &sealed, e.raw_length as usize);
            report.blobs += 1;
        }
        report.packs_rewritten += 1;
        report.bytes_read += bytes.len() as u64;
        progress.add(1, bytes.len() as u64);
    }
    flush(builder, &mut written, report)?;
    let old_packs: Vec<PackId> = file.old_packs.into_iter().collect();
    kept.extend(written);
    // New index first (it supersedes the old file), then the old file, then the old packs.
    repo.write_index(kept, vec![file.id])?;
    report.index_files_rewritten += u64::from(file.sealed_old || !old_packs.is_empty());
    repo.backend().delete(Key::index(&file.id.to_hex()))?;
    for id in old_packs {
        repo.backend().delete(Key::pack(&id.to_hex()))?;
    }
    Ok(())
}

/// One blob of a pack held in memory, opened and sealed again under the current version
/// (its compressed payload as it is).
fn resealed_blob(
    repo: &Repository,
    pack_bytes: &[u8],
    e: &PackEntry,
    pack: PackId,
) -> Result<Vec<u8>, EngineError> {
    let sealed = pack_bytes
        .get(e.offset as usize..e.offset as usize + e.length as usize)
        .ok_or_else(|| {
            EngineError::Repo(RepoError::DamagedPack {
                pack,
                source: Box::new(pack::PackError::Header(format!(
                    "blob {} lies outside the pack",
                    e.id
                ))),
            })
        })?;
    let plain = repo.keys().open(sealed).map_err(|source| {
        EngineError::Repo(RepoError::DamagedBlob {
            id: e.id,
            pack,
            source: Box::new(pack::BlobError::from(source)),
        })
    })?;
    Ok(repo.keys().seal(&plain))
}

/// Removes what an interrupted run left: index files a live one supersedes, and packs no index
/// names that an old version sealed and whose every blob is indexed elsewhere. The caller
/// holds the exclusive lock and has just reloaded the index.
fn remove_leftovers(repo: &Repository, stale: &impl Fn(&[u8]) -> bool) -> Result<u64, EngineError> {
    let mut removed = 0;
    let live = repo.with_index(|i| i.files().clone());
    for name in repo.backend().list(FileKind::Index)? {
        if IndexId::from_hex(&name).is_some_and(|id| !live.contains(&id)) {
            repo.backend().delete(Key::index(&name))?;
            removed += 1;
        }
    }
    for name in repo.backend().list(FileKind::Pack)? {
        let indexed =
            PackId::from_hex(&name).is_some_and(|id| repo.with_index(|i| i.has_pack(&id)));
        if indexed {
            continue;
        }
        let Ok((header, start)) = sealed_pack_header(repo, &name) else {
            continue;
        };
        if !stale(&header) {
            continue;
        }
        let Ok(entries) = pack::decode_header(repo.keys(), &header, start) else {
            continue;
        };
        if entries.iter().all(|e| repo.has_blob(&e.id)) {
            repo.backend().delete(Key::pack(&name))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn reseal_snapshots(
    repo: &Repository,
    stale: &impl Fn(&[u8]) -> bool,
    cancel: &CancellationToken,
    report: &mut ReencryptReport,
) -> Result<(), EngineError> {
    for id in repo.snapshot_ids()? {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let name = id.to_hex();
        if !stale(&repo.backend().get(Key::snapshot(&name))?) {
            continue;
        }
        let new = repo.reseal_snapshot(&id)?;
        report.snapshots_rewritten += 1;
        if new != id {
            report.snapshots_renamed.push((id, new));
        }
    }
    Ok(())
}

/// Objects (packs, index files, snapshots) `stale` still selects, per data-key version (0: a
/// version that cannot be told).
pub fn census(
    repo: &Repository,
    stale: &impl Fn(&[u8]) -> bool,
) -> Result<BTreeMap<u32, u64>, EngineError> {
    let mut left = BTreeMap::new();
    let keys = repo.keys();
    let mut count = |sealed: &[u8]| {
        if stale(sealed) {
            *left
                .entry(keys.key_version_of(sealed).unwrap_or(0))
                .or_insert(0) += 1;
        }
    };
    for name in repo.backend().list(FileKind::Pack)? {
        if let Ok((header, _)) = sealed_pack_header(repo, &name) {
            count(&header);
        }
    }
    for kind in [FileKind::Index, FileKind::Snapshot] {
        for name in repo.backend().list(kind)? {
            let bytes = repo.backend().get(Key::new(kind, &name))?;
            count(&bytes);
        }
    }
    Ok(left)
}
