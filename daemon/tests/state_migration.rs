//! A state directory written by the released backupd 0.1 (schema 1: protocol types stored as
//! JSON; tests/fixtures/state-v1, see its README) opens with this build: it is migrated to
//! versioned records, every job, source and repository keeps its fields, the finished jobs are
//! in the job history, and opening it again changes nothing.

use backupd::queue::store::Store;
use backupd::repo::registry::Registry;
use backupd::state::State;
use backupd_common::error::ErrorCode;
use backupd_common::protocol::{HistoryQuery, JobKind, JobState, Priority, Response, SourceSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ROOT: &str = "/tmp/backupd-fixture-v1";

fn unpack(into: &Path) -> PathBuf {
    let tarball =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1/state-v1.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(into)
        .status()
        .expect("run tar");
    assert!(st.success(), "unpack {}", tarball.display());
    into.join("backupd-fixture-v1/state")
}

fn all() -> HistoryQuery {
    HistoryQuery {
        limit: 100,
        ..HistoryQuery::default()
    }
}

#[test]
fn a_release_state_directory_opens_with_every_job_source_and_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = unpack(dir.path());
    let state = State::open(&state_dir).expect("the release's state opens");

    // Jobs: two backups (the source's first, then an explicit one) and two noops.
    let store = Store::open(&state).expect("jobs");
    let (mut jobs, next) = store.load().expect("load");
    jobs.sort_by_key(|j| j.id);
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(next, 5);
    let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [
            JobState::Succeeded,
            JobState::Succeeded,
            JobState::DeadLetter,
            JobState::Succeeded
        ]
    );
    match &jobs[0].kind {
        JobKind::Backup(b) => {
            assert_eq!(b.source.as_deref(), Some("docs"));
            assert_eq!(b.repo.as_deref(), Some("fix"));
            assert_eq!(b.paths, [format!("{ROOT}/src").into_bytes()]);
            assert_eq!(b.excludes, ["*.tmp"]);
        }
        other => panic!("job 1 is the source's backup: {other:?}"),
    }
    match (&jobs[1].kind, &jobs[1].result) {
        (JobKind::Backup(b), Some(Response::Backup(r))) => {
            assert_eq!(b.tags, ["fixture"]);
            assert_eq!(b.source, None);
            assert!(r.snapshot.starts_with("6b3af16a"), "{}", r.snapshot);
            assert_eq!(r.stats.files, 2);
        }
        other => panic!("job 2 is the explicit backup with its result: {other:?}"),
    }
    match &jobs[2].kind {
        JobKind::Noop(n) => assert!(n.permanent && n.fail_attempts == 1),
        other => panic!("{other:?}"),
    }
    let failed = jobs[2]
        .error
        .as_ref()
        .expect("the dead letter keeps its error");
    assert!(
        failed.message.contains("fails as it was asked"),
        "{failed:?}"
    );
    assert_eq!(jobs[2].attempts.len(), 1);
    assert_eq!(jobs[3].priority, Priority::High);
    assert!(matches!(&jobs[3].kind, JobKind::Noop(n) if n.duration == Duration::from_millis(10)));
    assert!(matches!(jobs[3].result, Some(Response::Noop { .. })));
    assert!(jobs
        .iter()
        .all(|j| j.submitted_ns > 0 && j.finished_ns.is_some()));

    // The source, field for field.
    assert_eq!(
        backupd::watch::persisted_in(&state).expect("sources"),
        [SourceSpec {
            name: "docs".into(),
            path: format!("{ROOT}/src").into_bytes(),
            repo: Some("fix".into()),
            excludes: vec!["*.tmp".into()],
            watch: false,
            debounce: Duration::from_secs(3),
            max_delay: Duration::from_secs(90),
            rescan_every: Duration::from_secs(7200),
            // Written before schedules existed: none, and the default retention.
            policy: Default::default(),
        }]
    );

    // The repositories: `default` (created at first start) and `fix`.
    let registry = Registry::new(state.clone(), &state_dir, Default::default());
    registry.start(&[]);
    let mut repos = registry.list().expect("repositories");
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(repos.len(), 2, "{repos:?}");
    assert_eq!(repos[0].name, "default");
    assert!(repos[0].is_default);
    assert_eq!(repos[1].name, "fix");
    assert_eq!(
        repos[1].location.local_path(),
        Some(Path::new(ROOT).join("repo").as_path())
    );
    assert_eq!(
        repos[1].key_file,
        Path::new(ROOT).join("state/keys/fix.key")
    );

    // Every finished job is in the history, with its figures pulled out of its result.
    let history = store.history(&all(), i64::MAX).expect("history");
    assert_eq!(
        history.iter().map(|h| h.id).collect::<Vec<_>>(),
        [4, 3, 2, 1]
    );
    let backup = &history[2];
    assert_eq!(
        (backup.kind.as_str(), backup.repo.as_deref()),
        ("backup", Some("fix"))
    );
    assert_eq!(backup.files, 2);
    assert!(backup.bytes_added > 0 && backup.bytes_stored > 0);
    assert!(backup
        .snapshot
        .as_deref()
        .is_some_and(|s| s.starts_with("6b3af16a")));
    let dead = &history[1];
    assert_eq!(dead.outcome, JobState::DeadLetter);
    assert!(dead.error_class.is_some_and(|c| c != ErrorCode::NoSpace));
    let by_source = HistoryQuery {
        source: Some("docs".into()),
        ..all()
    };
    let ids: Vec<u64> = store
        .history(&by_source, i64::MAX)
        .expect("by source")
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, [1]);
    drop((store, registry, state));

    // Opening the migrated state again neither migrates nor appends anything twice.
    let state = State::open(&state_dir).expect("reopen");
    let store = Store::open(&state).expect("jobs");
    assert_eq!(store.load().expect("load").0.len(), 4);
    assert_eq!(store.history(&all(), i64::MAX).expect("history").len(), 4);
}
