//! The released repository format must always open: a version-1 repository made by this build
//! (tests/fixtures/format-v1, password in `password`) is opened, checked and restored, and the
//! restore compared with the source it was made from.

mod support;

use backupd::repo::Repository;
use backupd_tests::treecmp::CompareOptions;
use std::path::{Path, PathBuf};

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

#[test]
fn format_v1_fixture_opens_checks_and_restores() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/format-v1");
    let work = tempfile::tempdir().expect("tempdir");
    // Work on a copy: opening takes a lock, which writes into the repository.
    let repo_path = work.path().join("repo");
    copy_dir(&fixture.join("repo"), &repo_path, false);
    // A git checkout has no empty directories (data/XX, locks/): the repository must cope.
    remove_empty_dirs(&repo_path);
    assert!(!repo_path.join("locks").exists());
    let source = work.path().join("source");
    copy_dir(&fixture.join("source"), &source, true);
    let password = std::fs::read_to_string(fixture.join("password")).expect("password");
    let repo =
        Repository::open(&repo_path, password.trim_end().as_bytes()).expect("open v1 fixture");
    assert_eq!(repo.config().version, 1);

    support::assert_checks_clean(&repo, "the format 1 fixture");
    let snapshots = repo.snapshots().expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    let (_, snap) = &snapshots[0];
    assert_eq!(snap.host, "fixture");
    let recorded = PathBuf::from(String::from_utf8(snap.paths[0].clone()).expect("utf8 path"));

    let target = work.path().join("restored");
    support::restore_and_compare(
        &repo,
        "latest",
        Some(recorded),
        &target,
        &source,
        CompareOptions::default(),
        "the format 1 fixture",
    );
}
