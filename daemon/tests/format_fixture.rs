//! The released repository formats must always open: a repository of each version
//! (tests/fixtures/format-v1 and format-v2, password in `password`) is opened, checked and
//! restored, and the restore compared with the source it was made from. A version-1 repository
//! still takes backups, in its own seal layout. `make_format_v2_fixture` (ignored) made
//! format-v2 from format-v1's source.

mod support;

use backupd::engine::backup::{backup, BackupOptions};
use backupd::engine::progress::Progress;
use backupd::repo::backend::{Backend, FileKind, Key, LocalBackend};
use backupd::repo::keyfile::Argon2Params;
use backupd::repo::{sha256_hex, RepoError, Repository};
use backupd_tests::treecmp::CompareOptions;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// When the fixture's source was backed up, every entry had this mtime (git does not keep
/// mtimes, so the comparison copy gets it back).
const SOURCE_MTIME: (i64, i64) = (1_704_164_645, 123_456_789);

/// Copies a tree (symlinks as symlinks); with `stamp`, sets every entry's times to
/// `SOURCE_MTIME`, children before their directory.
fn copy_dir(from: &Path, to: &Path, stamp: bool) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let dest = to.join(e.file_name());
        let ft = e.file_type().expect("type");
        if ft.is_dir() {
            copy_dir(&e.path(), &dest, stamp);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).expect("readlink"), &dest)
                .expect("symlink");
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
        if stamp {
            set_time(&dest);
        }
    }
    if stamp {
        set_time(to);
    }
}

fn remove_empty_dirs(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if e.file_type().expect("type").is_dir() {
            remove_empty_dirs(&e.path());
            let _ = std::fs::remove_dir(e.path()); // fails (and stays) when not empty
        }
    }
}

fn set_time(path: &Path) {
    // Modes as they were (git keeps only the executable bit; a checkout's umask may differ).
    let meta = std::fs::symlink_metadata(path).expect("stat");
    if !meta.file_type().is_symlink() {
        let mode = if meta.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    let t = nix::sys::time::TimeSpec::new(SOURCE_MTIME.0, SOURCE_MTIME.1);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat");
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/{name}"))
}

/// A fixture's repository copied to a temp dir (opening takes a lock, which writes), its
/// source with its times restored, and the opened repository.
struct Opened {
    work: tempfile::TempDir,
    repo_path: PathBuf,
    source: PathBuf,
    repo: Repository,
}

fn open_fixture(name: &str) -> Opened {
    let fixture = fixture_dir(name);
    let work = tempfile::tempdir().expect("tempdir");
    let repo_path = work.path().join("repo");
    copy_dir(&fixture.join("repo"), &repo_path, false);
    // A git checkout has no empty directories (data/XX, locks/): the repository must cope.
    remove_empty_dirs(&repo_path);
    assert!(!repo_path.join("locks").exists());
    let source = work.path().join("source");
    copy_dir(&fixture.join("source"), &source, true);
    let password = std::fs::read_to_string(fixture.join("password")).expect("password");
    let repo = Repository::open(&repo_path, password.trim_end().as_bytes())
        .unwrap_or_else(|e| panic!("open {name}: {e}"));
    Opened {
        work,
        repo_path,
        source,
        repo,
    }
}

/// Opens, checks (reading every pack) and restores the fixture's one snapshot byte for byte.
fn fixture_opens_checks_and_restores(name: &str, version: u32) {
    let f = open_fixture(name);
    assert_eq!(f.repo.config().version, version);
    support::assert_checks_clean(&f.repo, name);
    let snapshots = f.repo.snapshots().expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    let (_, snap) = &snapshots[0];
    assert_eq!(snap.host, "fixture");
    let recorded = PathBuf::from(String::from_utf8(snap.paths[0].clone()).expect("utf8 path"));
    let target = f.work.path().join("restored");
    support::restore_and_compare(
        &f.repo,
        "latest",
        Some(recorded),
        &target,
        &f.source,
        CompareOptions::default(),
        name,
    );
}

#[test]
fn format_v1_fixture_opens_checks_and_restores() {
    fixture_opens_checks_and_restores("format-v1", 1);
}

#[test]
fn format_v2_fixture_opens_checks_and_restores() {
    fixture_opens_checks_and_restores("format-v2", 2);
}

fn backup_source(repo: &Repository, source: &Path) -> backupd_common::ids::SnapshotId {
    backup(
        repo,
        &BackupOptions {
            paths: vec![source.to_owned()],
            host: Some("fixture".into()),
            force: true,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("backup")
    .id
}

#[test]
fn a_format_v1_repository_takes_backups_in_v1_seals_and_stays_version_1() {
    let f = open_fixture("format-v1");
    let id = backup_source(&f.repo, &f.source);
    let backend = LocalBackend::new(&f.repo_path);
    let sealed = backend
        .get(Key::snapshot(&id.to_hex()))
        .expect("new snapshot file");
    // Format 1's rules: seal header in the clear, name = hash of the sealed bytes.
    assert_eq!(sealed[..5], [1, 1, 0, 0, 0]);
    assert_eq!(sha256_hex(&sealed), id.to_hex());
    assert_eq!(f.repo.config().version, 1);
    let reopened = Repository::open(&f.repo_path, b"fixture-password").expect("reopen");
    assert_eq!(reopened.config().version, 1);
    support::assert_checks_clean(&reopened, "format 1 after a backup");
    let target = f.work.path().join("restored");
    support::restore_and_compare(
        &reopened,
        &id.to_hex(),
        Some(f.source.clone()),
        &target,
        &f.source,
        CompareOptions::default(),
        "a backup into format 1",
    );
}

#[test]
fn format_v2_snapshot_names_are_the_hash_of_the_plaintext_and_a_higher_version_is_refused() {
    let f = open_fixture("format-v2");
    let backend = LocalBackend::new(&f.repo_path);
    let names = backend.list(FileKind::Snapshot).expect("list");
    let sealed = backend.get(Key::snapshot(&names[0])).expect("snapshot");
    let plain = f.repo.keys().open(&sealed).expect("open");
    assert_eq!(sha256_hex(&plain), names[0]);
    assert_ne!(sha256_hex(&sealed), names[0]);
    drop(f.repo);
    let config = f.repo_path.join("config");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace("\"version\": 2", "\"version\": 3")).expect("write");
    let err = Repository::open(&f.repo_path, b"fixture-password").expect_err("version 3");
    assert!(
        matches!(err, RepoError::UnsupportedVersion { found: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("versions 1 to 2"), "{err}");
}

/// Made tests/fixtures/format-v2: `BACKUPD_FIXTURE_OUT=/tmp/format-v2 cargo nextest run -p
/// backupd -E 'test(make_format_v2_fixture)' --run-ignored only`, then copy its `repo` and
/// `source` (format-v1's source, backed up at the times `SOURCE_MTIME` gives) into place.
#[test]
#[ignore = "generator of tests/fixtures/format-v2, run by hand"]
fn make_format_v2_fixture() {
    let out = PathBuf::from(std::env::var("BACKUPD_FIXTURE_OUT").expect("BACKUPD_FIXTURE_OUT"));
    let source = out.join("source");
    copy_dir(&fixture_dir("format-v1").join("source"), &source, true);
    let password = "fixture-password";
    std::fs::write(out.join("password"), format!("{password}\n")).expect("password");
    let repo = Repository::init_with(
        &out.join("repo"),
        password.as_bytes(),
        Argon2Params::recommended(),
    )
    .expect("init");
    assert_eq!(repo.config().version, 2);
    backup_source(&repo, &source);
    support::assert_checks_clean(&repo, "the new format 2 fixture");
}

#[test]
fn the_format_v1_fixture_migrates_to_format_2_and_restores_byte_for_byte() {
    let f = open_fixture("format-v1");
    // A second snapshot, so the migration meets more than the fixture's own objects.
    backup_source(&f.repo, &f.source);
    let before = f.repo.snapshots().expect("snapshots").len();
    let report = backupd::engine::reencrypt::migrate(
        &f.repo,
        2,
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("migrate");
    assert!(report.packs_rewritten >= 1, "{report:?}");
    assert_eq!(report.snapshots_rewritten as usize, before, "{report:?}");
    // Format 1 names snapshots by their sealed bytes, so every id changes once.
    assert_eq!(report.snapshots_renamed.len(), before, "{report:?}");
    assert!(report.remaining.is_empty(), "{report:?}");
    drop(f.repo);
    let password =
        std::fs::read_to_string(fixture_dir("format-v1").join("password")).expect("password");
    let repo = Repository::open(&f.repo_path, password.trim_end().as_bytes()).expect("reopen");
    assert_eq!(repo.config().version, 2);
    assert_eq!(repo.config().migrating_from, None);
    // Opened as format 2 alone: any object left in the v1 layout would fail the check.
    support::assert_checks_clean(&repo, "migrated format-v1");
    let again = backupd::engine::reencrypt::migrate(
        &repo,
        2,
        &Progress::default(),
        &CancellationToken::new(),
    )
    .expect("migrate again");
    assert_eq!(again.packs_rewritten, 0, "nothing left to do: {again:?}");
    let snapshots = repo.snapshots().expect("snapshots");
    let (_, snap) = snapshots.last().expect("a snapshot");
    let recorded = PathBuf::from(String::from_utf8(snap.paths[0].clone()).expect("utf8 path"));
    support::restore_and_compare(
        &repo,
        "latest",
        Some(recorded),
        &f.work.path().join("restored"),
        &f.source,
        CompareOptions::default(),
        "migrated format-v1",
    );
}
