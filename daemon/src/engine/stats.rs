//! `stats` and `repo info`: what snapshots would restore and what the repository stores.
//!
//! Restore size walks the snapshots' trees without recursion (a stack of tree ids), reading
//! each distinct tree blob once: identical subtrees are shared between snapshots, so a cache
//! of per-tree summaries makes the second and later snapshots cost almost nothing. Raw sizes
//! come from the index (each blob's stored and plaintext length) and the pack files' sizes.
//!
//! Blocking: reads tree blobs and lists the repository. Read-only; holds a shared lock while
//! it walks so a prune cannot remove packs under it.

use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::lock::LockMode;
use crate::repo::pack::BlobKind;
use crate::repo::tree::NodeKind;
use crate::repo::Repository;
use backupd_common::ids::BlobId;
use std::collections::{HashMap, HashSet};
use tokio_util::sync::CancellationToken;

/// What a restore of some snapshots would write, added up over the snapshots.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreSize {
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, devices, FIFOs, sockets.
    pub other: u64,
    /// Bytes of file contents (the files' sizes).
    pub bytes: u64,
}

/// Blobs, as the index records them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlobTotals {
    pub blobs: u64,
    pub tree_blobs: u64,
    pub data_blobs: u64,
    /// Plaintext bytes of all these blobs.
    pub raw_bytes: u64,
    /// Plaintext bytes of the data blobs alone (what deduplication is measured against).
    pub data_raw_bytes: u64,
    /// Bytes as stored in packs (compressed, encrypted).
    pub stored_bytes: u64,
}

/// One directory's own contribution and where the walk goes next.
struct TreeSummary {
    own: RestoreSize,
    subtrees: Vec<BlobId>,
    content: Vec<BlobId>,
}

/// The outcome of walking some snapshots' trees.
#[derive(Debug, Default)]
pub struct Walk {
    pub size: RestoreSize,
    /// Every distinct blob the snapshots need (trees and file contents).
    pub blobs: HashSet<BlobId>,
}

fn summarize(repo: &Repository, id: &BlobId) -> Result<TreeSummary, EngineError> {
    let tree = repo.load_tree(id)?;
    let mut s = TreeSummary {
        own: RestoreSize::default(),
        subtrees: Vec::new(),
        content: Vec::new(),
    };
    for node in tree.nodes {
        match node.kind {
            NodeKind::File => {
                s.own.files += 1;
                s.own.bytes += node.size;
                s.content.extend(node.content);
            }
            NodeKind::Dir => {
                s.own.dirs += 1;
                s.subtrees.extend(node.subtree);
            }
            _ => s.own.other += 1,
        }
    }
    Ok(s)
}

/// Walks the trees of `roots` (one per snapshot; a root listed twice counts twice).
pub fn walk(
    repo: &Repository,
    roots: &[BlobId],
    cancel: &CancellationToken,
) -> Result<Walk, EngineError> {
    let _lock = repo.lock(LockMode::ReadOnly, "stats")?;
    repo.refresh_index()?;
    let mut cache: HashMap<BlobId, TreeSummary> = HashMap::new();
    let mut out = Walk::default();
    let mut stack: Vec<BlobId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let s = match cache.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let s = summarize(repo, &id)?;
                out.blobs.insert(id);
                out.blobs.extend(s.content.iter().copied());
                e.insert(s)
            }
        };
        out.size.files += s.own.files;
        out.size.dirs += s.own.dirs;
        out.size.other += s.own.other;
        out.size.bytes += s.own.bytes;
        stack.extend(s.subtrees.iter().copied());
    }
    Ok(out)
}

/// Index totals of `blobs` (`None`: every indexed blob). A blob the index lacks is left out
/// (`repo check` reports it).
pub fn blob_totals(repo: &Repository, blobs: Option<&HashSet<BlobId>>) -> BlobTotals {
    repo.with_index(|index| {
        let mut t = BlobTotals::default();
        let mut add = |kind: BlobKind, length: u32, raw_length: u32| {
            t.blobs += 1;
            t.raw_bytes += u64::from(raw_length);
            t.stored_bytes += u64::from(length);
            match kind {
                BlobKind::Data => {
                    t.data_blobs += 1;
                    t.data_raw_bytes += u64::from(raw_length);
                }
                BlobKind::Tree => t.tree_blobs += 1,
            }
        };
        match blobs {
            Some(set) => {
                for loc in set.iter().filter_map(|id| index.get(id)) {
                    add(loc.kind, loc.length, loc.raw_length);
                }
            }
            None => {
                for (_, loc) in index.blobs() {
                    add(loc.kind, loc.length, loc.raw_length);
                }
            }
        }
        t
    })
}

/// Pack files on storage: how many, and their bytes.
pub fn pack_totals(repo: &Repository) -> Result<(u64, u64), EngineError> {
    let names = repo.backend().list(FileKind::Pack)?;
    let mut bytes = 0;
    for name in &names {
        bytes += repo.backend().size(Key::pack(name))?;
    }
    Ok((names.len() as u64, bytes))
}

/// `a / b`, when `b` is not zero.
pub fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}
