//! Replication at the engine level: a replica created with `init_replica_on` receives the
//! source's snapshots and only the blobs it lacks, resumes after interrupted runs (the
//! fault-injecting backend fails a put of the replica), mirrors forgets only when asked, and
//! works with a data key of its own (every blob sealed again). Every replica must check clean
//! reading all its data and restore byte for byte.

mod support;

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::forget::{forget, ForgetOptions};
use backupd::engine::progress::Progress;
use backupd::engine::replicate::{replicate, ReplicateOptions, ReplicateReport};
use backupd::engine::EngineError;
use backupd::repo::backend::faulty::FaultyBackend;
use backupd::repo::backend::{Backend, ErrorKind, FileKind, LocalBackend};
use backupd::repo::Repository;
use backupd_tests::treecmp::CompareOptions;
use std::path::PathBuf;
use std::sync::Arc;
use support::{assert_checks_clean, kdf, restore_and_compare};
use tokio_util::sync::CancellationToken;

struct Fixture {
    dir: tempfile::TempDir,
    source: Repository,
}

impl Fixture {
    /// A source repository with one backup of a tree of a few MiB, in 1 MiB packs (so a
    /// replication writes several).
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = Repository::init_with(&dir.path().join("r1"), b"pw1", kdf()).expect("init");
        let f = Self { dir, source };
        std::fs::create_dir_all(f.src().join("sub/deeper")).expect("src");
        f.write("a", 2_500_000, 1);
        f.write("sub/b", 1_700_000, 2);
        f.write("sub/deeper/c", 900_000, 3);
        f.write("small", 3_000, 4);
        f.backup();
        f
    }

    fn write(&self, name: &str, len: usize, seed: u64) {
        let bytes = backupd_tests::pseudo_random_bytes(len, seed);
        std::fs::write(self.src().join(name), bytes).expect("write source file");
    }

    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn backup(&self) {
        backup(
            &self.source,
            &BackupOptions {
                paths: vec![self.src()],
                zstd_level: 1,
                pack_bytes: 1 << 20,
                ..Default::default()
            },
            &Progress::default(),
            &CancellationToken::new(),
        )
        .expect("backup");
    }

    fn replica_path(&self) -> PathBuf {
        self.dir.path().join("r2")
    }

    /// A replica of the source (with a data key of its own when `own_key`).
    fn replica(&self, own_key: bool) -> Repository {
        let backend = Arc::new(LocalBackend::new(self.replica_path()));
        Repository::init_replica_on(backend, b"pw2", kdf(), &self.source, own_key)
            .expect("init replica")
    }

    /// The replica over a fresh fault injector.
    fn faulty_replica(&self) -> (Arc<FaultyBackend>, Repository) {
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(self.replica_path()));
        let faulty = Arc::new(FaultyBackend::new(inner));
        let repo = Repository::open_on(faulty.clone(), b"pw2").expect("open over faults");
        (faulty, repo)
    }

    fn reopen_replica(&self) -> Repository {
        Repository::open(&self.replica_path(), b"pw2").expect("reopen replica")
    }

    /// Every snapshot of `replica` restores to the current source tree (the newest one) and
    /// it checks clean reading all its data.
    fn assert_replica_good(&self, replica: &Repository, what: &str) {
        assert_checks_clean(replica, what);
        let target = self
            .dir
            .path()
            .join(format!("restore-{}", what.replace(' ', "-")));
        restore_and_compare(
            replica,
            "latest",
            Some(self.src()),
            &target,
            &self.src(),
            CompareOptions::default(),
            what,
        );
    }
}

fn run(
    source: &Repository,
    replica: &Repository,
    options: ReplicateOptions,
) -> Result<ReplicateReport, EngineError> {
    replicate(
        source,
        replica,
        options,
        &|_| true,
        &Progress::default(),
        &CancellationToken::new(),
    )
}

fn ids(repo: &Repository) -> Vec<String> {
    let mut v: Vec<String> = repo
        .snapshots()
        .expect("snapshots")
        .into_iter()
        .map(|(id, _)| id.to_hex())
        .collect();
    v.sort();
    v
}

#[test]
fn a_replica_sharing_the_data_key_gets_the_packs_as_they_are_and_restores() {
    let f = Fixture::new();
    let replica = f.replica(false);
    let report = run(&f.source, &replica, ReplicateOptions::default()).expect("replicate");
    assert_eq!(report.snapshots_copied, 1);
    assert!(report.packs_copied >= 3, "{report:?}");
    assert_eq!(report.blobs_resealed, 0, "{report:?}");
    assert_eq!(ids(&replica), ids(&f.source), "same snapshot ids");
    f.assert_replica_good(&f.reopen_replica(), "shared key");
    // A second run finds nothing to do.
    let again = run(&f.source, &replica, ReplicateOptions::default()).expect("again");
    assert_eq!(
        (again.snapshots_copied, again.blobs_copied),
        (0, 0),
        "{again:?}"
    );
    assert_eq!(again.snapshots_present, 1);
}

#[test]
fn a_replica_with_its_own_data_key_gets_every_blob_sealed_again_and_restores() {
    let f = Fixture::new();
    let replica = f.replica(true);
    assert_ne!(replica.keys().data_keys, f.source.keys().data_keys);
    let report = run(
        &f.source,
        &replica,
        ReplicateOptions {
            verify: true,
            ..Default::default()
        },
    )
    .expect("replicate");
    assert_eq!(report.packs_copied, 0, "{report:?}");
    assert_eq!(report.blobs_resealed, report.blobs_copied, "{report:?}");
    assert!(report.blobs_copied > 0);
    assert_eq!(report.packs_verified, report.packs_written, "{report:?}");
    assert_eq!(ids(&replica), ids(&f.source));
    // The source's passphrase does not open the replica.
    assert!(Repository::open(&f.replica_path(), b"pw1").is_err());
    f.assert_replica_good(&f.reopen_replica(), "own key");
}

#[test]
fn incremental_replication_after_a_one_file_change_copies_only_the_new_blobs() {
    let f = Fixture::new();
    let replica = f.replica(false);
    run(&f.source, &replica, ReplicateOptions::default()).expect("first");
    let before = f.source.with_index(|i| i.blob_count());
    f.write("small", 3_100, 99);
    f.backup();
    let new_blobs = (f.source.with_index(|i| i.blob_count()) - before) as u64;
    let report = run(&f.source, &replica, ReplicateOptions::default()).expect("second");
    assert_eq!(report.snapshots_copied, 1, "{report:?}");
    assert_eq!(report.snapshots_present, 1, "{report:?}");
    // The changed file's chunk and the trees from / down to it, nothing else.
    assert_eq!(report.blobs_copied, new_blobs, "{report:?}");
    let trees = f.src().components().count() as u64;
    assert_eq!(new_blobs, 1 + trees, "one chunk and {trees} trees");
    f.assert_replica_good(&f.reopen_replica(), "incremental");
}

#[test]
fn a_replication_interrupted_twice_resumes_and_the_replica_checks_clean() {
    for own_key in [false, true] {
        let f = Fixture::new();
        // More data after the first snapshot: a second one to copy, more packs.
        f.write("d", 2_000_000, 5);
        f.backup();
        f.replica(own_key);
        // First run: a pack written fails (the second of the source's packs copied as they
        // are; sealed again, all blobs fit one pack).
        let (faulty, replica) = f.faulty_replica();
        faulty.fail_put(
            FileKind::Pack,
            if own_key { 1 } else { 2 },
            ErrorKind::NoSpace,
        );
        let first = run(&f.source, &replica, ReplicateOptions::default());
        assert!(
            first.is_err(),
            "the injected failure ends the run: {first:?}"
        );
        assert!(
            ids(&f.reopen_replica()).is_empty(),
            "no snapshot before its data"
        );
        // Second run: its first index file fails to be written.
        let (faulty, replica) = f.faulty_replica();
        faulty.fail_put(FileKind::Index, 1, ErrorKind::Transient);
        let second = run(&f.source, &replica, ReplicateOptions::default());
        assert!(second.is_err(), "the injected failure ends the run");
        assert!(
            ids(&f.reopen_replica()).is_empty(),
            "no snapshot before its index"
        );
        // The half-done replica is still a valid repository.
        assert_checks_clean(&f.reopen_replica(), "after two interruptions");
        // Third run completes, reusing the packs the interrupted runs left.
        let replica = f.reopen_replica();
        let third = run(&f.source, &replica, ReplicateOptions::default()).expect("third run");
        assert!(third.packs_adopted > 0, "own key {own_key}: {third:?}");
        assert_eq!(third.snapshots_copied, 2);
        assert_eq!(ids(&replica), ids(&f.source));
        f.assert_replica_good(&f.reopen_replica(), &format!("resumed own key {own_key}"));
        // Both snapshots restore, not just the newest.
        for (id, _) in replica.snapshots().expect("snapshots") {
            let target = f.dir.path().join(format!("all-{}", id.to_hex()));
            let outcome =
                support::restore_into(&replica, &id.to_hex(), None, &target).expect("restore");
            assert!(outcome.failed.is_empty());
        }
    }
}

#[test]
fn mirror_forget_removes_what_the_source_forgot_and_without_it_the_replica_keeps_it() {
    let f = Fixture::new();
    f.write("small", 5_000, 7);
    f.backup();
    let replica = f.replica(false);
    run(&f.source, &replica, ReplicateOptions::default()).expect("first");
    assert_eq!(ids(&replica).len(), 2);
    let oldest = f.source.snapshots().expect("snapshots")[0].0.to_hex();
    forget(
        &f.source,
        &ForgetOptions {
            snapshots: vec![oldest.clone()],
            prune: true,
            zstd_level: 1,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("forget on the source");
    assert_eq!(ids(&f.source).len(), 1);
    let kept = run(&f.source, &replica, ReplicateOptions::default()).expect("no mirror");
    assert_eq!(kept.snapshots_forgotten, 0);
    assert!(
        ids(&replica).contains(&oldest),
        "without --mirror-forget it stays"
    );
    let mirrored = run(
        &f.source,
        &replica,
        ReplicateOptions {
            mirror_forget: true,
            ..Default::default()
        },
    )
    .expect("mirror");
    assert_eq!(mirrored.snapshots_forgotten, 1);
    assert_eq!(ids(&replica), ids(&f.source));
    f.assert_replica_good(&f.reopen_replica(), "mirrored");
}

#[test]
fn a_repository_that_is_no_replica_is_refused() {
    let f = Fixture::new();
    let other = Repository::init_with(&f.dir.path().join("other"), b"pw", kdf()).expect("init");
    let e = run(&f.source, &other, ReplicateOptions::default()).expect_err("refused");
    assert!(e.to_string().contains("not a replica"), "{e}");
    assert!(ids(&other).is_empty());
}
