//! Where repository objects are stored: one [`Backend`] trait over object keys, implemented by
//! the local directory backend ([`local::LocalBackend`]) and wrapped by the fault-injecting one
//! ([`faulty::FaultyBackend`]) in tests. Everything above this module (the repository format,
//! the engine, the registry, locks) names objects by [`Key`] and never sees a path, so an
//! object-store backend (S3) is one more implementation, not a change to its callers.
//!
//! # Keys
//!
//! A key is a [`FileKind`] and a name. Its object name in the store is [`Key::object_name`]:
//! `config`, `keys/<name>`, `data/<first two hex digits>/<name>`, `index/<name>`,
//! `snapshots/<name>`, `locks/<name>` (docs/FORMAT.md). Listing a kind is listing by the prefix
//! of its directory.
//!
//! # Contract
//!
//! * `put` is atomic and durable when it returns: a reader sees the whole new object or the
//!   old one, never a torn one, and a crash after `Ok` keeps it. `put_new` is the same but
//!   never replaces an existing object (put-if-absent).
//! * `get` refuses an object larger than [`FileKind::max_size`] before allocating for it.
//! * `delete` of a missing object succeeds; deletions are durable when it returns.
//! * A missing storage location (directory moved) is [`ErrorKind::Unreachable`] and is never
//!   created again by a write: a stand-in would split the repository in two. A missing S3
//!   bucket is `Permanent` (an admin must create it or fix the location; it does not come
//!   back by itself the way an unmounted disk does).
//! * Interrupted writes may leave incomplete objects; they are never listed as objects,
//!   [`Backend::list_incomplete`] names them and prune deletes them.
//!
//! # Error kinds
//!
//! Every failure carries one [`ErrorKind`], decided by the backend that saw the failure (only it
//! knows what an errno or an HTTP status means), so nobody above has to read messages:
//!
//! | kind | why it exists | what the queue does |
//! |---|---|---|
//! | `NotFound` | the object is not there. The repository names its objects (the index names packs), so an object it asks for and does not get is lost data | fails the job, no retry (a data error: `repo check`) |
//! | `Unreachable` | the storage itself is gone (unmounted disk, moved directory, unreachable host): it may come back | retries with back-off |
//! | `NoSpace` | the file system or quota is full; carries the [`FsSpace`] for the message | retries with back-off (frees up when prune runs) |
//! | `Denied` | the storage refuses (read-only mount, permissions): an admin must act | fails, no retry |
//! | `Transient` | a failure that may pass by itself (EIO on a flaky mount, a timeout, a 503) | retries with back-off |
//! | `Permanent` | anything retrying cannot fix (an object too large, an invalid name) | fails, no retry |
//!
//! The mapping from kind to wire code and retryability is in `crate::error` (one place).

pub mod cache;
pub mod daemon_rights;
pub mod faulty;
pub mod local;
pub mod s3;

use super::location::Location;
use std::io;
use std::path::{Path, PathBuf};

pub use local::{fsync_dir, LocalBackend};

/// Tells the object-store backends where the daemon keeps their stored credentials
/// (`STATE_DIR/keys`) and their local caches (`STATE_DIR/cache`).
pub fn use_state_dir(state_dir: &Path) {
    s3::credentials::set_store(&state_dir.join("keys"));
    cache::set_root(&state_dir.join("cache"));
}

/// The kinds of objects a repository holds, each under its own prefix.
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
    /// The prefix (directory) objects of this kind live under; empty for the config.
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

    /// The largest object of this kind a reader accepts. Objects are read whole, so a hostile
    /// or damaged repository could otherwise make a reader allocate whatever size one claims.
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

/// The name of one object: its kind and its name within the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    pub kind: FileKind,
    pub name: &'a str,
}

impl<'a> Key<'a> {
    pub fn new(kind: FileKind, name: &'a str) -> Self {
        Self { kind, name }
    }

    pub fn config() -> Key<'static> {
        Key::new(FileKind::Config, "config")
    }

    pub fn pack(name: &'a str) -> Self {
        Self::new(FileKind::Pack, name)
    }

    pub fn index(name: &'a str) -> Self {
        Self::new(FileKind::Index, name)
    }

    pub fn snapshot(name: &'a str) -> Self {
        Self::new(FileKind::Snapshot, name)
    }

    pub fn lock(name: &'a str) -> Self {
        Self::new(FileKind::Lock, name)
    }

    /// The object's name in the store, relative to the repository root (docs/FORMAT.md):
    /// packs are spread over 256 prefixes by their first byte.
    pub fn object_name(&self) -> String {
        match self.kind {
            FileKind::Config => "config".to_owned(),
            FileKind::Pack => format!("data/{}/{}", self.name.get(..2).unwrap_or("00"), self.name),
            kind => format!("{}/{}", kind.dir(), self.name),
        }
    }
}

/// Size and age of a stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// When it was last written; `None` if the store cannot say.
    pub modified: Option<std::time::SystemTime>,
}

impl ObjectInfo {
    /// Time since the object was last written; `None` if unknown.
    pub fn age(&self) -> Option<std::time::Duration> {
        self.modified?.elapsed().ok()
    }
}

/// What is at a backend's location before a repository is created there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Absent,
    Empty,
    /// Something is there (a repository or other files).
    Occupied,
}

/// One storage for repository objects. Implementations block (file or network I/O): callers
/// run them on blocking threads. See the module doc for the contract and the error kinds.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Where the repository is stored.
    fn location(&self) -> &Location;

    /// What is at the location (for `init`, which needs an empty or missing one).
    fn presence(&self) -> Result<Presence>;

    /// Prepares the location for a new repository (directories, for the local backend).
    fn create(&self) -> Result<()>;

    /// Stores an object atomically and durably, replacing one of the same key.
    fn put(&self, key: Key<'_>, data: &[u8]) -> Result<()>;

    /// Stores an object unless one of that key exists: `Ok(false)` (and nothing written) then.
    fn put_new(&self, key: Key<'_>, data: &[u8]) -> Result<bool>;

    /// A whole object, bounded by [`FileKind::max_size`].
    fn get(&self, key: Key<'_>) -> Result<Vec<u8>>;

    /// `len` bytes of an object from `offset` (a blob inside a pack).
    fn get_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>>;

    /// The names of the objects of a kind (the objects under its prefix), sorted; incomplete
    /// objects are not listed. A missing prefix lists as empty.
    fn list(&self, kind: FileKind) -> Result<Vec<String>>;

    /// Size and modification time of an object.
    fn stat(&self, key: Key<'_>) -> Result<ObjectInfo>;

    /// Removes an object durably; a missing one is not an error.
    fn delete(&self, key: Key<'_>) -> Result<()>;

    /// Leftovers of interrupted writes, by an opaque name that [`Self::delete_incomplete`]
    /// takes.
    fn list_incomplete(&self) -> Result<Vec<String>>;

    fn delete_incomplete(&self, name: &str) -> Result<()>;

    /// Where one object is, for messages (a path, a URL).
    fn describe(&self, key: Key<'_>) -> String;

    /// A range holding repository metadata (a tree blob): the same as [`Self::get_range`],
    /// except that a caching backend keeps it (module `cache`).
    fn get_metadata_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.get_range(key, offset, len)
    }

    /// An object opened once for many range reads (a pack a restore reads blob by blob), when
    /// the store keeps it as a local file; `None` when it does not (then [`Self::get_range`]).
    fn open_file(&self, _key: Key<'_>) -> Result<Option<std::fs::File>> {
        Ok(None)
    }

    /// Told the bytes of a metadata range just written inside a pack, so that a caching
    /// backend need not read them back; others ignore it.
    fn keep_metadata_range(&self, _key: Key<'_>, _offset: u64, _data: &[u8]) {}

    /// The size of an object.
    fn size(&self, key: Key<'_>) -> Result<u64> {
        Ok(self.stat(key)?.size)
    }

    /// Whether an object exists. Any failure other than "not found" is an error.
    fn exists(&self, key: Key<'_>) -> Result<bool> {
        match self.stat(key) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// What kind of failure a backend saw; see the module doc for why each exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Unreachable,
    NoSpace,
    Denied,
    Transient,
    Permanent,
}

/// Why a backend operation failed, beyond its kind.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the object is {size} bytes; no valid object of its kind exceeds {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("the object ends before byte {end} (it is {size} bytes)")]
    Short { end: u64, size: u64 },
    /// What a remote store answered (or that it did not), with what to do about it.
    #[error("{0}")]
    Remote(String),
    /// A fault a test asked [`faulty::FaultyBackend`] for.
    #[error("injected fault ({0})")]
    Injected(&'static str),
}

/// A failed storage operation: its kind, what was done, on which object or location, and why.
/// When the store is full it also carries the state of the file system that is.
#[derive(Debug)]
pub struct BackendError {
    pub kind: ErrorKind,
    pub action: &'static str,
    /// The object or location, as [`Backend::describe`] names it.
    pub target: String,
    pub cause: Cause,
    /// Set exactly when `kind` is [`ErrorKind::NoSpace`] and the free space could be read
    /// (boxed: errors travel by value through every `Result` of the engine).
    pub space: Option<Box<FsSpace>>,
}

impl BackendError {
    pub fn new(kind: ErrorKind, action: &'static str, target: String, cause: Cause) -> Self {
        Self {
            kind,
            action,
            target,
            cause,
            space: None,
        }
    }

    /// The OS error underneath, if any (for messages and errno-specific hints).
    pub fn raw_os_error(&self) -> Option<i32> {
        match &self.cause {
            Cause::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind == ErrorKind::NoSpace {
            let space = self.space.as_deref().cloned().unwrap_or(FsSpace {
                mount: PathBuf::from(&self.target),
                free: 0,
                total: 0,
                quota: false,
            });
            let what = if space.quota {
                "the disk quota on the file system"
            } else {
                "the file system"
            };
            return write!(
                f,
                "cannot {} {}: {what} mounted at {} is full ({} free of {}). Free space on {} \
                 (delete other files there, or remove old snapshots with `backupctl forget \
                 --prune`), then wait for the automatic retry or run `backupctl queue dlq retry \
                 JOB` for a job that gave up",
                self.action,
                self.target,
                space.mount.display(),
                human_bytes(space.free),
                human_bytes(space.total),
                space.mount.display(),
            );
        }
        write!(f, "cannot {} {}: {}", self.action, self.target, self.cause)?;
        match self.kind {
            ErrorKind::Unreachable => write!(
                f,
                "; the repository's location is gone (moved, deleted or not mounted?); jobs \
                 retry until it is back"
            ),
            ErrorKind::Denied if self.raw_os_error() == Some(nix::errno::Errno::EROFS as i32) => {
                // Restore, check and listing still work there; writers need it writable.
                write!(
                    f,
                    "; the file system is mounted read-only: remount it read-write (`mount -o \
                     remount,rw MOUNT`) to back up or prune; restore and check work as it is"
                )
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

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
