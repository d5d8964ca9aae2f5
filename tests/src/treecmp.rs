//! Compares two directory trees content for content and metadata for metadata: the way restores
//! are judged.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default)]
pub struct CompareOptions {
    pub owners: bool,
    pub atime: bool,
    /// Compare allocated blocks of sparse files (restored within 2x + 64 KiB of the original).
    pub sparse: bool,
}

fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = xattr::list(p)
        .map(|names| {
            names
                .filter_map(|n| {
                    let v = xattr::get(p, &n).ok().flatten()?;
                    Some((n.to_string_lossy().into_owned(), v))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn walk(root: &Path, skip_top: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            if rel.as_os_str().is_empty() && skip_top.iter().any(|s| e.file_name() == *s) {
                continue;
            }
            let r = rel.join(e.file_name());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(r.clone());
            }
            out.push(r);
        }
    }
    out.sort();
    out
}

/// Differences between `a` and `b` (empty when they are equal).
pub fn compare_trees(a: &Path, b: &Path, opts: CompareOptions) -> Vec<String> {
    compare_trees_skipping(a, b, opts, &[])
}

/// [`compare_trees`] leaving out the entries named `skip_top` at the top of either tree (a
/// sync pair's `.backupd-trash`). The roots' own metadata is not compared.
pub fn compare_trees_skipping(
    a: &Path,
    b: &Path,
    opts: CompareOptions,
    skip_top: &[&str],
) -> Vec<String> {
    let mut diffs = Vec::new();
    let (la, lb) = (walk(a, skip_top), walk(b, skip_top));
    if la != lb {
        // Sets, not `Vec::contains`: a failed 200k-file comparison must fail in seconds.
        let (sa, sb): (std::collections::HashSet<_>, std::collections::HashSet<_>) =
            (la.iter().collect(), lb.iter().collect());
        let only_a: Vec<_> = la.iter().filter(|p| !sb.contains(p)).take(5).collect();
        let only_b: Vec<_> = lb.iter().filter(|p| !sa.contains(p)).take(5).collect();
        diffs.push(format!(
            "entries differ: only in original {only_a:?}, only in restore {only_b:?}"
        ));
        return diffs;
    }
    let mut links_a: HashMap<(u64, u64), &PathBuf> = HashMap::new();
    let mut links_b: HashMap<(u64, u64), &PathBuf> = HashMap::new();
    for rel in &la {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = match (
            std::fs::symlink_metadata(&pa),
            std::fs::symlink_metadata(&pb),
        ) {
            (Ok(x), Ok(y)) => (x, y),
            _ => {
                diffs.push(format!("{}: cannot stat", rel.display()));
                continue;
            }
        };
        let d = |what: &str, x: String, y: String| format!("{}: {what} {x} != {y}", rel.display());
        let (ta, tb) = (ma.file_type(), mb.file_type());
        let kind = |t: std::fs::FileType| {
            format!(
                "{}{}{}{}{}{}",
                if t.is_dir() { "d" } else { "" },
                if t.is_file() { "f" } else { "" },
                if t.is_symlink() { "l" } else { "" },
                if t.is_fifo() { "p" } else { "" },
                if t.is_char_device() { "c" } else { "" },
                if t.is_block_device() { "b" } else { "" }
            )
        };
        if kind(ta) != kind(tb) {
            diffs.push(d("type", kind(ta), kind(tb)));
            continue;
        }
        if !ta.is_symlink() && ma.mode() != mb.mode() {
            diffs.push(d(
                "mode",
                format!("{:o}", ma.mode()),
                format!("{:o}", mb.mode()),
            ));
        }
        if opts.owners && (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(d(
                "owner",
                format!("{}:{}", ma.uid(), ma.gid()),
                format!("{}:{}", mb.uid(), mb.gid()),
            ));
        }
        if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
            diffs.push(d(
                "mtime",
                format!("{}.{:09}", ma.mtime(), ma.mtime_nsec()),
                format!("{}.{:09}", mb.mtime(), mb.mtime_nsec()),
            ));
        }
        if opts.atime
            && !ta.is_dir()
            && (ma.atime(), ma.atime_nsec()) != (mb.atime(), mb.atime_nsec())
        {
            diffs.push(d("atime", ma.atime().to_string(), mb.atime().to_string()));
        }
        if xattrs(&pa) != xattrs(&pb) {
            diffs.push(d(
                "xattrs",
                format!("{:?}", xattrs(&pa)),
                format!("{:?}", xattrs(&pb)),
            ));
        }
        if ta.is_symlink() {
            let (x, y) = (std::fs::read_link(&pa).ok(), std::fs::read_link(&pb).ok());
            if x != y {
                diffs.push(d("link target", format!("{x:?}"), format!("{y:?}")));
            }
        }
        if (ta.is_char_device() || ta.is_block_device()) && ma.rdev() != mb.rdev() {
            diffs.push(d("rdev", ma.rdev().to_string(), mb.rdev().to_string()));
        }
        if ta.is_file() {
            if ma.len() != mb.len() {
                diffs.push(d("size", ma.len().to_string(), mb.len().to_string()));
            } else if std::fs::read(&pa).ok() != std::fs::read(&pb).ok() {
                diffs.push(format!("{}: content differs", rel.display()));
            }
            if opts.sparse && mb.blocks() > ma.blocks() * 2 + 128 {
                diffs.push(d(
                    "blocks (sparse)",
                    ma.blocks().to_string(),
                    mb.blocks().to_string(),
                ));
            }
            if ma.nlink() > 1 {
                let key_a = (ma.dev(), ma.ino());
                let key_b = (mb.dev(), mb.ino());
                match (links_a.get(&key_a), links_b.get(&key_b)) {
                    (Some(x), Some(y)) if x == y => {}
                    (None, None) => {
                        links_a.insert(key_a, rel);
                        links_b.insert(key_b, rel);
                    }
                    (x, y) => diffs.push(d("hardlink group", format!("{x:?}"), format!("{y:?}"))),
                }
            }
        }
    }
    diffs
}
