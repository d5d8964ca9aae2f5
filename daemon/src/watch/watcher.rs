//! inotify (through `notify`) for one source: every directory of the source is watched on its
//! own, so new directories are added as they appear, moved-away ones dropped, and the count of
//! watches is known. Raw events go into a bounded channel; [`Watcher::classify`] turns them into
//! changed paths.
//!
//! notify's thread never waits on us: it also serves `watch()` calls, so a full channel must not
//! block it. When the channel is full the event is dropped and `overflowed` is set, which the
//! source treats like a kernel queue overflow (a rescan).

use crate::engine::excludes::Excludes;
use crate::engine::incremental::Change;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Raw events waiting for the source's task; beyond this events are dropped and the source
/// rescans: nothing is lost, only batched.
const CHANNEL: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "the inotify watch limit is reached ({limit} watches for this user); the source falls back \
         to periodic scans. Raise it: `sysctl fs.inotify.max_user_watches={suggest}` (and in \
         /etc/sysctl.d/ to keep it)"
    )]
    Limit { limit: u64, suggest: u64 },
    #[error("cannot watch {path}: {message}")]
    Other { path: PathBuf, message: String },
}

/// What the source's task learns from one raw event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Classified {
    pub changes: Vec<(PathBuf, Change)>,
    /// Events were lost (queue overflow): only a rescan can tell what changed.
    pub rescan: bool,
    /// Directories that appeared and need watches.
    pub new_dirs: Vec<PathBuf>,
    /// Directories that went away or moved out.
    pub gone_dirs: Vec<PathBuf>,
}

pub struct Watcher {
    inner: notify::INotifyWatcher,
    /// Events were dropped because the channel was full.
    pub overflowed: Arc<AtomicBool>,
    root: PathBuf,
    dirs: BTreeSet<PathBuf>,
    /// Never watched nor backed up: the state dir and repositories inside the source.
    skip: Vec<PathBuf>,
    excludes: Excludes,
}

fn limit() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

impl Watcher {
    pub fn new(
        root: PathBuf,
        skip: Vec<PathBuf>,
        excludes: Excludes,
    ) -> Result<(Self, mpsc::Receiver<notify::Result<notify::Event>>), WatchError> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = overflowed.clone();
        let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reads (including our own directory listings) change nothing.
            if let Ok(e) = &event {
                if matches!(e.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write))
                {
                    return;
                }
            }
            match tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => flag.store(true, Ordering::Relaxed),
                // The source stopped.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        })
        .map_err(|e| WatchError::Other {
            path: root.clone(),
            message: e.to_string(),
        })?;
        Ok((
            Self {
                inner,
                overflowed,
                root,
                dirs: BTreeSet::new(),
                skip,
                excludes,
            },
            rx,
        ))
    }

    pub fn dirs_watched(&self) -> usize {
        self.dirs.len()
    }

    /// Whether a path is left out of the source (excluded, or the daemon's own files).
    pub fn ignored(&self, path: &Path) -> bool {
        if self.skip.iter().any(|s| path.starts_with(s)) {
            return true;
        }
        // Only when there is a log file to look for: one stat per event otherwise saved.
        if !self.excludes.always_inodes.is_empty() {
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if self.excludes.excludes_inode(m.dev(), m.ino()) {
                    return true;
                }
            }
        }
        // Any excluded component on the way down excludes the path.
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        let mut at = self.root.clone();
        rel.components().any(|c| {
            at.push(c);
            self.excludes.excludes(&at, c.as_os_str().as_bytes())
        })
    }

    /// Watches `dir` and every directory under it. Blocking (one syscall per directory).
    pub fn add_tree(&mut self, dir: &Path) -> Result<usize, WatchError> {
        let mut added = 0;
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            if self.ignored(&d) || self.dirs.contains(&d) {
                continue;
            }
            match self.inner.watch(&d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(d.clone());
                    added += 1;
                }
                Err(e) => match e.kind {
                    notify::ErrorKind::MaxFilesWatch => {
                        let limit = limit();
                        return Err(WatchError::Limit {
                            limit,
                            suggest: (limit * 4).max(524_288),
                        });
                    }
                    // Gone between the listing and the watch: nothing to watch.
                    notify::ErrorKind::PathNotFound => continue,
                    notify::ErrorKind::Io(ref io) if io.kind() == std::io::ErrorKind::NotFound => {
                        continue
                    }
                    _ => {
                        return Err(WatchError::Other {
                            path: d,
                            message: e.to_string(),
                        })
                    }
                },
            }
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                // `file_type` does not follow symlinks: a symlinked directory is not descended.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        Ok(added)
    }

    /// Drops the watches of `dir` and everything under it.
    pub fn remove_tree(&mut self, dir: &Path) {
        let under: Vec<PathBuf> = self
            .dirs
            .range::<Path, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
            .take_while(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for d in under {
            // The kernel already dropped the watch of a deleted directory.
            let _ = self.inner.unwatch(&d);
            self.dirs.remove(&d);
        }
    }

    /// Drops every watch (on a fall-back to periodic scans).
    pub fn clear(&mut self) {
        let root = self.root.clone();
        self.remove_tree(&root);
    }

    /// What one raw event means for the snapshot.
    pub fn classify(&self, event: &notify::Event) -> Classified {
        let mut out = Classified {
            rescan: event.need_rescan(),
            ..Default::default()
        };
        let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        let entry = |out: &mut Classified, p: &Path| {
            if !self.ignored(p) {
                out.changes.push((p.to_owned(), Change::Entry));
            }
        };
        let appeared = |out: &mut Classified, p: &Path| {
            if self.ignored(p) {
                return;
            }
            if is_dir(p) {
                out.changes.push((p.to_owned(), Change::Tree));
                out.new_dirs.push(p.to_owned());
            } else {
                out.changes.push((p.to_owned(), Change::Entry));
            }
        };
        let left = |out: &mut Classified, p: &Path| {
            if self.dirs.contains(p) {
                out.gone_dirs.push(p.to_owned());
            }
        };
        match &event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &event.paths {
                    entry(&mut out, p);
                }
            }
            EventKind::Access(_) => {}
            EventKind::Create(CreateKind::File) => {
                for p in &event.paths {
                    entry(&mut out, p);
                }
            }
            EventKind::Create(_) => {
                for p in &event.paths {
                    appeared(&mut out, p);
                }
            }
            EventKind::Modify(ModifyKind::Name(mode)) => match (mode, event.paths.as_slice()) {
                (RenameMode::Both, [from, to]) => {
                    left(&mut out, from);
                    entry(&mut out, from);
                    appeared(&mut out, to);
                }
                (RenameMode::From, paths) => {
                    for p in paths {
                        left(&mut out, p);
                        entry(&mut out, p);
                    }
                }
                (_, paths) => {
                    // `To`, or a rename notify could not pair: whatever is there now counts.
                    for p in paths {
                        if p.exists() {
                            appeared(&mut out, p);
                        } else {
                            left(&mut out, p);
                            entry(&mut out, p);
                        }
                    }
                }
            },
            EventKind::Modify(_) => {
                for p in &event.paths {
                    entry(&mut out, p);
                }
            }
            EventKind::Remove(_) => {
                for p in &event.paths {
                    left(&mut out, p);
                    entry(&mut out, p);
                }
            }
            EventKind::Any | EventKind::Other => {}
        }
        out
    }
}
