//! Restore: a snapshot (or a subtree of it) into a target directory, files in parallel, each
//! written to a temp name and renamed, metadata applied afterwards (directories last, deepest
//! first). Never writes outside the target: names are checked to be single components, parent
//! directories are verified to be real directories (not symlinks), files are created with
//! O_EXCL|O_NOFOLLOW. A damaged blob fails only the files that need it; they are named in the
//! outcome and the rest is restored.

use super::fsmeta;
use super::progress::Progress;
use super::EngineError;
use crate::repo::tree::{is_safe_name, Node, NodeKind, Tree};
use crate::repo::Repository;
use backupd_common::ids::{BlobId, SnapshotId};
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// `latest`, a snapshot id or a unique prefix.
    pub snapshot: String,
    /// Absolute path inside the snapshot whose contents go into `target`; `None` restores the
    /// whole snapshot (absolute paths recreated under `target`).
    pub subpath: Option<PathBuf>,
    pub target: PathBuf,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// Re-read every restored file and compare it with the snapshot.
    pub verify: bool,
}

#[derive(Debug, Default)]
pub struct RestoreOutcome {
    pub snapshot: Option<SnapshotId>,
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Paths (relative to the target) that could not be restored, with the reason.
    pub failed: Vec<(String, String)>,
    /// Metadata that could not be applied (e.g. ownership when not root).
    pub warnings: Vec<(String, String)>,
}

impl RestoreOutcome {
    pub fn is_partial(&self) -> bool {
        !self.failed.is_empty()
    }
}

enum Item {
    Dir(PathBuf, Node),
    File(PathBuf, Node),
    Other(PathBuf, Node),
}

struct Filter {
    includes: Option<GlobSet>,
    excludes: Option<GlobSet>,
}

fn globset(patterns: &[String]) -> Result<Option<GlobSet>, EngineError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(
            Glob::new(p)
                .map_err(|e| EngineError::InvalidArgument(format!("pattern {p:?}: {e}")))?,
        );
    }
    b.build()
        .map(Some)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

impl Filter {
    /// `snap_path` is the absolute path in the snapshot; patterns without `/` match the name.
    fn wants(&self, snap_path: &Path, name: &[u8]) -> bool {
        let hit = |set: &GlobSet| {
            set.is_match(snap_path) || set.is_match(Path::new(OsStr::from_bytes(name)))
        };
        if self.excludes.as_ref().is_some_and(hit) {
            return false;
        }
        self.includes.as_ref().is_none_or(hit)
    }
}

pub fn restore(
    repo: &Repository,
    opts: &RestoreOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome, EngineError> {
    let _lock = repo.lock_waiting(false, "restore", crate::repo::LOCK_WAIT, cancel)?;
    repo.refresh_index()?;
    let (snap_id, snapshot) = repo.find_snapshot(&opts.snapshot)?;
    let filter = Filter {
        includes: globset(&opts.includes)?,
        excludes: globset(&opts.excludes)?,
    };

    // Find the tree (or single node) to restore.
    let mut tree = repo.load_tree(&snapshot.tree)?;
    let mut snap_base = PathBuf::from("/");
    let mut single: Option<Node> = None;
    if let Some(sub) = &opts.subpath {
        let comps: Vec<_> = sub
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.as_bytes().to_vec()),
                _ => None,
            })
            .collect();
        for (i, name) in comps.iter().enumerate() {
            let node = tree
                .find(name)
                .cloned()
                .ok_or_else(|| EngineError::NotInSnapshot {
                    path: sub.display().to_string(),
                    snapshot: snap_id.short(),
                })?;
            snap_base.push(OsStr::from_bytes(name));
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(id)) => tree = repo.load_tree(&id)?,
                _ if i + 1 == comps.len() => single = Some(node),
                _ => {
                    return Err(EngineError::NotInSnapshot {
                        path: sub.display().to_string(),
                        snapshot: snap_id.short(),
                    })
                }
            }
        }
    }

    let target = &opts.target;
    prepare_target(target)?;
    let mut items = Vec::new();
    match single {
        Some(node) => {
            let name = node.name.clone();
            items.push(match node.kind {
                NodeKind::File => Item::File(PathBuf::from(OsStr::from_bytes(&name)), node),
                _ => Item::Other(PathBuf::from(OsStr::from_bytes(&name)), node),
            })
        }
        None => plan(repo, &tree, Path::new(""), &snap_base, &filter, &mut items)?,
    }

    let files: Vec<&Item> = items
        .iter()
        .filter(|i| matches!(i, Item::File(..)))
        .collect();
    let total_bytes: u64 = files
        .iter()
        .map(|i| if let Item::File(_, n) = i { n.size } else { 0 })
        .sum();
    progress.set_totals(items.len() as u64, total_bytes);

    let as_root = nix::unistd::geteuid().is_root();
    let outcome = Mutex::new(RestoreOutcome {
        snapshot: Some(snap_id),
        ..Default::default()
    });
    let fail = |rel: &Path, reason: String| {
        progress.error();
        outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed
            .push((rel.display().to_string(), reason));
    };
    let warn = |rel: &Path, warnings: Vec<String>| {
        if !warnings.is_empty() {
            let mut o = outcome.lock().unwrap_or_else(|p| p.into_inner());
            for w in warnings {
                o.warnings.push((rel.display().to_string(), w));
            }
        }
    };

    // 1. Directories, parents first.
    for item in &items {
        if let Item::Dir(rel, _) = item {
            if let Err(reason) = make_dir(target, rel) {
                return Err(EngineError::Target {
                    path: target.join(rel).display().to_string(),
                    reason,
                });
            }
        }
    }

    // 2. File contents, in parallel. Hard links wait for their first path.
    let first_links: Mutex<HashMap<(u64, u64), PathBuf>> = Mutex::new(HashMap::new());
    let mut later_links = Vec::new();
    let mut independent = Vec::new();
    for item in &files {
        if let Item::File(rel, node) = item {
            if node.nlink > 1 {
                let key = (node.dev, node.inode);
                let mut first = first_links.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(orig) = first.get(&key) {
                    later_links.push((rel.clone(), orig.clone(), node));
                    continue;
                }
                first.insert(key, rel.clone());
            }
            independent.push((rel, node));
        }
    }
    independent.par_iter().for_each(|(rel, node)| {
        if cancel.is_cancelled() {
            return;
        }
        match restore_file(repo, target, rel, node, opts.verify, cancel) {
            Ok(()) => {
                warn(rel, fsmeta::apply(&target.join(rel), node, as_root));
                progress.add(1, node.size);
                let mut o = outcome.lock().unwrap_or_else(|p| p.into_inner());
                o.files += 1;
                o.bytes += node.size;
            }
            Err(reason) => fail(rel, reason),
        }
    });
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    let failed_paths: std::collections::HashSet<String> = outcome
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .failed
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    for (rel, orig, node) in later_links {
        if failed_paths.contains(&orig.display().to_string()) {
            // The first path of this link group failed: linking to whatever sits there now
            // would be wrong. The file needs the same data, so it fails the same way.
            fail(
                &rel,
                format!(
                    "hard link to {}, which could not be restored",
                    orig.display()
                ),
            );
            continue;
        }
        let dest = target.join(&rel);
        // Link under a temp name, then rename over the destination (never delete first).
        let temp = temp_name(&dest);
        let linked = std::fs::hard_link(target.join(&orig), &temp)
            .and_then(|()| std::fs::rename(&temp, &dest));
        match linked {
            Ok(()) => {
                progress.add(1, node.size);
                outcome.lock().unwrap_or_else(|p| p.into_inner()).files += 1;
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                fail(&rel, format!("hard link to {}: {e}", orig.display()));
            }
        }
    }

    // 3. Symlinks and special files.
    for item in &items {
        if let Item::Other(rel, node) = item {
            match restore_other(target, rel, node, as_root) {
                Ok(true) => {
                    warn(rel, fsmeta::apply(&target.join(rel), node, as_root));
                    outcome.lock().unwrap_or_else(|p| p.into_inner()).other += 1;
                }
                Ok(false) => {}
                Err(reason) => fail(rel, reason),
            }
            progress.add(1, 0);
        }
    }

    // 4. Directory metadata, deepest first (creating children changed their mtimes).
    for item in items.iter().rev() {
        if let Item::Dir(rel, node) = item {
            warn(rel, fsmeta::apply(&target.join(rel), node, as_root));
            outcome.lock().unwrap_or_else(|p| p.into_inner()).dirs += 1;
            progress.add(1, 0);
        }
    }
    Ok(outcome.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Lists what to restore, parents before children.
fn plan(
    repo: &Repository,
    tree: &Tree,
    rel: &Path,
    snap: &Path,
    filter: &Filter,
    items: &mut Vec<Item>,
) -> Result<(), EngineError> {
    for node in &tree.nodes {
        if !is_safe_name(&node.name) {
            tracing::warn!(name = ?String::from_utf8_lossy(&node.name), "unsafe name in snapshot; not restored");
            continue;
        }
        let name = OsStr::from_bytes(&node.name);
        let child_rel = rel.join(name);
        let child_snap = snap.join(name);
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(sub)) => {
                let subtree = repo.load_tree(&sub)?;
                let before = items.len();
                items.push(Item::Dir(child_rel.clone(), node.clone()));
                plan(repo, &subtree, &child_rel, &child_snap, filter, items)?;
                // With includes, a directory holding nothing wanted is not created.
                if filter.includes.is_some()
                    && items.len() == before + 1
                    && !filter.wants(&child_snap, &node.name)
                {
                    items.truncate(before);
                }
            }
            (NodeKind::File, _) if filter.wants(&child_snap, &node.name) => {
                items.push(Item::File(child_rel, node.clone()))
            }
            (NodeKind::File, _) | (NodeKind::Dir, None) => {}
            _ if filter.wants(&child_snap, &node.name) => {
                items.push(Item::Other(child_rel, node.clone()))
            }
            _ => {}
        }
    }
    Ok(())
}

fn prepare_target(target: &Path) -> Result<(), EngineError> {
    let err = |reason: String| EngineError::Target {
        path: target.display().to_string(),
        reason,
    };
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(err("exists and is not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).map_err(|e| err(format!("cannot create: {e}")))
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Creates `target/rel` (its parent exists), refusing to pass through a symlink.
fn make_dir(target: &Path, rel: &Path) -> Result<(), String> {
    let path = target.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            // A file or symlink where the snapshot has a directory: replace it, never follow it.
            std::fs::remove_file(&path).map_err(|e| format!("cannot replace: {e}"))?;
            std::fs::create_dir(&path).map_err(|e| format!("cannot create: {e}"))
        }
        Err(_) => std::fs::create_dir(&path).map_err(|e| format!("cannot create: {e}")),
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let short: String = name.chars().take(100).collect();
    path.with_file_name(format!(".{short}.restore-{:08x}", rand::random::<u32>()))
}

fn restore_file(
    repo: &Repository,
    target: &Path,
    rel: &Path,
    node: &Node,
    verify: bool,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let dest = target.join(rel);
    let temp = temp_name(&dest);
    let result = (|| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
        // Offsets are known from the index, so the blobs of a large file are fetched and
        // written in parallel (pwrite); zero blocks are never written and stay holes.
        let lengths = node
            .content
            .iter()
            .map(|id| repo.with_index(|i| i.get(id).map(|l| u64::from(l.raw_length))))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| "damaged data: a blob of this file is not in the index".to_owned())?;
        let mut offsets = Vec::with_capacity(lengths.len());
        let mut total = 0u64;
        for len in &lengths {
            offsets.push(total);
            total += len;
        }
        f.set_len(total).map_err(|e| format!("set length: {e}"))?;
        let write_blob = |(id, offset): (&BlobId, &u64)| -> Result<(), String> {
            // A large file is cancelled between blobs, not only between files.
            if cancel.is_cancelled() {
                return Err("cancelled".to_owned());
            }
            let data = repo
                .read_blob(id)
                .map_err(|e| format!("damaged data: {e}"))?;
            write_sparse_at(&f, &data, *offset).map_err(|e| format!("write: {e}"))
        };
        if node.content.len() > 1 {
            node.content
                .par_iter()
                .zip(offsets.par_iter())
                .try_for_each(write_blob)?;
        } else {
            node.content
                .iter()
                .zip(offsets.iter())
                .try_for_each(write_blob)?;
        }
        drop(f);
        if verify {
            verify_file(repo, &temp, &node.content)?;
        }
        std::fs::rename(&temp, &dest).map_err(|e| format!("rename into place: {e}"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// File system block granularity for holes: zero blocks of this size are skipped, not written.
const HOLE_BLOCK: usize = 4096;

/// Writes `data` at `offset`, skipping all-zero blocks (the file was sized with `set_len`, so
/// what is not written reads as zeros and takes no space).
fn write_sparse_at(f: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut run: Option<usize> = None; // start of data blocks not yet written
    for (i, block) in data.chunks(HOLE_BLOCK).enumerate() {
        let start = i * HOLE_BLOCK;
        let zero = block.iter().all(|b| *b == 0);
        match (zero, run) {
            (true, Some(r)) => {
                f.write_all_at(&data[r..start], offset + r as u64)?;
                run = None;
            }
            (false, None) => run = Some(start),
            _ => {}
        }
    }
    if let Some(r) = run {
        f.write_all_at(&data[r..], offset + r as u64)?;
    }
    Ok(())
}

/// Re-reads a restored file and checks each piece against its blob id.
fn verify_file(repo: &Repository, path: &Path, content: &[BlobId]) -> Result<(), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("verify: {e}"))?;
    for id in content {
        let len = repo
            .with_index(|i| i.get(id).map(|l| l.raw_length))
            .ok_or_else(|| format!("verify: blob {id} not indexed"))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf).map_err(|e| format!("verify: {e}"))?;
        if repo.blob_id(&buf) != *id {
            return Err(format!("verify: content differs from blob {id}"));
        }
    }
    Ok(())
}

/// Symlinks, FIFOs and devices. `Ok(false)` for sockets, which are recorded but not restored.
fn restore_other(target: &Path, rel: &Path, node: &Node, as_root: bool) -> Result<bool, String> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    let dest = target.join(rel);
    if std::fs::symlink_metadata(&dest).is_ok() {
        std::fs::remove_file(&dest).map_err(|e| format!("cannot replace: {e}"))?;
    }
    let mode = Mode::from_bits_truncate(node.mode);
    match node.kind {
        NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), &dest)
            .map_err(|e| format!("symlink: {e}"))?,
        NodeKind::Fifo => nix::unistd::mkfifo(&dest, mode).map_err(|e| format!("mkfifo: {e}"))?,
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            if !as_root {
                return Err("device files can only be restored as root".into());
            }
            let kind = if node.kind == NodeKind::CharDevice {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            mknod(&dest, kind, mode, node.rdev).map_err(|e| format!("mknod: {e}"))?
        }
        NodeKind::Socket => return Ok(false),
        NodeKind::File | NodeKind::Dir => return Err("unexpected node kind".into()),
    }
    Ok(true)
}
