//! The changed paths of one source, coalesced until the next backup: a path under one marked
//! for a full walk adds nothing, and a full walk replaces the marks under it.

use crate::engine::incremental::Change;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct DirtySet {
    paths: BTreeMap<PathBuf, Change>,
}

impl DirtySet {
    pub fn add(&mut self, path: PathBuf, change: Change) {
        if path
            .ancestors()
            .skip(1)
            .any(|a| self.paths.get(a) == Some(&Change::Tree))
        {
            return;
        }
        if change == Change::Tree {
            // Paths sort component-wise, so everything under `path` directly follows it.
            let under: Vec<PathBuf> = self
                .paths
                .range::<Path, _>((
                    std::ops::Bound::Excluded(path.as_path()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(p, _)| p.starts_with(&path))
                .map(|(p, _)| p.clone())
                .collect();
            for p in under {
                self.paths.remove(&p);
            }
        }
        let entry = self.paths.entry(path).or_insert(change);
        *entry = (*entry).max(change);
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn clear(&mut self) {
        self.paths.clear();
    }

    /// Everything collected so far, leaving the set empty.
    pub fn take(&mut self) -> Vec<(PathBuf, Change)> {
        std::mem::take(&mut self.paths).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_walks_absorb_the_paths_under_them() {
        let mut d = DirtySet::default();
        d.add("/s/a/x".into(), Change::Entry);
        d.add("/s/a/y/z".into(), Change::Entry);
        d.add("/s/ab".into(), Change::Entry);
        d.add("/s/a".into(), Change::Tree);
        d.add("/s/a/later".into(), Change::Entry);
        d.add("/s/ab".into(), Change::Entry);
        let got = d.take();
        assert_eq!(
            got,
            vec![
                (PathBuf::from("/s/a"), Change::Tree),
                (PathBuf::from("/s/ab"), Change::Entry)
            ]
        );
        assert!(d.is_empty());
    }

    #[test]
    fn repeated_changes_to_one_file_are_one_path() {
        let mut d = DirtySet::default();
        for _ in 0..1000 {
            d.add("/s/f".into(), Change::Entry);
        }
        assert_eq!(d.len(), 1);
    }
}
