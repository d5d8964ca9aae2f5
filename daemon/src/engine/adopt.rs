//! Packs an interrupted backup left behind (a full disk, a crash, a cancel): complete, verified
//! packs that no index file names because a backup writes its index last. A backup indexes the
//! young ones before it deduplicates, so its retry stores only what is still missing instead of
//! everything again. Their headers are read and decoded exactly as `rebuild-index` does.
//!
//! Only packs younger than [`STALE_AFTER`] are taken: older ones are what prune deletes as
//! leftovers, and a backup never races a prune (prune's lock is exclusive). Nothing is adopted
//! while another lock is held: a concurrent backup's packs are unindexed until it finishes, and
//! indexing them here as well would name them twice.

use super::rebuild::read_pack_header;
use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::index::IndexedPack;
use crate::repo::lock::{LockGuard, STALE_AFTER};
use crate::repo::{RepoError, Repository};
use backupd_common::ids::PackId;

/// What [`adopt_unindexed_packs`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    pub packs: usize,
    pub blobs: usize,
}

/// Writes an index file naming the young unindexed packs, so that their blobs deduplicate.
/// `lock` is the caller's (shared) lock.
pub fn adopt_unindexed_packs(repo: &Repository, lock: &LockGuard) -> Result<Adopted, EngineError> {
    if lock.others_live().map_err(RepoError::from)? {
        tracing::debug!(repo = %repo.location(), "another operation holds a lock; not adopting unindexed packs");
        return Ok(Adopted::default());
    }
    let mut packs = Vec::new();
    for name in repo.backend().list(FileKind::Pack)? {
        let Some(id) = PackId::from_hex(&name) else {
            continue;
        };
        if repo.with_index(|i| i.has_pack(&id)) {
            continue;
        }
        let young = repo
            .backend()
            .stat(Key::pack(&name))
            .is_ok_and(|info| info.age().is_some_and(|age| age < STALE_AFTER));
        if !young {
            continue;
        }
        match read_pack_header(repo, &name) {
            Ok(blobs) => packs.push(IndexedPack { id, blobs }),
            // Prune deletes it once it is old enough; check names it meanwhile.
            Err(reason) => {
                tracing::warn!(pack = %repo.backend().describe(Key::pack(&name)), %reason, "unindexed pack not reused")
            }
        }
    }
    if packs.is_empty() {
        return Ok(Adopted::default());
    }
    let adopted = Adopted {
        packs: packs.len(),
        blobs: packs.iter().map(|p| p.blobs.len()).sum(),
    };
    // Durable before anything relies on it: a snapshot never refers to a blob whose pack no
    // index file names.
    repo.write_index(packs, Vec::new())?;
    tracing::info!(
        repo = %repo.location(),
        packs = adopted.packs,
        blobs = adopted.blobs,
        "indexed packs left by an interrupted backup; their data is reused instead of stored again"
    );
    Ok(adopted)
}
