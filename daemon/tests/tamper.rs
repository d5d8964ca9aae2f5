//! A repository someone tampered with: each test performs the attack on the files (rollback,
//! corruption, truncation, hostile key-file parameters, a crafted deep tree) and asserts the
//! engine notices, says what to do, and neither panics nor silently uses the wrong data.

mod support;

use support::kdf;

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::check::CheckReport;
use backupd::engine::forget::{forget, ForgetOptions, Policy};
use backupd::engine::progress::Progress;
use backupd::repo::index::IndexedPack;
use backupd::repo::pack::{BlobKind, PackBuilder};
use backupd::repo::snapshot::{Snapshot, SnapshotStats, SNAPSHOT_VERSION};
use backupd::repo::tree::{Node, NodeKind, Tree, TREE_VERSION};
use backupd::repo::{sha256_hex, RepoError, Repository};
use backupd_common::ids::SnapshotId;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
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

    fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    /// Writes `content` to src/file and backs it up.
    fn backup_content(&self, content: &[u8]) -> SnapshotId {
        std::fs::write(self.src().join("file"), content).expect("write");
        backup(
            &self.repo,
            &BackupOptions {
                paths: vec![self.src()],
                force: true,
                ..Default::default()
            },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("backup")
        .id
    }

    fn restore(&self, snapshot: &str, name: &str) -> Result<Vec<u8>, String> {
        let target = self.dir.path().join(name);
        support::restore_into(&self.repo, snapshot, Some(self.src()), &target)
            .map_err(|e| e.to_string())?;
        Ok(std::fs::read(target.join("file")).expect("restored file"))
    }

    fn check(&self, read_data_percent: u8) -> CheckReport {
        support::check_repo(&self.repo, read_data_percent).expect("check runs")
    }

    fn forget(&self, opts: ForgetOptions) {
        forget(
            &self.repo,
            &ForgetOptions {
                zstd_level: 1,
                ..opts
            },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("forget");
    }

    fn files(&self, dir: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = walk(&self.root().join(dir))
            .into_iter()
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        out.sort();
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn problems(report: &CheckReport) -> String {
    format!("{:?}", report.problems)
}

#[test]
fn an_old_snapshot_copied_over_the_newest_is_detected_and_latest_refuses() {
    let f = Fixture::new();
    let old = f.backup_content(b"old content");
    let new = f.backup_content(b"new content");
    let snaps = f.root().join("snapshots");
    // The rollback: the newest snapshot's file now holds the older snapshot (a valid seal).
    std::fs::copy(snaps.join(old.to_hex()), snaps.join(new.to_hex())).expect("copy");

    let report = f.check(100);
    assert!(!report.is_clean(), "check must notice the rollback");
    let text = problems(&report);
    assert!(text.contains(&new.to_hex()), "{text}");
    assert!(text.contains("forget"), "{text}");

    let err = f
        .restore("latest", "latest")
        .expect_err("latest must not resolve");
    assert!(err.contains(&new.to_hex()), "{err}");
    assert!(
        err.contains("repo check") && err.contains("forget"),
        "{err}"
    );
    assert!(matches!(
        f.repo.find_snapshot("latest", &Default::default()),
        Err(RepoError::LatestUnknown { .. })
    ));
    // An explicit id still works; the tampered one is refused by name.
    assert_eq!(f.restore(&old.short(), "old").expect("old"), b"old content");
    let err = f.restore(&new.short(), "new").expect_err("tampered id");
    assert!(err.contains("not to its name"), "{err}");

    // The fix the error names: forget the unreadable file by id.
    f.forget(ForgetOptions {
        snapshots: vec![new.short()],
        ..Default::default()
    });
    assert!(f.check(100).is_clean());
    assert_eq!(
        f.restore("latest", "after").expect("latest"),
        b"old content"
    );
}

#[test]
fn a_corrupted_newest_snapshot_makes_latest_fail_instead_of_restoring_the_previous_one() {
    let f = Fixture::new();
    let old = f.backup_content(b"first");
    let new = f.backup_content(b"second");
    let path = f.root().join("snapshots").join(new.to_hex());
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).expect("write");

    let err = f
        .restore("latest", "latest")
        .expect_err("latest must fail loudly");
    assert!(err.contains(&path.display().to_string()), "{err}");
    let report = f.check(0);
    assert!(problems(&report).contains(&new.to_hex()), "{report:?}");
    assert_eq!(f.restore(&old.to_hex(), "old").expect("old"), b"first");
    // Prune must know every snapshot: it refuses rather than delete what the damaged one needs.
    let err = forget(
        &f.repo,
        &ForgetOptions {
            policy: Policy {
                last: 5,
                ..Default::default()
            },
            prune: true,
            zstd_level: 1,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect_err("prune with an unreadable snapshot");
    assert!(err.to_string().contains(&new.to_hex()), "{err}");
}

#[test]
fn an_index_file_copied_over_another_is_unreadable_and_check_says_rebuild_index() {
    let f = Fixture::new();
    f.backup_content(b"one");
    f.backup_content(b"two");
    let index = f.files("index");
    assert_eq!(index.len(), 2, "{index:?}");
    std::fs::copy(&index[0], &index[1]).expect("copy");
    f.repo.reload_index().expect("reload");
    let report = f.check(0);
    let text = problems(&report);
    assert!(text.contains("not to its name"), "{text}");
    assert!(text.contains("backupctl repo rebuild-index"), "{text}");
}

#[test]
fn a_missing_index_file_is_a_problem_whose_fix_is_rebuild_index_not_prune() {
    let f = Fixture::new();
    f.backup_content(b"one");
    for p in f.files("index") {
        std::fs::remove_file(p).expect("rm");
    }
    let report = f.check(0);
    let text = problems(&report);
    assert!(!report.is_clean());
    assert!(
        text.contains("run `backupctl repo rebuild-index`"),
        "{text}"
    );
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.contains("prune removes them")),
        "{:?}",
        report.notes
    );
}

/// One snapshot whose blobs (data and trees) all sit in one pack; the pack's path.
fn fixture_with_pack() -> (Fixture, SnapshotId, PathBuf) {
    let f = Fixture::new();
    let id = f.backup_content(&backupd_tests::pseudo_random_bytes(2_000_000, 7));
    let packs = f.files("data");
    assert_eq!(packs.len(), 1);
    let pack = packs[0].clone();
    (f, id, pack)
}

#[test]
fn a_truncated_pack_is_found_without_read_data() {
    let (f, snapshot, pack) = fixture_with_pack();
    assert!(f.check(0).is_clean());
    let len = std::fs::metadata(&pack).expect("stat").len();
    std::fs::File::options()
        .write(true)
        .open(&pack)
        .and_then(|p| p.set_len(len / 2))
        .expect("truncate");
    let report = f.check(0);
    assert_eq!(report.damaged_packs.len(), 1, "{report:?}");
    let text = problems(&report);
    assert!(text.contains("truncated"), "{text}");
    // The root tree sat at the pack's end: the damage names the snapshot it hurts.
    assert!(text.contains(&snapshot.short()), "{text}");
}

#[test]
fn a_pack_with_appended_bytes_is_found_without_read_data() {
    let (f, _, pack) = fixture_with_pack();
    use std::io::Write;
    std::fs::File::options()
        .append(true)
        .open(&pack)
        .and_then(|mut p| p.write_all(b"appended"))
        .expect("append");
    let report = f.check(0);
    assert_eq!(report.damaged_packs.len(), 1, "{report:?}");
    assert!(
        problems(&report).contains("8 bytes were appended"),
        "{report:?}"
    );
}

/// Rewrites the repository's key file with `edit` applied to its JSON, under its new hash.
fn edit_key_file(f: &Fixture, edit: impl Fn(&mut serde_json::Value)) -> String {
    let keys = f.files("keys");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keys[0]).expect("read")).expect("json");
    edit(&mut json);
    let bytes = serde_json::to_vec_pretty(&json).expect("encode");
    std::fs::remove_file(&keys[0]).expect("rm");
    let name = sha256_hex(&bytes);
    std::fs::write(f.root().join("keys").join(&name), bytes).expect("write");
    name
}

#[test]
fn key_files_with_hostile_argon2_parameters_are_refused_before_deriving() {
    for (param, value) in [
        ("m_cost_kib", u64::from(u32::MAX)),
        ("t_cost", u64::from(u32::MAX)),
        ("p_cost", 0xFF_FFFF),
    ] {
        let f = Fixture::new();
        let name = edit_key_file(&f, |j| j["argon2id"][param] = value.into());
        let started = Instant::now();
        let err = Repository::open(&f.root(), b"pw").expect_err("hostile parameters");
        // Without the bounds this allocated 4 TiB (abort) or ran for days.
        assert!(started.elapsed() < Duration::from_secs(2), "{param}");
        let text = err.to_string();
        assert!(text.contains(&name) && text.contains(param), "{text}");
    }
}

#[test]
fn a_key_file_that_does_not_match_its_name_is_refused() {
    let f = Fixture::new();
    let keys = f.files("keys");
    let mut text = std::fs::read_to_string(&keys[0]).expect("read");
    text.push('\n');
    std::fs::write(&keys[0], text).expect("write");
    let err = Repository::open(&f.root(), b"pw").expect_err("renamed key file");
    assert!(err.to_string().contains("not to its name"), "{err}");
}

/// Writes a snapshot whose tree is a chain of `depth` directories (a crafted repository: no
/// file system would let a backup make one this deep cheaply).
fn deep_snapshot(repo: &Repository, depth: usize) -> SnapshotId {
    let data = b"at the bottom".to_vec();
    let data_id = repo.blob_id(&data);
    let mut builder = PackBuilder::new();
    builder.add(
        data_id,
        BlobKind::Data,
        &repo.encode_blob(&data, 1),
        data.len(),
    );
    let mut file = Node::new(b"file".to_vec(), NodeKind::File);
    file.size = data.len() as u64;
    file.content = vec![data_id];
    let mut tree = Tree {
        version: TREE_VERSION,
        nodes: vec![file],
    };
    let mut packs = Vec::new();
    for _ in 0..depth {
        let (bytes, id) = repo.tree_bytes(&tree);
        let sealed = repo.encode_blob(&bytes, 1);
        if builder.would_overflow(sealed.len()) {
            let (pack, entries) = std::mem::take(&mut builder).finish(repo.keys());
            let pid = repo.write_pack(&pack, &entries).expect("pack");
            packs.push(IndexedPack {
                id: pid,
                blobs: entries,
            });
        }
        builder.add(id, BlobKind::Tree, &sealed, bytes.len());
        let mut dir = Node::new(b"d".to_vec(), NodeKind::Dir);
        dir.mode = 0o755;
        dir.subtree = Some(id);
        tree = Tree {
            version: TREE_VERSION,
            nodes: vec![dir],
        };
    }
    let (bytes, root) = repo.tree_bytes(&tree);
    builder.add(
        root,
        BlobKind::Tree,
        &repo.encode_blob(&bytes, 1),
        bytes.len(),
    );
    let (pack, entries) = builder.finish(repo.keys());
    let pid = repo.write_pack(&pack, &entries).expect("pack");
    packs.push(IndexedPack {
        id: pid,
        blobs: entries,
    });
    repo.write_index(packs, vec![]).expect("index");
    repo.write_snapshot(&Snapshot {
        version: SNAPSHOT_VERSION,
        time_ns: 1,
        host: "crafted".into(),
        username: String::new(),
        paths: vec![b"/d".to_vec()],
        tags: vec![],
        parent: None,
        tree: root,
        stats: SnapshotStats::default(),
        skipped: vec![],
        owner_uid: None,
    })
    .expect("snapshot")
}

#[test]
fn check_and_prune_walk_a_3000_deep_tree_without_overflowing_the_stack() {
    let f = Fixture::new();
    deep_snapshot(&f.repo, 3000);
    // A small stack: a walk that recursed once per level would overflow it long before 3000.
    let repo = &f.repo;
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn_scoped(s, || {
                let report = support::assert_checks_clean(repo, "a 3000 deep tree");
                assert_eq!(report.trees, 3001);
                forget(
                    repo,
                    &ForgetOptions {
                        policy: Policy {
                            last: 1,
                            ..Default::default()
                        },
                        prune: true,
                        zstd_level: 1,
                        ..Default::default()
                    },
                    &Progress::default(),
                    &CancellationToken::new(),
                )
                .expect("prune");
                // Everything was reachable: nothing may have been lost.
                let after = support::assert_checks_clean(repo, "a 3000 deep tree, pruned");
                assert_eq!(after.trees, 3001);
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow");
    });
}
