//! Directory listings as stored in tree blobs: one [`Tree`] per directory, its nodes sorted by
//! name, subdirectories referenced by the id of their own tree blob. Identical directories are
//! therefore stored once, and an unchanged subtree costs nothing in the next snapshot.

use backupd_common::ids::BlobId;
use serde::{Deserialize, Serialize};

pub const TREE_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub version: u32,
    pub nodes: Vec<Node>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    /// Recorded, never restored (a socket belongs to a running program).
    Socket,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The file name as raw bytes (Linux names need not be UTF-8).
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Full `st_mode` permission bits incl. setuid/setgid/sticky (no file type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Nanoseconds since the Unix epoch.
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub size: u64,
    pub inode: u64,
    pub dev: u64,
    pub nlink: u64,
    /// Device number of character and block devices.
    pub rdev: u64,
    /// Symlink target, raw bytes.
    pub target: Vec<u8>,
    /// Extended attributes, including POSIX ACLs (`system.posix_acl_access`/`_default`).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// File content, in order.
    pub content: Vec<BlobId>,
    /// Tree of a directory.
    pub subtree: Option<BlobId>,
    /// The file changed while it was read; its content may mix old and new data.
    pub changed_during_read: bool,
}

impl Node {
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Self {
        Self {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            atime_ns: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            size: 0,
            inode: 0,
            dev: 0,
            nlink: 1,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
            changed_during_read: false,
        }
    }
}

/// A name that can be safely joined to a restore target: one component, no `.`/`..`, no `/`, no
/// NUL.
pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}
