//! Where repository files live. Only the local file system exists so far; everything above this
//! trait is storage-agnostic so an object-store backend can be added.
//!
//! Durability: every object is written to a temp name in its final directory, fsynced, renamed
//! into place, and the directory fsynced. A crash leaves either the whole object or a temp file
//! (which `check` ignores and `prune` removes), never a torn object under its real name.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The kinds of files a repository holds, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
}

impl FileKind {
    pub fn dir(self) -> &'static str {
        match self {
            Self::Config => "",
            Self::Key => "keys",
            Self::Pack => "data",
            Self::Index => "index",
            Self::Snapshot => "snapshots",
            Self::Lock => "locks",
        }
    }

    /// The largest file of this kind a reader accepts. Files are read whole, so a hostile or
    /// damaged repository could otherwise make a reader allocate whatever size a file claims.
    pub fn max_size(self) -> u64 {
        const MIB: u64 = 1024 * 1024;
        match self {
            Self::Config | Self::Key => MIB,
            Self::Lock => 64 * 1024,
            // Sealed metadata: the decode limit plus the seal.
            Self::Index | Self::Snapshot => {
                (super::METADATA_LIMIT + super::crypto::SEAL_OVERHEAD) as u64
            }
            // Blob offsets and lengths are u32, so no valid pack reaches past 4 GiB plus its
            // header (itself decoded with a 64 MiB limit).
            Self::Pack => (1 << 32) + 64 * MIB + 1024,
        }
    }
}

const TEMP_PREFIX: &str = ".tmp-";

/// A failed file operation: what was done, on which path, and the OS error. When the error is
/// "no space" (ENOSPC, EDQUOT) it also carries the state of the file system that is full.
#[derive(Debug)]
pub struct BackendError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
    /// Set exactly when `source` is ENOSPC or EDQUOT.
    pub space: Option<FsSpace>,
}

/// The file system a path lives on, as `statvfs` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsSpace {
    /// Its mount point (the topmost directory above the path on the same device).
    pub mount: PathBuf,
    /// Bytes available to unprivileged writers.
    pub free: u64,
    pub total: u64,
    /// EDQUOT: a quota, not the file system, is exhausted.
    pub quota: bool,
}

/// `1.5 MiB`-style sizes for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl FsSpace {
    /// Looks up the file system of `path` (or of its nearest existing parent).
    pub fn of(path: &Path, quota: bool) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let existing = path.ancestors().find(|p| p.exists())?;
        let vfs = nix::sys::statvfs::statvfs(existing).ok()?;
        let dev = std::fs::metadata(existing).ok()?.dev();
        let mount = existing
            .ancestors()
            .take_while(|p| std::fs::metadata(p).is_ok_and(|m| m.dev() == dev))
            .last()
            .unwrap_or(existing)
            .to_owned();
        let frag = vfs.fragment_size() as u64;
        Some(Self {
            mount,
            free: (vfs.blocks_available() as u64).saturating_mul(frag),
            total: (vfs.blocks() as u64).saturating_mul(frag),
            quota,
        })
    }
}

impl BackendError {
    /// Builds the error, looking up the file system's free space when it is full.
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        let errno = source.raw_os_error().map(nix::errno::Errno::from_raw);
        let space = match errno {
            Some(nix::errno::Errno::ENOSPC) => FsSpace::of(path, false),
            Some(nix::errno::Errno::EDQUOT) => FsSpace::of(path, true),
            _ => None,
        }
        .or_else(|| {
            // statvfs itself failed: still a full disk, just without numbers.
            matches!(
                errno,
                Some(nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT)
            )
            .then(|| FsSpace {
                mount: path.to_owned(),
                free: 0,
                total: 0,
                quota: errno == Some(nix::errno::Errno::EDQUOT),
            })
        });
        Self {
            action,
            path: path.to_owned(),
            source,
            space,
        }
    }

    /// The file system (or the quota) is full: retrying helps once space is freed.
    pub fn is_no_space(&self) -> bool {
        self.space.is_some()
    }

    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }

    /// The repository directory is missing (moved, unmounted): it may come back.
    pub fn is_unreachable(&self) -> bool {
        self.action == REACH
    }
}

/// The action of the error a backend reports when the repository directory itself is gone.
const REACH: &str = "reach repository directory";

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(space) = &self.space else {
            write!(
                f,
                "cannot {} {}: {}",
                self.action,
                self.path.display(),
                self.source
            )?;
            if self.source.raw_os_error() == Some(nix::errno::Errno::EROFS as i32) {
                // Restore, check and listing still work there; writers need it writable.
                write!(
                    f,
                    "; the file system is mounted read-only: remount it read-write (`mount -o \
                     remount,rw MOUNT`) to back up or prune; restore and check work as it is"
                )?;
            }
            return Ok(());
        };
        let what = if space.quota {
            "the disk quota on the file system"
        } else {
            "the file system"
        };
        write!(
            f,
            "cannot {} {}: {what} mounted at {} is full ({} free of {}). Free space on {} \
             (delete other files there, or remove old snapshots with `backupctl forget \
             --prune`), then wait for the automatic retry or run `backupctl queue dlq retry \
             JOB` for a job that gave up",
            self.action,
            self.path.display(),
            space.mount.display(),
            human_bytes(space.free),
            human_bytes(space.total),
            space.mount.display(),
        )
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// A local directory holding a repository.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    root: PathBuf,
    /// Mutations (writes, removes) left before every mutation fails; `u64::MAX` is "never".
    crash_after: Arc<AtomicU64>,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BackendError + 'a {
    move |source| BackendError::new(action, path, source)
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
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
            return Err(err(action, path)(io::Error::other("injected crash (test)")));
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory skeleton (0700), including the 256 pack subdirectories.
    pub fn create_layout(&self) -> Result<()> {
        let mkdir = |p: &Path| {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(p)
                .map_err(err("create directory", p))
        };
        mkdir(&self.root)?;
        for kind in [
            FileKind::Key,
            FileKind::Index,
            FileKind::Snapshot,
            FileKind::Lock,
        ] {
            mkdir(&self.root.join(kind.dir()))?;
        }
        for byte in 0..=255u8 {
            mkdir(&self.root.join("data").join(format!("{byte:02x}")))?;
        }
        fsync_dir(&self.root.join("data"))?;
        fsync_dir(&self.root)
    }

    /// Path of an object. Packs are spread over `data/XX/` by their first byte.
    pub fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        match kind {
            FileKind::Config => self.root.join("config"),
            FileKind::Pack => self
                .root
                .join("data")
                .join(name.get(..2).unwrap_or("00"))
                .join(name),
            _ => self.root.join(kind.dir()).join(name),
        }
    }

    /// Writes an object atomically and durably; an existing object of that name is replaced.
    pub fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(kind, name);
        self.mutation(kind, "write", &path)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{name}-{:016x}",
            rand::random::<u64>()
        ));
        let result = (|| {
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
                    Err(e).map_err(err(REACH, &self.root))?
                }
                // Empty directories do not survive every copy (git, object stores): recreate.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&dir)
                        .map_err(err("create directory", &dir))?;
                    // The new directory entry must be durable before an object inside it is
                    // called written: fsync every parent up to the repository root.
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
            .map_err(err("create", &temp))?;
            f.write_all(data).map_err(err("write", &temp))?;
            f.sync_all().map_err(err("fsync", &temp))?;
            std::fs::rename(&temp, &path).map_err(err("rename into place", &path))?;
            fsync_dir(&dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Reads a whole object. One larger than [`FileKind::max_size`] is refused before anything
    /// is allocated for it.
    pub fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        let file = std::fs::File::open(&path).map_err(err("open", &path))?;
        let len = file.metadata().map_err(err("stat", &path))?.len();
        let max = kind.max_size();
        if len > max {
            return Err(err("read", &path)(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the file is {len} bytes; no valid object of its kind exceeds {max}"),
            )));
        }
        let mut buf = Vec::with_capacity(len as usize);
        // `take`: a file that grows while it is read still cannot exceed the bound.
        file.take(max)
            .read_to_end(&mut buf)
            .map_err(err("read", &path))?;
        Ok(buf)
    }

    pub fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let path = self.path(kind, name);
        let mut f = std::fs::File::open(&path).map_err(err("open", &path))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(err("seek in", &path))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf).map_err(err("read", &path))?;
        Ok(buf)
    }

    pub fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        let path = self.path(kind, name);
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(err("stat", &path))
    }

    /// Names of the objects of a kind (temp files excluded).
    pub fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        let dirs: Vec<PathBuf> = match kind {
            FileKind::Pack => (0..=255u8)
                .map(|b| self.root.join("data").join(format!("{b:02x}")))
                .collect(),
            FileKind::Config => return Ok(vec!["config".to_owned()]),
            _ => vec![self.root.join(kind.dir())],
        };
        let mut names = Vec::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err("list", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(err("list", &dir))?;
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

    /// Temp files left by interrupted writes.
    pub fn list_temp(&self) -> Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let mut dirs = vec![self.root.clone()];
        for kind in [
            FileKind::Key,
            FileKind::Index,
            FileKind::Snapshot,
            FileKind::Lock,
        ] {
            dirs.push(self.root.join(kind.dir()));
        }
        dirs.extend((0..=255u8).map(|b| self.root.join("data").join(format!("{b:02x}"))));
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    found.push(entry.path());
                }
            }
        }
        Ok(found)
    }

    pub fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
        let path = self.path(kind, name);
        self.mutation(kind, "remove", &path)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err("remove", &path)(e)),
        }
        // Make the unlink durable, so deletions cannot reappear out of order after a crash.
        fsync_dir(path.parent().unwrap_or(&self.root))
    }

    /// Time since the object was last modified; `None` if unknown.
    pub fn age(&self, kind: FileKind, name: &str) -> Option<std::time::Duration> {
        let modified = std::fs::metadata(self.path(kind, name))
            .ok()?
            .modified()
            .ok()?;
        modified.elapsed().ok()
    }

    pub fn exists(&self, kind: FileKind, name: &str) -> bool {
        self.path(kind, name).exists()
    }
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_repository_directory_is_unreachable_and_not_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create_layout().expect("layout");
        std::fs::rename(dir.path().join("repo"), dir.path().join("moved")).expect("move");
        let e = b
            .write(FileKind::Snapshot, "abc", b"one")
            .expect_err("repository is gone");
        assert!(e.is_unreachable(), "{e}");
        assert!(!dir.path().join("repo").exists());
    }

    #[test]
    fn write_is_atomic_and_listed_without_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create_layout().expect("layout");
        b.write(FileKind::Snapshot, "abc", b"one").expect("write");
        b.write(FileKind::Snapshot, "abc", b"two")
            .expect("overwrite");
        std::fs::write(b.root().join("snapshots/.tmp-left-over"), b"x").expect("temp");
        assert_eq!(b.list(FileKind::Snapshot).expect("list"), vec!["abc"]);
        assert_eq!(b.read(FileKind::Snapshot, "abc").expect("read"), b"two");
        assert_eq!(b.list_temp().expect("temps").len(), 1);
        b.write(FileKind::Pack, "ff00", b"pack").expect("pack");
        assert!(b.root().join("data/ff/ff00").exists());
        assert_eq!(
            b.read_range(FileKind::Pack, "ff00", 1, 2).expect("range"),
            b"ac"
        );
    }

    #[test]
    fn a_lost_pack_directory_is_created_again_inside_the_repository() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create_layout().expect("layout");
        // Empty directories vanish in some copies (git, object stores, rsync filters).
        std::fs::remove_dir_all(b.root().join("data")).expect("rm data");
        b.write(FileKind::Pack, "ab01", b"pack")
            .expect("write recreates data/ab");
        assert_eq!(b.read(FileKind::Pack, "ab01").expect("read"), b"pack");
        assert_eq!(b.list(FileKind::Pack).expect("list"), vec!["ab01"]);
    }
}
