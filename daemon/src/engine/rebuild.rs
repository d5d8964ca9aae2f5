//! Rebuild the index from the packs alone (lost or damaged index files): read every pack's
//! header (only its tail is read), write new index files superseding all old ones, delete the
//! old ones. Packs whose header cannot be read are named and left out; `repo check` then
//! reports the blobs that are missing because of them.

use super::progress::Progress;
use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::index::IndexedPack;
use crate::repo::lock::LockMode;
use crate::repo::pack::{self, PACK_MAGIC};
use crate::repo::{Repository, LOCK_WAIT};
use backupd_common::ids::{IndexId, PackId};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RebuildReport {
    pub packs: u64,
    pub blobs: u64,
    /// Packs left out, with the reason.
    pub unreadable: Vec<(String, String)>,
    pub old_index_files: u64,
}

pub(super) fn read_pack_header(
    repo: &Repository,
    name: &str,
) -> Result<Vec<pack::PackEntry>, String> {
    let (sealed, start) = sealed_pack_header(repo, name)?;
    pack::decode_header(repo.keys(), &sealed, start).map_err(|e| e.to_string())
}

/// A pack's sealed header and where it starts, reading only the pack's tail.
pub(super) fn sealed_pack_header(repo: &Repository, name: &str) -> Result<(Vec<u8>, u64), String> {
    let backend = repo.backend();
    let key = Key::pack(name);
    let len = backend.size(key).map_err(|e| e.to_string())?;
    if len < (PACK_MAGIC.len() + 4) as u64 {
        return Err("too short to be a pack".into());
    }
    let magic = backend
        .get_range(key, 0, PACK_MAGIC.len())
        .map_err(|e| e.to_string())?;
    if magic != PACK_MAGIC {
        return Err("not a pack (bad magic)".into());
    }
    let tail = backend
        .get_range(key, len - 4, 4)
        .map_err(|e| e.to_string())?;
    let header_len = pack::trailer_len(&tail);
    let start = pack::header_start(len, header_len).map_err(|e| e.to_string())?;
    let sealed = backend
        .get_range(key, start, header_len as usize)
        .map_err(|e| e.to_string())?;
    Ok((sealed, start))
}

pub fn rebuild_index(
    repo: &Repository,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<RebuildReport, EngineError> {
    let _lock = repo.lock_waiting(LockMode::Exclusive, "rebuild-index", LOCK_WAIT, cancel)?;
    let names = repo.backend().list(FileKind::Pack)?;
    progress.set_totals(names.len() as u64, 0);
    let mut report = RebuildReport::default();
    let mut packs = Vec::new();
    for name in names {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let Some(id) = PackId::from_hex(&name) else {
            report
                .unreadable
                .push((name, "name is not a pack id".into()));
            continue;
        };
        match read_pack_header(repo, &name) {
            Ok(entries) => {
                report.packs += 1;
                report.blobs += entries.len() as u64;
                packs.push(IndexedPack { id, blobs: entries });
            }
            Err(reason) => {
                // Keep what the current index knows of this pack rather than forget it: the
                // header may be damaged while the blobs are fine (or the read was transient).
                match repo.with_index(|i| i.pack_entries(&id).cloned()) {
                    Some(entries) => {
                        tracing::warn!(pack = %name, %reason, "pack header unreadable; keeping its entries from the old index");
                        report.blobs += entries.len() as u64;
                        packs.push(IndexedPack { id, blobs: entries });
                        report
                            .unreadable
                            .push((name, format!("{reason} (old index entries kept)")));
                    }
                    None => {
                        tracing::warn!(pack = %name, %reason, "pack left out of the rebuilt index");
                        report.unreadable.push((name, reason));
                    }
                }
            }
        }
        progress.add(1, 0);
    }
    let old: Vec<IndexId> = repo
        .backend()
        .list(FileKind::Index)?
        .iter()
        .filter_map(|n| IndexId::from_hex(n))
        .collect();
    report.old_index_files = old.len() as u64;
    repo.write_index(packs, old.clone())?;
    for id in &old {
        repo.backend().delete(Key::index(&id.to_hex()))?;
    }
    repo.reload_index()?;
    Ok(report)
}
