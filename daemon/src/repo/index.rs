//! Which pack holds which blob. Index files (`index/<sha256>`) are sealed bincode of
//! [`IndexFile`]; in memory they merge into one map. Everything here can be rebuilt from the
//! packs' own headers.

use super::pack::{BlobKind, PackEntry};
use backupd_common::ids::{BlobId, IndexId, PackId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
    /// Index files this one replaces (written by prune); they are deleted after it, and readers
    /// skip them if a crash left them behind.
    pub supersedes: Vec<IndexId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexedPack {
    pub id: PackId,
    pub blobs: Vec<PackEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// A blob's location as the map stores it: the pack as a number into `Index::pack_ids`, so
/// each entry costs 52 bytes instead of 80 (the index of a 200,000-file backup is most of an
/// idle daemon's memory).
#[derive(Clone, Copy, Debug)]
struct Slot {
    pack: u32,
    kind: BlobKind,
    offset: u32,
    length: u32,
    raw_length: u32,
}

/// The merged in-memory index.
#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<BlobId, Slot>,
    pack_ids: Vec<PackId>,
    packs: HashMap<PackId, Vec<PackEntry>>,
    files: HashSet<IndexId>,
    /// Index files that could not be read or decoded (name, reason).
    unreadable: Vec<(String, String)>,
}

impl Index {
    pub fn add_file(&mut self, id: IndexId, file: &IndexFile) {
        self.files.insert(id);
        for pack in &file.packs {
            self.add_pack(pack.id, &pack.blobs);
        }
    }

    pub fn add_pack(&mut self, pack: PackId, entries: &[PackEntry]) {
        // A pack is immutable and named by its hash, so every index file that names it lists
        // the same entries; two files name one pack when a compaction or prune crashed before
        // writing the file that supersedes the old ones. The first wins, as for blobs, or the
        // pack would count its blobs twice.
        if self.packs.contains_key(&pack) {
            return;
        }
        self.packs.insert(pack, entries.to_vec());
        let number = self.pack_ids.len() as u32;
        self.pack_ids.push(pack);
        for e in entries {
            // First location wins; a duplicate in another pack is redundant data for prune.
            self.blobs.entry(e.id).or_insert(Slot {
                pack: number,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            });
        }
    }

    fn location(&self, s: &Slot) -> BlobLocation {
        BlobLocation {
            pack: self.pack_ids[s.pack as usize],
            kind: s.kind,
            offset: s.offset,
            length: s.length,
            raw_length: s.raw_length,
        }
    }

    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| self.location(s))
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Every indexed pack with all its entries (also blobs whose canonical copy is elsewhere).
    pub fn packs(&self) -> impl Iterator<Item = (&PackId, &Vec<PackEntry>)> {
        self.packs.iter()
    }

    pub fn pack_entries(&self, id: &PackId) -> Option<&Vec<PackEntry>> {
        self.packs.get(id)
    }

    pub fn has_pack(&self, id: &PackId) -> bool {
        self.packs.contains_key(id)
    }

    pub fn set_unreadable(&mut self, files: Vec<(String, String)>) {
        self.unreadable = files;
    }

    pub fn unreadable(&self) -> &[(String, String)] {
        &self.unreadable
    }

    pub fn files(&self) -> &HashSet<IndexId> {
        &self.files
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&BlobId, BlobLocation)> {
        self.blobs.iter().map(|(id, s)| (id, self.location(s)))
    }
}
