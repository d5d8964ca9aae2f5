//! One run of a pair (the body of a `sync` job; blocking): scan both sides, decide per path
//! ([`plan`]), carry the decisions out ([`transfer`], trash moves, conflicts), fix directory
//! metadata, record the new per-file state and the run. Stops between entries (and between
//! chunks) when cancelled; a side that vanishes or is replaced under it fails the run with a
//! retryable error, and what was done so far stays recorded.

use super::plan::{self, Decision, Kind, Known, Otherwise, Resolution, Side, Stamp};
use super::scan::{self, Entry, Tree, TRASH};
use super::store::Store;
use super::transfer::{self, Copied, Ctx};
use super::{Current, SyncError};
use crate::engine::dirfd::DirFd;
use crate::engine::excludes::Excludes;
use crate::engine::fsmeta::NameCache;
use crate::engine::progress::Progress;
use crate::repo::{format_rfc3339, now_ns};
use crate::state::records::sync::ConflictRecord;
use crate::throttle::Bucket;
use backupd_common::protocol::{SyncMode, SyncResult, SyncSpec};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What a run works with.
pub struct RunEnv<'a> {
    pub store: &'a Store,
    pub global: &'a Bucket,
    pub cancel: &'a CancellationToken,
    pub progress: &'a Progress,
    pub current: &'a Current,
    pub trash_days: u32,
}

/// A side's root, held open; [`Root::check`] says whether the path still leads to it.
struct Root {
    path: PathBuf,
    dir: DirFd,
    dev: u64,
    ino: u64,
    /// `.backupd-trash/<time>` of this run, once made.
    trash: Option<DirFd>,
}

impl Root {
    fn open(path: &Path) -> Result<Self, SyncError> {
        let gone = |reason: String| SyncError::SideGone {
            path: path.to_owned(),
            reason,
        };
        let dir = DirFd::open_path(path).map_err(|e| gone(e.to_string()))?;
        let st = dir.stat().map_err(|e| gone(e.to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            dir,
            dev: st.st_dev,
            ino: st.st_ino,
            trash: None,
        })
    }

    fn check(&self) -> Result<(), SyncError> {
        match nix::sys::stat::stat(&self.path) {
            Ok(st) if st.st_dev == self.dev && st.st_ino == self.ino => Ok(()),
            Ok(_) => Err(SyncError::SideGone {
                path: self.path.clone(),
                reason: "it was replaced or unmounted during the run".into(),
            }),
            Err(e) => Err(SyncError::SideGone {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The directory holding `rel`, making missing parents (as plain 0755 directories; their
    /// metadata is fixed at the end of the run).
    fn parent_of<'r>(&self, rel: &'r [u8], create: bool) -> Result<(DirFd, &'r [u8]), SyncError> {
        let mut parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
        let name = parts.pop().unwrap_or_default();
        let mut dir = self.dir.open_dir(b".").map_err(self.io(rel, "open"))?;
        for part in parts {
            if create && dir.stat_at(part).is_err() {
                dir.mkdir(part, 0o755).map_err(self.io(rel, "mkdir"))?;
            }
            dir = dir.open_dir(part).map_err(self.io(rel, "open"))?;
        }
        Ok((dir, name))
    }

    fn io<'p>(
        &self,
        rel: &'p [u8],
        op: &'static str,
    ) -> impl FnOnce(std::io::Error) -> SyncError + 'p {
        move |source| SyncError::Io {
            path: String::from_utf8_lossy(rel).into_owned(),
            op,
            source,
        }
    }

    /// Moves `rel` into this run's trash directory on this side, keeping its relative path.
    fn trash(&mut self, rel: &[u8], stamp: &str) -> Result<(), SyncError> {
        if self.trash.is_none() {
            let top = match self.dir.open_dir(TRASH) {
                Ok(d) => d,
                Err(_) => {
                    self.dir
                        .mkdir(TRASH, 0o700)
                        .map_err(self.io(rel, "mkdir trash"))?;
                    self.dir
                        .open_dir(TRASH)
                        .map_err(self.io(rel, "open trash"))?
                }
            };
            let name = stamp.as_bytes();
            if top.stat_at(name).is_err() {
                top.mkdir(name, 0o700)
                    .map_err(self.io(rel, "mkdir trash"))?;
            }
            self.trash = Some(top.open_dir(name).map_err(self.io(rel, "open trash"))?);
        }
        let (from, name) = self.parent_of(rel, false)?;
        let trash = self.trash.as_ref().ok_or(SyncError::Cancelled)?;
        let mut parts: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
        parts.pop();
        let mut to = trash.open_dir(b".").map_err(self.io(rel, "open trash"))?;
        for part in parts {
            if to.stat_at(part).is_err() {
                to.mkdir(part, 0o700).map_err(self.io(rel, "mkdir trash"))?;
            }
            to = to.open_dir(part).map_err(self.io(rel, "open trash"))?;
        }
        let mut target = name.to_vec();
        let mut n = 1;
        while to.stat_at(&target).is_ok() {
            target = [name, format!(".{n}").as_bytes()].concat();
            n += 1;
        }
        from.rename(name, &to, &target)
            .map_err(self.io(rel, "move to trash"))
    }
}

/// Purges `root/.backupd-trash/<time>` directories older than `days`.
fn purge_trash(root: &Path, days: u32) {
    let top = root.join(OsStr::from_bytes(TRASH));
    let Ok(entries) = std::fs::read_dir(&top) else {
        return;
    };
    let cutoff = std::time::SystemTime::now() - Duration::from_secs(u64::from(days) * 86_400);
    for e in entries.flatten() {
        let name = e.file_name();
        let Ok(t) = humantime::parse_rfc3339(&name.to_string_lossy()) else {
            continue;
        };
        // Only directories this code made (named by their time), never anything else.
        if t < cutoff && e.file_type().is_ok_and(|t| t.is_dir()) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot purge old sync trash");
            }
        }
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into())
}

/// `name.conflict-HOST-TIME` beside `rel`.
fn conflict_name(rel: &[u8], host: &str, stamp: &str) -> Vec<u8> {
    let mut out = rel.to_vec();
    out.extend_from_slice(format!(".conflict-{host}-{stamp}").as_bytes());
    out
}

struct Runner<'a> {
    env: &'a RunEnv<'a>,
    spec: SyncSpec,
    src: Root,
    dst: Root,
    result: SyncResult,
    changes: Vec<(Vec<u8>, Option<Known>)>,
    names: NameCache,
    own: Bucket,
    as_root: bool,
    stamp: String,
    host: String,
    /// Directories whose metadata is set from `Side` at the end.
    touched: BTreeMap<Vec<u8>, Side>,
    /// Directories to remove on a side once empty, at the end.
    rmdirs: Vec<(Vec<u8>, Side)>,
}

/// Runs pair `pair` once.
pub fn run(env: &RunEnv<'_>, pair: &str) -> Result<SyncResult, SyncError> {
    let started = Instant::now();
    let spec = env.store.pair(pair)?.spec();
    let src = Root::open(Path::new(OsStr::from_bytes(&spec.src)))?;
    let dst = Root::open(Path::new(OsStr::from_bytes(&spec.dst)))?;
    purge_trash(&dst.path, env.trash_days);
    if spec.mode == SyncMode::TwoWay {
        purge_trash(&src.path, env.trash_days);
    }
    let excludes = Excludes::new(&spec.excludes, &[]).map_err(|e| SyncError::Invalid {
        name: spec.name.clone(),
        reason: e.to_string(),
    })?;
    let mut warnings = Vec::new();
    // Both walks and the state's load at once: they wait on different things.
    let (s_tree, d_tree, known) = std::thread::scope(|scope| {
        let d = scope.spawn(|| {
            let mut w = Vec::new();
            let t = scan::scan(&dst.path, &excludes, &mut w);
            (t, w)
        });
        let k = scope.spawn(|| env.store.known(pair));
        let s = scan::scan(&src.path, &excludes, &mut warnings);
        let (d, w) = d.join().unwrap_or_else(|_| {
            (
                Err(std::io::Error::other("the scan thread panicked")),
                Vec::new(),
            )
        });
        let k = k.join().unwrap_or(Err(SyncError::NotRunning));
        warnings.extend(w);
        (s, d, k)
    });
    let gone = |root: &Root, e: std::io::Error| SyncError::SideGone {
        path: root.path.clone(),
        reason: e.to_string(),
    };
    let s_tree = s_tree.map_err(|e| gone(&src, e))?;
    let d_tree = d_tree.map_err(|e| gone(&dst, e))?;
    let known = known?;
    let scanned = started.elapsed();
    let loaded = started.elapsed();
    let mut runner = Runner {
        env,
        own: Bucket::new(
            spec.bwlimit
                .and_then(backupd_common::rate::Rate::from_bytes_per_sec),
        ),
        spec,
        src,
        dst,
        result: SyncResult {
            pair: pair.to_owned(),
            files_scanned: s_tree.len() as u64,
            warnings,
            ..Default::default()
        },
        changes: Vec::new(),
        names: NameCache::default(),
        as_root: nix::unistd::geteuid().is_root(),
        stamp: format_rfc3339(now_ns()),
        host: hostname(),
        touched: BTreeMap::new(),
        rmdirs: Vec::new(),
    };
    let outcome = runner.walk(&known, &s_tree, &d_tree);
    // What was copied reaches the disk before it is recorded as synced (one `syncfs` per side
    // written to, instead of one fsync per small file).
    let wrote = !runner.changes.is_empty() || runner.result.files_deleted > 0;
    let sides: &[&Root] = match runner.spec.mode {
        SyncMode::Mirror => &[&runner.dst],
        SyncMode::TwoWay => &[&runner.dst, &runner.src],
    };
    for root in sides.iter().filter(|_| wrote) {
        if let Err(e) = nix::unistd::syncfs(root.dir.file()) {
            tracing::warn!(path = %root.path.display(), error = %e, "syncfs failed");
        }
    }
    // Whatever was done is recorded, even when the run stops half-way.
    let recorded = env
        .store
        .update_known(pair, std::mem::take(&mut runner.changes));
    outcome?;
    recorded?;
    runner.finish_dirs(&s_tree, &d_tree);
    runner.result.conflicts_pending = env.store.conflicts(pair)?.len() as u64;
    tracing::debug!(
        pair,
        scan_ms = scanned.as_millis() as u64,
        state_ms = (loaded.saturating_sub(scanned)).as_millis() as u64,
        rest_ms = (started.elapsed() - loaded).as_millis() as u64,
        "sync run phases"
    );
    let elapsed = started.elapsed();
    runner.result.duration_ms = elapsed.as_millis() as u64;
    runner.result.bytes_per_sec =
        (runner.result.bytes_copied as f64 / elapsed.as_secs_f64().max(0.001)) as u64;
    runner.result.warnings.truncate(100);
    Ok(runner.result)
}

impl Runner<'_> {
    fn root(&self, side: Side) -> &Root {
        match side {
            Side::Src => &self.src,
            Side::Dst => &self.dst,
        }
    }

    fn walk(
        &mut self,
        known: &HashMap<Vec<u8>, Known>,
        s: &Tree,
        d: &Tree,
    ) -> Result<(), SyncError> {
        let paths: BTreeSet<&Vec<u8>> = s.keys().chain(d.keys()).collect();
        let user_takes: HashMap<Vec<u8>, String> = self
            .env
            .store
            .conflicts(&self.result.pair)?
            .into_iter()
            .filter_map(|(p, c)| Some((p, c.take?)))
            .collect();
        let total = s.values().filter(|e| e.stamp.kind == Kind::File).count() as u64;
        self.env
            .progress
            .files_total
            .store(total, Ordering::Relaxed);
        self.env
            .progress
            .totals_known
            .store(true, Ordering::Relaxed);
        for (i, path) in paths.into_iter().enumerate() {
            if self.env.cancel.is_cancelled() {
                return Err(SyncError::Cancelled);
            }
            if i % 256 == 0 {
                self.src.check()?;
                self.dst.check()?;
            }
            let (se, de) = (s.get(path), d.get(path));
            let k = known.get(path);
            let decision = plan::plan(
                self.spec.mode,
                self.spec.delete,
                k,
                se.map(|e| &e.stamp),
                de.map(|e| &e.stamp),
            );
            let take = user_takes.get(path).map(String::as_str);
            if let Err(e) = self.act(path, decision, se, de, take) {
                match e {
                    SyncError::Cancelled | SyncError::SideGone { .. } | SyncError::Db(_) => {
                        return Err(e)
                    }
                    e => {
                        // A vanished side makes every file fail: say so instead.
                        self.src.check()?;
                        self.dst.check()?;
                        self.env.progress.error();
                        self.result.warnings.push(e.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    fn act(
        &mut self,
        path: &[u8],
        decision: Decision,
        se: Option<&Entry>,
        de: Option<&Entry>,
        take: Option<&str>,
    ) -> Result<(), SyncError> {
        match decision {
            Decision::Keep => Ok(()),
            Decision::Forget => {
                self.changes.push((path.to_vec(), None));
                Ok(())
            }
            Decision::Copy { from } => self.copy(path, from, se, de),
            Decision::Trash(side) => {
                let entry = match side {
                    Side::Src => se,
                    Side::Dst => de,
                };
                self.remove(path, side, entry)
            }
            Decision::Compare { otherwise } => {
                let (Some(s), Some(d)) = (se, de) else {
                    return Ok(());
                };
                if s.stamp.kind == d.stamp.kind {
                    let hs = self.hash(Side::Src, path, s.stamp.kind)?;
                    let hd = self.hash(Side::Dst, path, d.stamp.kind)?;
                    if hs == hd {
                        self.changes.push((
                            path.to_vec(),
                            Some(Known {
                                src: s.stamp,
                                dst: d.stamp,
                                hash: hs,
                            }),
                        ));
                        return Ok(());
                    }
                }
                match otherwise {
                    Otherwise::CopyFromSrc => self.copy(path, Side::Src, se, de),
                    Otherwise::Conflict => self.conflict(path, se, de, take),
                }
            }
            Decision::Conflict(_) => self.conflict(path, se, de, take),
        }
    }

    fn hash(&mut self, side: Side, path: &[u8], kind: Kind) -> Result<[u8; 32], SyncError> {
        self.result.files_hashed += 1;
        let root = self.root(side);
        let (dir, name) = root.parent_of(path, false)?;
        transfer::hash_entry(&dir, name, kind).map_err(root.io(path, "read"))
    }

    fn conflict(
        &mut self,
        path: &[u8],
        se: Option<&Entry>,
        de: Option<&Entry>,
        take: Option<&str>,
    ) -> Result<(), SyncError> {
        self.result.conflicts += 1;
        let resolution = match take {
            Some("local") => Resolution::Take(Side::Src),
            Some("remote") => Resolution::Take(Side::Dst),
            Some("both") => Resolution::KeepBoth,
            _ => plan::resolve(
                self.spec.strategy,
                se.map(|e| &e.stamp),
                de.map(|e| &e.stamp),
            ),
        };
        let pair = self.result.pair.clone();
        tracing::info!(pair = %pair, path = %String::from_utf8_lossy(path), ?resolution, "sync conflict");
        match resolution {
            Resolution::Pending => {
                let side = |e: Option<&Entry>| e.map(|e| (e.stamp.size, e.stamp.mtime_ns));
                let existing = self
                    .env
                    .store
                    .conflicts(&pair)?
                    .into_iter()
                    .find(|(p, _)| p == path);
                if existing.is_none() {
                    self.env.store.put_conflict(
                        &pair,
                        path,
                        ConflictRecord {
                            v: 1,
                            local: side(se),
                            remote: side(de),
                            detected_ns: now_ns(),
                            take: None,
                        },
                    )?;
                }
                return Ok(());
            }
            Resolution::Take(winner) => {
                let present = match winner {
                    Side::Src => se,
                    Side::Dst => de,
                };
                if present.is_some() {
                    self.copy(path, winner, se, de)?;
                } else {
                    let loser = match winner.other() {
                        Side::Src => se,
                        Side::Dst => de,
                    };
                    self.remove(path, winner.other(), loser)?;
                }
            }
            Resolution::KeepBoth => {
                if let (Some(_), Some(d)) = (se, de) {
                    // DST's version moves aside under the conflict name, on both sides.
                    let aside = conflict_name(path, &self.host, &self.stamp);
                    let (dir, name) = self.dst.parent_of(path, false)?;
                    let (_, aside_name) = self.dst.parent_of(&aside, false)?;
                    dir.rename(name, &dir, aside_name)
                        .map_err(self.dst.io(path, "rename"))?;
                    let moved = Entry {
                        stamp: d.stamp,
                        mode: d.mode,
                    };
                    self.copy(&aside, Side::Dst, None, Some(&moved))?;
                    self.copy(path, Side::Src, se, None)?;
                } else {
                    let winner = if se.is_some() { Side::Src } else { Side::Dst };
                    self.copy(path, winner, se, de)?;
                }
            }
        }
        self.env.store.remove_conflict(&pair, path)?;
        Ok(())
    }

    fn copy(
        &mut self,
        path: &[u8],
        from: Side,
        se: Option<&Entry>,
        de: Option<&Entry>,
    ) -> Result<(), SyncError> {
        let to = from.other();
        let (from_entry, to_entry) = match from {
            Side::Src => (se, de),
            Side::Dst => (de, se),
        };
        // A directory in the way of a file or link goes to the trash first (never merged).
        if let (Some(f), Some(t)) = (from_entry, to_entry) {
            if t.stamp.kind == Kind::Dir && f.stamp.kind != Kind::Dir {
                self.remove(path, to, to_entry)?;
            }
        }
        let (from_dir, name) = self.root(from).parent_of(path, false)?;
        let (to_dir, _) = self.root(to).parent_of(path, true)?;
        let src_root = &self.src;
        let dst_root = &self.dst;
        let ctx = Ctx {
            store: self.env.store,
            pair: &self.result.pair,
            buckets: &[self.env.global, &self.own],
            cancel: self.env.cancel,
            as_root: self.as_root,
            names: &self.names,
            progress: self.env.progress,
            current: self.env.current,
            alive: &|| src_root.check().and_then(|()| dst_root.check()),
        };
        let copied: Copied = transfer::copy_entry(&ctx, path, &from_dir, &to_dir, name)?;
        self.env.current.clear();
        if from_entry.is_some_and(|e| e.stamp.kind == Kind::File) {
            self.result.files_copied += 1;
            self.env.progress.files_done.fetch_add(1, Ordering::Relaxed);
        }
        self.result.bytes_copied += copied.bytes_copied;
        self.result.bytes_resumed += copied.bytes_resumed;
        let (src, dst) = match from {
            Side::Src => (copied.src, copied.dst),
            Side::Dst => (copied.dst, copied.src),
        };
        self.changes.push((
            path.to_vec(),
            Some(Known {
                src,
                dst,
                hash: copied.hash,
            }),
        ));
        // The parent's times changed on the target: set them back from `from` at the end.
        self.touch_parents(path, from);
        if copied.src.kind == Kind::Dir {
            self.touched.insert(path.to_vec(), from);
        }
        Ok(())
    }

    fn touch_parents(&mut self, path: &[u8], from: Side) {
        let mut p = path;
        while let Some(i) = p.iter().rposition(|b| *b == b'/') {
            p = &p[..i];
            self.touched.entry(p.to_vec()).or_insert(from);
        }
    }

    fn remove(&mut self, path: &[u8], side: Side, entry: Option<&Entry>) -> Result<(), SyncError> {
        let Some(entry) = entry else {
            return Ok(());
        };
        if entry.stamp.kind == Kind::Dir {
            // Its files are decided on their own (a change under it is a conflict, not lost);
            // the directory goes once it is empty.
            self.rmdirs.push((path.to_vec(), side));
            return Ok(());
        }
        let stamp = self.stamp.clone();
        match side {
            Side::Src => self.src.trash(path, &stamp)?,
            Side::Dst => self.dst.trash(path, &stamp)?,
        }
        self.result.files_deleted += 1;
        self.changes.push((path.to_vec(), None));
        self.touch_parents(path, side.other());
        Ok(())
    }

    /// Removes emptied directories (deepest first) and sets the metadata of directories that
    /// were created or whose entries changed from the side they follow.
    fn finish_dirs(&mut self, s: &Tree, d: &Tree) {
        let rmdirs = std::mem::take(&mut self.rmdirs);
        for (path, side) in rmdirs.iter().rev() {
            let root = self.root(*side);
            if let Ok((dir, name)) = root.parent_of(path, false) {
                if nix::unistd::unlinkat(
                    dir.file(),
                    Path::new(OsStr::from_bytes(name)),
                    nix::unistd::UnlinkatFlags::RemoveDir,
                )
                .is_ok()
                {
                    self.changes.push((path.clone(), None));
                    self.touch_parents(path, side.other());
                }
            }
        }
        if self.spec.mode == SyncMode::Mirror {
            for (path, e) in s.iter().filter(|(_, e)| e.stamp.kind == Kind::Dir) {
                let differs = d
                    .get(path)
                    .is_none_or(|t| t.mode != e.mode || t.stamp.mtime_ns != e.stamp.mtime_ns);
                if differs {
                    self.touched.entry(path.clone()).or_insert(Side::Src);
                }
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for (path, from) in touched.iter().rev() {
            let (fr, tr) = (self.root(*from), self.root(from.other()));
            let Ok(fd) = fr.dir.open_dir(b".").and_then(|r| open_rel(&r, path)) else {
                continue;
            };
            let Ok(td) = tr.dir.open_dir(b".").and_then(|r| open_rel(&r, path)) else {
                continue;
            };
            let Ok(st) = fd.stat() else { continue };
            let mut node = crate::engine::fsmeta::capture(&st, Vec::new(), &self.names);
            node.xattrs = crate::engine::fsmeta::xattrs_fd(fd.file()).unwrap_or_default();
            for w in crate::engine::fsmeta::apply_fd(td.file(), &node, self.as_root, false) {
                tracing::debug!(path = %String::from_utf8_lossy(path), warning = %w, "directory metadata not applied");
            }
        }
    }
}

fn open_rel(root: &DirFd, rel: &[u8]) -> std::io::Result<DirFd> {
    let mut dir = root.open_dir(b".")?;
    for part in rel.split(|b| *b == b'/') {
        dir = dir.open_dir(part)?;
    }
    Ok(dir)
}

/// A stamp of `rel` on a side now (tests and `sync resolve`).
pub fn stamp_now(root: &Path, rel: &[u8]) -> Option<Stamp> {
    let st = nix::sys::stat::lstat(&root.join(OsStr::from_bytes(rel))).ok()?;
    scan::stamp_of(&st)
}
