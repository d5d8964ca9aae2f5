//! Backup: walk the sources in parallel (rayon), read and chunk changed files, store new blobs in
//! packs, then write the index and finally the snapshot (packs → index → snapshot, so a crash at
//! any point leaves at worst unreferenced packs).
//!
//! Files unchanged since the parent snapshot (same size, mtime, ctime, inode) are not read.
//! Unreadable files are skipped, counted and named in the snapshot; the backup is then partial.
//!
//! A backup whose root tree, paths, tags and host equal its parent's writes no snapshot: the
//! parent is kept (trees are content-addressed, so equal trees are one id comparison). An
//! entry's atime alone never makes a difference: an entry that is still the parent's (same
//! kind and inode) keeps the parent's atime, since reading it (this backup included) moves it.
//! `--force` has no parent, so it always writes a snapshot. A dry run ([`dry_run`]) walks and
//! chunks the same way and writes nothing.

use super::chunker::{chunk_stream, ChunkError, ChunkerParams};
use super::dirfd::{self, DirFd};
use super::excludes::Excludes;
use super::fsmeta::{self, NameCache};
use super::incremental::{Change, Dirty, Totals};
use super::progress::Progress;
use super::sources::{normalize_sources, scan_totals, PrefixTree};
use super::EngineError;
use crate::repo::index::IndexedPack;
use crate::repo::pack::{BlobKind, PackBuilder};
use crate::repo::snapshot::{Snapshot, SnapshotStats, SNAPSHOT_VERSION};
use crate::repo::tree::{Node, NodeKind, Tree, TREE_VERSION};
use crate::repo::{now_ns, Repository};
use crate::security::fsid::{self, FsIdentity};
use backupd_common::ids::{BlobId, SnapshotId};
use nix::sys::stat::FileStat;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    pub exclude_files: Vec<PathBuf>,
    pub exclude_caches: bool,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    pub host: Option<String>,
    /// Snapshot time (ns since the epoch); now when `None`.
    pub time_ns: Option<i64>,
    /// Parent snapshot; when `None`, the latest snapshot of the same host and paths.
    pub parent: Option<SnapshotId>,
    /// Read every file even if unchanged since the parent, and write a snapshot even if it
    /// equals the parent.
    pub force: bool,
    pub zstd_level: i32,
    /// Size packs are closed at (the tuner lowers it under memory pressure).
    pub pack_bytes: usize,
    /// The engine threads and priority the backup runs with (`None`: the shared pool).
    pub lane: Option<super::Lane>,
    /// Paths never backed up (the daemon adds its state dir).
    pub always_exclude: Vec<PathBuf>,
    /// Only these paths changed since the parent: the snapshot is the parent's tree with them
    /// re-examined, and nothing else is walked. Ignored without a parent (a full walk then).
    pub changes: Option<Vec<(PathBuf, Change)>>,
    /// An earlier attempt of this backup was cut short (full disk, crash): index the young
    /// packs it left before deduplicating. Off for first attempts, which then skip listing
    /// every pack (a watched one-file change stays a few milliseconds).
    pub reuse_unindexed: bool,
    /// The user whose rights every look at the source tree (stat, open, list, readlink,
    /// xattrs) runs with; `None`: the daemon's. The snapshot records the user as its owner.
    pub identity: Option<Arc<FsIdentity>>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            excludes: Vec::new(),
            exclude_files: Vec::new(),
            exclude_caches: false,
            one_file_system: false,
            tags: Vec::new(),
            host: None,
            time_ns: None,
            parent: None,
            force: false,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            pack_bytes: crate::repo::pack::TARGET_PACK_SIZE,
            lane: None,
            always_exclude: Vec::new(),
            changes: None,
            reuse_unindexed: false,
            identity: None,
        }
    }
}

/// Directory levels below a source that a backup descends. Deeper directories are skipped
/// (and named in the snapshot); the walk recurses, and this bounds its stack.
pub const MAX_DEPTH: usize = 1024;

/// Directory levels whose entries are walked in parallel; below that, one after the other.
const PARALLEL_DEPTH: usize = 32;

/// What a file may grow by while it is read before reading stops there.
const GROWTH_MARGIN: u64 = 16 << 20;

/// zstd level 1: on the mixed benchmark set it compresses within 1 % of level 3 at twice the
/// speed, and compression is the pipeline's bottleneck.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

#[derive(Debug)]
pub struct BackupOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    /// Directories listed (`readdir`); an incremental backup lists none of the unchanged ones.
    pub dirs_scanned: u64,
    /// Built from the parent's tree and the changed paths alone.
    pub incremental: bool,
    /// Nothing changed: `id` is the parent, kept; `snapshot` (never written) describes this
    /// run.
    pub unchanged: bool,
}

/// What a dry run found: the snapshot a backup would write now (never written), its stats
/// counting what would be read and what is new.
#[derive(Debug)]
pub struct DryRunOutcome {
    pub snapshot: Snapshot,
    pub dirs_scanned: u64,
}

impl BackupOutcome {
    pub fn is_partial(&self) -> bool {
        !self.snapshot.skipped.is_empty()
    }
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    other: AtomicU64,
    files_read: AtomicU64,
    bytes_total: AtomicU64,
    bytes_read: AtomicU64,
    bytes_added: AtomicU64,
    bytes_stored: AtomicU64,
    blobs_added: AtomicU64,
    changed_during_read: AtomicU64,
    dirs_scanned: AtomicU64,
}

pub(super) struct Session<'a> {
    pub(super) repo: &'a Repository,
    opts: &'a BackupOptions,
    pub(super) excludes: Excludes,
    names: NameCache,
    chunker: ChunkerParams,
    packer: Mutex<PackBuilder>,
    pack_buffers: super::pack_buffers::PackBuffers,
    /// Blobs stored by this session but maybe not yet in a finished pack.
    pending: Mutex<HashSet<BlobId>>,
    written: Mutex<Vec<IndexedPack>>,
    /// Content of hard-linked files already read, by (dev, inode).
    hardlinks: Mutex<HashMap<(u64, u64), Vec<BlobId>>>,
    skipped: Mutex<Vec<(Vec<u8>, String)>>,
    counters: Counters,
    /// What the entries an incremental backup re-examined counted in the parent.
    replaced: Mutex<Totals>,
    progress: &'a Progress,
    cancel: &'a CancellationToken,
    /// Count what would be stored, store nothing.
    dry_run: bool,
}

/// A walk's result before anything that names it is written.
struct Built {
    snapshot: Snapshot,
    parent: Option<Snapshot>,
    dirs_scanned: u64,
    incremental: bool,
    /// Held until the snapshot is written.
    _lock: crate::repo::lock::LockGuard,
}

/// Runs a backup of `opts.paths` into `repo`.
pub fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<BackupOutcome, EngineError> {
    let built = super::on_workers(opts.identity.as_ref(), opts.lane, || {
        build(repo, opts, false, progress, cancel)
    })?;
    let snap = &built.snapshot;
    if let (Some(kept), Some(parent)) = (snap.parent, &built.parent) {
        if same_snapshot(snap, parent) {
            tracing::info!(snapshot = %kept.short(), "nothing changed since the parent snapshot; it is kept, no snapshot written");
            return Ok(BackupOutcome {
                id: kept,
                snapshot: built.snapshot,
                dirs_scanned: built.dirs_scanned,
                incremental: built.incremental,
                unchanged: true,
            });
        }
    }
    let id = repo.write_snapshot(snap)?;
    Ok(BackupOutcome {
        id,
        snapshot: built.snapshot,
        dirs_scanned: built.dirs_scanned,
        incremental: built.incremental,
        unchanged: false,
    })
}

/// Walks and chunks like [`backup`] and reports what it would read and store, writing nothing
/// to the repository (no pack, index or snapshot; only its lock while it runs).
pub fn dry_run(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<DryRunOutcome, EngineError> {
    let built = super::on_workers(opts.identity.as_ref(), opts.lane, || {
        build(repo, opts, true, progress, cancel)
    })?;
    Ok(DryRunOutcome {
        snapshot: built.snapshot,
        dirs_scanned: built.dirs_scanned,
    })
}

/// What makes a snapshot differ from its parent: its content (the root tree) and the metadata
/// it is found by. Time, stats and username do not count.
fn same_snapshot(new: &Snapshot, parent: &Snapshot) -> bool {
    new.tree == parent.tree
        && new.paths == parent.paths
        && new.tags == parent.tags
        && new.host == parent.host
}

/// An entry that is still the parent's (same kind and inode) keeps the parent's atime: reading
/// it moves its atime, and that alone must not make a new snapshot.
pub(super) fn keep_parent_atime(node: &mut Node, parent: Option<&Node>) {
    if let Some(p) = parent.filter(|p| p.kind == node.kind && p.inode == node.inode) {
        node.atime_ns = p.atime_ns;
    }
}

fn build(
    repo: &Repository,
    opts: &BackupOptions,
    dry_run: bool,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Built, EngineError> {
    let started = Instant::now();
    let sources = normalize_sources(&opts.paths)?;
    let lock = repo.lock_waiting(
        crate::repo::lock::LockMode::Shared,
        "backup",
        crate::repo::LOCK_WAIT,
        cancel,
    )?;
    // Another process may have pruned or backed up since this repository was opened.
    repo.refresh_index()?;
    // A retry after a full disk or a crash reuses what the interrupted attempt stored.
    if opts.reuse_unindexed && !dry_run {
        super::adopt::adopt_unindexed_packs(repo, &lock)?;
    }
    let host = opts.host.clone().unwrap_or_else(crate::repo::hostname);
    let (parent, named_parent_gone) = find_parent(repo, opts, &host, &sources)?;
    let parent_tree = match &parent {
        Some((_, snap)) => Some(repo.load_tree(&snap.tree)?),
        None => None,
    };

    let mut excludes = Excludes::new(&opts.excludes, &opts.exclude_files)?.without_own_output();
    excludes.exclude_caches = opts.exclude_caches;
    excludes.one_file_system = opts.one_file_system;
    excludes.always = opts.always_exclude.clone();
    // A repository inside the backed-up tree must not back itself up.
    if let Some(dir) = repo.location().local_path() {
        excludes.always.push(dir.to_owned());
    }

    let keys = repo.keys();
    let config = repo.config();
    let session = Session {
        repo,
        opts,
        excludes,
        names: NameCache::default(),
        chunker: ChunkerParams {
            min: config.chunk_min,
            avg: config.chunk_avg,
            max: config.chunk_max,
            seed: keys.chunker_seed,
        },
        packer: Mutex::new(PackBuilder::with_target(opts.pack_bytes)),
        pack_buffers: super::pack_buffers::PackBuffers::new(if repo.location().is_remote() {
            rayon::current_num_threads()
        } else {
            1
        }),
        pending: Mutex::new(HashSet::new()),
        written: Mutex::new(Vec::new()),
        hardlinks: Mutex::new(HashMap::new()),
        skipped: Mutex::new(Vec::new()),
        counters: Counters::default(),
        replaced: Mutex::new(Totals::default()),
        progress,
        cancel,
        dry_run,
    };

    let prefixes = PrefixTree::build(&sources);
    let patch = match (&opts.changes, &parent_tree) {
        // Changes are relative to the named parent; another one would hide what changed since.
        (Some(_), _) if named_parent_gone => None,
        (Some(changes), Some(tree)) => Some((Dirty::build(changes, &sources), tree)),
        _ => None,
    };
    let incremental = patch.is_some();
    let stop_scan = cancel.child_token();
    let root = std::thread::scope(|scope| {
        if !incremental {
            // Totals for the progress display; an incremental backup knows its few paths.
            scope.spawn(|| {
                // Counting is looking too: with the user's rights, or not at all.
                let acting = opts.identity.as_ref().map(fsid::enter).transpose();
                match acting {
                    Ok(_acting) => scan_totals(&sources, &session.excludes, progress, &stop_scan),
                    Err(e) => tracing::warn!(error = %e, "no totals for the progress display"),
                }
            });
        }
        let root = if let Some((dirty, tree)) = &patch {
            if prefixes.is_source {
                session.patch_root(tree, dirty)
            } else {
                session.patch_prefix(&prefixes, Path::new("/"), tree, dirty)
            }
        } else if prefixes.is_source {
            // Backing up `/` itself: the root tree is the tree of `/`.
            session.open_root().and_then(|(root, st)| {
                session.backup_dir(&root, Path::new("/"), st.st_dev, parent_tree.clone(), 0)
            })
        } else {
            session.backup_prefix(&prefixes, Path::new("/"), parent_tree.as_ref())
        };
        stop_scan.cancel();
        root
    })?;
    session.finish_packs()?;
    let packs = std::mem::take(&mut *session.written.lock().unwrap_or_else(|p| p.into_inner()));
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    if !packs.is_empty() {
        repo.write_index(packs, Vec::new())?;
    }

    let c = &session.counters;
    let mut skipped =
        std::mem::take(&mut *session.skipped.lock().unwrap_or_else(|p| p.into_inner()));
    // Totals as a full walk would count them.
    let mut totals = Totals {
        files: c.files.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        other: c.other.load(Ordering::Relaxed),
        bytes: c.bytes_total.load(Ordering::Relaxed),
    };
    if let (Some((dirty, _)), Some((_, parent))) = (&patch, &parent) {
        let gone = *session.replaced.lock().unwrap_or_else(|p| p.into_inner());
        let p = &parent.stats;
        totals = Totals {
            files: (p.files + totals.files).saturating_sub(gone.files),
            dirs: (p.dirs + totals.dirs).saturating_sub(gone.dirs),
            other: (p.other + totals.other).saturating_sub(gone.other),
            bytes: (p.bytes_total + totals.bytes).saturating_sub(gone.bytes),
        };
        // Paths skipped before and not looked at again are still missing.
        let looked_at = |path: &[u8]| dirty_covers(dirty, path);
        let mut kept: Vec<_> = parent
            .skipped
            .iter()
            .filter(|(path, _)| !looked_at(path))
            .cloned()
            .collect();
        kept.append(&mut skipped);
        skipped = kept;
    }
    let (parent_id, parent_snapshot) = parent.unzip();
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        time_ns: opts.time_ns.unwrap_or_else(now_ns),
        host,
        username: nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default(),
        paths: sources
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect(),
        tags: opts.tags.clone(),
        parent: parent_id,
        tree: root,
        stats: SnapshotStats {
            files: totals.files,
            dirs: totals.dirs,
            other: totals.other,
            files_read: c.files_read.load(Ordering::Relaxed),
            bytes_total: totals.bytes,
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            bytes_added: c.bytes_added.load(Ordering::Relaxed),
            bytes_stored: c.bytes_stored.load(Ordering::Relaxed),
            blobs_added: c.blobs_added.load(Ordering::Relaxed),
            skipped: skipped.len() as u64,
            changed_during_read: c.changed_during_read.load(Ordering::Relaxed),
            duration_ms: started.elapsed().as_millis() as u64,
        },
        skipped,
        owner_uid: opts.identity.as_ref().map(|i| i.uid),
    };
    Ok(Built {
        snapshot,
        parent: parent_snapshot,
        dirs_scanned: c.dirs_scanned.load(Ordering::Relaxed),
        incremental,
        _lock: lock,
    })
}

/// Whether `path` is a changed path or lies under one.
fn dirty_covers(dirty: &Dirty, path: &[u8]) -> bool {
    let mut node = dirty;
    for name in path.split(|b| *b == b'/').filter(|n| !n.is_empty()) {
        if node.mark.is_some() {
            return true;
        }
        match node.children.get(name) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.mark.is_some()
}

/// The parent snapshot, and whether a parent named in the options no longer exists (forgotten,
/// or renamed by a re-encryption or migration of a format 1 repository): the backup then walks
/// everything against the newest snapshot of the same paths instead of failing.
fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    host: &str,
    sources: &[PathBuf],
) -> Result<(Option<(SnapshotId, Snapshot)>, bool), EngineError> {
    if opts.force {
        return Ok((None, false));
    }
    let mut named_gone = false;
    if let Some(id) = &opts.parent {
        match repo.read_snapshot(id) {
            Ok(snap) => return Ok((Some((*id, snap)), false)),
            Err(e) if snapshot_gone(repo, id) => {
                tracing::warn!(parent = %id.short(), error = %e, "the parent snapshot no longer exists; backing up everything against the newest snapshot of these paths");
                named_gone = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let paths: Vec<Vec<u8>> = sources
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    // Headers (the daemon's catalog) find it; only the parent itself is read.
    let found = repo.newest_snapshot_header(&|s| s.host == host && s.paths == paths)?;
    match found {
        Some((id, _)) => Ok((Some((id, repo.read_snapshot(&id)?)), named_gone)),
        None => Ok((None, named_gone)),
    }
}

fn snapshot_gone(repo: &Repository, id: &SnapshotId) -> bool {
    use crate::repo::backend::{ErrorKind, Key};
    matches!(
        repo.backend().size(Key::snapshot(&id.to_hex())),
        Err(e) if e.kind == ErrorKind::NotFound
    )
}

thread_local! {
    /// Each worker thread's chunker window, allocated once.
    static CHUNK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads a file expected to hold at most `limit` bytes. `None` (and the file rewound) when it
/// grew past that since `stat`: then it goes through the chunker.
fn read_small(mut file: &std::fs::File, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Read, Seek};
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        file.rewind()?;
        return Ok(None);
    }
    Ok(Some(data))
}

impl Session<'_> {
    pub(super) fn names(&self) -> &NameCache {
        &self.names
    }

    /// A directory an incremental backup re-stat'ed but did not list.
    pub(super) fn count_dir(&self) {
        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
    }

    /// Records what a re-examined entry counted in the parent snapshot.
    pub(super) fn replaced(&self, t: Totals) {
        let mut r = self.replaced.lock().unwrap_or_else(|p| p.into_inner());
        r.files += t.files;
        r.dirs += t.dirs;
        r.other += t.other;
        r.bytes += t.bytes;
    }

    pub(super) fn check_cancel(&self) -> Result<(), EngineError> {
        if self.cancel.is_cancelled() {
            Err(EngineError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub(super) fn skip(&self, path: &Path, reason: String) {
        tracing::warn!(path = %path.display(), %reason, "skipped");
        self.progress.error();
        self.skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((path.as_os_str().as_bytes().to_vec(), reason));
    }

    /// Stores a blob unless the repository (or this session) already has it.
    fn store(&self, kind: BlobKind, data: &[u8], id: BlobId) -> Result<(), EngineError> {
        if self.repo.has_blob(&id) {
            return Ok(());
        }
        if !self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id)
        {
            return Ok(());
        }
        let sealed = self.repo.encode_blob(data, self.opts.zstd_level);
        let c = &self.counters;
        c.bytes_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        c.bytes_stored
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        c.blobs_added.fetch_add(1, Ordering::Relaxed);
        if self.dry_run {
            return Ok(());
        }
        let full = {
            let mut packer = self.packer.lock().unwrap_or_else(|p| p.into_inner());
            let full = if packer.would_overflow(sealed.len()) {
                let buffer = self.pack_buffers.start_writing();
                Some(std::mem::replace(
                    &mut *packer,
                    PackBuilder::with_buffer(self.opts.pack_bytes, buffer),
                ))
            } else {
                None
            };
            packer.add_plain(id, kind, &sealed, data);
            full
        };
        if let Some(pack) = full {
            self.write_pack(pack)?;
        }
        Ok(())
    }

    /// Writes a full pack, counted as being written by [`PackBuffers::start_writing`].
    ///
    /// [`PackBuffers::start_writing`]: super::pack_buffers::PackBuffers::start_writing
    fn write_pack(&self, pack: PackBuilder) -> Result<(), EngineError> {
        if pack.is_empty() {
            self.pack_buffers.done_writing(None);
            return Ok(());
        }
        let (id, entries, bytes) = match self.repo.write_built_pack(pack) {
            Ok(written) => written,
            Err(e) => {
                self.pack_buffers.done_writing(None);
                return Err(e.into());
            }
        };
        self.pack_buffers.done_writing(Some(bytes));
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(IndexedPack { id, blobs: entries });
        Ok(())
    }

    fn finish_packs(&self) -> Result<(), EngineError> {
        let last = std::mem::take(&mut *self.packer.lock().unwrap_or_else(|p| p.into_inner()));
        self.pack_buffers.start_writing();
        self.write_pack(last)
    }

    pub(super) fn store_tree(&self, mut nodes: Vec<Node>) -> Result<BlobId, EngineError> {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = Tree {
            version: TREE_VERSION,
            nodes,
        };
        let (bytes, id) = self.repo.tree_bytes(&tree);
        self.store(BlobKind::Tree, &bytes, id)?;
        Ok(id)
    }

    /// `/`, opened, with its `stat`.
    pub(super) fn open_root(&self) -> Result<(DirFd, FileStat), EngineError> {
        let source_err = |e: std::io::Error| EngineError::Source {
            path: "/".into(),
            reason: e.to_string(),
        };
        let root = DirFd::open_path(Path::new("/")).map_err(source_err)?;
        let st = root.stat().map_err(source_err)?;
        Ok((root, st))
    }

    /// Opens a directory on the way from `/` to a source (or the parent of a source): a path
    /// the administrator gave, resolved once and then held.
    pub(super) fn open_prefix(&self, path: &Path) -> Result<DirFd, EngineError> {
        DirFd::open_path(path).map_err(|e| EngineError::Source {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// A directory on the way from `/` to a source, as a node (without its subtree). It is
    /// recorded as a directory even when it is a symlink (`/home -> var/home`), so the source
    /// restores under its given path.
    /// Its times and link count are the parent snapshot's while it is the same directory with
    /// the same mode and owner: they move with every unrelated entry created next to a source
    /// (`/tmp`, `/home`), and that alone must not make a new snapshot.
    pub(super) fn prefix_node(
        &self,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
    ) -> Result<Node, EngineError> {
        let source_err = |e: std::io::Error| EngineError::Source {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let dir = self.open_prefix(path)?;
        let st = dir.stat().map_err(source_err)?;
        let mut node = fsmeta::capture(&st, name, &self.names);
        node.xattrs = fsmeta::xattrs_fd(dir.file()).map_err(source_err)?;
        let same_dir = |p: &&Node| {
            (p.kind, p.inode, p.mode, p.uid, p.gid)
                == (node.kind, node.inode, node.mode, node.uid, node.gid)
        };
        if let Some(p) = parent.filter(same_dir) {
            (node.atime_ns, node.mtime_ns, node.ctime_ns) = (p.atime_ns, p.mtime_ns, p.ctime_ns);
            node.nlink = p.nlink;
        }
        Ok(node)
    }

    /// A directory on the way from `/` to the sources, or a source itself.
    pub(super) fn backup_prefix(
        &self,
        prefix: &PrefixTree,
        path: &Path,
        parent: Option<&Tree>,
    ) -> Result<BlobId, EngineError> {
        let dir = if prefix.children.values().any(|c| c.is_source) {
            Some(self.open_prefix(path)?)
        } else {
            None
        };
        let nodes = prefix
            .children
            .par_iter()
            .map(|(name, child)| -> Result<Option<Node>, EngineError> {
                let child_path = path.join(std::ffi::OsStr::from_bytes(name));
                let parent_node = parent.and_then(|t| t.find(name));
                if let (true, Some(dir)) = (child.is_source, &dir) {
                    return self.backup_entry(dir, &child_path, name.clone(), parent_node, None, 0);
                }
                let mut node = self.prefix_node(&child_path, name.clone(), parent_node)?;
                let parent_subtree = self.parent_subtree(parent_node)?;
                node.subtree =
                    Some(self.backup_prefix(child, &child_path, parent_subtree.as_ref())?);
                Ok(Some(node))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.store_tree(nodes.into_iter().flatten().collect())
    }

    fn parent_subtree(&self, parent: Option<&Node>) -> Result<Option<Tree>, EngineError> {
        match parent.and_then(|n| n.subtree) {
            // A damaged parent tree only costs re-reading files, never the backup.
            Some(id) => Ok(self.repo.load_tree(&id).ok()),
            None => Ok(None),
        }
    }

    /// Records an entry that changed identity between its listing and its open (a file
    /// swapped for a symlink, a FIFO or another file): nothing is read through it.
    pub(super) fn replaced_during_backup(&self, path: &Path) {
        self.counters
            .changed_during_read
            .fetch_add(1, Ordering::Relaxed);
        self.skip(
            path,
            "replaced while it was backed up (its type or inode changed); not read".into(),
        );
    }

    /// Opens the subdirectory `name` of `dir` and checks it is the one `st` describes.
    /// `None` (recorded) when it vanished, cannot be opened or was replaced.
    pub(super) fn open_subdir(
        &self,
        dir: &DirFd,
        path: &Path,
        name: &[u8],
        st: &FileStat,
        depth: usize,
    ) -> Option<DirFd> {
        if depth >= MAX_DEPTH {
            self.skip(
                path,
                format!("more than {MAX_DEPTH} directory levels deep; not backed up"),
            );
            return None;
        }
        let sub = match dir.open_dir(name) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                self.replaced_during_backup(path);
                return None;
            }
            Err(e) => {
                self.skip(path, format!("cannot open directory: {e}"));
                return None;
            }
        };
        match sub.stat() {
            Ok(now) if dirfd::same_object(st, &now) => Some(sub),
            Ok(_) => {
                self.replaced_during_backup(path);
                None
            }
            Err(e) => {
                self.skip(path, format!("cannot stat directory: {e}"));
                None
            }
        }
    }

    /// One file system object, `name` in the open directory `dir` (`path` is its full path,
    /// for excludes and messages); `None` when excluded, vanished or skipped. With
    /// `parent_dev`, a directory on another file system is left out (`--one-file-system`).
    pub(super) fn backup_entry(
        &self,
        dir: &DirFd,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
        parent_dev: Option<u64>,
        depth: usize,
    ) -> Result<Option<Node>, EngineError> {
        self.check_cancel()?;
        if self.excludes.excludes(path, &name) {
            return Ok(None);
        }
        let st = match dir.stat_at(&name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None), // vanished
            Err(e) => {
                self.skip(path, e.to_string());
                return Ok(None);
            }
        };
        if self.excludes.excludes_inode(st.st_dev, st.st_ino) {
            return Ok(None);
        }
        let mut node = fsmeta::capture(&st, name, &self.names);
        keep_parent_atime(&mut node, parent);
        let c = &self.counters;
        match node.kind {
            NodeKind::Dir => {
                if self.excludes.one_file_system && parent_dev.is_some_and(|d| d != st.st_dev) {
                    return Ok(None);
                }
                let Some(sub) = self.open_subdir(dir, path, &node.name, &st, depth) else {
                    return Ok(None);
                };
                match fsmeta::xattrs_fd(sub.file()) {
                    Ok(x) => node.xattrs = x,
                    Err(e) => {
                        self.skip(path, format!("cannot read xattrs: {e}"));
                        return Ok(None);
                    }
                }
                c.dirs.fetch_add(1, Ordering::Relaxed);
                let parent_tree =
                    self.parent_subtree(parent.filter(|n| n.kind == NodeKind::Dir))?;
                node.subtree =
                    Some(self.backup_dir(&sub, path, st.st_dev, parent_tree, depth + 1)?);
            }
            NodeKind::File => {
                c.files.fetch_add(1, Ordering::Relaxed);
                c.bytes_total.fetch_add(node.size, Ordering::Relaxed);
                let Some(reported) = self.file_content(dir, path, &st, &mut node, parent)? else {
                    return Ok(None);
                };
                self.progress.add(1, node.size.saturating_sub(reported));
            }
            _ => {
                if node.kind == NodeKind::Symlink {
                    match dir.read_link(&node.name) {
                        Ok(target) => node.target = target,
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            self.replaced_during_backup(path);
                            return Ok(None);
                        }
                        Err(e) => {
                            self.skip(path, format!("cannot read symlink: {e}"));
                            return Ok(None);
                        }
                    }
                }
                match fsmeta::xattrs_at(dir, &node.name) {
                    Ok(x) => node.xattrs = x,
                    Err(e) => {
                        self.skip(path, format!("cannot read xattrs: {e}"));
                        return Ok(None);
                    }
                }
                c.other.fetch_add(1, Ordering::Relaxed);
                self.progress.add(1, 0);
            }
        }
        Ok(Some(node))
    }

    /// The tree of the open directory `dir` (at `path`, on device `dev`, `depth` levels below
    /// its source).
    pub(super) fn backup_dir(
        &self,
        dir: &DirFd,
        path: &Path,
        dev: u64,
        parent_tree: Option<Tree>,
        depth: usize,
    ) -> Result<BlobId, EngineError> {
        if self.excludes.is_tagged_cache(dir) {
            return self.store_tree(Vec::new());
        }
        self.counters.dirs_scanned.fetch_add(1, Ordering::Relaxed);
        let names = match dir.list() {
            Ok(names) => names,
            Err(e) => {
                self.skip(path, format!("cannot list directory: {e}"));
                Vec::new()
            }
        };
        let entry = |name: &Vec<u8>| {
            let child = path.join(std::ffi::OsStr::from_bytes(name));
            let parent_node = parent_tree.as_ref().and_then(|t| t.find(name));
            self.backup_entry(dir, &child, name.clone(), parent_node, Some(dev), depth)
        };
        // Deep down, a directory's entries go one after the other: a rayon worker waiting for
        // a join steals other work onto its stack, and on a deep tree that adds up.
        let nodes = if depth < PARALLEL_DEPTH {
            names
                .par_iter()
                .map(entry)
                .collect::<Result<Vec<_>, EngineError>>()?
        } else {
            names
                .iter()
                .map(entry)
                .collect::<Result<Vec<_>, EngineError>>()?
        };
        self.store_tree(nodes.into_iter().flatten().collect())
    }

    /// Fills `node.content` (and its xattrs); `None` when the file could not be read
    /// (skipped), else the bytes of it already reported as progress (a large file's progress
    /// moves chunk by chunk while it is read).
    fn file_content(
        &self,
        dir: &DirFd,
        path: &Path,
        st: &FileStat,
        node: &mut Node,
        parent: Option<&Node>,
    ) -> Result<Option<u64>, EngineError> {
        let known = |node: &mut Node, content: Vec<BlobId>| match fsmeta::xattrs_at(dir, &node.name)
        {
            Ok(x) => {
                node.xattrs = x;
                node.content = content;
                Some(0)
            }
            Err(e) => {
                self.skip(path, format!("cannot read xattrs: {e}"));
                None
            }
        };
        if let Some(p) = parent {
            let unchanged = p.kind == NodeKind::File
                && p.size == node.size
                && p.mtime_ns == node.mtime_ns
                && p.ctime_ns == node.ctime_ns
                && p.inode == node.inode
                && !p.changed_during_read
                && p.content.iter().all(|id| self.repo.has_blob(id));
            // The parent may be another's snapshot: a user's backup reuses content only of a
            // file the kernel lets the user open now.
            let readable = || match (&self.opts.identity, dir.open_read(&node.name)) {
                (None, _) | (Some(_), Ok(_)) => true,
                (Some(_), Err(e)) => {
                    self.skip(path, format!("cannot open: {e}"));
                    false
                }
            };
            if unchanged {
                if !readable() {
                    return Ok(None);
                }
                return Ok(known(node, p.content.clone()));
            }
        }
        let link_key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            let content = self
                .hardlinks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&link_key)
                .cloned();
            if let Some(content) = content {
                return Ok(known(node, content));
            }
        }
        // Opened without following a symlink and without blocking on a FIFO, then checked to
        // be the very file the listing saw: a user who swaps it for a symlink to a file they
        // cannot read, or for a FIFO, gets it skipped, not read through.
        let file = match dir.open_read(&node.name) {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => {
                self.replaced_during_backup(path);
                return Ok(None);
            }
            Err(e) => {
                self.skip(path, format!("cannot open: {e}"));
                return Ok(None);
            }
        };
        match nix::sys::stat::fstat(&file) {
            Ok(now) if dirfd::same_object(st, &now) => {}
            Ok(_) => {
                self.replaced_during_backup(path);
                return Ok(None);
            }
            Err(e) => {
                self.skip(path, format!("cannot stat: {e}"));
                return Ok(None);
            }
        }
        match fsmeta::xattrs_fd(&file) {
            Ok(x) => node.xattrs = x,
            Err(e) => {
                self.skip(path, format!("cannot read xattrs: {e}"));
                return Ok(None);
            }
        }
        let mut content = Vec::new();
        let mut reported = 0u64;
        let mut store_chunk = |chunk: &[u8]| -> Result<(), EngineError> {
            self.check_cancel()?;
            let id = self.repo.blob_id(chunk);
            self.store(BlobKind::Data, chunk, id)?;
            content.push(id);
            self.progress.add(0, chunk.len() as u64);
            crate::perf::counters::add_read(chunk.len() as u64);
            reported += chunk.len() as u64;
            Ok(())
        };
        // A file that grows while it is read is read up to its size at `stat` plus a margin,
        // never without bound (a log written all the time would otherwise never end).
        let limit = node.size.saturating_add(GROWTH_MARGIN);
        let small = if node.size <= u64::from(self.chunker.min) {
            // Most files are small: one read, one chunk, no chunker window.
            read_small(&file, u64::from(self.chunker.min)).map_err(ChunkError::Read)
        } else {
            Ok(None)
        };
        let read = match small {
            Ok(Some(data)) => {
                crate::perf::counters::add_read(data.len() as u64);
                let stored = if data.is_empty() {
                    Ok(())
                } else {
                    store_chunk(&data)
                };
                stored.map(|()| data.len() as u64).map_err(ChunkError::Emit)
            }
            Ok(None) => CHUNK_BUF.with(|buf| {
                use std::io::Read;
                chunk_stream(
                    (&file).take(limit),
                    self.chunker,
                    &mut buf.borrow_mut(),
                    &mut store_chunk,
                )
            }),
            Err(e) => Err(e),
        };
        let bytes = match read {
            Ok(n) => n,
            Err(ChunkError::Emit(e)) => return Err(e),
            Err(ChunkError::Read(e)) => {
                self.skip(path, format!("read error: {e}"));
                return Ok(None);
            }
        };
        let c = &self.counters;
        c.files_read.fetch_add(1, Ordering::Relaxed);
        c.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(after) = nix::sys::stat::fstat(&file) {
            let after_size = u64::try_from(after.st_size).unwrap_or(0);
            if after_size != node.size
                || after.st_mtime != st.st_mtime
                || after.st_mtime_nsec != st.st_mtime_nsec
                || after.st_ctime != st.st_ctime
                || after.st_ctime_nsec != st.st_ctime_nsec
                || bytes != node.size
            {
                node.changed_during_read = true;
                node.size = bytes;
                c.changed_during_read.fetch_add(1, Ordering::Relaxed);
                if bytes >= limit {
                    tracing::warn!(path = %path.display(), read = bytes, "file kept growing while it was read; stored up to its size at the start plus a margin");
                } else {
                    tracing::warn!(path = %path.display(), "file changed while it was read");
                }
            }
        }
        node.content = content;
        if st.st_nlink > 1 {
            self.hardlinks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(link_key, node.content.clone());
        }
        Ok(Some(reported))
    }
}
