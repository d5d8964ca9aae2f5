//! The repository over a fault-injecting backend: how each kind of storage failure is
//! classified and what the queue does with it, that a failed or lost write during a backup
//! never leaves an index entry naming a missing pack, and that `check` finds every damage done
//! to the stored objects.
//!
//! The queue's retry decision is driven here through its own state machine (`queue::job`):
//! the failed engine call becomes the job's `Ending` exactly as the worker builds it
//! (`Ending::failed`), and `job::finish` decides between a retry and the dead-letter queue.
//! The daemon's registry opens backends from their location, so a whole daemon cannot be
//! pointed at a faulty backend from outside; this is the decision it would take.

mod support;

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::check::{check, CheckOptions, CheckReport};
use backupd::engine::progress::Progress;
use backupd::engine::restore::{restore, RestoreOptions};
use backupd::engine::EngineError;
use backupd::error::Error;
use backupd::queue::job::{self, Ending, Limits};
use backupd::repo::backend::faulty::FaultyBackend;
use backupd::repo::backend::{Backend, ErrorKind, FileKind, Key, LocalBackend};
use backupd::repo::Repository;
use backupd_common::error::ErrorCode;
use backupd_common::protocol::{JobKind, JobSpec, JobState, NoopRequest};
use backupd_tests::treecmp::{compare_trees, CompareOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::kdf;
use tokio_util::sync::CancellationToken;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A repository and a source tree of three files (some MiB, so a backup writes data and
    /// tree packs, an index file and a snapshot).
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Repository::init_with(&dir.path().join("repo"), b"pw", kdf()).expect("init");
        let f = Self { dir };
        std::fs::create_dir_all(f.src().join("sub")).expect("src");
        f.write("a", 1_500_000, 1);
        f.write("sub/b", 700_000, 2);
        f.write("c", 3_000, 3);
        f
    }

    fn write(&self, name: &str, len: usize, seed: u64) {
        let bytes = backupd_tests::pseudo_random_bytes(len, seed);
        std::fs::write(self.src().join(name), bytes).expect("write source file");
    }

    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn local(&self) -> LocalBackend {
        LocalBackend::new(self.dir.path().join("repo"))
    }

    /// The repository over a fresh fault injector (nothing armed yet).
    fn faulty(&self) -> (Arc<FaultyBackend>, Repository) {
        let faulty = Arc::new(FaultyBackend::new(Arc::new(self.local())));
        let repo = Repository::open_on(faulty.clone(), b"pw").expect("open over faults");
        (faulty, repo)
    }

    /// The repository as a restarted daemon opens it: straight from the directory.
    fn reopen(&self) -> Repository {
        Repository::open(&self.dir.path().join("repo"), b"pw").expect("reopen")
    }
}

fn backup_src(repo: &Repository, src: &Path) -> Result<(), EngineError> {
    backup(
        repo,
        &BackupOptions {
            paths: vec![src.to_path_buf()],
            zstd_level: 1,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .map(|_| ())
}

fn check_all(repo: &Repository) -> CheckReport {
    check(
        repo,
        &CheckOptions {
            read_data_percent: 100,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("check runs")
}

/// The latest snapshot restores to exactly the source tree.
fn assert_restores(f: &Fixture, repo: &Repository, name: &str) {
    let target = f.dir.path().join(name);
    let outcome = restore(
        repo,
        &RestoreOptions {
            snapshot: "latest".into(),
            subpath: Some(f.src()),
            target: target.clone(),
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("restore");
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    let diffs = compare_trees(
        &f.src(),
        &target,
        CompareOptions {
            owners: false,
            atime: false,
            sparse: false,
        },
    );
    assert!(diffs.is_empty(), "restore differs: {diffs:#?}");
}

/// Every pack the index names is stored (the invariant a failed write must not break).
fn assert_index_names_only_stored_packs(repo: &Repository) {
    repo.reload_index().expect("reload index");
    let named: Vec<String> = repo.with_index(|i| i.packs().map(|(id, _)| id.to_hex()).collect());
    for pack in named {
        assert!(
            repo.backend().exists(Key::pack(&pack)).expect("stat"),
            "the index names pack {pack}, which is not stored"
        );
    }
}

/// What the queue decides for a job whose attempt failed with `error`.
fn queue_decision(error: &Error) -> JobState {
    let spec = JobSpec {
        kind: JobKind::Noop(NoopRequest::default()),
        options: Default::default(),
    };
    let limits = Limits {
        timeout: Duration::from_secs(60),
        retries: 3,
        backoff: Duration::from_secs(1),
    };
    let mut info = job::new_job(1, spec, 0, 0, limits);
    job::start(&mut info, 1);
    job::finish(
        &mut info,
        Ending::failed(error),
        2,
        0.0,
        Duration::from_secs(60),
    );
    info.state
}

/// Arms one fault.
type Arm = fn(&FaultyBackend);

#[test]
fn transient_backend_errors_are_retried_by_the_queue_and_permanent_ones_are_not() {
    let f = Fixture::new();
    // (what breaks, the wire code, whether the queue retries)
    let cases: Vec<(&str, Arm, ErrorCode, JobState)> = vec![
        (
            "a flaky disk on the first pack",
            |b| b.fail_put(FileKind::Pack, 1, ErrorKind::Transient),
            ErrorCode::Unavailable,
            JobState::RetryWait,
        ),
        (
            "the storage went away",
            |b| b.fail_next(u64::MAX, ErrorKind::Unreachable),
            ErrorCode::Unavailable,
            JobState::RetryWait,
        ),
        (
            "a full disk on the index",
            |b| b.fail_put(FileKind::Index, 1, ErrorKind::NoSpace),
            ErrorCode::NoSpace,
            JobState::RetryWait,
        ),
        (
            "a read-only file system",
            |b| b.fail_put(FileKind::Pack, 1, ErrorKind::Denied),
            ErrorCode::Unavailable,
            JobState::DeadLetter,
        ),
        (
            "a permanent storage error on the snapshot",
            |b| b.fail_put(FileKind::Snapshot, 1, ErrorKind::Permanent),
            ErrorCode::Internal,
            JobState::DeadLetter,
        ),
    ];
    for (i, (what, arm, code, decision)) in cases.into_iter().enumerate() {
        f.write("c", 3_000, 100 + i as u64); // something new to store each round
        let (faulty, repo) = f.faulty();
        arm(&faulty);
        let e: Error = backup_src(&repo, &f.src()).expect_err(what).into();
        assert_eq!(e.to_reply().code, code, "{what}: {e}");
        assert_eq!(queue_decision(&e), decision, "{what}: {e}");
        // The retry (or the admin's re-run once the cause is fixed) succeeds.
        faulty.heal();
        backup_src(&repo, &f.src()).unwrap_or_else(|e| panic!("{what}: the retry failed: {e}"));
    }

    // A pack the index names cannot be read: lost data, not retried.
    let (faulty, repo) = f.faulty();
    let (pack, blob) = repo
        .with_index(|i| {
            i.packs()
                .next()
                .and_then(|(id, entries)| Some((id.to_hex(), entries.first()?.id)))
        })
        .expect("a pack with a blob");
    faulty.fail_gets(Key::pack(&pack), ErrorKind::NotFound);
    let e: Error = EngineError::from(repo.read_blob(&blob).expect_err("lost pack")).into();
    assert_eq!(queue_decision(&e), JobState::DeadLetter, "{e}");
    // A flaky read of the same pack is retried.
    faulty.heal();
    faulty.fail_gets(Key::pack(&pack), ErrorKind::Transient);
    let e: Error = EngineError::from(repo.read_blob(&blob).expect_err("flaky read")).into();
    assert_eq!(queue_decision(&e), JobState::RetryWait, "{e}");
    faulty.heal();
    repo.read_blob(&blob).expect("readable again");
}

#[test]
fn a_failed_pack_put_during_backup_leaves_no_index_entry_naming_a_missing_pack() {
    let f = Fixture::new();
    // The first pack of a backup, then the second (past the 16 MiB pack target, so the first
    // one is complete and stored when the second fails).
    for (round, nth) in [1u64, 2].into_iter().enumerate() {
        let size = if nth == 1 { 1_500_000 } else { 20_000_000 };
        f.write("a", size, 10 + round as u64);
        f.write("c", 3_000, 20 + round as u64);
        let (faulty, repo) = f.faulty();
        faulty.fail_put(FileKind::Pack, nth, ErrorKind::Transient);
        let e = backup_src(&repo, &f.src()).expect_err("pack write fails");
        assert!(Error::from(e).is_retryable());
        drop(repo);
        let repo = f.reopen();
        assert_index_names_only_stored_packs(&repo);
        let report = check_all(&repo);
        assert!(
            report.is_clean(),
            "pack {nth} failed: {:#?}",
            report.problems
        );
        backup_src(&repo, &f.src()).expect("the next backup succeeds");
        assert!(check_all(&repo).is_clean());
        assert_restores(&f, &repo, &format!("restored-{round}"));
    }
}

#[test]
fn a_put_lost_in_a_crash_before_the_directory_fsync_leaves_a_repository_that_checks_clean() {
    let f = Fixture::new();
    for (round, kind) in [FileKind::Pack, FileKind::Index, FileKind::Snapshot]
        .into_iter()
        .enumerate()
    {
        f.write("a", 1_500_000, 30 + round as u64);
        let (faulty, repo) = f.faulty();
        faulty.crash_after_put(kind, 1);
        let result = backup_src(&repo, &f.src());
        assert!(faulty.crashed(), "{kind:?}: the crash point was reached");
        // Losing the snapshot is the one case the dying process cannot notice.
        if kind != FileKind::Snapshot {
            result.expect_err("the process died during the backup");
        }
        drop(repo);
        let repo = f.reopen();
        assert_index_names_only_stored_packs(&repo);
        let report = check_all(&repo);
        assert!(report.is_clean(), "{kind:?} lost: {:#?}", report.problems);
        backup_src(&repo, &f.src()).expect("the backup after the restart succeeds");
        assert!(check_all(&repo).is_clean());
        assert_restores(&f, &repo, &format!("restored-{round}"));
    }
}

/// How a test damages one stored object.
#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipByte,
    Truncate,
    Delete,
}

fn damage(path: &Path, how: Damage) {
    match how {
        Damage::FlipByte => {
            let mut bytes = std::fs::read(path).expect("read");
            let at = bytes.len() / 2;
            bytes[at] ^= 0x5A;
            std::fs::write(path, bytes).expect("write");
        }
        Damage::Truncate => {
            let len = std::fs::metadata(path).expect("stat").len();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            file.set_len(len * 2 / 3).expect("truncate");
        }
        Damage::Delete => std::fs::remove_file(path).expect("delete"),
    }
}

#[test]
fn check_finds_every_injected_corruption() {
    let f = Fixture::new();
    backup_src(&f.reopen(), &f.src()).expect("backup");
    let template = f.dir.path().join("repo");
    let mut cases = 0;
    for kind in [FileKind::Pack, FileKind::Index, FileKind::Snapshot] {
        for how in [Damage::FlipByte, Damage::Truncate, Damage::Delete] {
            let work = tempfile::tempdir().expect("tempdir");
            let copy = work.path().join("repo");
            let st = std::process::Command::new("cp")
                .arg("-a")
                .arg(&template)
                .arg(&copy)
                .status()
                .expect("cp");
            assert!(st.success());
            let local = LocalBackend::new(&copy);
            let names = local.list(kind).expect("list");
            // Every object of the kind: a pack of data and one of trees, for instance.
            for name in &names {
                damage(&local.path(Key::new(kind, name)), how);
            }
            let what = format!("{how:?} of every {kind:?} ({} objects)", names.len());
            match Repository::open(&copy, b"pw") {
                Ok(repo) => {
                    let report = check_all(&repo);
                    let deleted_snapshots =
                        matches!((kind, how), (FileKind::Snapshot, Damage::Delete));
                    if deleted_snapshots {
                        // Deleting every snapshot file is what `forget` does: the repository
                        // keeps no list of snapshots to miss them from, and the packs they
                        // used are simply unreferenced until prune.
                        assert!(report.snapshots == 0, "{what}: {report:?}");
                    } else {
                        assert!(!report.is_clean(), "{what}: check found nothing");
                    }
                }
                // Some damage already stops the open (none today for these kinds).
                Err(e) => panic!("{what}: the repository no longer opens: {e}"),
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 9);

    // A pack that cannot be read at all (every get fails) is reported, not skipped.
    let (faulty, repo) = f.faulty();
    let pack = repo.with_index(|i| i.packs().next().map(|(id, _)| id.to_hex()));
    faulty.fail_gets(Key::pack(&pack.expect("a pack")), ErrorKind::Transient);
    let report = check_all(&repo);
    assert!(!report.is_clean(), "an unreadable pack went unnoticed");
}
