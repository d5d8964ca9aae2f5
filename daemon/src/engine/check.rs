//! Check: structure (every blob a snapshot needs is indexed, every indexed pack exists) and,
//! with read-data, decrypt and re-hash the packs. Each problem names the pack, the blob, and the
//! snapshots and paths it affects.

use super::progress::Progress;
use super::EngineError;
use crate::repo::backend::{FileKind, Key};
use crate::repo::pack;
use crate::repo::tree::NodeKind;
use crate::repo::Repository;
use backupd_common::ids::{BlobId, PackId, SnapshotId};
use backupd_common::plural::{count, count_as};
use backupd_common::protocol::Subset;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Percentage of packs to read fully (0 = structure only, 100 = all).
    pub read_data_percent: u8,
    /// Read this part of the packs instead of a percentage.
    pub read_data_subset: Option<Subset>,
}

impl CheckOptions {
    /// Whether the data of pack `pid` is read.
    fn reads(&self, pid: &PackId) -> bool {
        match (self.read_data_subset, self.read_data_percent) {
            (Some(part), _) => part.holds(&pid.0),
            (None, 0) => false,
            (None, 100..) => true,
            (None, percent) => {
                // A fixed share: the packs whose id's second byte falls under it.
                let cut = (percent as u32 * 256 / 100) as u8;
                pid.0[1] < cut.max(1)
            }
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub blobs: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub damaged_packs: Vec<String>,
    pub problems: Vec<Problem>,
    /// Harmless findings (unindexed packs, leftover temp files).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub message: String,
    pub pack: Option<String>,
    pub blob: Option<String>,
    pub snapshots: Vec<String>,
    pub paths: Vec<String>,
}

impl Problem {
    /// A problem with a whole pack (not one blob in it).
    fn of_pack(message: String, pack: &str) -> Self {
        Self {
            message,
            pack: Some(pack.to_owned()),
            blob: None,
            snapshots: vec![],
            paths: vec![],
        }
    }
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The reason given for a blob a snapshot needs that no index file names.
const NOT_INDEXED: &str =
    "blob is not in the index; run `backupctl repo rebuild-index` if a pack not in the index holds it";

/// Compares a pack file's size with the size its index entries imply: the blobs end to end
/// after the magic, then the sealed header (the same entries, so its length is known) and the
/// 4-byte trailer. Catches truncated packs and appended bytes without reading the data.
/// What reading one pack found.
struct PackReading {
    /// Its content does not hash to its name, or a blob in it is damaged.
    damaged: bool,
    /// Blobs that do not decode, or that the index puts here and the pack lacks.
    bad_blobs: Vec<(BlobId, String)>,
    /// The pack could not be read at all.
    problem: Option<String>,
}

/// Reads a pack whole and decodes every blob in it.
fn read_pack(repo: &Repository, pid: &PackId) -> PackReading {
    let name = pid.to_hex();
    let mut reading = PackReading {
        damaged: false,
        bad_blobs: Vec::new(),
        problem: None,
    };
    let bytes = match repo.backend().get(Key::pack(&name)) {
        Ok(bytes) => bytes,
        Err(e) => {
            reading.problem = Some(e.to_string());
            return reading;
        }
    };
    let expected: Vec<BlobId> = repo.with_index(|i| {
        i.pack_entries(pid)
            .map(|e| e.iter().map(|e| e.id).collect())
            .unwrap_or_default()
    });
    if crate::repo::sha256_hex(&bytes) != name {
        reading.damaged = true;
    }
    match pack::read_header(repo.keys(), &bytes) {
        Ok(entries) => {
            for e in &entries {
                // In range: `read_header` checked every entry lies before the header.
                let sealed = &bytes[e.offset as usize..e.offset as usize + e.length as usize];
                if let Err(err) = pack::decode_blob(repo.keys(), sealed, e.id, e.raw_length) {
                    reading.damaged = true;
                    reading.bad_blobs.push((e.id, err.to_string()));
                }
            }
            let listed: HashSet<BlobId> = entries.iter().map(|e| e.id).collect();
            for b in expected.iter().filter(|b| !listed.contains(b)) {
                reading.damaged = true;
                reading
                    .bad_blobs
                    .push((*b, "indexed blob missing from the pack header".into()));
            }
        }
        Err(err) => {
            reading.damaged = true;
            for b in expected {
                reading
                    .bad_blobs
                    .push((b, format!("pack header unreadable: {err}")));
            }
        }
    }
    reading
}

fn check_pack_size(
    repo: &Repository,
    pack_id: &PackId,
    report: &mut CheckReport,
    bad_blobs: &mut HashMap<BlobId, (Option<PackId>, String)>,
) {
    let name = pack_id.to_hex();
    let Some(mut entries) = repo.with_index(|i| i.pack_entries(pack_id).cloned()) else {
        return;
    };
    // Two index files may name the same pack; its header lists each blob once, in offset order.
    entries.sort_by_key(|e| e.offset);
    entries.dedup_by_key(|e| e.offset);
    let expected = pack::expected_size(&entries);
    let size = match repo.backend().size(Key::pack(&name)) {
        Ok(s) => s,
        Err(e) => {
            report.problems.push(Problem {
                message: e.to_string(),
                pack: Some(name),
                blob: None,
                snapshots: vec![],
                paths: vec![],
            });
            return;
        }
    };
    if size == expected {
        return;
    }
    let message = if size < expected {
        format!(
            "pack file is {size} bytes but its index entries say {expected}: it was truncated; \
             blobs past its end are lost (restore the pack from a copy if there is one)"
        )
    } else {
        format!(
            "pack file is {size} bytes but its index entries say {expected}: {} bytes were \
             appended; restore the pack from a copy (its header can no longer be found, so \
             `rebuild-index` would drop it)",
            size - expected
        )
    };
    for e in &entries {
        if u64::from(e.offset) + u64::from(e.length) > size {
            bad_blobs.insert(
                e.id,
                (
                    Some(*pack_id),
                    "blob lies past the end of its truncated pack".into(),
                ),
            );
        }
    }
    report.problems.push(Problem::of_pack(message, &name));
    if !report.damaged_packs.contains(&name) {
        report.damaged_packs.push(name);
    }
}

/// Where blobs are used: blob -> (snapshot, path) pairs. Built on demand to name damage.
fn usage(
    repo: &Repository,
    wanted: &HashSet<BlobId>,
) -> Result<HashMap<BlobId, Vec<(SnapshotId, String)>>, EngineError> {
    let mut out: HashMap<BlobId, Vec<(SnapshotId, String)>> = HashMap::new();
    for (sid, snap) in repo.snapshots()? {
        let mut stack = vec![(snap.tree, PathBuf::from("/"))];
        if wanted.contains(&snap.tree) {
            out.entry(snap.tree).or_default().push((sid, "/".into()));
        }
        while let Some((tid, path)) = stack.pop() {
            let Ok(tree) = repo.load_tree(&tid) else {
                continue;
            };
            for node in &tree.nodes {
                let p = path.join(std::ffi::OsStr::from_bytes(&node.name));
                for b in node.content.iter().chain(node.subtree.iter()) {
                    if wanted.contains(b) {
                        out.entry(*b)
                            .or_default()
                            .push((sid, super::dirfd::display_bytes(p.as_os_str().as_bytes())));
                    }
                }
                if let Some(sub) = node.subtree {
                    stack.push((sub, p));
                }
            }
        }
    }
    Ok(out)
}

pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<CheckReport, EngineError> {
    super::on_workers(None, None, || check_on_pool(repo, opts, progress, cancel))
}

fn check_on_pool(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<CheckReport, EngineError> {
    let _lock = repo.lock_waiting(
        crate::repo::lock::LockMode::ReadOnly,
        "check",
        crate::repo::LOCK_WAIT,
        cancel,
    )?;
    repo.reload_index()?;
    let mut report = CheckReport::default();
    let mut bad_blobs: HashMap<BlobId, (Option<PackId>, String)> = HashMap::new();

    // Structure: walk every snapshot's trees.
    let listing = repo.snapshot_listing()?;
    report.snapshots = listing.readable.len() + listing.unreadable.len();
    for (name, e) in &listing.unreadable {
        report.problems.push(Problem {
            message: format!(
                "snapshot file {name} is unreadable: {}. Restore it from a copy, or remove it \
                 with `backupctl forget {}`; until then `latest` does not resolve",
                e.reason(),
                name.get(..8).unwrap_or(name)
            ),
            pack: None,
            blob: None,
            snapshots: vec![name.get(..8).unwrap_or(name).to_owned()],
            paths: vec![],
        });
    }
    let snapshots = listing.readable;
    let mut needed_unindexed = false;
    let mut seen_trees = HashSet::new();
    let mut unsafe_names: Vec<(BlobId, String)> = Vec::new();
    let mut seen_blobs = HashSet::new();
    for (_, snap) in &snapshots {
        let mut stack = vec![snap.tree];
        while let Some(tid) = stack.pop() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            if !seen_trees.insert(tid) {
                continue;
            }
            let tree = match repo.load_tree(&tid) {
                Ok(t) => t,
                Err(e) => {
                    needed_unindexed |= !repo.has_blob(&tid);
                    bad_blobs.insert(
                        tid,
                        (
                            repo.with_index(|i| i.get(&tid).map(|l| l.pack)),
                            e.to_string(),
                        ),
                    );
                    continue;
                }
            };
            for node in &tree.nodes {
                if !crate::repo::tree::is_safe_name(&node.name) {
                    // A backup never writes such a name; restore refuses it.
                    unsafe_names.push((tid, super::dirfd::display_bytes(&node.name)));
                }
                if node.kind == NodeKind::File {
                    for b in &node.content {
                        if seen_blobs.insert(*b) && !repo.has_blob(b) {
                            needed_unindexed = true;
                            bad_blobs.insert(*b, (None, NOT_INDEXED.into()));
                        }
                    }
                }
                if let Some(sub) = node.subtree {
                    stack.push(sub);
                }
            }
        }
    }
    report.trees = seen_trees.len();
    for (tree, name) in unsafe_names {
        report.problems.push(Problem {
            message: format!(
                "tree {} holds an entry with an unsafe name {name:?} (empty, `.`, `..`, or with \
                 `/` or NUL), which restore refuses; the repository was written by something \
                 other than backupd or tampered with",
                tree.short()
            ),
            pack: None,
            blob: Some(tree.to_hex()),
            snapshots: vec![],
            paths: vec![],
        });
    }
    for (name, reason) in repo.with_index(|i| i.unreadable().to_vec()) {
        report.problems.push(Problem {
            message: format!(
                "index file {name} is unreadable ({reason}); run `backupctl repo rebuild-index`"
            ),
            pack: None,
            blob: None,
            snapshots: vec![],
            paths: vec![],
        });
    }
    report.blobs = repo.with_index(|i| i.blob_count());

    // Indexed packs must exist; packs on disk without index entries are only noted.
    let on_disk: BTreeSet<String> = repo.backend().list(FileKind::Pack)?.into_iter().collect();
    let indexed: Vec<PackId> = repo.with_index(|i| i.packs().map(|(id, _)| *id).collect());
    report.packs = indexed.len();
    for p in &indexed {
        if on_disk.contains(&p.to_hex()) {
            check_pack_size(repo, p, &mut report, &mut bad_blobs);
        } else {
            report.damaged_packs.push(p.to_hex());
            let blobs: Vec<BlobId> = repo.with_index(|i| {
                i.pack_entries(p)
                    .map(|e| e.iter().map(|e| e.id).collect())
                    .unwrap_or_default()
            });
            for b in blobs {
                bad_blobs.insert(b, (Some(*p), "pack file is missing".into()));
            }
        }
    }
    let on_disk_list: Vec<String> = on_disk.iter().cloned().collect();
    let leftovers = super::leftovers::classify(repo, &on_disk_list, |id| {
        repo.with_index(|i| i.has_pack(id))
    });
    let unindexed = leftovers.old.len() + leftovers.young.len();
    let needs_rebuild = needed_unindexed || !repo.with_index(|i| i.unreadable().is_empty());
    if unindexed > 0 && needs_rebuild {
        // Snapshots need blobs no index file names: the index is missing or damaged, and these
        // packs most likely hold them. Prune would delete them; rebuilding the index keeps them.
        report.problems.push(Problem {
            message: format!(
                "{} not in the index while snapshots need blobs the index \
                 lacks: an index file is missing or damaged; run `backupctl repo rebuild-index` \
                 (do not prune before)",
                count_as(unindexed as u64, "pack is", "packs are")
            ),
            pack: None,
            blob: None,
            snapshots: vec![],
            paths: vec![],
        });
    } else {
        if !leftovers.old.is_empty() {
            report
                .notes
                .push(super::leftovers::old_note(leftovers.old.len()));
        }
        if !leftovers.young.is_empty() {
            report.notes.push(super::leftovers::young_note(
                leftovers.young.len(),
                leftovers.young_until_ns,
            ));
        }
    }
    let temps = repo.backend().list_incomplete()?.len();
    if temps > 0 {
        report.notes.push(format!(
            "{} from interrupted writes; prune removes them",
            count(temps as u64, "temp file")
        ));
    }

    // Read data.
    if opts.read_data_percent > 0 || opts.read_data_subset.is_some() {
        let to_read: Vec<PackId> = indexed
            .iter()
            .filter(|p| on_disk.contains(&p.to_hex()) && opts.reads(p))
            .copied()
            .collect();
        let total: u64 = to_read.len() as u64;
        progress.set_totals(total, 0);
        // Packs are read and decoded in parallel, a few at a time per worker (each is held
        // whole while its blobs are decoded), and their findings merged in pack order.
        let readings: Vec<Option<PackReading>> = to_read
            .par_iter()
            .with_max_len(1)
            .map(|pid| {
                if cancel.is_cancelled() {
                    return None;
                }
                let reading = read_pack(repo, pid);
                progress.add(1, 0);
                Some(reading)
            })
            .collect();
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        for (pid, reading) in to_read.iter().zip(readings.into_iter().flatten()) {
            let name = pid.to_hex();
            let damaged = reading.damaged || reading.problem.is_some();
            if let Some(message) = reading.problem {
                report.problems.push(Problem::of_pack(message, &name));
            }
            for (blob, message) in reading.bad_blobs {
                bad_blobs.insert(blob, (Some(*pid), message));
            }
            if damaged && !report.damaged_packs.contains(&name) {
                report.damaged_packs.push(name);
            }
            report.packs_read += 1;
        }
    }

    if !bad_blobs.is_empty() {
        let wanted: HashSet<BlobId> = bad_blobs.keys().copied().collect();
        let used = usage(repo, &wanted)?;
        let mut problems: Vec<Problem> = bad_blobs
            .into_iter()
            .map(|(blob, (pack, message))| {
                let uses = used.get(&blob).cloned().unwrap_or_default();
                let snapshots: BTreeSet<String> = uses.iter().map(|(s, _)| s.short()).collect();
                let paths: BTreeSet<String> = uses.into_iter().map(|(_, p)| p).collect();
                Problem {
                    message,
                    pack: pack.map(|p| p.to_hex()),
                    blob: Some(blob.to_hex()),
                    snapshots: snapshots.into_iter().collect(),
                    paths: paths.into_iter().collect(),
                }
            })
            .collect();
        problems.sort_by(|a, b| (&a.pack, &a.blob).cmp(&(&b.pack, &b.blob)));
        report.problems.extend(problems);
    }
    report.damaged_packs.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_data_subsets_partition_the_packs() {
        let packs: Vec<PackId> = (0u32..2000)
            .map(|i| {
                let mut id = [0u8; 32];
                let digest = <sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes());
                id.copy_from_slice(&digest);
                PackId(id)
            })
            .collect();
        let count = 20;
        let mut sizes = Vec::new();
        for pid in &packs {
            let parts: Vec<u32> = (1..=count)
                .filter(|&n| {
                    CheckOptions {
                        read_data_subset: Some(Subset::new(n, count).expect("part")),
                        ..Default::default()
                    }
                    .reads(pid)
                })
                .collect();
            assert_eq!(parts.len(), 1, "{pid:?} is in parts {parts:?}");
        }
        for n in 1..=count {
            let opts = CheckOptions {
                read_data_subset: Some(Subset::new(n, count).expect("part")),
                ..Default::default()
            };
            sizes.push(packs.iter().filter(|p| opts.reads(p)).count());
        }
        // 100 per part on average: each part gets a fair share.
        assert!(sizes.iter().all(|&s| (50..=150).contains(&s)), "{sizes:?}");
        let all = CheckOptions {
            read_data_percent: 100,
            ..Default::default()
        };
        assert!(packs.iter().all(|p| all.reads(p)));
        assert!(!packs.iter().any(|p| CheckOptions::default().reads(p)));
    }
}
