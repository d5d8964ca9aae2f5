//! What the engine's integration tests share: a fast key derivation, the one check helper, the
//! one restore (and restore-and-compare) helper, and the common prune. Each test binary uses
//! part of it; the end-to-end equivalents are in `backupd_tests` (tests/src).
#![allow(dead_code)]

use backupd::engine::check::{check, CheckOptions, CheckReport};
use backupd::engine::forget::{forget, ForgetOptions, ForgetReport, Policy};
use backupd::engine::progress::Progress;
use backupd::engine::restore::{restore, RestoreOptions, RestoreOutcome};
use backupd::engine::EngineError;
use backupd::repo::keyfile::Argon2Params;
use backupd::repo::Repository;
use backupd_tests::treecmp::{compare_trees, CompareOptions};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Checks the structure and `read_data_percent` % of the packs' data.
pub fn check_repo(repo: &Repository, read_data_percent: u8) -> Result<CheckReport, EngineError> {
    check(
        repo,
        &CheckOptions {
            read_data_percent,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
}

/// Reading every pack, the repository checks clean; `what` says which test state it is.
pub fn assert_checks_clean(repo: &Repository, what: &str) -> CheckReport {
    let report = check_repo(repo, 100).expect("check runs");
    assert!(
        report.problems.is_empty(),
        "{what}: check found {:#?}",
        report.problems
    );
    report
}

/// Restores `snapshot` (only `subpath` of it, if given) into `target`.
pub fn restore_into(
    repo: &Repository,
    snapshot: &str,
    subpath: Option<PathBuf>,
    target: &Path,
) -> Result<RestoreOutcome, EngineError> {
    restore(
        repo,
        &RestoreOptions {
            snapshot: snapshot.into(),
            subpath,
            target: target.to_owned(),
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
}

/// [`restore_into`], then nothing failed and `target` equals `src` as `opts` says; `what`
/// says which test state it is.
pub fn restore_and_compare(
    repo: &Repository,
    snapshot: &str,
    subpath: Option<PathBuf>,
    target: &Path,
    src: &Path,
    opts: CompareOptions,
    what: &str,
) -> RestoreOutcome {
    let outcome = restore_into(repo, snapshot, subpath, target).expect("restore");
    assert!(outcome.failed.is_empty(), "{what}: {:?}", outcome.failed);
    let diffs = compare_trees(src, target, opts);
    assert!(diffs.is_empty(), "{what}: restore differs: {diffs:#?}");
    outcome
}

/// Argon2 at its minimum cost, so tests do not spend seconds deriving keys.
pub fn kdf() -> Argon2Params {
    Argon2Params {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
        salt: "00112233445566778899aabbccddeeff".into(),
    }
}

/// `forget --keep-last 1 --prune`.
pub fn prune_to_last(repo: &Repository) -> Result<ForgetReport, EngineError> {
    forget(
        repo,
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
}
