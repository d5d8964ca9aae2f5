//! The search's rules, on trees in memory.

use super::super::testing::{dir, file, MemTrees};
use super::super::MAX_LIMIT;
use super::*;

/// `snapshots` roots of a tree with `width` directories of `files` files each, where
/// snapshot i changes file `f0` of directory `d{i % width}` (its content byte is i + 10).
fn history(t: &mut MemTrees, snapshots: usize, width: usize, files: usize) -> Vec<BlobId> {
    let mut dirs: Vec<Vec<Node>> = (0..width)
        .map(|d| {
            (0..files)
                .map(|f| file(&format!("f{f}"), (d + f) as u8 % 5, 1))
                .collect()
        })
        .collect();
    let mut roots = Vec::new();
    for i in 0..snapshots {
        if i > 0 {
            dirs[i % width][0] = file("f0", (i + 10) as u8, i as i64);
        }
        let nodes = dirs
            .iter()
            .enumerate()
            .map(|(d, n)| dir(&format!("d{d}"), t.put(n.clone())))
            .collect();
        let home = t.put(nodes);
        roots.push(t.put(vec![dir("home", home)]));
    }
    roots
}

fn starts(roots: &[BlobId]) -> Vec<Start> {
    roots
        .iter()
        .enumerate()
        .map(|(i, r)| Start {
            path: b"/".to_vec(),
            at: StartAt::Tree(*r),
            snapshot: i,
        })
        .collect()
}

#[test]
fn a_subtree_shared_by_many_snapshots_is_read_once() {
    let mut t = MemTrees::default();
    let roots = history(&mut t, 40, 4, 3);
    let distinct = t.trees.len() as u64;
    t.loads = 0;
    let p = Pattern::new("f1").expect("compiles");
    let s = search(&mut t, &p, starts(&roots), roots.len(), 100).expect("searches");
    assert_eq!(
        t.loads, distinct,
        "every distinct tree decoded exactly once"
    );
    // f1 never changes: one path per directory, one version each, in all 40 snapshots.
    assert_eq!(s.matches.len(), 4);
    for m in &s.matches {
        assert_eq!(m.versions.len(), 1);
        assert_eq!(m.versions[0].snapshots, [(0, 39)]);
    }
    assert_eq!(s.matches[0].path, b"/home/d0/f1");
}

#[test]
fn versions_are_grouped_by_content_with_the_snapshots_holding_each() {
    let mut t = MemTrees::default();
    let roots = history(&mut t, 6, 2, 2);
    let p = Pattern::new("/home/d1/f0").expect("compiles");
    let s = search(&mut t, &p, starts(&roots), roots.len(), 100).expect("searches");
    assert_eq!(s.matches.len(), 1);
    let v = &s.matches[0].versions;
    // d1/f0 changes in snapshots 1, 3 and 5.
    let held: Vec<_> = v.iter().map(|v| v.snapshots.clone()).collect();
    assert_eq!(
        held,
        [vec![(0, 0)], vec![(1, 2)], vec![(3, 4)], vec![(5, 5)]]
    );
    assert_eq!(v[1].mtime_ns, 1);
    assert_ne!(v[0].content, v[1].content);
}

#[test]
fn name_patterns_skip_barren_subtrees_and_path_patterns_match_where_they_sit() {
    let mut t = MemTrees::default();
    let roots = history(&mut t, 3, 3, 2);
    t.loads = 0;
    let none = Pattern::new("nothing-*").expect("compiles");
    let s = search(&mut t, &none, starts(&roots), 3, 100).expect("searches");
    assert!(s.matches.is_empty());
    let p = Pattern::new("d2/*").expect("compiles");
    let s = search(&mut t, &p, starts(&roots), 3, 100).expect("searches");
    let paths: Vec<_> = s.matches.iter().map(|m| m.path.clone()).collect();
    assert_eq!(paths, [b"/home/d2/f0".to_vec(), b"/home/d2/f1".to_vec()]);
    assert!(Pattern::new("[").is_err());
}

#[test]
fn results_past_the_limit_are_cut_in_path_order() {
    let mut t = MemTrees::default();
    let roots = history(&mut t, 2, 5, 5);
    let p = Pattern::new("f*").expect("compiles");
    let s = search(&mut t, &p, starts(&roots), 2, 7).expect("searches");
    assert!(s.truncated);
    assert_eq!(s.matches.len(), 7);
    assert_eq!(s.matches[6].path, b"/home/d1/f1");
}

#[test]
fn a_tree_deeper_than_a_backup_goes_is_cut_not_recursed() {
    let mut t = MemTrees::default();
    let root = super::super::testing::chain(&mut t, MAX_DEPTH + 50, 1);
    for pattern in ["x", "d/x"] {
        let p = Pattern::new(pattern).expect("compiles");
        let s = search(&mut t, &p, starts(&[root]), 1, MAX_LIMIT).expect("searches");
        assert!(s.truncated, "{pattern}");
        assert!(
            s.matches.len() >= MAX_DEPTH - 1,
            "{pattern}: {}",
            s.matches.len()
        );
    }
}

#[test]
fn snapshot_sets_turn_into_ranges() {
    let mut s = Set::one(200, 0);
    for i in [1, 2, 64, 65, 130] {
        s.or(&Set::one(200, i));
    }
    assert_eq!(s.ranges(), [(0, 2), (64, 65), (130, 130)]);
    assert_eq!(s.first(), 0);
}
