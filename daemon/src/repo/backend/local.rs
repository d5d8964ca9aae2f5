//! The local directory backend: each object is a file under the repository directory, at its
//! key's object name (`data/ab/ab12...`).
//!
//! Durability: every object is written to a temp name in its final directory, fsynced, renamed
//! into place (or hard-linked, for put-if-absent), and the directory fsynced. A crash leaves
//! either the whole object or a temp file (which `check` notes and `prune` removes), never a
//! torn object under its real name. A missing repository directory is never created again.

use super::{
    Backend, BackendError, Cause, ErrorKind, FileKind, FsSpace, Key, ObjectInfo, Presence, Result,
};
use crate::repo::location::Location;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const TEMP_PREFIX: &str = ".tmp-";

/// The kinds with a directory of their own (the config sits at the root).
const DIR_KINDS: [FileKind; 4] = [
    FileKind::Key,
    FileKind::Index,
    FileKind::Snapshot,
    FileKind::Lock,
];

/// A local directory holding a repository.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    location: Location,
    root: PathBuf,
    /// Mutations (writes, removes) left before every mutation fails; `u64::MAX` is "never".
    crash_after: Arc<AtomicU64>,
}

/// `len` bytes from `offset` of `f` in one `pread`; `describe` names the object in errors.
pub fn read_range(
    f: &std::fs::File,
    describe: impl FnOnce() -> String,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    match std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, offset) {
        Ok(()) => Ok(buf),
        // A truncated object is damaged data, not a flaky disk.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(BackendError::new(
            ErrorKind::Permanent,
            "read",
            describe(),
            Cause::Short {
                end: offset + len as u64,
                size: f.metadata().map(|m| m.len()).unwrap_or(0),
            },
        )),
        Err(e) => Err(BackendError::new(
            io_kind(&e),
            "read",
            describe(),
            Cause::Io(e),
        )),
    }
}

/// The kind of an OS error, as far as this file system tells.
fn io_kind(e: &io::Error) -> ErrorKind {
    use nix::errno::Errno;
    if e.kind() == io::ErrorKind::NotFound {
        return ErrorKind::NotFound;
    }
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOSPC | Errno::EDQUOT) => ErrorKind::NoSpace,
        Some(Errno::EROFS | Errno::EACCES | Errno::EPERM) => ErrorKind::Denied,
        // Nothing about the storage changes by itself: the same call fails the same way.
        Some(
            Errno::EINVAL
            | Errno::EISDIR
            | Errno::ENOTDIR
            | Errno::ENAMETOOLONG
            | Errno::ELOOP
            | Errno::EFBIG
            | Errno::EOVERFLOW
            | Errno::EEXIST,
        ) => ErrorKind::Permanent,
        // EIO, ESTALE, ENOTCONN, ETIMEDOUT, EINTR, ENOMEM...: a flaky disk or mount.
        _ => ErrorKind::Transient,
    }
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            location: Location::Local(root.clone()),
            root,
            crash_after: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// For crash-safety tests: after `n` more writes or removes, every write and remove fails
    /// as if the process had died at that point, so an operation can be stopped at each of its
    /// step boundaries in turn, deterministically. Never armed outside tests.
    #[doc(hidden)]
    pub fn crash_after(&self, n: u64) {
        self.crash_after.store(n, Ordering::SeqCst);
    }

    /// Counts one mutation against [`Self::crash_after`]. Lock files are left out: they stand
    /// for a live process, and a crashed one's lock is the stale-lock rule's business.
    fn mutation(&self, kind: FileKind, action: &'static str, path: &Path) -> Result<()> {
        if kind == FileKind::Lock {
            return Ok(());
        }
        let left = self
            .crash_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                u64::MAX | 0 => None,
                n => Some(n - 1),
            })
            .unwrap_or_else(|n| n);
        if left == 0 {
            return Err(BackendError::new(
                ErrorKind::Transient,
                action,
                path.display().to_string(),
                Cause::Injected("crash"),
            ));
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of an object.
    pub fn path(&self, key: Key<'_>) -> PathBuf {
        self.root.join(key.object_name())
    }

    /// The error of an OS call on `path`: its kind, and for a full disk the file system's
    /// state. "Not found" turns into `Unreachable` when the repository directory itself is gone.
    fn error(&self, action: &'static str, path: &Path, source: io::Error) -> BackendError {
        let mut kind = io_kind(&source);
        if kind == ErrorKind::NotFound && !self.root.is_dir() {
            kind = ErrorKind::Unreachable;
        }
        let mut e = BackendError::new(kind, action, path.display().to_string(), source.into());
        if kind == ErrorKind::NoSpace {
            let quota = e.raw_os_error() == Some(nix::errno::Errno::EDQUOT as i32);
            e.space = FsSpace::of(path, quota).map(Box::new);
        }
        e
    }

    fn err<'a>(
        &'a self,
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> BackendError + 'a {
        move |source| self.error(action, path, source)
    }

    /// Writes `data` to a fresh temp file in the object's directory and fsyncs it, creating a
    /// lost directory inside the repository (never the repository itself).
    fn write_temp(&self, dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf> {
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{name}-{:016x}",
            rand::random::<u64>()
        ));
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
        };
        let mut f = match open() {
            // A missing repository is never recreated: writing into an empty stand-in would
            // split the repository in two once the real one is back.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.root.is_dir() => {
                return Err(self.error("reach repository directory", &self.root, e))
            }
            // Empty directories do not survive every copy (git, object stores): recreate.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(self.err("create directory", dir))?;
                // The new directory entry must be durable before an object inside it is called
                // written: fsync every parent up to the repository root.
                for parent in dir.ancestors().skip(1) {
                    fsync_dir(parent)?;
                    if parent == self.root {
                        break;
                    }
                }
                open()
            }
            other => other,
        }
        .map_err(self.err("create", &temp))?;
        let written = f
            .write_all(data)
            .map_err(self.err("write", &temp))
            .and_then(|()| f.sync_all().map_err(self.err("fsync", &temp)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        crate::perf::counters::add_stored(data.len() as u64);
        Ok(temp)
    }

    /// Writes an object; `replace` decides whether an existing one is replaced (rename) or kept
    /// (hard link, which never replaces). Returns whether the object was written.
    fn store(&self, key: Key<'_>, data: &[u8], replace: bool) -> Result<bool> {
        let path = self.path(key);
        self.mutation(key.kind, "write", &path)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        let temp = self.write_temp(&dir, key.name, data)?;
        let placed = if replace {
            std::fs::rename(&temp, &path).map(|()| true)
        } else {
            let linked = match std::fs::hard_link(&temp, &path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_file(&temp);
            linked
        };
        match placed {
            Ok(written) => {
                fsync_dir(&dir)?;
                Ok(written)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(self.error("move into place", &path, e))
            }
        }
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.root.clone()];
        dirs.extend(DIR_KINDS.iter().map(|k| self.root.join(k.dir())));
        dirs.extend(pack_dirs(&self.root));
        dirs
    }
}

fn pack_dirs(root: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    (0..=255u8).map(move |b| root.join("data").join(format!("{b:02x}")))
}

impl Backend for LocalBackend {
    fn location(&self) -> &Location {
        &self.location
    }

    fn presence(&self) -> Result<Presence> {
        match std::fs::read_dir(&self.root) {
            Ok(mut entries) => Ok(if entries.next().is_some() {
                Presence::Occupied
            } else {
                Presence::Empty
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Presence::Absent),
            Err(e) => Err(self.error("list", &self.root, e)),
        }
    }

    /// Creates the directory skeleton (0700), including the 256 pack subdirectories.
    fn create(&self) -> Result<()> {
        let mkdir = |p: &Path| {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(p)
                .map_err(self.err("create directory", p))
        };
        for dir in self.dirs() {
            mkdir(&dir)?;
        }
        fsync_dir(&self.root.join("data"))?;
        fsync_dir(&self.root)
    }

    fn put(&self, key: Key<'_>, data: &[u8]) -> Result<()> {
        self.store(key, data, true).map(|_| ())
    }

    fn put_new(&self, key: Key<'_>, data: &[u8]) -> Result<bool> {
        self.store(key, data, false)
    }

    fn get(&self, key: Key<'_>) -> Result<Vec<u8>> {
        let path = self.path(key);
        let file = std::fs::File::open(&path).map_err(self.err("open", &path))?;
        let len = file.metadata().map_err(self.err("stat", &path))?.len();
        let max = key.kind.max_size();
        if len > max {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                "read",
                path.display().to_string(),
                Cause::TooLarge { size: len, max },
            ));
        }
        let mut buf = Vec::with_capacity(len as usize);
        // `take`: a file that grows while it is read still cannot exceed the bound.
        file.take(max)
            .read_to_end(&mut buf)
            .map_err(self.err("read", &path))?;
        Ok(buf)
    }

    fn get_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(key);
        let f = std::fs::File::open(&path).map_err(self.err("open", &path))?;
        read_range(&f, || path.display().to_string(), offset, len)
    }

    fn open_file(&self, key: Key<'_>) -> Result<Option<std::fs::File>> {
        let path = self.path(key);
        std::fs::File::open(&path)
            .map(Some)
            .map_err(self.err("open", &path))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        let dirs: Vec<PathBuf> = match kind {
            FileKind::Pack => pack_dirs(&self.root).collect(),
            FileKind::Config => {
                return Ok(if self.root.join("config").exists() {
                    vec!["config".to_owned()]
                } else {
                    Vec::new()
                })
            }
            _ => vec![self.root.join(kind.dir())],
        };
        let mut names = Vec::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.root.is_dir() => continue,
                Err(e) => return Err(self.error("list", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(self.err("list", &dir))?;
                if let Some(name) = entry.file_name().to_str() {
                    if !name.starts_with(TEMP_PREFIX) {
                        names.push(name.to_owned());
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn stat(&self, key: Key<'_>) -> Result<ObjectInfo> {
        let path = self.path(key);
        let meta = std::fs::metadata(&path).map_err(self.err("stat", &path))?;
        Ok(ObjectInfo {
            size: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    fn delete(&self, key: Key<'_>) -> Result<()> {
        let path = self.path(key);
        self.mutation(key.kind, "remove", &path)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.error("remove", &path, e)),
        }
        // Make the unlink durable, so deletions cannot reappear out of order after a crash.
        fsync_dir(path.parent().unwrap_or(&self.root))
    }

    /// Temp files, named by their path relative to the repository directory.
    fn list_incomplete(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for dir in self.dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let is_temp = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
                if let (true, Ok(rel)) = (is_temp, path.strip_prefix(&self.root)) {
                    if let Some(rel) = rel.to_str() {
                        found.push(rel.to_owned());
                    }
                }
            }
        }
        Ok(found)
    }

    fn delete_incomplete(&self, name: &str) -> Result<()> {
        // Only ever a temp file inside the repository, whatever the name says.
        let rel = Path::new(name);
        let is_temp = rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX));
        let inside = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !is_temp || !inside {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                "remove",
                self.root.join(rel).display().to_string(),
                Cause::Io(io::Error::from(io::ErrorKind::InvalidInput)),
            ));
        }
        let path = self.root.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error("remove", &path, e)),
        }
    }

    fn describe(&self, key: Key<'_>) -> String {
        self.path(key).display().to_string()
    }
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| {
            BackendError::new(
                io_kind(&e),
                "fsync directory",
                dir.display().to_string(),
                e.into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> (tempfile::TempDir, LocalBackend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create().expect("layout");
        (dir, b)
    }

    #[test]
    fn a_missing_repository_directory_is_unreachable_and_not_recreated() {
        let (dir, b) = backend();
        std::fs::rename(dir.path().join("repo"), dir.path().join("moved")).expect("move");
        let e = b
            .put(Key::snapshot("abc"), b"one")
            .expect_err("repository is gone");
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
        assert!(!dir.path().join("repo").exists());
        let e = b.get(Key::snapshot("abc")).expect_err("gone");
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
        assert_eq!(b.presence().expect("presence"), Presence::Absent);
    }

    #[test]
    fn write_is_atomic_and_listed_without_temp_files() {
        let (_dir, b) = backend();
        b.put(Key::snapshot("abc"), b"one").expect("write");
        b.put(Key::snapshot("abc"), b"two").expect("overwrite");
        std::fs::write(b.root().join("snapshots/.tmp-left-over"), b"x").expect("temp");
        assert_eq!(b.list(FileKind::Snapshot).expect("list"), vec!["abc"]);
        assert_eq!(b.get(Key::snapshot("abc")).expect("read"), b"two");
        let temps = b.list_incomplete().expect("temps");
        assert_eq!(temps, vec!["snapshots/.tmp-left-over"]);
        b.delete_incomplete(&temps[0]).expect("remove temp");
        assert!(b.list_incomplete().expect("temps").is_empty());
        assert!(
            b.delete_incomplete("../x/.tmp-a").is_err(),
            "never outside the repository"
        );
        b.put(Key::pack("ff00"), b"pack").expect("pack");
        assert!(b.root().join("data/ff/ff00").exists());
        assert_eq!(b.get_range(Key::pack("ff00"), 1, 2).expect("range"), b"ac");
        let short = b
            .get_range(Key::pack("ff00"), 3, 2)
            .expect_err("past the end");
        assert_eq!(short.kind, ErrorKind::Permanent, "{short}");
        assert_eq!(b.size(Key::pack("ff00")).expect("size"), 4);
        let missing = b.get(Key::pack("ee00")).expect_err("missing");
        assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    }

    #[test]
    fn put_new_never_replaces_an_existing_object() {
        let (_dir, b) = backend();
        assert!(b.put_new(Key::lock("a"), b"one").expect("first"));
        assert!(!b.put_new(Key::lock("a"), b"two").expect("second"));
        assert_eq!(b.get(Key::lock("a")).expect("read"), b"one");
        assert!(b.list_incomplete().expect("temps").is_empty());
    }

    #[test]
    fn a_lost_pack_directory_is_created_again_inside_the_repository() {
        let (_dir, b) = backend();
        // Empty directories vanish in some copies (git, object stores, rsync filters).
        std::fs::remove_dir_all(b.root().join("data")).expect("rm data");
        assert!(b.list(FileKind::Pack).expect("list").is_empty());
        b.put(Key::pack("ab01"), b"pack")
            .expect("write recreates data/ab");
        assert_eq!(b.get(Key::pack("ab01")).expect("read"), b"pack");
        assert_eq!(b.list(FileKind::Pack).expect("list"), vec!["ab01"]);
    }

    #[test]
    fn a_full_disk_is_no_space_with_the_file_systems_state_in_the_message() {
        let (dir, b) = backend();
        let path = dir.path().join("repo/locks/x");
        let full = b.error("create", &path, io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.kind, ErrorKind::NoSpace);
        let space = full.space.clone().expect("statvfs of the parent");
        assert!(space.total > 0 && !space.quota);
        let msg = full.to_string();
        assert!(
            msg.contains("is full") && msg.contains("queue dlq retry"),
            "{msg}"
        );
        assert!(msg.contains(&space.mount.display().to_string()), "{msg}");
        let quota = b.error("write", &path, io::Error::from_raw_os_error(libc::EDQUOT));
        assert!(quota.space.as_ref().is_some_and(|s| s.quota), "{quota}");
        let eio = b.error("write", &path, io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(eio.kind, ErrorKind::Transient);
        assert!(eio.space.is_none());
        let rofs = b.error("write", &path, io::Error::from_raw_os_error(libc::EROFS));
        assert_eq!(rofs.kind, ErrorKind::Denied);
        assert!(rofs.to_string().contains("remount"), "{rofs}");
    }

    #[test]
    fn os_errors_get_their_kind() {
        use nix::errno::Errno;
        let kind = |e: Errno| io_kind(&io::Error::from_raw_os_error(e as i32));
        assert_eq!(kind(Errno::ENOENT), ErrorKind::NotFound);
        assert_eq!(kind(Errno::ENOSPC), ErrorKind::NoSpace);
        assert_eq!(kind(Errno::EDQUOT), ErrorKind::NoSpace);
        assert_eq!(kind(Errno::EROFS), ErrorKind::Denied);
        assert_eq!(kind(Errno::EACCES), ErrorKind::Denied);
        assert_eq!(kind(Errno::EIO), ErrorKind::Transient);
        assert_eq!(kind(Errno::ESTALE), ErrorKind::Transient);
        assert_eq!(kind(Errno::EISDIR), ErrorKind::Permanent);
    }
}
