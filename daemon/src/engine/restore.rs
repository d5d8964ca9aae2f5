//! Restore: a snapshot (or a subtree of it) into a target directory, files in parallel.
//!
//! The target may be writable by a less-privileged user while root restores into it, so
//! nothing here resolves a path string: the target is opened once ([`target`]), every
//! directory below it from its parent's descriptor without following symlinks, and every file
//! is created with `O_CREAT|O_EXCL|O_NOFOLLOW` and its metadata set through its own
//! descriptor. Directory metadata comes last, deepest first, through the directory's
//! descriptor. A swapped component makes the entries under it fail; it never redirects a
//! write, a chmod or a chown.
//!
//! Where an entry may already exist, the new one is written under a random temporary name and
//! renamed over it, so the old one stays whole until the new one is. In a directory this
//! restore created (or a target that was empty), nothing can be there: files and symlinks are
//! created under their own names, without the existence check, the temporary name and the
//! rename (three system calls of about ten per file). Should one be there after all, the
//! exclusive create fails and the entry takes the careful path.
//!
//! A damaged blob fails only the files that need it; they are named in the outcome and the
//! rest is restored. An entry already at the target is replaced, compared or kept as
//! [`Overwrite`] says ([`existing`]).

mod compare;
mod existing;
mod packs;
mod plan;
mod target;

use super::fsmeta;
use super::progress::Progress;
use super::EngineError;
use crate::repo::tree::{Node, NodeKind};
use crate::repo::Repository;
use crate::security::fsid::FsIdentity;
use backupd_common::ids::{BlobId, PackId, SnapshotId};
use backupd_common::protocol::Overwrite;
pub use compare::{compare, Comparison, Extras};
use existing::Existing;
pub use plan::Filter;
use plan::{Entry, Plan};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use target::Dirs;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// `latest`, a snapshot id or a unique prefix.
    pub snapshot: String,
    /// What `latest` must match (its path: the subpath restored).
    pub filter: backupd_common::protocol::SnapshotFilter,
    /// Absolute path inside the snapshot whose contents go into `target`; `None` restores the
    /// whole snapshot (absolute paths recreated under `target`).
    pub subpath: Option<PathBuf>,
    pub target: PathBuf,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// Re-read every restored file and compare it with the snapshot.
    pub verify: bool,
    /// Leave ownership to the restoring user even when restoring as root.
    pub no_owner: bool,
    /// Drop setuid/setgid bits; `None` drops them unless the restore goes back to the
    /// original location (a setuid-root file must not appear in someone else's directory).
    pub strip_setid: Option<bool>,
    /// What happens to an entry already at the target.
    pub overwrite: Overwrite,
    /// The user whose rights every write into the target runs with (`None`: the daemon's).
    /// Such a restore never sets owners, always drops setuid/setgid bits and creates no
    /// device nodes: the files are the user's by construction, and the kernel refuses what
    /// the user could not create or replace.
    pub identity: Option<Arc<FsIdentity>>,
    /// Only these paths (relative to `subpath`, `/`-separated) and what is below them.
    pub only: Option<Arc<HashSet<Vec<u8>>>>,
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
    /// Existing entries replaced (counted in `files`/`other` too).
    pub replaced: u64,
    /// Existing entries left alone because they equal the snapshot's.
    pub unchanged: u64,
    /// Existing entries left alone because `--overwrite never` said so.
    pub kept: u64,
}

impl RestoreOutcome {
    pub fn is_partial(&self) -> bool {
        !self.failed.is_empty()
    }
}

pub fn restore(
    repo: &Repository,
    opts: &RestoreOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome, EngineError> {
    super::on_workers(opts.identity.as_ref(), None, || {
        restore_on_pool(repo, opts, progress, cancel)
    })
}

fn restore_on_pool(
    repo: &Repository,
    opts: &RestoreOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome, EngineError> {
    let _lock = repo.lock_waiting(
        crate::repo::lock::LockMode::ReadOnly,
        "restore",
        crate::repo::LOCK_WAIT,
        cancel,
    )?;
    repo.refresh_index()?;
    let (snap_id, plan, original) = plan_for(repo, opts)?;

    let root = target::open_target(&opts.target).map_err(|e| match e {
        target::OpenError::ReadOnly => EngineError::ReadOnlyTarget {
            path: opts.target.display().to_string(),
        },
        target::OpenError::Other(reason) => EngineError::Target {
            path: opts.target.display().to_string(),
            reason,
        },
    })?;
    let in_place = match (root.stat(), nix::sys::stat::stat(&original)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    };
    let for_user = opts.identity.is_some();
    let as_root = nix::unistd::geteuid().is_root() && !for_user;
    // A remote store answers a request for a whole pack about as fast as one for a blob.
    let packs = repo.location().is_remote().then(|| {
        packs::PackWindows::new(
            repo,
            plan.items.iter().flat_map(|item| match &item.entry {
                Entry::File(node) => node.content.iter(),
                _ => [].iter(),
            }),
        )
    });
    // An empty target is as fresh as a directory the restore creates.
    let target_empty = root.list().is_ok_and(|names| names.is_empty());
    let fresh: Vec<std::sync::atomic::AtomicBool> = (0..plan.dirs.len())
        .map(|i| std::sync::atomic::AtomicBool::new(i == plan::TARGET && target_empty))
        .collect();
    let run = Run {
        repo,
        open_packs: packs.is_none().then(|| repo.open_packs()).flatten(),
        packs,
        fresh,
        plan: &plan,
        dirs: Dirs::new(&plan.dirs, root),
        owner: as_root && !opts.no_owner,
        as_root,
        for_user,
        strip_setid: for_user || opts.strip_setid.unwrap_or(!in_place),
        verify: opts.verify,
        overwrite: opts.overwrite,
        progress,
        cancel,
        outcome: Mutex::new(RestoreOutcome {
            snapshot: Some(snap_id),
            failed: plan.refused.clone(),
            ..Default::default()
        }),
    };
    progress.set_totals(
        (plan.items.len() + plan.dirs.len() - 1) as u64,
        plan.bytes(),
    );

    let failed_dirs = run.make_dirs();
    run.restore_files(&failed_dirs)?;
    run.restore_others(&failed_dirs);
    run.apply_dir_metadata(&failed_dirs);
    Ok(run.outcome.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// How many files (and other entries) and bytes restoring `opts` writes.
pub fn measure(repo: &Repository, opts: &RestoreOptions) -> Result<(u64, u64), EngineError> {
    let (_, plan, _) = plan_for(repo, opts)?;
    Ok((plan.items.len() as u64, plan.bytes()))
}

/// Every blob restoring `opts` reads, each once, in the order the restore needs them.
pub fn blobs(repo: &Repository, opts: &RestoreOptions) -> Result<Vec<BlobId>, EngineError> {
    let (_, plan, _) = plan_for(repo, opts)?;
    let mut seen = HashSet::new();
    Ok(plan
        .items
        .iter()
        .filter_map(|i| match &i.entry {
            Entry::File(n) => Some(n),
            Entry::Other(_) => None,
        })
        .flat_map(|n| n.content.iter().copied())
        .filter(|b| seen.insert(*b))
        .collect())
}

/// Whether the entry named `node.name` in `dir` already holds what `node` records (the test
/// `--overwrite if-changed` applies: kind, size, mtime, then the content itself).
pub fn unchanged(repo: &Repository, dir: &super::dirfd::DirFd, node: &Node) -> bool {
    existing::decide(repo, dir, node, Overwrite::IfChanged) == Existing::Unchanged
}

/// What `opts` restores from `repo`: the snapshot, the plan, and where the restored entries
/// lived (restoring there is "in place").
fn plan_for(
    repo: &Repository,
    opts: &RestoreOptions,
) -> Result<(SnapshotId, Plan, PathBuf), EngineError> {
    let (snap_id, snapshot) = repo.find_snapshot(&opts.snapshot, &opts.filter)?;
    let filter = Filter::new(&opts.includes, &opts.excludes)?.only(opts.only.clone());

    // Find the tree (or single node) to restore.
    let mut tree = repo.load_tree(&snapshot.tree)?;
    let mut snap_base = PathBuf::from("/");
    let mut single: Option<Node> = None;
    if let Some(sub) = &opts.subpath {
        let not_found = || EngineError::NotInSnapshot {
            path: sub.display().to_string(),
            snapshot: snap_id.short(),
        };
        let comps: Vec<_> = sub
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.as_bytes().to_vec()),
                _ => None,
            })
            .collect();
        for (i, name) in comps.iter().enumerate() {
            let node = tree.find(name).cloned().ok_or_else(not_found)?;
            snap_base.push(OsStr::from_bytes(name));
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(id)) => tree = repo.load_tree(&id)?,
                _ if i + 1 == comps.len() => single = Some(node),
                _ => return Err(not_found()),
            }
        }
    }
    let original = match (&opts.subpath, &single) {
        (None, _) => PathBuf::from("/"),
        (Some(sub), Some(_)) => sub.parent().unwrap_or(Path::new("/")).to_path_buf(),
        (Some(sub), None) => sub.clone(),
    };
    let plan = match single {
        Some(node) => Plan::single(node),
        None => Plan::build(repo, tree, &snap_base, &filter)?,
    };

    Ok((snap_id, plan, original))
}

/// One restore in progress: the plan, the open directories and the outcome so far.
struct Run<'a> {
    repo: &'a Repository,
    /// Blobs by pack, for a remote repository.
    packs: Option<packs::PackWindows>,
    /// Pack files held open, for a local one.
    open_packs: Option<crate::repo::OpenPacks>,
    /// By plan directory: created by this restore (or the empty target), so nothing is in it
    /// but what this restore puts there.
    fresh: Vec<std::sync::atomic::AtomicBool>,
    plan: &'a Plan,
    dirs: Dirs<'a>,
    /// Restore owners (root, and not `--no-owner`).
    owner: bool,
    as_root: bool,
    /// Acting for a user: device nodes are left out (with a warning), not failed.
    for_user: bool,
    strip_setid: bool,
    verify: bool,
    overwrite: Overwrite,
    progress: &'a Progress,
    cancel: &'a CancellationToken,
    outcome: Mutex<RestoreOutcome>,
}

impl Run<'_> {
    fn fail(&self, dir: usize, name: &[u8], reason: String) {
        self.progress.error();
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed
            .push((self.plan.rel_path(dir, name), reason));
    }

    fn warn(&self, dir: usize, name: &[u8], warnings: Vec<String>) {
        if !warnings.is_empty() {
            let rel = self.plan.rel_path(dir, name);
            let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
            for w in warnings {
                o.warnings.push((rel.clone(), w));
            }
        }
    }

    fn count(&self, f: impl FnOnce(&mut RestoreOutcome)) {
        f(&mut self.outcome.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn is_fresh(&self, dir: usize) -> bool {
        self.fresh
            .get(dir)
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// What is already where `node` goes, by the `--overwrite` policy.
    fn existing(&self, dir: usize, node: &Node) -> Result<Existing, String> {
        if self.is_fresh(dir) {
            return Ok(Existing::Absent);
        }
        let d = self
            .dirs
            .get(dir)
            .map_err(|e| format!("open directory: {e}"))?;
        Ok(existing::decide(self.repo, &d, node, self.overwrite))
    }

    /// Counts an existing entry the restore left alone.
    fn count_left(&self, existing: Existing) {
        self.count(|o| match existing {
            Existing::Unchanged => o.unchanged += 1,
            Existing::Keep => o.kept += 1,
            Existing::Absent | Existing::Replace => {}
        });
    }

    /// Creates the directories, parents first, private (0700) until their metadata is
    /// applied at the end. Returns the ones that could not be created (everything under them
    /// is skipped; the directory itself is reported once).
    fn make_dirs(&self) -> HashSet<usize> {
        let mut failed = HashSet::new();
        for (i, d) in self.plan.dirs.iter().enumerate().skip(1) {
            if !d.keep {
                continue;
            }
            if failed.contains(&d.parent) {
                failed.insert(i);
                continue;
            }
            match self.make_dir(d.parent, &d.name) {
                Ok(created) => self.fresh[i].store(created, std::sync::atomic::Ordering::Relaxed),
                Err(reason) => {
                    self.fail(d.parent, &d.name, reason);
                    failed.insert(i);
                }
            }
        }
        failed
    }

    /// Creates (or finds) one directory; whether this restore created it.
    fn make_dir(&self, parent: usize, name: &[u8]) -> Result<bool, String> {
        let p = self
            .dirs
            .get(parent)
            .map_err(|e| format!("open parent directory: {e}"))?;
        match p.mkdir(name, 0o700) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create: {e}")),
        }
        match p.open_dir(name) {
            Ok(_) => Ok(false),
            // A file or symlink where the snapshot has a directory: replace it, never follow it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                p.unlink(name).map_err(|e| format!("cannot replace: {e}"))?;
                p.mkdir(name, 0o700)
                    .map_err(|e| format!("cannot create: {e}"))?;
                Ok(true)
            }
            Err(e) => Err(format!("cannot open: {e}")),
        }
    }

    /// File contents, in parallel; hard links once their first path is there.
    fn restore_files(&self, failed_dirs: &HashSet<usize>) -> Result<(), EngineError> {
        let mut first_links: HashMap<(u64, u64), (usize, &[u8])> = HashMap::new();
        let mut later_links = Vec::new();
        let mut independent = Vec::new();
        for item in &self.plan.items {
            let Entry::File(node) = &item.entry else {
                continue;
            };
            if failed_dirs.contains(&item.dir) {
                continue;
            }
            if node.nlink > 1 {
                let key = (node.dev, node.inode);
                if let Some(first) = first_links.get(&key) {
                    later_links.push((item.dir, node, *first, key));
                    continue;
                }
                first_links.insert(key, (item.dir, node.name.as_slice()));
            }
            independent.push((item.dir, node));
        }
        let linkable: Mutex<HashSet<(u64, u64)>> = Mutex::new(HashSet::new());
        // From a remote store, files go in the order of their data in the packs, so that each
        // pack's span is fetched once and used up while held (packs::PackWindows); locally,
        // in plan order (directory by directory).
        if self.packs.is_some() {
            let first_blob = |node: &Node| {
                node.content
                    .first()
                    .and_then(|id| self.repo.blob_location(id).ok())
                    .map(|l| (l.pack, l.offset))
            };
            independent.sort_by_cached_key(|(_, node)| first_blob(node));
        }
        // From a remote store, files are taken in that order by every worker (not split into
        // ranges as par_iter would), so that the workers move through the packs together.
        // Locally par_iter's ranges stay: workers in different directories do not wait on
        // one directory's lock to create their files.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let restore_one = |(dir, node): &(usize, &Node)| {
            if self.cancel.is_cancelled() {
                return;
            }
            let existing = match self.existing(*dir, node) {
                Ok(e) => e,
                Err(reason) => return self.fail(*dir, &node.name, reason),
            };
            let restored = match existing {
                Existing::Unchanged | Existing::Keep => Ok(None),
                Existing::Absent | Existing::Replace => self.restore_file(*dir, node).map(Some),
            };
            match restored {
                Ok(warnings) => {
                    self.progress.add(1, node.size);
                    // A kept file may hold anything: linking the rest of its group to it
                    // would spread that, so they are kept as well.
                    if node.nlink > 1 && existing != Existing::Keep {
                        linkable
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert((node.dev, node.inode));
                    }
                    match warnings {
                        Some(warnings) => {
                            self.warn(*dir, &node.name, warnings);
                            self.count(|o| {
                                o.files += 1;
                                o.bytes += node.size;
                                o.replaced += u64::from(existing == Existing::Replace);
                            });
                        }
                        None => self.count_left(existing),
                    }
                }
                Err(reason) => self.fail(*dir, &node.name, reason),
            }
        };
        let order: Vec<PackId> = match &self.packs {
            Some(_) => {
                let mut seen = HashSet::new();
                independent
                    .iter()
                    .flat_map(|(_, node)| node.content.iter())
                    .filter_map(|id| self.repo.blob_location(id).ok().map(|l| l.pack))
                    .filter(|p| seen.insert(*p))
                    .collect()
            }
            None => Vec::new(),
        };
        let (prefetched, done) = (
            std::sync::atomic::AtomicUsize::new(0),
            std::sync::atomic::AtomicBool::new(false),
        );
        std::thread::scope(|threads| {
            if let Some(windows) = &self.packs {
                for _ in 0..packs::PREFETCHERS {
                    threads.spawn(|| windows.prefetch(self.repo, &order, &prefetched, &done));
                }
            }
            if self.packs.is_none() {
                independent.par_iter().for_each(restore_one);
                return;
            }
            rayon::scope(|scope| {
                for _ in 0..rayon::current_num_threads().max(1) {
                    scope.spawn(|_| {
                        while let Some(item) =
                            independent.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                        {
                            restore_one(item);
                        }
                    });
                }
            });
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        if self.cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let linkable = linkable.into_inner().unwrap_or_else(|p| p.into_inner());
        for (dir, node, (orig_dir, orig_name), key) in later_links {
            let existing = match self.existing(dir, node) {
                Ok(e) => e,
                Err(reason) => {
                    self.fail(dir, &node.name, reason);
                    continue;
                }
            };
            if matches!(existing, Existing::Unchanged | Existing::Keep) {
                self.progress.add(1, node.size);
                self.count_left(existing);
                continue;
            }
            if !linkable.contains(&key) {
                // The first path of this link group failed: linking to whatever sits there
                // now would be wrong. The file needs the same data, so it fails the same way.
                let orig = self.plan.rel_path(orig_dir, orig_name);
                self.fail(
                    dir,
                    &node.name,
                    format!("hard link to {orig}, which could not be restored"),
                );
                continue;
            }
            match self.link(orig_dir, orig_name, dir, &node.name) {
                Ok(()) => {
                    self.progress.add(1, node.size);
                    self.count(|o| {
                        o.files += 1;
                        o.replaced += u64::from(existing != Existing::Absent);
                    });
                }
                Err(reason) => {
                    let orig = self.plan.rel_path(orig_dir, orig_name);
                    self.fail(dir, &node.name, format!("hard link to {orig}: {reason}"));
                }
            }
        }
        Ok(())
    }

    /// Links under a temporary name, then renames over the destination (never deletes first).
    fn link(&self, from_dir: usize, from: &[u8], dir: usize, name: &[u8]) -> Result<(), String> {
        let src = self.dirs.get(from_dir).map_err(|e| e.to_string())?;
        let dst = self.dirs.get(dir).map_err(|e| e.to_string())?;
        let temp = temp_name();
        src.link(from, &dst, &temp).map_err(|e| e.to_string())?;
        dst.rename(&temp, &dst, name).map_err(|e| {
            let _ = dst.unlink(&temp);
            e.to_string()
        })
    }

    /// Writes one file and sets its metadata through its descriptor: in a fresh directory
    /// under its own name, elsewhere under a temporary name renamed into place. Returns the
    /// metadata warnings.
    fn restore_file(&self, dir: usize, node: &Node) -> Result<Vec<String>, String> {
        let d = self
            .dirs
            .get(dir)
            .map_err(|e| format!("open directory: {e}"))?;
        if self.is_fresh(dir) {
            match d.create_new(&node.name, 0o600) {
                Ok(f) => {
                    let result = self
                        .fill(&f, node)
                        .map(|()| fsmeta::apply_fd(&f, node, self.owner, self.strip_setid));
                    if result.is_err() {
                        // Ours: created exclusively in a directory only we can write.
                        let _ = d.unlink(&node.name);
                    }
                    return result;
                }
                // Something appeared after all: replace it the careful way.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create: {e}")),
            }
        }
        let temp = temp_name();
        let f = d
            .create_new(&temp, 0o600)
            .map_err(|e| format!("cannot create a temporary file: {e}"))?;
        let result = self.fill(&f, node).and_then(|()| {
            let warnings = fsmeta::apply_fd(&f, node, self.owner, self.strip_setid);
            d.rename(&temp, &d, &node.name)
                .map_err(|e| format!("rename into place: {e}"))?;
            Ok(warnings)
        });
        if result.is_err() {
            let _ = d.unlink(&temp);
        }
        result
    }

    fn fill(&self, f: &File, node: &Node) -> Result<(), String> {
        let repo = self.repo;
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
        // Writing the last byte sets the length; a file ending in a hole needs `set_len`.
        let ends_in_hole = std::sync::atomic::AtomicBool::new(total > 0);
        let last = node.content.len().saturating_sub(1);
        let write_blob = |(i, (id, offset)): (usize, (&BlobId, &u64))| -> Result<(), String> {
            // A large file is cancelled between blobs, not only between files.
            if self.cancel.is_cancelled() {
                return Err("cancelled".to_owned());
            }
            let data = match (&self.packs, &self.open_packs) {
                (Some(windows), _) => windows.read_blob(repo, id),
                (None, Some(open)) => repo.read_blob_in(id, open),
                (None, None) => repo.read_blob(id),
            }
            .map_err(|e| format!("damaged data: {e}"))?;
            let wrote_end =
                write_sparse_at(f, &data, *offset).map_err(|e| format!("write: {e}"))?;
            if i == last && wrote_end && *offset + data.len() as u64 == total {
                ends_in_hole.store(false, std::sync::atomic::Ordering::Relaxed);
            }
            crate::perf::counters::add_restored(data.len() as u64);
            Ok(())
        };
        if node.content.len() > 1 {
            node.content
                .par_iter()
                .zip(offsets.par_iter())
                .enumerate()
                .try_for_each(write_blob)?;
        } else {
            node.content
                .iter()
                .zip(offsets.iter())
                .enumerate()
                .try_for_each(write_blob)?;
        }
        // The file was created empty (under a temporary name or in a fresh directory), so only
        // a hole at its end is left to size.
        if ends_in_hole.load(std::sync::atomic::Ordering::Relaxed) {
            f.set_len(total).map_err(|e| format!("set length: {e}"))?;
        }
        if self.verify {
            verify_file(repo, f, &node.content)?;
        }
        Ok(())
    }

    /// Symlinks and special files.
    fn restore_others(&self, failed_dirs: &HashSet<usize>) {
        for item in &self.plan.items {
            let Entry::Other(node) = &item.entry else {
                continue;
            };
            if failed_dirs.contains(&item.dir) {
                continue;
            }
            let existing = match self.existing(item.dir, node) {
                Ok(e) => e,
                Err(reason) => {
                    self.fail(item.dir, &node.name, reason);
                    continue;
                }
            };
            if matches!(existing, Existing::Unchanged | Existing::Keep) {
                self.count_left(existing);
                self.progress.add(1, 0);
                continue;
            }
            match self.restore_other(item.dir, node) {
                Ok(Some(warnings)) => {
                    self.warn(item.dir, &node.name, warnings);
                    self.count(|o| {
                        o.other += 1;
                        o.replaced += u64::from(existing == Existing::Replace);
                    });
                }
                Ok(None) => {}
                Err(reason) => self.fail(item.dir, &node.name, reason),
            }
            self.progress.add(1, 0);
        }
    }

    /// Creates a symlink, FIFO or device and sets its metadata: in a fresh directory under its
    /// own name, elsewhere under a temporary name renamed into place. `Ok(None)` for sockets,
    /// which are recorded but not restored.
    fn restore_other(&self, dir: usize, node: &Node) -> Result<Option<Vec<String>>, String> {
        let d = self
            .dirs
            .get(dir)
            .map_err(|e| format!("open directory: {e}"))?;
        if self.is_fresh(dir) {
            match self.make_special(&d, &node.name, dir, node) {
                Ok(false) => return Ok(None),
                Ok(true) => {
                    let result =
                        fsmeta::apply_special(&d, &node.name, node, self.owner, self.strip_setid);
                    if result.is_err() {
                        let _ = d.unlink(&node.name);
                    }
                    return result.map(Some);
                }
                // Something appeared after all: replace it the careful way.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let temp = temp_name();
        if !self
            .make_special(&d, &temp, dir, node)
            .map_err(|e| e.to_string())?
        {
            return Ok(None);
        }
        let result = fsmeta::apply_special(&d, &temp, node, self.owner, self.strip_setid).and_then(
            |warnings| {
                d.rename(&temp, &d, &node.name)
                    .map_err(|e| format!("rename into place: {e}"))?;
                Ok(warnings)
            },
        );
        if result.is_err() {
            let _ = d.unlink(&temp);
        }
        result.map(Some)
    }

    /// Creates `node` (not a file or directory) as `name` in `d`; `false` when it is not
    /// restored (a socket, or a device for a user, with a warning). The error keeps the OS
    /// error's kind, with what failed in its text.
    fn make_special(
        &self,
        d: &super::dirfd::DirFd,
        name: &[u8],
        dir: usize,
        node: &Node,
    ) -> std::io::Result<bool> {
        use nix::sys::stat::SFlag;
        let with = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
        };
        let mode = fsmeta::restored_mode(node.mode, self.strip_setid) & 0o7777;
        match node.kind {
            NodeKind::Symlink => d.symlink(&node.target, name).map_err(with("symlink"))?,
            NodeKind::Fifo => d
                .mknod(name, SFlag::S_IFIFO, mode, 0)
                .map_err(with("mkfifo"))?,
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                // The thread keeps CAP_MKNOD under a user's fsuid: the refusal is ours.
                if self.for_user {
                    let why = "device node not restored: a restore on behalf of a user never \
                               creates device nodes (restore it as root)";
                    self.warn(dir, &node.name, vec![why.to_owned()]);
                    return Ok(false);
                }
                if !self.as_root {
                    return Err(std::io::Error::other(
                        "device files can only be restored as root",
                    ));
                }
                let kind = if node.kind == NodeKind::CharDevice {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                d.mknod(name, kind, mode, node.rdev)
                    .map_err(with("mknod"))?
            }
            NodeKind::Socket => return Ok(false),
            NodeKind::File | NodeKind::Dir => {
                return Err(std::io::Error::other("unexpected node kind"))
            }
        }
        Ok(true)
    }

    /// Directory metadata, deepest first (creating children changed their mtimes).
    fn apply_dir_metadata(&self, failed_dirs: &HashSet<usize>) {
        for (i, d) in self.plan.dirs.iter().enumerate().skip(1).rev() {
            let Some(node) = d
                .node
                .as_ref()
                .filter(|_| d.keep && !failed_dirs.contains(&i))
            else {
                continue;
            };
            match self.dirs.get(i) {
                Ok(fd) => self.warn(
                    d.parent,
                    &d.name,
                    fsmeta::apply_fd(fd.file(), node, self.owner, self.strip_setid),
                ),
                Err(e) => self.warn(d.parent, &d.name, vec![format!("reopen for metadata: {e}")]),
            }
            self.dirs.forget(i);
            self.count(|o| o.dirs += 1);
            self.progress.add(1, 0);
        }
    }
}

const TEMP_PREFIX: &str = ".backupd-restore.";

/// A temporary name in the destination's directory: short and fixed-length, so any name that
/// fits the file system's 255-byte limit can be restored.
fn temp_name() -> Vec<u8> {
    format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()).into_bytes()
}

/// Deletes the temporary files an interrupted restore left anywhere under `root` (walked by
/// descriptors, iteratively, never following a symlink); returns how many.
pub fn remove_temporaries(root: &super::dirfd::DirFd) -> std::io::Result<u64> {
    let mut removed = 0;
    let mut stack = vec![root.try_clone()?];
    while let Some(dir) = stack.pop() {
        for name in dir.list()? {
            if name.starts_with(TEMP_PREFIX.as_bytes()) {
                dir.unlink(&name)?;
                removed += 1;
            } else if let Ok(sub) = dir.open_dir(&name) {
                stack.push(sub);
            }
        }
    }
    Ok(removed)
}

/// File system block granularity for holes: zero blocks of this size are skipped, not written.
const HOLE_BLOCK: usize = 4096;

/// Writes `data` at `offset`, skipping all-zero blocks (the file is sized with `set_len` when
/// it ends in one, so what is not written reads as zeros and takes no space). Returns whether
/// the last byte of `data` was written.
fn write_sparse_at(f: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<bool> {
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
        return Ok(true);
    }
    Ok(data.is_empty())
}

/// Re-reads a restored file through its descriptor and checks each piece against its blob id.
fn verify_file(repo: &Repository, f: &File, content: &[BlobId]) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let mut offset = 0u64;
    for id in content {
        let len = repo
            .with_index(|i| i.get(id).map(|l| l.raw_length))
            .ok_or_else(|| format!("verify: blob {id} not indexed"))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| format!("verify: {e}"))?;
        if repo.blob_id(&buf) != *id {
            return Err(format!("verify: content differs from blob {id}"));
        }
        offset += u64::from(len);
    }
    Ok(())
}
