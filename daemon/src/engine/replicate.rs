//! Replication (`backupctl repo replicate`): copies into a replica the snapshots of its source
//! that it lacks, and only the blobs it lacks (docs/FORMAT.md, "Replicas"). Works through the
//! `Backend` trait of both repositories only, so any backend pair works.
//!
//! Order, as a backup's: **packs → index files naming them → snapshots.** The source's
//! snapshot list is read *before* its index is refreshed: a backup writes its index before its
//! snapshot, so every snapshot listed has its blobs in the index read afterwards, even with
//! backups running into the source meanwhile (the source is held under a shared lock, which
//! keeps its prune out; the replica under the exclusive one).
//!
//! A source pack whose every blob the replica lacks and whose header the replica's keys open
//! (a replica sharing the source's data key) is copied byte for byte, its name checked. Other
//! needed blobs are read one by one, opened with the source's key and sealed with the
//! replica's (payload unchanged, no recompression) into new packs, each verified before it is
//! written. An index file is written every [`INDEX_EVERY_PACKS`] packs, so an interrupted run
//! keeps most of its work indexed; a re-run first indexes the young unindexed packs the
//! interrupted one left (as a backup's retry does), then copies what is still missing. Nothing
//! is ever deleted from the replica, except with `mirror_forget` the snapshots the source no
//! longer has (their data goes with the replica's own prune).

use super::adopt::adopt_unindexed_packs;
use super::progress::Progress;
use super::EngineError;
use crate::repo::backend::Key;
use crate::repo::index::IndexedPack;
use crate::repo::lock::LockMode;
use crate::repo::pack::{self, PackBuilder, PackEntry};
use crate::repo::{sha256_hex, RepoError, Repository, LOCK_WAIT};
use backupd_common::ids::{BlobId, PackId, SnapshotId};
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_util::sync::CancellationToken;

/// How many packs are written between two index files.
pub const INDEX_EVERY_PACKS: usize = 16;

/// What a replication is asked to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplicateOptions {
    /// Read back every pack written, check its hash and every blob in it.
    pub verify: bool,
    /// Forget in the replica the snapshots the source no longer has.
    pub mirror_forget: bool,
}

/// What a replication did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicateReport {
    pub snapshots_copied: u64,
    /// Snapshots of the source the replica already held.
    pub snapshots_present: u64,
    pub snapshots_forgotten: u64,
    /// Blobs written into the replica (copied packs and sealed-again blobs).
    pub blobs_copied: u64,
    /// Blobs the copied snapshots need that the replica already held.
    pub blobs_present: u64,
    /// Source packs copied byte for byte.
    pub packs_copied: u64,
    /// Packs written from blobs sealed again.
    pub packs_written: u64,
    /// Blobs opened with the source's key and sealed with the replica's.
    pub blobs_resealed: u64,
    pub bytes_written: u64,
    pub index_files_written: u64,
    /// Packs an interrupted run left that this one indexed.
    pub packs_adopted: u64,
    /// Packs read back and checked (`verify`).
    pub packs_verified: u64,
}

/// Where the replica's writes are paced: called with the size of every object before it is
/// written; false when the wait was cancelled.
pub type Pace<'a> = &'a (dyn Fn(u64) -> bool + Sync);

/// Whether `replica` can be a replica of `source`: same blob-id key and chunker.
pub fn is_replica_of(replica: &Repository, source: &Repository) -> bool {
    let (r, s) = (replica.keys(), source.keys());
    r.id_key == s.id_key
        && r.chunker_seed == s.chunker_seed
        && replica.config().chunk_min == source.config().chunk_min
        && replica.config().chunk_avg == source.config().chunk_avg
        && replica.config().chunk_max == source.config().chunk_max
}

/// Snapshots of `source` that `replica` lacks (oldest first), and snapshots of `replica` that
/// `source` no longer has: the lag, read without locks.
pub fn missing(
    source_ids: &[(SnapshotId, i64)],
    replica_ids: &HashSet<SnapshotId>,
) -> Vec<(SnapshotId, i64)> {
    source_ids
        .iter()
        .filter(|(id, _)| !replica_ids.contains(id))
        .copied()
        .collect()
}

/// Copies into `replica` what it lacks of `source`.
pub fn replicate(
    source: &Repository,
    replica: &Repository,
    options: ReplicateOptions,
    pace: Pace<'_>,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<ReplicateReport, EngineError> {
    if !is_replica_of(replica, source) {
        return Err(EngineError::InvalidArgument(format!(
            "{} is not a replica of {}: its blob-id key or chunker differs (create replicas with \
             `backupctl repo init --replica-of`)",
            replica.location(),
            source.location()
        )));
    }
    let started = std::time::Instant::now();
    let dst_lock = replica.lock_waiting(LockMode::Exclusive, "replicate", LOCK_WAIT, cancel)?;
    let _src_lock =
        source.lock_waiting(LockMode::Shared, "replicate (source)", LOCK_WAIT, cancel)?;
    let mut report = ReplicateReport::default();
    replica.reload_index()?;
    report.packs_adopted = adopt_unindexed_packs(replica, &dst_lock)?.packs as u64;

    // Snapshots first, then the index: every snapshot listed has its index file already.
    let listing = source.snapshot_listing()?;
    source.refresh_index()?;
    let held: HashSet<SnapshotId> = replica.snapshot_ids()?.into_iter().collect();
    let source_ids: HashSet<SnapshotId> = listing
        .readable
        .iter()
        .map(|(id, _)| *id)
        .chain(
            listing
                .unreadable
                .iter()
                .filter_map(|(n, _)| SnapshotId::from_hex(n)),
        )
        .collect();
    let wanted: Vec<_> = listing
        .readable
        .iter()
        .filter(|(id, _)| !held.contains(id))
        .collect();
    report.snapshots_present = (listing.readable.len() - wanted.len()) as u64;

    let needed = needed_blobs(
        source,
        replica,
        wanted.iter().map(|(_, s)| s.tree),
        &mut report,
        cancel,
    )?;
    let walked = started.elapsed();
    let written = copy_blobs(source, replica, needed, pace, progress, cancel, &mut report)?;
    let copied = started.elapsed();
    if options.verify {
        report.packs_verified = verify_packs(replica, &written)?;
    }

    for (id, _) in &wanted {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        replica.copy_snapshot_from(source, id)?;
        report.snapshots_copied += 1;
    }
    tracing::debug!(
        walk_ms = walked.as_millis() as u64,
        copy_ms = (copied - walked).as_millis() as u64,
        snapshots_ms = (started.elapsed() - copied).as_millis() as u64,
        "replication phases"
    );
    if options.mirror_forget {
        for id in replica.snapshot_ids()? {
            if !source_ids.contains(&id) {
                replica.remove_snapshot(&id)?;
                report.snapshots_forgotten += 1;
            }
        }
    }
    Ok(report)
}

/// The blobs the trees of `roots` reach that `replica` lacks, grouped by the source pack that
/// holds them (in pack order). Iterative: tree depth is the user's.
fn needed_blobs(
    source: &Repository,
    replica: &Repository,
    roots: impl Iterator<Item = BlobId>,
    report: &mut ReplicateReport,
    cancel: &CancellationToken,
) -> Result<BTreeMap<PackId, Vec<PackEntry>>, EngineError> {
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut needed: BTreeMap<PackId, Vec<PackEntry>> = BTreeMap::new();
    let mut want = |id: BlobId, report: &mut ReplicateReport| -> Result<bool, EngineError> {
        if !seen.insert(id) {
            return Ok(false);
        }
        if replica.has_blob(&id) {
            report.blobs_present += 1;
            return Ok(true);
        }
        let loc = source
            .with_index(|i| i.get(&id))
            .ok_or(RepoError::MissingBlob { id })?;
        needed.entry(loc.pack).or_default().push(PackEntry {
            id,
            kind: loc.kind,
            offset: loc.offset,
            length: loc.length,
            raw_length: loc.raw_length,
        });
        Ok(true)
    };
    let mut stack: Vec<BlobId> = Vec::new();
    for root in roots {
        if want(root, report)? {
            stack.push(root);
        }
    }
    while let Some(tree_id) = stack.pop() {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        // A tree the replica already holds may still miss a child (an earlier run indexed
        // packs in batches), so every tree is read; `seen` keeps that once per tree.
        let tree = source.load_tree(&tree_id)?;
        for node in &tree.nodes {
            for blob in &node.content {
                want(*blob, report)?;
            }
            if let Some(sub) = node.subtree {
                if want(sub, report)? {
                    stack.push(sub);
                }
            }
        }
    }
    for entries in needed.values_mut() {
        entries.sort_by_key(|e| e.offset);
    }
    Ok(needed)
}

/// Packs and index files written so far, indexed in batches.
struct Writer<'a> {
    replica: &'a Repository,
    pace: Pace<'a>,
    cancel: &'a CancellationToken,
    unindexed: Vec<IndexedPack>,
    written: Vec<PackId>,
}

impl Writer<'_> {
    /// Verifies and writes a pack built here.
    fn put_pack(
        &mut self,
        bytes: &[u8],
        entries: Vec<PackEntry>,
        report: &mut ReplicateReport,
    ) -> Result<(), EngineError> {
        if !(self.pace)(bytes.len() as u64) {
            return Err(EngineError::Cancelled);
        }
        let id = self.replica.write_pack(bytes, &entries)?;
        self.stored(id, entries, bytes.len() as u64, report)
    }

    /// Notes a pack now stored in the replica; writes an index file every
    /// [`INDEX_EVERY_PACKS`] packs.
    fn stored(
        &mut self,
        id: PackId,
        entries: Vec<PackEntry>,
        len: u64,
        report: &mut ReplicateReport,
    ) -> Result<(), EngineError> {
        report.bytes_written += len;
        report.blobs_copied += entries.len() as u64;
        self.written.push(id);
        self.unindexed.push(IndexedPack { id, blobs: entries });
        if self.unindexed.len() >= INDEX_EVERY_PACKS {
            self.index(report)?;
        }
        Ok(())
    }

    fn index(&mut self, report: &mut ReplicateReport) -> Result<(), EngineError> {
        if self.unindexed.is_empty() {
            return Ok(());
        }
        if self.cancel.is_cancelled() {
            // The packs stay unindexed; the next run adopts them.
            return Err(EngineError::Cancelled);
        }
        let packs = std::mem::take(&mut self.unindexed);
        report.index_files_written += self.replica.write_index(packs, Vec::new())?.len() as u64;
        Ok(())
    }
}

/// What a worker made of one source pack whose every blob the replica needs.
enum Fetched {
    /// Copied as it is (the replica's keys open it): stored, to be indexed.
    Stored {
        id: PackId,
        entries: Vec<PackEntry>,
        len: u64,
    },
    /// Its blobs, sealed for the replica, to go into new packs.
    Blobs(Vec<(PackEntry, Vec<u8>, bool)>),
}

/// How many packs are read (and copied) at once: copying mostly waits on reads and fsyncs, so
/// more than the cores (`BACKUPD_REPLICATE_WORKERS` overrides, for measurements).
fn workers() -> usize {
    std::env::var("BACKUPD_REPLICATE_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(8, |n| (4 * n.get()).clamp(4, 8))
        })
        .clamp(1, 16)
}

fn copy_blobs(
    source: &Repository,
    replica: &Repository,
    needed: BTreeMap<PackId, Vec<PackEntry>>,
    pace: Pace<'_>,
    progress: &Progress,
    cancel: &CancellationToken,
    report: &mut ReplicateReport,
) -> Result<Vec<PackId>, EngineError> {
    let total: u64 = needed
        .values()
        .flat_map(|e| e.iter())
        .map(|e| u64::from(e.length))
        .sum();
    progress.set_totals(needed.values().map(|e| e.len() as u64).sum(), total);
    let mut writer = Writer {
        replica,
        pace,
        cancel,
        unindexed: Vec::new(),
        written: Vec::new(),
    };
    let mut builder = PackBuilder::new();
    let source_entries: HashMap<PackId, usize> = source.with_index(|i| {
        needed
            .keys()
            .filter_map(|p| i.pack_entries(p).map(|e| (*p, e.len())))
            .collect()
    });
    let (whole, partial): (Vec<_>, Vec<_>) = needed
        .into_iter()
        .partition(|(p, e)| source_entries.get(p) == Some(&e.len()));

    // Whole packs, several at once; the index is written here, in the order they arrive.
    let queue = std::sync::Mutex::new(whole.into_iter());
    std::thread::scope(|scope| -> Result<(), EngineError> {
        // Bounded: at most about two packs per worker in memory.
        let workers = workers();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Fetched, EngineError>>(workers);
        for _ in 0..workers {
            let (tx, queue) = (tx.clone(), &queue);
            scope.spawn(move || loop {
                if cancel.is_cancelled() {
                    return;
                }
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((pack_id, entries)) = next else {
                    return;
                };
                let fetched = fetch_whole(source, replica, pack_id, entries, pace);
                let failed = fetched.is_err();
                if tx.send(fetched).is_err() || failed {
                    return;
                }
            });
        }
        drop(tx);
        for fetched in rx {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            match fetched? {
                Fetched::Stored { id, entries, len } => {
                    progress.add(entries.len() as u64, len);
                    writer.stored(id, entries, len, report)?;
                    report.packs_copied += 1;
                }
                Fetched::Blobs(blobs) => {
                    progress.add(
                        blobs.len() as u64,
                        blobs.iter().map(|(e, ..)| u64::from(e.length)).sum(),
                    );
                    for (entry, sealed, resealed) in blobs {
                        report.blobs_resealed += u64::from(resealed);
                        add_blob(&entry, &sealed, &mut builder, &mut writer, report)?;
                    }
                }
            }
        }
        Ok(())
    })?;

    // Blobs of packs the replica needs only part of, one by one.
    for (pack_id, entries) in partial {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let name = pack_id.to_hex();
        for e in &entries {
            let sealed =
                source
                    .backend()
                    .get_range(Key::pack(&name), e.offset.into(), e.length as usize)?;
            let (sealed, resealed) = for_replica(source, replica, e, sealed)?;
            report.blobs_resealed += u64::from(resealed);
            add_blob(e, &sealed, &mut builder, &mut writer, report)?;
        }
        progress.add(
            entries.len() as u64,
            entries.iter().map(|e| u64::from(e.length)).sum(),
        );
    }
    if !builder.is_empty() {
        flush(builder, &mut writer, report)?;
    }
    writer.index(report)?;
    Ok(writer.written)
}

/// Reads a source pack whose every blob the replica needs: stores it as it is when the
/// replica's keys open its header and its bytes match its name, else seals its blobs for the
/// replica. Runs on a worker thread.
fn fetch_whole(
    source: &Repository,
    replica: &Repository,
    pack_id: PackId,
    entries: Vec<PackEntry>,
    pace: Pace<'_>,
) -> Result<Fetched, EngineError> {
    let name = pack_id.to_hex();
    let bytes = source.backend().get(Key::pack(&name))?;
    if replica_opens_header(replica, &bytes) && sha256_hex(&bytes) == name {
        if !pace(bytes.len() as u64) {
            return Err(EngineError::Cancelled);
        }
        replica.backend().put(Key::pack(&name), &bytes)?;
        let entries = source
            .with_index(|i| i.pack_entries(&pack_id).cloned())
            .unwrap_or(entries);
        return Ok(Fetched::Stored {
            id: pack_id,
            entries,
            len: bytes.len() as u64,
        });
    }
    let mut blobs = Vec::with_capacity(entries.len());
    for e in entries {
        let start = e.offset as usize;
        let sealed = bytes
            .get(start..start + e.length as usize)
            .ok_or(RepoError::MissingBlob { id: e.id })?;
        let (sealed, resealed) = for_replica(source, replica, &e, sealed.to_vec())?;
        blobs.push((e, sealed, resealed));
    }
    Ok(Fetched::Blobs(blobs))
}

/// Whether the replica holds the data key that sealed the pack's header (then it holds the
/// keys of its blobs too: one backup seals a pack under one version).
fn replica_opens_header(replica: &Repository, pack_bytes: &[u8]) -> bool {
    let n = pack_bytes.len();
    if n < 12 {
        return false;
    }
    let len = pack::trailer_len(&pack_bytes[n - 4..]) as u64;
    match pack::header_start(n as u64, len as u32) {
        Ok(start) => {
            pack::decode_header(replica.keys(), &pack_bytes[start as usize..n - 4], start).is_ok()
        }
        Err(_) => false,
    }
}

/// A sealed blob of the source as the replica stores it: as it is when the replica's keys
/// open it (it holds the data-key version that sealed it), else opened with the source's key
/// and sealed with the replica's (payload unchanged). The flag says it was sealed again.
fn for_replica(
    source: &Repository,
    replica: &Repository,
    e: &PackEntry,
    sealed: Vec<u8>,
) -> Result<(Vec<u8>, bool), EngineError> {
    if replica.keys().open(&sealed).is_ok() {
        return Ok((sealed, false));
    }
    let plain = source
        .keys()
        .open(&sealed)
        .map_err(|err| RepoError::Corrupt {
            what: "blob",
            name: e.id.to_hex(),
            reason: err.to_string(),
            hint: "run `backupctl repo check --read-data` on the source",
        })?;
    Ok((replica.keys().seal(&plain), true))
}

/// Adds one blob sealed for the replica to the pack being filled, closing it first when full.
fn add_blob(
    e: &PackEntry,
    sealed: &[u8],
    builder: &mut PackBuilder,
    writer: &mut Writer<'_>,
    report: &mut ReplicateReport,
) -> Result<(), EngineError> {
    if builder.would_overflow(sealed.len()) {
        let full = std::mem::take(builder);
        flush(full, writer, report)?;
    }
    builder.add(e.id, e.kind, sealed, e.raw_length as usize);
    Ok(())
}

fn flush(
    builder: PackBuilder,
    writer: &mut Writer<'_>,
    report: &mut ReplicateReport,
) -> Result<(), EngineError> {
    let (bytes, entries) = builder.finish(writer.replica.keys());
    // `write_pack` verifies every blob before the pack is stored.
    writer.put_pack(&bytes, entries, report)?;
    report.packs_written += 1;
    Ok(())
}

/// Reads back `packs` from the replica (each named by its index): each hashes to its name
/// and every blob in it opens, decompresses and hashes to its id.
pub fn verify_packs(replica: &Repository, packs: &[PackId]) -> Result<u64, EngineError> {
    let mut n = 0;
    for id in packs {
        let name = id.to_hex();
        let bytes = replica.backend().get(Key::pack(&name))?;
        let damaged = |reason: String| {
            EngineError::Repo(RepoError::Corrupt {
                what: "pack",
                name: name.clone(),
                reason,
                hint: "run `backupctl repo check --read-data` on the replica and replicate again",
            })
        };
        if sha256_hex(&bytes) != name {
            return Err(damaged("its bytes do not hash to its name".into()));
        }
        let entries = replica
            .with_index(|i| i.pack_entries(id).cloned())
            .ok_or_else(|| damaged("no index file names it".into()))?;
        pack::verify(replica.keys(), &bytes, &entries).map_err(|e| damaged(e.to_string()))?;
        n += 1;
    }
    Ok(n)
}
