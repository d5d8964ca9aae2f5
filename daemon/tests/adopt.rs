//! A backup reuses the packs an interrupted attempt left (complete packs, no index file, no
//! snapshot), but only young ones and only when no other operation holds a lock.

mod support;

use support::kdf;

use backupd::engine::adopt::{adopt_unindexed_packs, Adopted};
use backupd::engine::backup::{backup, BackupOptions, BackupOutcome};
use backupd::engine::progress::Progress;
use backupd::repo::lock::LockMode;
use backupd::repo::Repository;
use std::path::Path;
use tokio_util::sync::CancellationToken;

fn run_backup(repo: &Repository, src: &Path) -> BackupOutcome {
    backup(
        repo,
        &BackupOptions {
            paths: vec![src.to_owned()],
            // As the queue runs a retried attempt.
            reuse_unindexed: true,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("backup")
}

/// Turns a finished backup into what an interrupted one leaves: its packs, but neither the
/// index file naming them (written after the packs) nor the snapshot (written last).
fn interrupt(repo_dir: &Path) -> Repository {
    for dir in ["index", "snapshots"] {
        for e in std::fs::read_dir(repo_dir.join(dir))
            .expect("list")
            .flatten()
        {
            std::fs::remove_file(e.path()).expect("rm");
        }
    }
    Repository::open(repo_dir, b"pw").expect("open")
}

fn set_mtime_hours_ago(repo_dir: &Path, hours: i64) {
    let when = format!("{hours} hours ago");
    for sub in std::fs::read_dir(repo_dir.join("data"))
        .expect("data")
        .flatten()
    {
        for e in std::fs::read_dir(sub.path()).expect("list").flatten() {
            let st = std::process::Command::new("touch")
                .args(["-m", "-d", &when])
                .arg(e.path())
                .status()
                .expect("touch");
            assert!(st.success());
        }
    }
}

#[test]
fn a_retried_backup_reuses_the_packs_its_interrupted_attempt_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo_dir = dir.path().join("repo");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(
        src.join("big"),
        backupd_tests::pseudo_random_bytes(20 << 20, 9),
    )
    .expect("w");
    let repo = Repository::init_with(&repo_dir, b"pw", kdf()).expect("init");
    let first = run_backup(&repo, &src);
    assert!(first.snapshot.stats.bytes_added >= 20 << 20);
    drop(repo);
    let repo = interrupt(&repo_dir);

    // While another operation holds a lock its packs may be in flight: nothing is adopted.
    {
        let other = repo.lock(LockMode::Shared, "backup").expect("other");
        let mine = repo.lock(LockMode::Shared, "backup").expect("mine");
        assert_eq!(
            adopt_unindexed_packs(&repo, &mine).expect("adopt"),
            Adopted::default()
        );
        drop(other);
    }

    let retry = run_backup(&repo, &src);
    // File data all came from the interrupted attempt's packs; at most a tree whose times
    // changed is new.
    let added = retry.snapshot.stats.bytes_added;
    assert!(added < 64 * 1024, "retry stored {added} bytes again");
    support::assert_checks_clean(&repo, "after the retried backup");
}

#[test]
fn packs_older_than_the_prune_window_are_left_to_prune() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo_dir = dir.path().join("repo");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(
        src.join("f"),
        backupd_tests::pseudo_random_bytes(3 << 20, 4),
    )
    .expect("w");
    let repo = Repository::init_with(&repo_dir, b"pw", kdf()).expect("init");
    run_backup(&repo, &src);
    drop(repo);
    let repo = interrupt(&repo_dir);
    set_mtime_hours_ago(&repo_dir, 1);
    let lock = repo.lock(LockMode::Shared, "backup").expect("lock");
    assert_eq!(
        adopt_unindexed_packs(&repo, &lock).expect("adopt"),
        Adopted::default()
    );
}
