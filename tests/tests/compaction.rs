//! Repository maintenance through the real daemon: `repo compact` merges the index files many
//! incremental backups leave, `repo prune` deletes what forgotten snapshots held and compacts
//! too, and a kill -9 in the middle of a compaction loses nothing.

use backupd_tests::treecmp::CompareOptions;
use backupd_tests::{json_ok, pseudo_random_bytes, s, DaemonOptions, TestDaemon};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Registers repository `r` at `<dir>/repo` and makes `n` one-file incremental backups of
/// `<dir>/src` (one file rewritten before each). Returns (repo path, source).
fn incremental_backups(d: &TestDaemon, n: u64) -> (PathBuf, PathBuf) {
    let repo = d.dir.path().join("repo");
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, "compaction\n").expect("password file");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "r",
        "--path",
        s(&repo),
        "--password-file",
        s(&pw),
    ]));
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/steady"), pseudo_random_bytes(200_000, 1)).expect("write");
    for i in 0..n {
        std::fs::write(src.join("changing"), pseudo_random_bytes(3_000, 100 + i)).expect("write");
        json_ok(&d.ctl(&["--json", "backup", "--repo", "r", s(&src)]));
    }
    (repo, src)
}

fn index_files(repo: &Path) -> HashSet<String> {
    std::fs::read_dir(repo.join("index"))
        .expect("index dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Snapshot ids, oldest first.
fn snapshot_ids(d: &TestDaemon) -> Vec<String> {
    let list = json_ok(&d.ctl(&["--json", "snapshots", "--repo", "r"]));
    list.as_array()
        .expect("snapshot list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Restores snapshot `id` and compares its `changing` file with the bytes the `i`-th backup
/// saw, and its `sub` with the source's.
fn restores_exactly(d: &TestDaemon, id: &str, i: u64, src: &Path) {
    let target = d.dir.path().join(format!("restored-{id}"));
    let r = json_ok(&d.ctl(&[
        "--json",
        "restore",
        "--repo",
        "r",
        &format!("{id}:{}", src.display()),
        "--target",
        s(&target),
    ]));
    assert!(r["failed"].as_array().is_some_and(Vec::is_empty), "{r}");
    assert_eq!(
        std::fs::read(target.join("changing")).expect("restored file"),
        pseudo_random_bytes(3_000, 100 + i),
        "snapshot {id} (backup {i})"
    );
    let diffs = backupd_tests::treecmp::compare_trees(
        &src.join("sub"),
        &target.join("sub"),
        CompareOptions::default(),
    );
    assert!(diffs.is_empty(), "snapshot {id}: {diffs:#?}");
}

#[test]
fn compact_merges_the_index_files_of_many_incremental_backups_and_loses_nothing() {
    let d = TestDaemon::start();
    let (repo, src) = incremental_backups(&d, 50);
    let before = index_files(&repo);
    assert!(before.len() >= 50, "{} index files", before.len());
    let snapshots = snapshot_ids(&d);
    assert_eq!(snapshots.len(), 50);

    let out = json_ok(&d.ctl(&["--json", "repo", "compact", "--repo", "r"]));
    assert_eq!(out["kind"], "compact", "{out}");
    assert_eq!(out["skipped"], false, "{out}");
    assert_eq!(out["index_files_before"], before.len() as u64, "{out}");
    assert_eq!(out["index_files_after"], 1, "{out}");
    let after = index_files(&repo);
    assert_eq!(after.len(), 1);
    assert!(after.is_disjoint(&before), "the old index files are gone");

    assert_eq!(snapshot_ids(&d), snapshots);
    d.check_clean(Some("r"));
    for i in [0, 1, 24, 48, 49] {
        restores_exactly(&d, &snapshots[i as usize], i, &src);
    }
    // A second run has nothing to do, and says so.
    let again = json_ok(&d.ctl(&["--json", "repo", "compact", "--repo", "r"]));
    assert_eq!(again["skipped"], true, "{again}");
    assert_eq!(again["index_files_after"], 1, "{again}");
}

#[test]
fn prune_without_forgetting_deletes_what_forgotten_snapshots_held_and_compacts() {
    let d = TestDaemon::start();
    let (repo, src) = incremental_backups(&d, 12);
    let snapshots = snapshot_ids(&d);
    // Forget the six oldest without pruning; the prune comes on its own.
    let mut args = vec!["--json", "forget", "--repo", "r"];
    args.extend(snapshots[..6].iter().map(String::as_str));
    json_ok(&d.ctl(&args));
    let data_before = du(&repo.join("data"));

    let out = json_ok(&d.ctl(&["--json", "repo", "prune", "--repo", "r"]));
    assert_eq!(out["kind"], "prune", "{out}");
    assert!(out["blobs_removed"].as_u64() >= Some(6), "{out}");
    assert!(
        out["bytes_after"].as_u64() < out["bytes_before"].as_u64(),
        "{out}"
    );
    assert!(out["index_files_before"].as_u64() >= Some(12), "{out}");
    assert_eq!(out["index_files_after"], 1, "{out}");
    assert_eq!(index_files(&repo).len(), 1);
    assert!(du(&repo.join("data")) < data_before);

    assert_eq!(snapshot_ids(&d), snapshots[6..].to_vec());
    d.check_clean(Some("r"));
    for i in [6, 11] {
        restores_exactly(&d, &snapshots[i as usize], i, &src);
    }
}

fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("read_dir").flatten() {
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[test]
fn kill_9_during_compaction_loses_nothing_and_the_next_compaction_finishes_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let state = work.path().join("state");
    let opts = || DaemonOptions {
        state_dir: Some(state.clone()),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(opts());
    // Enough index files that deleting them (one directory fsync each) takes a while.
    let n = 150;
    let (repo, src) = incremental_backups(&d, n);
    let before = index_files(&repo);
    let snapshots = snapshot_ids(&d);
    let job = d.submit(&["repo", "compact", "--repo", "r"]);
    // Kill the moment the merged index file appears: the old files are being deleted.
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let now = index_files(&repo);
        if !now.is_subset(&before) {
            d.signal(nix::sys::signal::Signal::SIGKILL);
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "compaction job {job} never wrote its index"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    d.wait_exit(Duration::from_secs(5)).expect("killed");
    let left = index_files(&repo);
    let old_left = left.intersection(&before).count();
    assert!(
        old_left > 0,
        "the kill came after the compaction had finished (files at the kill: {})",
        at_kill.len()
    );

    // The repository as the kill left it, opened by another daemon whose queue holds no job
    // that could finish the compaction first.
    let other = TestDaemon::start();
    json_ok(&other.ctl(&[
        "--json",
        "repo",
        "add",
        "--name",
        "r",
        "--path",
        s(&repo),
        "--password-file",
        s(&d.dir.path().join("pw")),
    ]));
    assert_eq!(snapshot_ids(&other), snapshots);
    other.check_clean(Some("r"));
    restores_exactly(&other, &snapshots[(n - 1) as usize], n - 1, &src);
    drop(other);
    assert_eq!(index_files(&repo), left, "reading changed nothing");

    // The daemon that was killed runs the interrupted job again after the restart; either
    // way, a compaction finishes it.
    let d = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(state.clone()),
        ..Default::default()
    });
    backupd_tests::wait_queue_idle(&d, Duration::from_secs(120));
    assert_eq!(snapshot_ids(&d), snapshots);
    let out = json_ok(&d.ctl(&["--json", "repo", "compact", "--repo", "r"]));
    assert_eq!(out["index_files_after"], 1, "{out}");
    assert_eq!(index_files(&repo).len(), 1);
    assert_eq!(snapshot_ids(&d), snapshots);
    d.check_clean(Some("r"));
    for i in [0, n / 2, n - 1] {
        restores_exactly(&d, &snapshots[i as usize], i, &src);
    }
}
