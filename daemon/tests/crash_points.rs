//! Crash safety proven, not hoped for: each operation is stopped at every one of its writes and
//! deletes in turn (the local backend's injected crash: from that point on every mutation
//! fails, as if the process had died there). Then, as a restarted daemon would, the operation
//! runs again, and the repository must check clean with `--read-data` and restore exactly.

mod support;

use support::{kdf, prune_to_last};

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::progress::Progress;
use backupd::engine::rebuild::rebuild_index;
use backupd::engine::reencrypt::{migrate, reencrypt, ReencryptReport};
use backupd::repo::backend::LocalBackend;
use backupd::repo::keyfile::manage;
use backupd::repo::Repository;
use backupd_tests::treecmp::CompareOptions;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// More crash points than any operation here has; a loop that reaches it is a bug.
const MAX_STEPS: u64 = 500;

fn write_random(path: &Path, len: usize, seed: u64) {
    std::fs::write(path, backupd_tests::pseudo_random_bytes(len, seed)).expect("write");
}

fn backup_src(repo: &Repository, src: &Path) -> Result<(), backupd::engine::EngineError> {
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

fn rebuild(repo: &Repository) -> Result<(), backupd::engine::EngineError> {
    rebuild_index(repo, &Progress::default(), &CancellationToken::new()).map(|_| ())
}

/// A repository with three snapshots of a changing tree, so a prune deletes, repacks and keeps
/// packs. `src` is left as the last snapshot saw it.
fn template() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init_with(&dir.path().join("repo"), b"pw", kdf()).expect("init");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    write_random(&src.join("a"), 300_000, 1);
    write_random(&src.join("b"), 2_000_000, 2);
    write_random(&src.join("sub/c"), 5_000, 3);
    backup_src(&repo, &src).expect("backup 1");
    write_random(&src.join("b"), 2_000_000, 4);
    std::fs::remove_file(src.join("sub/c")).expect("rm");
    write_random(&src.join("sub/d"), 700_000, 5);
    backup_src(&repo, &src).expect("backup 2");
    write_random(&src.join("e"), 1_500_000, 6);
    backup_src(&repo, &src).expect("backup 3");
    // Packs older than prune's 30-minute safety window, as in a repository in use: an
    // unindexed pack that old is taken for a leftover and deleted, which is what turns a
    // resurrected index file into lost data.
    let st = Command::new("find")
        .arg(dir.path().join("repo"))
        .args([
            "-type",
            "f",
            "-exec",
            "touch",
            "-d",
            "2 hours ago",
            "{}",
            "+",
        ])
        .status()
        .expect("find");
    assert!(st.success(), "age the repository files");
    dir
}

/// A copy of the template to crash in.
fn copy_of(template: &Path) -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("tempdir");
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", template.display()))
        .arg(work.path())
        .status()
        .expect("cp");
    assert!(st.success(), "copy template");
    work
}

/// The repository in `dir` checks clean reading every pack, and its latest snapshot restores
/// to exactly `dir/src`.
fn assert_intact(dir: &Path, step: u64, what: &str) {
    let repo = Repository::open(&dir.join("repo"), b"pw").expect("open after the crash");
    support::assert_checks_clean(
        &repo,
        &format!("{what} crashed at step {step}, then re-run"),
    );
    let target: PathBuf = dir.join(format!("restored-{step}"));
    let src = dir.join("src");
    // The snapshot names the path it was taken of (the template's, or this copy's).
    let snapshots = repo.snapshots().expect("snapshots");
    let (_, latest) = snapshots.last().expect("a snapshot");
    let snapped = PathBuf::from(std::ffi::OsStr::from_bytes(&latest.paths[0]));
    support::restore_and_compare(
        &repo,
        "latest",
        Some(snapped),
        &target,
        &src,
        CompareOptions::default(),
        &format!("{what} crashed at step {step}"),
    );
}

/// Crashes `first` at each of its mutations in turn on a fresh copy of the template, then runs
/// `rerun` on the reopened repository (a restarted daemon), then checks the result. Returns
/// how many crash points there were.
fn crash_at_every_step<A, B>(
    what: &str,
    first: impl Fn(&Repository) -> Result<A, backupd::engine::EngineError>,
    rerun: impl Fn(&Repository) -> Result<B, backupd::engine::EngineError>,
) -> u64 {
    crash_at_every_step_of(&template(), what, first, rerun)
}

/// [`crash_at_every_step`] on copies of `template`.
fn crash_at_every_step_of<A, B>(
    template: &tempfile::TempDir,
    what: &str,
    first: impl Fn(&Repository) -> Result<A, backupd::engine::EngineError>,
    rerun: impl Fn(&Repository) -> Result<B, backupd::engine::EngineError>,
) -> u64 {
    for step in 0..MAX_STEPS {
        let work = copy_of(template.path());
        {
            let local = LocalBackend::new(work.path().join("repo"));
            let repo = Repository::open_on(Arc::new(local.clone()), b"pw").expect("open");
            local.crash_after(step);
            if first(&repo).is_ok() {
                // It finished before reaching this step: every boundary has been tried.
                assert_intact(work.path(), step, what);
                return step;
            }
        }
        let repo = Repository::open(&work.path().join("repo"), b"pw").expect("reopen");
        rerun(&repo)
            .unwrap_or_else(|e| panic!("{what} crashed at step {step}; the re-run failed: {e}"));
        drop(repo);
        assert_intact(work.path(), step, what);
    }
    panic!("{what} still crashing after {MAX_STEPS} steps");
}

#[test]
fn prune_crashed_at_every_step_then_run_again_loses_nothing() {
    let steps = crash_at_every_step("prune", prune_to_last, prune_to_last);
    // Two snapshot deletions, at least one pack written, one index written, old index files
    // deleted, packs deleted.
    assert!(steps >= 6, "only {steps} crash points in a prune");
}

#[test]
fn rebuild_index_crashed_at_every_step_then_prune_loses_nothing() {
    let steps = crash_at_every_step("rebuild-index", rebuild, prune_to_last);
    assert!(steps >= 2, "only {steps} crash points in a rebuild");
}

#[test]
fn backup_crashed_at_every_step_then_run_again_loses_nothing() {
    let steps = crash_at_every_step(
        "backup",
        |repo| {
            // The tree changes before the crashing backup; the re-run sees the same tree.
            let src = repo
                .location()
                .local_path()
                .and_then(|p| p.parent())
                .expect("repo has a parent")
                .join("src");
            write_random(&src.join("new"), 3_000_000, 7);
            backup_src(repo, &src)
        },
        |repo| {
            let src = repo
                .location()
                .local_path()
                .and_then(|p| p.parent())
                .expect("repo has a parent")
                .join("src");
            backup_src(repo, &src)
        },
    );
    assert!(steps >= 3, "only {steps} crash points in a backup");
}

/// Adds a data-key version, as `repo key rotate` does (every key file rewritten).
fn rotate(repo_dir: &Path) -> Repository {
    let repo = Repository::open(repo_dir, b"pw").expect("open");
    let loaded = repo.key_ring().expect("ring");
    let next = loaded.ring.rotated(backupd::repo::now_ns());
    manage::rewrite_rings(&repo, &loaded, &next).expect("rotate");
    Repository::open(repo_dir, b"pw").expect("reopen")
}

fn reencrypt_all(repo: &Repository) -> Result<ReencryptReport, backupd::engine::EngineError> {
    reencrypt(repo, None, &Progress::default(), &CancellationToken::new())
}

#[test]
fn reencrypt_crashed_at_every_step_then_run_again_loses_nothing_and_leaves_no_old_seal() {
    // Three snapshots sealed by version 1, a fourth by version 2, version 3 current.
    let template = template();
    let repo_dir = template.path().join("repo");
    let repo = rotate(&repo_dir);
    let src = template.path().join("src");
    write_random(&src.join("after-rotation"), 800_000, 8);
    backup_src(&repo, &src).expect("backup under version 2");
    drop(repo);
    drop(rotate(&repo_dir));
    let steps = crash_at_every_step_of(&template, "reencrypt", reencrypt_all, |repo| {
        let report = reencrypt_all(repo)?;
        assert!(
            report.remaining.is_empty(),
            "objects still sealed by old versions: {:?}",
            report.remaining
        );
        assert_eq!(report.current, 3);
        Ok(report)
    });
    // Four index files, each: packs written, index written, old index and packs deleted; then
    // four snapshots.
    assert!(steps >= 16, "only {steps} crash points in a re-encryption");
}

#[test]
fn migrate_crashed_at_every_step_then_run_again_loses_nothing_and_ends_in_format_2() {
    let template = tempfile::tempdir().expect("tempdir");
    let repo_dir = template.path().join("repo");
    let local = LocalBackend::new(&repo_dir);
    let repo =
        Repository::init_on_version(Arc::new(local), b"pw", kdf(), 1).expect("format 1 repo");
    let src = template.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    write_random(&src.join("a"), 400_000, 31);
    backup_src(&repo, &src).expect("backup 1");
    write_random(&src.join("b"), 1_200_000, 32);
    backup_src(&repo, &src).expect("backup 2");
    drop(repo);
    let run = |repo: &Repository| migrate(repo, 2, &Progress::default(), &CancellationToken::new());
    let steps = crash_at_every_step_of(&template, "migrate", run, |repo| {
        let report = run(repo)?;
        assert!(report.remaining.is_empty(), "{report:?}");
        let config = backupd::repo::read_config(repo.backend()).expect("config");
        assert_eq!((config.version, config.migrating_from), (2, None));
        Ok(report)
    });
    // The config twice, two index files (packs written, index written, old ones deleted),
    // two snapshots.
    assert!(steps >= 10, "only {steps} crash points in a migration");
}

fn compact_index(
    repo: &Repository,
) -> Result<backupd::engine::compact::CompactReport, backupd::engine::EngineError> {
    backupd::engine::compact::compact(
        repo,
        &backupd::engine::compact::CompactOptions::default(),
        &Progress::default(),
        &CancellationToken::new(),
    )
}

#[test]
fn compaction_crashed_at_every_step_then_run_again_loses_nothing_and_ends_in_one_file() {
    // Twelve one-file incremental backups: twelve index files.
    let template = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init_with(&template.path().join("repo"), b"pw", kdf()).expect("init");
    let src = template.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    write_random(&src.join("steady"), 400_000, 40);
    for i in 0..12 {
        write_random(&src.join("changing"), 5_000, 41 + i);
        backup_src(&repo, &src).expect("backup");
    }
    drop(repo);
    let index_dir = template.path().join("repo/index");
    let steps = crash_at_every_step_of(&template, "compaction", compact_index, |repo| {
        let report = compact_index(repo)?;
        assert!(
            !report.skipped,
            "a crashed compaction's leftovers are always finished"
        );
        Ok(report)
    });
    // One index file written, twelve deleted.
    assert!(steps >= 13, "only {steps} crash points in a compaction");
    assert_eq!(
        std::fs::read_dir(&index_dir).expect("index dir").count(),
        12,
        "the template itself is untouched"
    );
}
