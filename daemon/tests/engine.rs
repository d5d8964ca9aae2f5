//! The repository engine driven directly: backup, restore, check, forget/prune on real files.

mod support;

use support::kdf;

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::forget::{forget, ForgetOptions, Policy};
use backupd::engine::progress::Progress;
use backupd::repo::index::IndexedPack;
use backupd::repo::pack::{BlobKind, PackBuilder};
use backupd::repo::snapshot::{Snapshot, SNAPSHOT_VERSION};
use backupd::repo::tree::{Node, NodeKind, Tree, TREE_VERSION};
use backupd::repo::{RepoError, Repository};
use backupd_common::ids::BlobId;
use backupd_tests::treecmp::{compare_trees, CompareOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

struct Fixture {
    dir: tempfile::TempDir,
    repo: Repository,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_with(&dir.path().join("repo"), b"pw", kdf()).expect("init");
        std::fs::create_dir(dir.path().join("src")).expect("src");
        Self { dir, repo }
    }

    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn backup(&self) -> backupd::engine::backup::BackupOutcome {
        backup(
            &self.repo,
            &BackupOptions {
                paths: vec![self.src()],
                ..Default::default()
            },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("backup")
    }

    fn restore_to(
        &self,
        name: &str,
        snapshot: &str,
    ) -> (PathBuf, backupd::engine::restore::RestoreOutcome) {
        let target = self.dir.path().join(name);
        let outcome = support::restore_into(&self.repo, snapshot, Some(self.src()), &target)
            .expect("restore");
        (target, outcome)
    }

    fn repo_bytes(&self) -> u64 {
        dir_size(&self.dir.path().join("repo"))
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).expect("read_dir").flatten() {
        let m = e.metadata().expect("meta");
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    backupd_tests::pseudo_random_bytes(len, seed)
}

#[test]
fn backup_and_restore_reproduce_files_dirs_links_and_times() {
    let f = Fixture::new();
    let s = f.src();
    std::fs::create_dir_all(s.join("a/b/c")).expect("dirs");
    std::fs::write(s.join("a/text.txt"), "hello\n".repeat(1000)).expect("write");
    std::fs::write(s.join("a/b/random.bin"), random_bytes(3_000_000, 1)).expect("write");
    std::fs::write(s.join("empty"), b"").expect("write");
    std::os::unix::fs::symlink("a/text.txt", s.join("link")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", s.join("dangling")).expect("symlink");
    std::fs::hard_link(s.join("a/text.txt"), s.join("a/b/c/hardlink")).expect("hardlink");
    nix::unistd::mkfifo(
        &s.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .expect("fifo");
    // Names as raw bytes: non-UTF-8 and 255 bytes long.
    std::fs::write(s.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"latin1").expect("non-utf8");
    std::fs::write(s.join("n".repeat(255)), b"long name").expect("long name");
    let mut deep = s.join("deep");
    for i in 0..40 {
        deep = deep.join(format!("level-{i:02}-{}", "x".repeat(60)));
    }
    std::fs::create_dir_all(&deep).expect("deep");
    std::fs::write(deep.join("leaf"), b"deep").expect("leaf");
    std::fs::set_permissions(s.join("a/text.txt"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    std::fs::set_permissions(s.join("a/b"), std::fs::Permissions::from_mode(0o1750))
        .expect("sticky");
    xattr::set(s.join("a/b/random.bin"), "user.comment", b"checked").expect("xattr");
    xattr::set(s.join("a/b/random.bin"), "user.empty", b"").expect("empty xattr");

    let out = f.backup();
    assert!(!out.is_partial());
    assert_eq!(out.snapshot.stats.files, 7, "{:?}", out.snapshot.stats);
    let (target, restored) = f.restore_to("restore", "latest");
    assert!(restored.failed.is_empty(), "{:?}", restored.failed);
    let diffs = compare_trees(&s, &target, CompareOptions::default());
    assert!(diffs.is_empty(), "{diffs:#?}");
}

/// Every entry under `dir` whose name is a restore's temporary one.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = e.path();
            if e.file_name().as_bytes().starts_with(b".backupd-restore.") {
                found.push(path.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}

#[test]
fn files_ending_in_holes_keep_their_size_in_a_fresh_target_and_over_longer_files() {
    use std::os::unix::fs::MetadataExt;
    let f = Fixture::new();
    let s = f.src();
    std::fs::create_dir_all(s.join("d/e")).expect("dirs");
    // One blob ending in zero blocks; a multi-blob file whose last blob is all zeros; a file
    // starting with a hole; an empty file; a symlink; data ending mid-block.
    let mut tail_zero = random_bytes(10_000, 2);
    tail_zero.extend(vec![0u8; 3 * 4096]);
    std::fs::write(s.join("d/tail-zero"), &tail_zero).expect("write");
    let mut big = random_bytes(3_000_000, 3);
    big.extend(vec![0u8; 9 << 20]);
    std::fs::write(s.join("d/e/big-zero-end"), &big).expect("write");
    let mut head_hole = vec![0u8; 64 << 10];
    head_hole.extend(random_bytes(5_000, 4));
    std::fs::write(s.join("head-hole"), &head_hole).expect("write");
    std::fs::write(s.join("d/empty"), b"").expect("write");
    std::fs::write(s.join("d/odd"), random_bytes(4097, 5)).expect("write");
    std::os::unix::fs::symlink("tail-zero", s.join("d/link")).expect("symlink");
    assert!(!f.backup().is_partial());

    // A fresh target: everything created in place.
    let (fresh, restored) = f.restore_to("fresh", "latest");
    assert!(restored.failed.is_empty(), "{:?}", restored.failed);
    let diffs = compare_trees(&s, &fresh, CompareOptions::default());
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert_eq!(
        std::fs::read(fresh.join("d/e/big-zero-end")).expect("read"),
        big
    );
    let meta = std::fs::metadata(fresh.join("d/e/big-zero-end")).expect("stat");
    assert_eq!(meta.len(), big.len() as u64);
    assert!(
        meta.blocks() * 512 < 6 << 20,
        "the 9 MiB of zeros at the end stay a hole ({} bytes allocated)",
        meta.blocks() * 512
    );
    assert!(temporaries(&fresh).is_empty());

    // Over existing, longer files and other entries: replaced under temporary names.
    let over = f.dir.path().join("over");
    std::fs::create_dir_all(over.join("d/e")).expect("dirs");
    std::fs::write(over.join("d/tail-zero"), random_bytes(100_000, 6)).expect("write");
    std::fs::write(over.join("d/e/big-zero-end"), random_bytes(13 << 20, 7)).expect("write");
    std::os::unix::fs::symlink("/etc/passwd", over.join("head-hole")).expect("symlink");
    std::fs::write(over.join("d/link"), b"a file where the symlink goes").expect("write");
    let restored =
        support::restore_into(&f.repo, "latest", Some(s.clone()), &over).expect("restore over");
    assert!(restored.failed.is_empty(), "{:?}", restored.failed);
    assert_eq!(restored.replaced, 4, "{restored:?}");
    let diffs = compare_trees(&s, &over, CompareOptions::default());
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert!(temporaries(&over).is_empty());
}

#[test]
fn unchanged_files_are_not_reread_and_dedup_holds() {
    let f = Fixture::new();
    let s = f.src();
    std::fs::write(s.join("big.bin"), random_bytes(100 << 20, 2)).expect("write");
    std::fs::write(s.join("small"), b"x").expect("write");
    let first = f.backup();
    let size_after_first = f.repo_bytes();
    assert!(size_after_first > 100 << 20, "random data is stored");

    let second = f.backup();
    assert_eq!(
        second.snapshot.stats.files_read, 0,
        "unchanged files are not read"
    );
    assert_eq!(second.snapshot.parent, Some(first.id));
    let growth = f.repo_bytes() - size_after_first;
    assert!(
        growth < (100 << 20) / 1000,
        "unchanged re-run added {growth} bytes"
    );

    // A copy elsewhere in the tree adds (almost) nothing.
    std::fs::create_dir(s.join("copy")).expect("dir");
    std::fs::copy(s.join("big.bin"), s.join("copy/big.bin")).expect("copy");
    let before = f.repo_bytes();
    f.backup();
    let growth = f.repo_bytes() - before;
    assert!(growth < 1 << 20, "duplicate copy added {growth} bytes");

    // One byte inserted at the start re-stores only the first chunk(s).
    let mut shifted = vec![0x42u8];
    shifted.extend_from_slice(&std::fs::read(s.join("big.bin")).expect("read"));
    std::fs::write(s.join("big.bin"), shifted).expect("write");
    let before = f.repo_bytes();
    f.backup();
    let growth = f.repo_bytes() - before;
    assert!(growth < 16 << 20, "insertion added {growth} bytes");
}

#[test]
fn no_plaintext_reaches_the_repository() {
    let f = Fixture::new();
    let marker = b"MARKER-7f3a9c-plaintext-must-not-leak";
    let mut content = Vec::new();
    for _ in 0..1000 {
        content.extend_from_slice(marker);
    }
    std::fs::write(f.src().join("secret.txt"), &content).expect("write");
    std::fs::write(
        f.src()
            .join(std::str::from_utf8(&marker[..20]).expect("ascii")),
        b"named",
    )
    .expect("write");
    f.backup();
    let mut stack = vec![f.dir.path().join("repo")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("read_dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let bytes = std::fs::read(e.path()).expect("read");
                assert!(
                    !bytes.windows(20).any(|w| w == &marker[..20]),
                    "plaintext in {}",
                    e.path().display()
                );
            }
        }
    }
}

#[test]
fn wrong_password_is_refused() {
    let f = Fixture::new();
    match Repository::open(&f.dir.path().join("repo"), b"wrong") {
        Err(RepoError::WrongPassword { location }) => {
            assert!(location.local_path().is_some_and(|p| p.ends_with("repo")))
        }
        other => panic!("expected WrongPassword, got {other:?}"),
    }
}

#[test]
fn damaged_packs_are_reported_and_restore_saves_the_rest() {
    let f = Fixture::new();
    for i in 0..40u64 {
        std::fs::write(
            f.src().join(format!("f{i:02}")),
            random_bytes(900_000, i + 10),
        )
        .expect("write");
    }
    let out = f.backup();
    let clean = support::check_repo(&f.repo, 100).expect("check");
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert!(clean.packs >= 2);

    // Flip one byte in the middle of every data pack.
    let mut packs = Vec::new();
    for name in f
        .repo
        .backend()
        .list(backupd::repo::backend::FileKind::Pack)
        .expect("list")
    {
        let path = backupd::repo::backend::LocalBackend::new(f.dir.path().join("repo"))
            .path(backupd::repo::backend::Key::pack(&name));
        let mut bytes = std::fs::read(&path).expect("read");
        let mid = bytes.len() / 3;
        bytes[mid] ^= 0xFF;
        std::fs::write(&path, bytes).expect("write");
        packs.push(name);
    }
    let report = support::check_repo(&f.repo, 100).expect("check");
    assert!(!report.is_clean());
    assert_eq!(report.damaged_packs.len(), packs.len(), "{report:?}");
    let named_snapshot = report
        .problems
        .iter()
        .any(|p| p.snapshots.contains(&out.id.short()));
    assert!(named_snapshot, "{:?}", report.problems);
    assert!(report
        .problems
        .iter()
        .any(|p| p.paths.iter().any(|x| x.contains("/src/f"))));

    let (target, restored) = f.restore_to("partial", &out.id.to_hex());
    assert!(restored.is_partial());
    let restored_ok = std::fs::read_dir(&target).expect("dir").count();
    assert_eq!(
        restored_ok + restored.failed.len(),
        40,
        "every file restored or named: {:?}",
        restored.failed
    );
    for (path, reason) in &restored.failed {
        assert!(path.starts_with('f'), "{path}");
        assert!(reason.contains("damaged"), "{reason}");
    }
    for e in std::fs::read_dir(&target).expect("dir").flatten() {
        assert_eq!(
            std::fs::read(e.path()).expect("read"),
            std::fs::read(f.src().join(e.file_name())).expect("read")
        );
    }
}

#[test]
fn forget_dry_run_matches_prune_and_the_repository_shrinks() {
    let f = Fixture::new();
    let day = 86_400_000_000_000i64;
    let base = 1_700_000_000_000_000_000i64;
    for i in 0..30i64 {
        std::fs::write(
            f.src().join("changing"),
            random_bytes(200_000, i as u64 + 100),
        )
        .expect("write");
        backup(
            &f.repo,
            &BackupOptions {
                paths: vec![f.src()],
                time_ns: Some(base + i * day / 2),
                ..Default::default()
            },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("backup");
    }
    let policy = Policy {
        last: 3,
        daily: 5,
        weekly: 2,
        ..Default::default()
    };
    let run = |dry_run: bool| {
        forget(
            &f.repo,
            &ForgetOptions {
                policy: policy.clone(),
                prune: !dry_run,
                dry_run,
                zstd_level: 1,
                ..Default::default()
            },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("forget")
    };
    let plan = run(true);
    assert_eq!(
        f.repo.snapshots().expect("list").len(),
        30,
        "dry run removes nothing"
    );
    let before = f.repo_bytes();
    let done = run(false);
    let kept_plan: Vec<_> = plan
        .decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.snapshot.clone())
        .collect();
    let mut kept_now: Vec<_> = f
        .repo
        .snapshots()
        .expect("list")
        .into_iter()
        .map(|(id, _)| id.to_hex())
        .collect();
    kept_now.sort();
    let mut kept_plan_sorted = kept_plan.clone();
    kept_plan_sorted.sort();
    assert_eq!(kept_plan_sorted, kept_now);
    assert_eq!(done.removed, 30 - kept_plan.len());
    assert!(kept_plan.len() < 30 && kept_plan.len() >= 5);
    assert!(f.repo_bytes() < before, "prune shrinks the repository");
    let report = support::check_repo(&f.repo, 100).expect("check");
    assert!(report.is_clean(), "{:?}", report.problems);
    let (_, restored) = f.restore_to("after-prune", "latest");
    assert!(restored.failed.is_empty());
}

#[test]
fn a_backup_cancelled_before_it_starts_leaves_no_snapshot() {
    let f = Fixture::new();
    std::fs::write(f.src().join("a"), random_bytes(5 << 20, 3)).expect("write");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = backup(
        &f.repo,
        &BackupOptions {
            paths: vec![f.src()],
            ..Default::default()
        },
        &Progress::default(),
        &cancel,
    )
    .expect_err("cancelled");
    assert!(matches!(err, backupd::engine::EngineError::Cancelled));
    assert!(f.repo.snapshots().expect("list").is_empty());
}

#[test]
fn backup_concurrent_with_prune_completes_and_restores() {
    let f = Fixture::new();
    for i in 0..5u64 {
        std::fs::write(f.src().join("v"), random_bytes(2 << 20, i)).expect("write");
        f.backup();
    }
    std::fs::write(f.src().join("big"), random_bytes(60 << 20, 99)).expect("write");
    std::thread::scope(|s| {
        let backup = s.spawn(|| f.backup());
        let prune = s.spawn(|| {
            support::prune_to_last(&f.repo)
                .expect("prune waits for the backup's lock (or runs first)")
        });
        let out = backup.join().expect("backup thread");
        prune.join().expect("prune thread");
        // Whichever ran first, the backup's snapshot is the newest and survives keep-last 1; if
        // prune ran first, the snapshot it kept is still there too.
        let ids: Vec<_> = f
            .repo
            .snapshots()
            .expect("list")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids.last(), Some(&out.id));
        assert!(ids.len() <= 2, "{ids:?}");
    });
    let report = support::check_repo(&f.repo, 100).expect("check");
    assert!(report.is_clean(), "{:?}", report.problems);
    let (target, restored) = f.restore_to("after-concurrent", "latest");
    assert!(restored.failed.is_empty(), "{:?}", restored.failed);
    assert!(compare_trees(&f.src(), &target, CompareOptions::default()).is_empty());
}

#[test]
fn sources_under_a_symlinked_directory_restore_under_their_given_path() {
    let f = Fixture::new();
    let real = f.dir.path().join("real");
    std::fs::create_dir_all(real.join("data")).expect("mkdir");
    std::fs::write(real.join("data/file"), b"through a link").expect("write");
    let link = f.dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let given = link.join("data");
    backup(
        &f.repo,
        &BackupOptions {
            paths: vec![given.clone()],
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("backup");
    let target = f.dir.path().join("restored");
    let out = support::restore_into(&f.repo, "latest", Some(given.clone()), &target)
        .expect("restore by the given path");
    assert!(out.failed.is_empty());
    assert_eq!(
        std::fs::read(target.join("file")).expect("file"),
        b"through a link"
    );
}

#[test]
fn prune_refuses_when_an_index_file_is_unreadable() {
    let f = Fixture::new();
    for i in 0..3u64 {
        std::fs::write(f.src().join("v"), random_bytes(1 << 20, i)).expect("write");
        f.backup();
    }
    let index_dir = f.dir.path().join("repo/index");
    let first = std::fs::read_dir(&index_dir)
        .expect("dir")
        .flatten()
        .next()
        .expect("an index file")
        .path();
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[30] ^= 1;
    std::fs::write(&first, bytes).expect("write");
    let repo = Repository::open(&f.dir.path().join("repo"), b"pw").expect("still opens");
    let packs_before = dir_size(&f.dir.path().join("repo/data"));
    let err = forget(
        &repo,
        &ForgetOptions {
            policy: Policy {
                last: 1,
                ..Default::default()
            },
            prune: true,
            dry_run: false,
            zstd_level: 1,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect_err("prune must refuse");
    assert!(err.to_string().contains("rebuild-index"), "{err}");
    assert_eq!(
        dir_size(&f.dir.path().join("repo/data")),
        packs_before,
        "no pack deleted"
    );
}

#[test]
fn keep_within_longer_than_i64_nanoseconds_keeps_everything() {
    let times = vec![2_000_000_000_000_000_000i64, 1_000_000_000_000_000_000];
    let policy = Policy {
        within: Some(std::time::Duration::from_secs(1000 * 365 * 86_400)),
        ..Default::default()
    };
    let r = backupd::engine::forget::decide(&policy, &times);
    assert!(r.iter().all(|reasons| !reasons.is_empty()), "{r:?}");
}

/// Stores `trees` (each a blob) in one pack and indexes it; returns their ids in order.
fn store_trees(repo: &Repository, trees: &[Tree]) -> Vec<BlobId> {
    let mut pack = PackBuilder::new();
    let mut ids = Vec::new();
    for tree in trees {
        let (bytes, id) = repo.tree_bytes(tree);
        if !ids.contains(&id) {
            pack.add(
                id,
                BlobKind::Tree,
                &repo.encode_blob(&bytes, 1),
                bytes.len(),
            );
        }
        ids.push(id);
    }
    let (bytes, entries) = pack.finish(repo.keys());
    let pack_id = repo.write_pack(&bytes, &entries).expect("write pack");
    repo.write_index(
        vec![IndexedPack {
            id: pack_id,
            blobs: entries,
        }],
        Vec::new(),
    )
    .expect("write index");
    ids
}

fn dir_node(name: &[u8], subtree: BlobId) -> Node {
    let mut n = Node::new(name.to_vec(), NodeKind::Dir);
    n.mode = 0o755;
    n.subtree = Some(subtree);
    n
}

fn crafted_snapshot(repo: &Repository, root: BlobId) -> String {
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        time_ns: 1,
        host: "crafted".into(),
        username: "root".into(),
        paths: vec![b"/x".to_vec()],
        tags: Vec::new(),
        parent: None,
        tree: root,
        stats: Default::default(),
        skipped: Vec::new(),
        owner_uid: None,
    };
    repo.write_snapshot(&snapshot).expect("snapshot").to_hex()
}

#[test]
fn a_crafted_snapshot_3000_directories_deep_restores_without_overflowing_the_stack() {
    let f = Fixture::new();
    // Built bottom-up: each tree holds one directory pointing at the one below it.
    let mut leaf = Node::new(b"bottom".to_vec(), NodeKind::File);
    leaf.mode = 0o644;
    let mut trees = vec![Tree {
        version: TREE_VERSION,
        nodes: vec![leaf],
    }];
    let mut below = store_trees(&f.repo, &trees)[0];
    trees.clear();
    for _ in 0..3000 {
        let tree = Tree {
            version: TREE_VERSION,
            nodes: vec![dir_node(b"d", below)],
        };
        below = f.repo.tree_bytes(&tree).1;
        trees.push(tree);
    }
    store_trees(&f.repo, &trees);
    let id = crafted_snapshot(&f.repo, below);
    let target = f.dir.path().join("deep-restore");
    let outcome =
        support::restore_into(&f.repo, &id, None, &target).expect("restore of a deep snapshot");
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(outcome.dirs, 3000);
    assert_eq!(outcome.files, 1);
}

#[test]
fn unsafe_names_in_a_snapshot_are_reported_not_restored_and_never_escape() {
    let f = Fixture::new();
    let file = |name: &[u8]| {
        let mut n = Node::new(name.to_vec(), NodeKind::File);
        n.mode = 0o644;
        n
    };
    let mut nodes = vec![
        file(b".."),
        file(b"."),
        file(b""),
        file(b"a/../../escape"),
        file(b"nul\0byte"),
        file(b"fine"),
    ];
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let ids = store_trees(
        &f.repo,
        &[Tree {
            version: TREE_VERSION,
            nodes,
        }],
    );
    let id = crafted_snapshot(&f.repo, ids[0]);
    let target = f.dir.path().join("t");
    let outcome = support::restore_into(&f.repo, &id, None, &target).expect("restore");
    assert_eq!(outcome.files, 1, "only `fine` is restored");
    assert_eq!(outcome.failed.len(), 5, "{:?}", outcome.failed);
    assert!(outcome
        .failed
        .iter()
        .all(|(_, why)| why.contains("unsafe name")));
    assert!(outcome
        .failed
        .iter()
        .any(|(p, _)| p.contains("nul\\x00byte")));
    assert!(!f.dir.path().join("escape").exists());
    let report = support::check_repo(&f.repo, 0).expect("check");
    let unsafe_problems = report
        .problems
        .iter()
        .filter(|p| p.message.contains("unsafe name"))
        .count();
    assert_eq!(unsafe_problems, 5, "{:?}", report.problems);
    let names: Vec<_> = std::fs::read_dir(&target)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["fine"]);
}

#[test]
fn a_file_growing_while_it_is_read_is_read_only_to_its_size_plus_a_margin() {
    let f = Fixture::new();
    let path = f.src().join("growing.log");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(64 << 20).expect("set_len");
    // Grows by sparse 64 MiB steps (no disk used) up to 64 GiB, faster than it can be read.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let grower = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut len: u64 = 64 << 20;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && len < (64 << 30) {
                len += 64 << 20;
                let _ = file.set_len(len);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let outcome = f.backup();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    grower.join().expect("grower");
    let stats = &outcome.snapshot.stats;
    assert_eq!(stats.changed_during_read, 1, "{stats:?}");
    // The size at stat is somewhere under what had been reached when the read started; the
    // read stops 16 MiB past it instead of following the file to 64 GiB.
    assert!(
        stats.bytes_read < 4 << 30,
        "read {} bytes of a file that kept growing",
        stats.bytes_read
    );
    std::fs::remove_file(&path).expect("rm");
}

/// A pack of one data blob that no index names (what an interrupted backup leaves).
fn orphan_pack(repo: &Repository, seed: u64) -> String {
    let data = random_bytes(50_000, seed);
    let mut pack = PackBuilder::new();
    pack.add(
        repo.blob_id(&data),
        BlobKind::Data,
        &repo.encode_blob(&data, 1),
        data.len(),
    );
    let (bytes, entries) = pack.finish(repo.keys());
    repo.write_pack(&bytes, &entries)
        .expect("write pack")
        .to_hex()
}

#[test]
fn prune_deletes_orphan_packs_older_than_the_safety_window_and_temp_files_only() {
    let f = Fixture::new();
    std::fs::write(f.src().join("a"), random_bytes(100_000, 1)).expect("write");
    f.backup();
    let old = orphan_pack(&f.repo, 10);
    let young = orphan_pack(&f.repo, 11);
    let pack_path = |name: &str| f.dir.path().join("repo/data").join(&name[..2]).join(name);
    let aged = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(pack_path(&old))
        .status()
        .expect("touch");
    assert!(aged.success());
    let temp = f.dir.path().join("repo/snapshots/.tmp-leftover-0123");
    std::fs::write(&temp, b"half written").expect("write temp");

    support::prune_to_last(&f.repo).expect("prune");
    assert!(
        !pack_path(&old).exists(),
        "an orphan older than 30 min is deleted"
    );
    assert!(
        pack_path(&young).exists(),
        "a young orphan may belong to a running backup: kept"
    );
    assert!(!temp.exists(), "leftover temp files are deleted");
    let (_, restored) = f.restore_to("after", "latest");
    assert!(restored.failed.is_empty());
}

fn snapshot_files(f: &Fixture) -> usize {
    std::fs::read_dir(f.dir.path().join("repo/snapshots"))
        .expect("snapshots dir")
        .count()
}

#[test]
fn a_backup_equal_to_its_parent_keeps_the_parent_and_writes_no_snapshot() {
    let f = Fixture::new();
    std::fs::create_dir(f.src().join("d")).expect("mkdir");
    std::fs::write(f.src().join("d/file"), random_bytes(10_000, 4)).expect("write");
    let first = f.backup();
    assert!(!first.unchanged);
    // Reading moves atimes (the backup's own read included); that is no change.
    std::fs::read(f.src().join("d/file")).expect("read");
    let second = f.backup();
    assert!(
        second.unchanged,
        "nothing changed, yet a new snapshot was made"
    );
    assert_eq!(second.id, first.id);
    // A directory created next to the source changes its parent's times and link count; the
    // parent is outside the source, so that is no change either.
    std::fs::create_dir(f.dir.path().join("sibling")).expect("mkdir");
    let third = f.backup();
    assert!(
        third.unchanged,
        "a sibling of the source made a new snapshot"
    );
    assert_eq!(snapshot_files(&f), 1);

    let with = |opts: BackupOptions| {
        backup(
            &f.repo,
            &BackupOptions {
                paths: vec![f.src()],
                ..opts
            },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("backup")
    };
    let forced = with(BackupOptions {
        force: true,
        ..Default::default()
    });
    assert!(!forced.unchanged && forced.id != first.id);
    let other_host = with(BackupOptions {
        host: Some("elsewhere".into()),
        ..Default::default()
    });
    assert!(!other_host.unchanged, "another host is another snapshot");
    assert_eq!(snapshot_files(&f), 3);

    std::fs::write(f.src().join("d/new"), b"new").expect("write");
    let changed = f.backup();
    assert!(!changed.unchanged);
    assert_eq!(snapshot_files(&f), 4);
}

#[test]
fn a_dry_run_counts_new_data_and_writes_nothing() {
    let f = Fixture::new();
    std::fs::write(f.src().join("old"), random_bytes(50_000, 5)).expect("write");
    f.backup();
    std::fs::write(f.src().join("new"), random_bytes(80_000, 6)).expect("write");
    let listing = || {
        let mut all = Vec::new();
        let mut stack = vec![f.dir.path().join("repo")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else if !e.path().starts_with(f.dir.path().join("repo/locks")) {
                    all.push(e.path());
                }
            }
        }
        all.sort();
        all
    };
    let before = listing();
    let out = backupd::engine::backup::dry_run(
        &f.repo,
        &BackupOptions {
            paths: vec![f.src()],
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("dry run");
    let s = &out.snapshot.stats;
    assert_eq!((s.files, s.files_read, s.bytes_read), (2, 1, 80_000));
    assert!(s.bytes_added >= 80_000 && s.bytes_added < 100_000, "{s:?}");
    assert_eq!(listing(), before, "a dry run wrote to the repository");
}

#[test]
fn progress_moves_while_one_large_file_is_read() {
    let f = Fixture::new();
    let size: u64 = 768 << 20;
    // Sparse: reads as zeros at memory speed, takes no disk.
    std::fs::File::create(f.src().join("large"))
        .expect("create")
        .set_len(size)
        .expect("set_len");
    let progress = Progress::default();
    let seen = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            backup(
                &f.repo,
                &BackupOptions {
                    paths: vec![f.src()],
                    ..Default::default()
                },
                &progress,
                &CancellationToken::new(),
            )
        });
        let mut seen = Vec::new();
        while !run.is_finished() {
            let p = progress.sample();
            if p.files_done == 0 && p.bytes_done > 0 && seen.last() != Some(&p.bytes_done) {
                seen.push(p.bytes_done);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        run.join().expect("join").expect("backup");
        seen
    });
    assert!(
        seen.len() >= 2 && seen.windows(2).all(|w| w[0] < w[1]) && seen[seen.len() - 1] < size,
        "bytes done while the file was read: {seen:?}"
    );
    assert_eq!(progress.sample().bytes_done, size);
}

#[test]
fn a_named_parent_that_no_longer_exists_makes_a_full_walk_not_a_failure() {
    use backupd::engine::incremental::Change;
    let f = Fixture::new();
    std::fs::write(f.src().join("a"), b"one").expect("a");
    std::fs::write(f.src().join("b"), b"one").expect("b");
    let first = f.backup();
    // Both files change, but the change list names only `a`, against a parent that is gone
    // (forgotten, or renamed by a migration): trusting the list would miss `b`.
    std::fs::write(f.src().join("a"), b"two").expect("a");
    std::fs::write(f.src().join("b"), b"two").expect("b");
    let gone = backupd_common::ids::SnapshotId([7; 32]);
    assert_ne!(gone, first.id);
    let out = backup(
        &f.repo,
        &BackupOptions {
            paths: vec![f.src()],
            parent: Some(gone),
            changes: Some(vec![(f.src().join("a"), Change::Entry)]),
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("the backup falls back instead of failing");
    assert!(!out.incremental, "a full walk");
    let (target, outcome) = f.restore_to("restored", &out.id.to_hex());
    assert!(outcome.failed.is_empty());
    assert_eq!(std::fs::read(target.join("a")).expect("a"), b"two");
    assert_eq!(std::fs::read(target.join("b")).expect("b"), b"two");
}
