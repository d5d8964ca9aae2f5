//! Reading blobs for a restore from a remote store: one request per pack instead of one per
//! blob. Before any file is written, the restore's blobs are grouped by pack and each pack's
//! needed span (first needed blob to last) is known; the first blob asked for from a pack
//! fetches that whole span, and the blobs after it are cut from memory. Concurrent readers of
//! one pack wait for the one fetch. A span is dropped after its last blob was read, and at most
//! [`WINDOW_BYTES`] of spans are held (the oldest go first): files are restored in plan order,
//! roughly the order the backup packed them, so the packs in use are few at any time.
//!
//! A few threads fetch the spans ahead, in the order the restore will use them, so that the
//! requests overlap each other and the writing of files.
//!
//! Local repositories read blob by blob (`pread` of each blob is as cheap as a copy from
//! memory, and needs none).

use crate::repo::backend::Key;
use crate::repo::{RepoError, Repository};
use backupd_common::ids::{BlobId, PackId};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes of fetched spans kept for the blobs still to come (about 8 packs).
/// Threads fetching spans ahead of the restore.
pub const PREFETCHERS: usize = 4;

pub const WINDOW_BYTES: u64 = 128 << 20;

/// One fetched span of a pack.
#[derive(Debug)]
struct Span {
    start: u64,
    bytes: Vec<u8>,
}

/// A pack's slot: its span once fetched. The slot's lock is held during the fetch, so readers
/// of the same pack wait for it instead of fetching again.
type Slot = Arc<Mutex<Option<Arc<Span>>>>;

#[derive(Debug)]
pub struct PackWindows {
    /// The byte range of each pack that the restore needs.
    needed: HashMap<PackId, (u64, u64)>,
    /// Blob reads still to come per pack: at zero its span is let go at once.
    remaining: HashMap<PackId, AtomicUsize>,
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    by_pack: HashMap<PackId, Slot>,
    /// Packs fetched, oldest first, with their span's size.
    order: VecDeque<(PackId, u64)>,
    held: u64,
}

impl PackWindows {
    /// The windows for restoring `blobs` (every blob of every file to restore).
    pub fn new<'a>(repo: &Repository, blobs: impl Iterator<Item = &'a BlobId>) -> Self {
        let mut needed: HashMap<PackId, (u64, u64)> = HashMap::new();
        let mut remaining: HashMap<PackId, AtomicUsize> = HashMap::new();
        repo.with_index(|i| {
            for id in blobs {
                if let Some(loc) = i.get(id) {
                    *remaining.entry(loc.pack).or_default().get_mut() += 1;
                    let (start, end) = (loc.offset as u64, loc.offset as u64 + loc.length as u64);
                    let span = needed.entry(loc.pack).or_insert((start, end));
                    span.0 = span.0.min(start);
                    span.1 = span.1.max(end);
                }
            }
        });
        Self {
            needed,
            remaining,
            slots: Mutex::default(),
        }
    }

    fn slot(&self, pack: PackId) -> Slot {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_pack
            .entry(pack)
            .or_default()
            .clone()
    }

    /// Records a fetched span and drops the oldest ones beyond [`WINDOW_BYTES`].
    fn fetched(&self, pack: PackId, size: u64) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.order.push_back((pack, size));
        s.held += size;
        while s.held > WINDOW_BYTES && s.order.len() > 1 {
            let Some((old, size)) = s.order.pop_front() else {
                break;
            };
            s.held -= size;
            // Readers still holding the span keep it alive; a later reader fetches again.
            s.by_pack.remove(&old);
        }
    }

    /// Counts one read of `pack`'s blobs; after the last one its span is dropped.
    fn consumed(&self, pack: PackId) {
        let last = self
            .remaining
            .get(&pack)
            .is_some_and(|n| n.fetch_sub(1, Ordering::AcqRel) == 1);
        if last {
            let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            s.by_pack.remove(&pack);
            let mut freed = 0;
            s.order.retain(|(p, size)| {
                let done = *p == pack;
                if done {
                    freed += size;
                }
                !done
            });
            s.held -= freed;
        }
    }

    /// Fetches the spans of `order` (packs in the order the restore will use them) ahead of
    /// the readers, while fewer than [`WINDOW_BYTES`] are held; run by a few threads at once
    /// (each takes the next pack) until the list is done or `stop` is set. A pack a reader is
    /// fetching already, or has used up, is skipped.
    pub fn prefetch(
        &self,
        repo: &Repository,
        order: &[PackId],
        next: &AtomicUsize,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        while let Some(&pack) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            let Some(&(start, end)) = self.needed.get(&pack) else {
                continue;
            };
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let held = self.slots.lock().unwrap_or_else(|p| p.into_inner()).held;
                if held + (end - start) <= WINDOW_BYTES {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let used_up = self
                .remaining
                .get(&pack)
                .is_none_or(|n| n.load(Ordering::Acquire) == 0);
            if used_up {
                continue;
            }
            let slot = self.slot(pack);
            let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
            if held.is_some() {
                continue;
            }
            // A failure is left to the reader, which fetches again and reports it per file.
            if let Ok(bytes) =
                repo.backend()
                    .get_range(Key::pack(&pack.to_hex()), start, (end - start) as usize)
            {
                *held = Some(Arc::new(Span { start, bytes }));
                drop(held);
                self.fetched(pack, end - start);
            }
        }
    }

    /// One blob, verified, from its pack's span (fetched on first use).
    pub fn read_blob(&self, repo: &Repository, id: &BlobId) -> crate::repo::Result<Vec<u8>> {
        let loc = repo.blob_location(id)?;
        let Some(&(start, end)) = self.needed.get(&loc.pack) else {
            return repo.read_blob(id);
        };
        let span = {
            let slot = self.slot(loc.pack);
            let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
            match &*held {
                Some(span) => span.clone(),
                None => {
                    let name = loc.pack.to_hex();
                    let bytes = repo
                        .backend()
                        .get_range(Key::pack(&name), start, (end - start) as usize)
                        .map_err(RepoError::from)?;
                    let span = Arc::new(Span { start, bytes });
                    *held = Some(span.clone());
                    drop(held);
                    self.fetched(loc.pack, end - start);
                    span
                }
            }
        };
        self.consumed(loc.pack);
        let from = (loc.offset as u64 - span.start) as usize;
        let sealed = span
            .bytes
            .get(from..from + loc.length as usize)
            .ok_or(RepoError::MissingBlob { id: *id })?;
        repo.open_blob(id, &loc, sealed)
    }
}
