//! Which files a drill restores: every regular file of the snapshot is a candidate, and the
//! sample is the `ceil(n · percent / 100)` candidates (at least one) with the smallest keyed
//! hash of their path. The key is the seed (the drill's job id) and the snapshot, so a drill
//! and its retries restore the same files, the next drill others, and nothing about the
//! selection depends on the order the tree lists them. Walked with an explicit stack: a
//! snapshot of any depth cannot overflow it.

use crate::engine::EngineError;
use crate::repo::tree::{is_safe_name, NodeKind};
use crate::repo::Repository;
use backupd_common::ids::{BlobId, SnapshotId};
use sha2::{Digest, Sha256};

/// A file of the snapshot, with what the drill checks of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Absolute path in the snapshot, raw bytes.
    pub path: Vec<u8>,
    pub size: u64,
    /// Permission bits as recorded.
    pub mode: u32,
    pub mtime_ns: i64,
}

/// The snapshot's files as candidates, and how many could not be (names a restore pattern
/// cannot name exactly: not UTF-8, or holding a backslash).
pub fn candidates(
    repo: &Repository,
    root: &BlobId,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(Vec<Candidate>, u64), EngineError> {
    let mut out = Vec::new();
    let mut unnamed = 0u64;
    let mut stack = vec![(*root, b"/".to_vec())];
    while let Some((id, dir)) = stack.pop() {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        for node in repo.load_tree(&id)?.nodes {
            if !is_safe_name(&node.name) {
                continue;
            }
            let mut path = dir.clone();
            if !path.ends_with(b"/") {
                path.push(b'/');
            }
            path.extend_from_slice(&node.name);
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => stack.push((sub, path)),
                (NodeKind::File, _) if nameable(&path) => out.push(Candidate {
                    path,
                    size: node.size,
                    mode: node.mode,
                    mtime_ns: node.mtime_ns,
                }),
                (NodeKind::File, _) => unnamed += 1,
                _ => {}
            }
        }
    }
    Ok((out, unnamed))
}

/// Whether an include pattern can name `path` exactly (`globset::escape` covers the glob
/// characters, not bytes outside UTF-8 or the backslash escape).
fn nameable(path: &[u8]) -> bool {
    std::str::from_utf8(path).is_ok_and(|p| !p.contains('\\'))
}

/// The include pattern that names exactly `path`.
pub fn pattern(path: &[u8]) -> String {
    globset::escape(&String::from_utf8_lossy(path))
}

/// How many of `n` files a `percent` sample holds: rounded up, at least one of a non-empty
/// snapshot, at most all.
pub fn size(n: usize, percent: f64) -> usize {
    if n == 0 {
        return 0;
    }
    let k = (n as f64 * percent.clamp(0.0, 100.0) / 100.0).ceil() as usize;
    k.clamp(1, n)
}

/// The sample: the [`size`] candidates with the smallest keyed hash, in path order.
pub fn select(
    mut all: Vec<Candidate>,
    percent: f64,
    seed: u64,
    snapshot: &SnapshotId,
) -> Vec<Candidate> {
    let k = size(all.len(), percent);
    if k < all.len() {
        let key = |c: &Candidate| {
            let mut h = Sha256::new();
            h.update(seed.to_le_bytes());
            h.update(snapshot.0);
            h.update(&c.path);
            let digest = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            (u64::from_be_bytes(first), c.path.clone())
        };
        let mut keyed: Vec<_> = all.into_iter().map(|c| (key(&c), c)).collect();
        keyed.select_nth_unstable_by(k - 1, |a, b| a.0.cmp(&b.0));
        keyed.truncate(k);
        all = keyed.into_iter().map(|(_, c)| c).collect();
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                path: format!("/data/f{i:04}").into_bytes(),
                size: i as u64,
                mode: 0o644,
                mtime_ns: 0,
            })
            .collect()
    }

    #[test]
    fn a_sample_holds_the_share_rounded_up_at_least_one_at_most_all() {
        assert_eq!(size(0, 1.0), 0);
        assert_eq!(size(10, 1.0), 1);
        assert_eq!(size(1000, 1.0), 10);
        assert_eq!(size(1001, 1.0), 11);
        assert_eq!(size(7, 100.0), 7);
        assert_eq!(size(3, 0.001), 1);
        let snap = SnapshotId([7; 32]);
        assert_eq!(select(files(1000), 1.0, 1, &snap).len(), 10);
        assert_eq!(select(files(5), 100.0, 1, &snap), files(5));
    }

    #[test]
    fn the_same_seed_picks_the_same_files_whatever_their_order_another_seed_others() {
        let snap = SnapshotId([7; 32]);
        let a = select(files(500), 2.0, 42, &snap);
        let mut reversed = files(500);
        reversed.reverse();
        assert_eq!(a, select(reversed, 2.0, 42, &snap));
        let b = select(files(500), 2.0, 43, &snap);
        assert_eq!(b.len(), a.len());
        assert_ne!(a, b, "another seed, another sample");
        let other = SnapshotId([8; 32]);
        assert_ne!(a, select(files(500), 2.0, 42, &other));
    }

    #[test]
    fn patterns_name_exactly_one_path() {
        assert_eq!(pattern(b"/a/b*c[1].txt"), "/a/b[*]c[[]1[]].txt");
        assert!(nameable(b"/a/b"));
        assert!(!nameable(b"/a/caf\xe9"));
        assert!(!nameable(b"/a/back\\slash"));
    }
}
