//! The snapshot catalog: filled on write, checked against the repository's snapshot files on
//! every listing (another writer's additions and removals show), rebuilt when lost, and never
//! decrypting a file whose name it already holds.

mod support;

use backupd::repo::snapshot::{Snapshot, SnapshotStats, SNAPSHOT_VERSION};
use backupd::repo::Repository;
use backupd::state::catalog::{self, tree_name};
use backupd::state::records::{self, source::SourceRecord};
use backupd::state::State;
use backupd_common::ids::{BlobId, SnapshotId};
use std::time::Duration;

fn snapshot(n: i64, path: &str) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        time_ns: 1_700_000_000_000_000_000 + n,
        host: "h".into(),
        username: "u".into(),
        paths: vec![path.as_bytes().to_vec()],
        tags: vec![format!("n{n}")],
        parent: None,
        tree: BlobId([n as u8; 32]),
        stats: SnapshotStats {
            files: n as u64,
            ..Default::default()
        },
        skipped: Vec::new(),
        owner_uid: None,
    }
}

fn ids(repo: &Repository) -> Vec<SnapshotId> {
    repo.snapshot_headers()
        .expect("headers")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn catalog_follows_writes_other_writers_and_its_own_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repo");
    let repo = Repository::init_with(&path, b"pw", support::kdf()).expect("init");
    let state = State::open(&dir.path().join("state")).expect("state");
    let mut source = SourceRecord {
        v: 2,
        name: "docs".into(),
        path: b"/srv/docs".to_vec(),
        repo: None,
        excludes: Vec::new(),
        watch: true,
        debounce: Duration::from_secs(2),
        max_delay: Duration::from_secs(60),
        rescan_every: Duration::from_secs(86_400),
        policy: Default::default(),
    };
    state
        .tree("sources")
        .expect("tree")
        .insert("docs", records::encode(&mut source))
        .expect("source");
    catalog::attach(&state, &repo);
    let tree = state.tree(&tree_name(&repo.config().id)).expect("tree");
    let times = state
        .tree(&format!("{}.time", tree_name(&repo.config().id)))
        .expect("tree");

    let a = repo.write_snapshot(&snapshot(1, "/srv/docs")).expect("a");
    let b = repo.write_snapshot(&snapshot(2, "/etc")).expect("b");
    assert_eq!(tree.len(), 2, "filled on write");
    let headers = repo.snapshot_headers().expect("headers");
    assert_eq!(
        headers.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [a, b]
    );
    assert_eq!(headers[0].1.source.as_deref(), Some("docs"));
    assert_eq!(headers[1].1.source, None);
    assert_eq!(headers[0].1.tags, ["n1"]);
    assert_eq!(headers[1].1.stats.files, 2);

    // Another writer (its own handle, no catalog) adds one and forgets one.
    let other = Repository::open(&path, b"pw").expect("second handle");
    let c = other.write_snapshot(&snapshot(3, "/srv/docs")).expect("c");
    other.remove_snapshot(&a).expect("forget a");
    assert_eq!(ids(&repo), [b, c], "the repository is the truth");
    assert_eq!(tree.len(), 2);

    // The parent lookup reads newest first.
    let newest = repo
        .newest_snapshot_header(&|h| h.paths == [b"/etc".to_vec()])
        .expect("newest");
    assert_eq!(newest.map(|(id, _)| id), Some(b));
    assert_eq!(times.len(), 2);

    // The catalog lost (deleted by hand): rebuilt from the repository.
    tree.clear().expect("clear");
    times.clear().expect("clear");
    let rebuilt = repo.snapshot_headers().expect("rebuilt");
    assert_eq!(
        rebuilt.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [b, c]
    );
    assert_eq!(rebuilt[1].1.source.as_deref(), Some("docs"));
    assert_eq!(tree.len(), 2);

    // Forgetting through the daemon's handle drops the entry at once.
    repo.remove_snapshot(&b).expect("forget b");
    assert_eq!(tree.len(), 1);
    assert_eq!(ids(&repo), [c]);
}

#[test]
fn listing_decrypts_only_names_the_catalog_lacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repo");
    let repo = Repository::init_with(&path, b"pw", support::kdf()).expect("init");
    let state = State::open(&dir.path().join("state")).expect("state");
    catalog::attach(&state, &repo);
    let known = repo.write_snapshot(&snapshot(1, "/a")).expect("known");
    // A file the catalog holds is not read again: garbage under its name goes unnoticed by a
    // listing (names are content hashes; `repo check` is what reads every file).
    std::fs::write(path.join("snapshots").join(known.to_hex()), b"garbage").expect("overwrite");
    assert_eq!(ids(&repo), [known]);
    // A name it lacks is read, and an unreadable one is skipped, not cached.
    let bad = SnapshotId([7; 32]);
    std::fs::write(path.join("snapshots").join(bad.to_hex()), b"garbage").expect("write");
    assert_eq!(ids(&repo), [known]);
    let tree = state.tree(&tree_name(&repo.config().id)).expect("tree");
    assert_eq!(tree.len(), 1);
}
