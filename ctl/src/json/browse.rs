//! `ls`, `find` and `diff` (docs/JSON.md, "Browsing snapshots"). Paths by the one escape rule;
//! `cat` has no JSON: its output is the file.

use super::{path, time};
use backupd_common::protocol::{
    Change, DiffResult, EntryInfo, Found, FoundPath, FoundVersion, Listing,
};
use serde::Serialize;

/// Permission bits as four octal digits (`0644`, `4755`).
pub fn octal(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub path: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub size: u64,
    pub mtime: String,
    pub mtime_ns: i64,
    /// Symlinks only.
    pub target: Option<String>,
}

/// The last component of an absolute path (`/` for the root).
pub fn name_of(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) if i + 1 < p.len() => &p[i + 1..],
        _ => p,
    }
}

impl From<&EntryInfo> for EntryView {
    fn from(e: &EntryInfo) -> Self {
        Self {
            path: path(&e.path),
            name: path(name_of(&e.path)),
            kind: e.kind.as_str(),
            mode: octal(e.mode),
            uid: e.uid,
            gid: e.gid,
            user: e.user.clone(),
            group: e.group.clone(),
            size: e.size,
            mtime: time(e.mtime_ns),
            mtime_ns: e.mtime_ns,
            target: e.target.as_deref().map(path),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ListingView {
    pub snapshot: String,
    pub time: String,
    pub path: String,
    pub entries: Vec<EntryView>,
    pub truncated: bool,
    pub unsafe_names: u64,
}

impl From<&Listing> for ListingView {
    fn from(l: &Listing) -> Self {
        Self {
            snapshot: l.snapshot.clone(),
            time: time(l.time_ns),
            path: path(&l.path),
            entries: l.entries.iter().map(EntryView::from).collect(),
            truncated: l.truncated,
            unsafe_names: l.unsafe_names,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SearchedView {
    pub id: String,
    pub time: String,
}

#[derive(Debug, Serialize)]
pub struct VersionView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    pub mtime: String,
    pub mtime_ns: i64,
    pub content: Option<String>,
    pub target: Option<String>,
    /// Full ids, oldest first.
    pub snapshots: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct MatchView {
    pub path: String,
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Serialize)]
pub struct FoundView {
    pub pattern: String,
    pub snapshots: Vec<SearchedView>,
    pub matches: Vec<MatchView>,
    pub truncated: bool,
    pub trees_read: u64,
    pub unsafe_names: u64,
}

/// The snapshots a version's index ranges name, by full id.
pub fn members<'a>(found: &'a Found, v: &FoundVersion) -> Vec<&'a str> {
    v.snapshots
        .iter()
        .flat_map(|(a, b)| *a..=*b)
        .filter_map(|i| found.snapshots.get(i as usize))
        .map(|s| s.id.as_str())
        .collect()
}

impl FoundView {
    pub fn new(pattern: &str, f: &Found) -> Self {
        let version = |v: &FoundVersion| VersionView {
            kind: v.kind.as_str(),
            size: v.size,
            mtime: time(v.mtime_ns),
            mtime_ns: v.mtime_ns,
            content: v.content.clone(),
            target: v.target.as_deref().map(path),
            snapshots: members(f, v).into_iter().map(str::to_owned).collect(),
        };
        let found = |m: &FoundPath| MatchView {
            path: path(&m.path),
            versions: m.versions.iter().map(version).collect(),
        };
        Self {
            pattern: pattern.to_owned(),
            snapshots: f
                .snapshots
                .iter()
                .map(|s| SearchedView {
                    id: s.id.clone(),
                    time: time(s.time_ns),
                })
                .collect(),
            matches: f.matches.iter().map(found).collect(),
            truncated: f.truncated,
            trees_read: f.trees_read,
            unsafe_names: f.unsafe_names,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChangeView {
    pub path: String,
    pub change: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub fields: Vec<&'static str>,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

impl From<&Change> for ChangeView {
    fn from(c: &Change) -> Self {
        Self {
            path: path(&c.path),
            change: c.change.as_str(),
            kind: c.kind.as_str(),
            fields: c.fields.iter().map(|f| f.as_str()).collect(),
            size_before: c.size_before,
            size_after: c.size_after,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DiffSummary {
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub metadata: u64,
}

#[derive(Debug, Serialize)]
pub struct DiffView {
    pub from: String,
    pub to: String,
    pub changes: Vec<ChangeView>,
    pub summary: DiffSummary,
    pub truncated: bool,
    pub trees_read: u64,
    pub unsafe_names: u64,
}

impl From<&DiffResult> for DiffView {
    fn from(d: &DiffResult) -> Self {
        Self {
            from: d.from.clone(),
            to: d.to.clone(),
            changes: d.changes.iter().map(ChangeView::from).collect(),
            summary: DiffSummary {
                added: d.added,
                removed: d.removed,
                modified: d.modified,
                metadata: d.metadata,
            },
            truncated: d.truncated,
            trees_read: d.trees_read,
            unsafe_names: d.unsafe_names,
        }
    }
}
