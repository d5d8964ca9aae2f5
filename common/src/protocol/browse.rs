//! Browsing snapshots without restoring them: `backupctl ls`, `find`, `diff` and `cat`. Each
//! request is answered by the daemon directly (not queued); every answer is bounded (`limit`,
//! and a byte budget) and says when it was cut (`truncated`). Paths travel as raw bytes,
//! absolute within the snapshot.

use super::SnapshotFilter;
use serde::{Deserialize, Serialize};

/// The largest piece of a file's content one `Progress::Content` frame carries.
pub const CAT_CHUNK: usize = 1 << 20;

/// Each request boxed: they carry filters and paths, and `Request` stays small.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BrowseRequest {
    /// A directory (or one entry) of a snapshot -> `Response::Listing`. Not streamed.
    Ls(Box<LsRequest>),
    /// Which snapshots hold files matching a glob -> `Response::Found`. Not streamed.
    Find(Box<FindRequest>),
    /// What changed between two snapshots -> `Response::Diff`. Not streamed.
    Diff(Box<DiffRequest>),
    /// A file's content: `Progress::Content` frames of at most [`CAT_CHUNK`] bytes, in order,
    /// then `Response::Cat`. Streamed.
    Cat(Box<CatRequest>),
}

impl BrowseRequest {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ls(_) => "ls",
            Self::Find(_) => "find",
            Self::Diff(_) => "diff",
            Self::Cat(_) => "cat",
        }
    }

    /// The repository named (`None`: the default one).
    pub fn repo(&self) -> Option<&str> {
        match self {
            Self::Ls(r) => r.repo.as_deref(),
            Self::Find(r) => r.repo.as_deref(),
            Self::Diff(r) => r.repo.as_deref(),
            Self::Cat(r) => r.repo.as_deref(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LsRequest {
    pub repo: Option<String>,
    /// `latest`, an id or a unique prefix.
    pub snapshot: String,
    /// Narrows `latest` (its `path` is ignored: `latest` must hold `path`).
    pub filter: SnapshotFilter,
    /// Absolute path inside the snapshot; `None`: its root.
    pub path: Option<Vec<u8>>,
    /// Everything below the directory, in path order.
    pub recursive: bool,
    /// At most this many entries (0: the daemon's default, 10,000; at most 100,000).
    pub limit: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::Symlink => "symlink",
            Self::Fifo => "fifo",
            Self::CharDevice => "char-device",
            Self::BlockDevice => "block-device",
            Self::Socket => "socket",
        }
    }
}

/// One entry of a snapshot as `ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Absolute path inside the snapshot.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits incl. setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Owner and group names as recorded at backup time.
    pub user: Option<String>,
    pub group: Option<String>,
    pub size: u64,
    pub mtime_ns: i64,
    /// A symlink's target.
    pub target: Option<Vec<u8>>,
    /// A device's number.
    pub rdev: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The snapshot's full id.
    pub snapshot: String,
    pub time_ns: i64,
    /// The path listed.
    pub path: Vec<u8>,
    /// Path order; the entry itself when `path` is not a directory.
    pub entries: Vec<EntryInfo>,
    /// More entries exist than `limit` (or the byte budget) allowed.
    pub truncated: bool,
    /// Entries left out because their name cannot be a file name (empty, `.`, `..`, holding
    /// `/` or NUL): damaged or hostile repository data.
    pub unsafe_names: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FindRequest {
    pub repo: Option<String>,
    /// A glob (globset syntax). Without `/` it matches entry names; with `/`, whole absolute
    /// paths (`*` stops at `/`, `**` crosses it; a pattern not starting with `/` matches at any
    /// depth).
    pub pattern: String,
    /// Snapshot specs to search; empty: every snapshot `filter` and the time window accept.
    pub snapshots: Vec<String>,
    /// Only snapshots taken at or after / at or before these times (ns since the epoch).
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    pub filter: SnapshotFilter,
    /// Only below this absolute path.
    pub path: Option<Vec<u8>>,
    /// At most this many paths (0: the daemon's default, 1,000; at most 100,000).
    pub limit: u32,
}

/// A snapshot searched by `find`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundSnapshot {
    pub id: String,
    pub time_ns: i64,
}

/// One version of a matching path: the same content (files), target (symlinks) or kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundVersion {
    pub kind: EntryKind,
    pub size: u64,
    /// As recorded in the oldest snapshot holding this version.
    pub mtime_ns: i64,
    /// A digest of the content's blob ids (files), short hex: equal content, equal digest.
    pub content: Option<String>,
    pub target: Option<Vec<u8>>,
    /// The snapshots holding it, as inclusive ranges of indices into `Found::snapshots`.
    pub snapshots: Vec<(u32, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundPath {
    pub path: Vec<u8>,
    /// Oldest first (by the first snapshot holding each).
    pub versions: Vec<FoundVersion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// The snapshots searched, oldest first.
    pub snapshots: Vec<FoundSnapshot>,
    /// Path order.
    pub matches: Vec<FoundPath>,
    pub truncated: bool,
    /// Tree blobs decoded: a subtree shared by several snapshots is read once.
    pub trees_read: u64,
    pub unsafe_names: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffRequest {
    pub repo: Option<String>,
    /// The older and the newer snapshot (`latest`, ids or prefixes).
    pub from: String,
    pub to: String,
    /// Narrows `latest`.
    pub filter: SnapshotFilter,
    /// Only below this absolute path.
    pub path: Option<Vec<u8>>,
    /// At most this many changes listed (0: the daemon's default, 10,000; at most 100,000);
    /// the counts cover every change.
    pub limit: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    /// The content differs (or the type, a symlink's target, a device's number).
    Modified,
    /// Equal content; mode, owner, mtime or extended attributes differ.
    Metadata,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Modified => "modified",
            Self::Metadata => "metadata",
        }
    }
}

/// What differs between the two versions of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffField {
    Type,
    Content,
    Target,
    Device,
    Mode,
    Owner,
    Mtime,
    Xattrs,
}

impl DiffField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Type => "type",
            Self::Content => "content",
            Self::Target => "target",
            Self::Device => "device",
            Self::Mode => "mode",
            Self::Owner => "owner",
            Self::Mtime => "mtime",
            Self::Xattrs => "xattrs",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: Vec<u8>,
    pub change: ChangeKind,
    /// The entry's kind (in the newer snapshot, when it is there).
    pub kind: EntryKind,
    /// What differs (modified and metadata changes).
    pub fields: Vec<DiffField>,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffResult {
    pub from: String,
    pub to: String,
    /// Path order.
    pub changes: Vec<Change>,
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub metadata: u64,
    pub truncated: bool,
    pub trees_read: u64,
    pub unsafe_names: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CatRequest {
    pub repo: Option<String>,
    pub snapshot: String,
    /// Narrows `latest` (which must hold `path`).
    pub filter: SnapshotFilter,
    /// Absolute path of a file inside the snapshot.
    pub path: Vec<u8>,
}

/// The end of a `cat`: what was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatResult {
    pub snapshot: String,
    pub path: Vec<u8>,
    /// Bytes sent in `Progress::Content` frames.
    pub bytes: u64,
}
