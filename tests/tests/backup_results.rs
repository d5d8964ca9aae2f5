//! What a backup reports and what it leaves in the repository: an unchanged tree keeps its
//! parent instead of making a snapshot of nothing (also for a watching daemon restarted), a
//! dry run writes nothing, and check and prune say the same about packs no index names.

use backupd_tests::{json_ok, text, wait_until, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn snapshot_count(d: &TestDaemon) -> usize {
    json_ok(&d.ctl(&["--json", "snapshots"]))
        .as_array()
        .expect("snapshot list")
        .len()
}

fn repo_dir(d: &TestDaemon) -> PathBuf {
    PathBuf::from(d.wait_repo("default")["path"].as_str().expect("repo path"))
}

/// Every file under the repository's `data`, `index` and `snapshots` directories.
fn repo_objects(repo: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ["data", "index", "snapshots"]
        .iter()
        .map(|d| repo.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

fn packs(repo: &Path) -> BTreeSet<PathBuf> {
    repo_objects(repo)
        .into_iter()
        .filter(|p| p.starts_with(repo.join("data")))
        .collect()
}

#[test]
fn a_second_backup_of_an_unchanged_dir_keeps_the_snapshot_and_force_makes_one() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("a.txt"), "alpha\n".repeat(1000)).expect("write");
    std::fs::write(
        src.join("sub/b.bin"),
        backupd_tests::pseudo_random_bytes(300_000, 7),
    )
    .expect("write");
    let s = src.to_str().expect("UTF-8");

    let first = json_ok(&d.ctl(&["--json", "backup", s]));
    assert_eq!(first["unchanged"], false, "{first:#}");
    let id = first["snapshot"].as_str().expect("id").to_owned();
    // Reading the files moved their atimes; that alone is no change.
    std::fs::read(src.join("a.txt")).expect("read");

    let again = d.ctl(&["backup", s]);
    let shown = stdout(&again);
    assert!(
        shown.contains(&format!("unchanged, snapshot {} kept", &id[..8])),
        "{shown}"
    );
    let again = json_ok(&d.ctl(&["--json", "backup", s]));
    assert_eq!(again["unchanged"], true, "{again:#}");
    assert_eq!(again["snapshot"], id.as_str(), "{again:#}");
    assert_eq!(snapshot_count(&d), 1);

    // A tag is part of what a snapshot is found by: a new one.
    let tagged = json_ok(&d.ctl(&["--json", "backup", s, "--tag", "weekly"]));
    assert_eq!(tagged["unchanged"], false, "{tagged:#}");
    assert_eq!(snapshot_count(&d), 2);

    let forced = json_ok(&d.ctl(&["--json", "backup", s, "--force"]));
    assert_eq!(forced["unchanged"], false, "{forced:#}");
    assert_eq!(forced["stats"]["files_read"], 2, "{forced:#}");
    assert_eq!(snapshot_count(&d), 3);

    // A change makes a new snapshot again.
    std::fs::write(src.join("a.txt"), "changed").expect("write");
    let changed = json_ok(&d.ctl(&["--json", "backup", s]));
    assert_eq!(changed["unchanged"], false, "{changed:#}");
    assert_eq!(snapshot_count(&d), 4);
}

#[test]
fn the_backup_result_names_what_was_read_and_what_was_stored() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(
        src.join("one"),
        backupd_tests::pseudo_random_bytes(40_000, 1),
    )
    .expect("w");
    let out = stdout(&d.ctl(&["backup", src.to_str().expect("UTF-8")]));
    assert!(out.contains("read 39.1 KiB in 1 file;"), "{out}");
    assert!(out.contains("compressed and encrypted"), "{out}");
    assert!(out.contains("1 file, "), "{out}");
}

#[test]
fn backup_dry_run_reports_what_is_new_and_writes_nothing() {
    let d = TestDaemon::start();
    let repo = repo_dir(&d);
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(
        src.join("old"),
        backupd_tests::pseudo_random_bytes(100_000, 1),
    )
    .expect("w");
    let s = src.to_str().expect("UTF-8");
    json_ok(&d.ctl(&["--json", "backup", s]));
    std::fs::write(
        src.join("new"),
        backupd_tests::pseudo_random_bytes(200_000, 2),
    )
    .expect("w");

    let before = repo_objects(&repo);
    let dry = json_ok(&d.ctl(&["--json", "backup", "--dry-run", s]));
    assert_eq!(dry["kind"], "backup-dry-run", "{dry:#}");
    assert_eq!(dry["files"], 2, "{dry:#}");
    assert_eq!(dry["files_read"], 1, "{dry:#}");
    assert_eq!(dry["bytes_read"], 200_000, "{dry:#}");
    let new = dry["bytes_new"].as_u64().expect("bytes_new");
    assert!((200_000..250_000).contains(&new), "{dry:#}");
    assert!(
        dry["bytes_new_stored"].as_u64().expect("stored") > 0,
        "{dry:#}"
    );
    assert_eq!(
        repo_objects(&repo),
        before,
        "a dry run wrote to the repository"
    );
    assert_eq!(snapshot_count(&d), 1);

    let shown = stdout(&d.ctl(&["backup", "--dry-run", s]));
    assert!(shown.contains("dry run, nothing written"), "{shown}");
    assert_eq!(
        repo_objects(&repo),
        before,
        "a dry run wrote to the repository"
    );
}

#[test]
fn restarting_a_watching_daemon_with_nothing_changed_makes_no_snapshot() {
    let base = tempfile::tempdir().expect("tempdir");
    let watched = base.path().join("watched");
    std::fs::create_dir_all(&watched).expect("mkdir");
    std::fs::write(watched.join("f.txt"), "content\n").expect("write");
    let state = base.path().join("state");
    for round in 1..=3u64 {
        let mut d = TestDaemon::start_with(DaemonOptions {
            extra_args: vec!["--watch".into(), watched.display().to_string()],
            state_dir: Some(state.clone()),
            ..Default::default()
        });
        wait_until(
            &format!("backup {round} of the watched source"),
            Duration::from_secs(60),
            || {
                let h = json_ok(&d.ctl(&["--json", "queue", "history", "--kind", "backup"]));
                let done = h
                    .as_array()?
                    .iter()
                    .filter(|e| e["outcome"] == "succeeded")
                    .count() as u64;
                (done >= round).then_some(())
            },
        );
        assert_eq!(snapshot_count(&d), 1, "round {round}:\n{}", d.log_text());
        d.stop();
    }
}

/// A copy of a pack under a name no index knows, as an interrupted backup leaves one.
fn unindexed_pack(repo: &Path) -> PathBuf {
    let pack = packs(repo).into_iter().next().expect("a pack");
    let name = "f".repeat(64);
    let dest = repo.join("data").join(&name[..2]).join(&name);
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&pack, &dest).expect("copy pack");
    dest
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().expect(cmd);
    assert!(st.success(), "{cmd} {args:?}");
}

#[test]
fn check_and_prune_agree_on_unindexed_packs_and_the_safety_window() {
    let d = TestDaemon::start();
    let repo = repo_dir(&d);
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), backupd_tests::pseudo_random_bytes(50_000, 3)).expect("w");
    json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("UTF-8")]));
    let stray = unindexed_pack(&repo);

    let check = stdout(&d.ctl(&["repo", "check"]));
    assert!(
        check.contains("1 pack is not in the index and younger than the 30-minute safety window"),
        "{check}"
    );
    assert!(
        check.contains("prune keeps them and removes them after 20"),
        "{check}"
    );
    let prune = stdout(&d.ctl(&["forget", "--keep-last", "1", "--prune"]));
    assert!(
        prune.contains("kept 1 pack not in the index, younger than the 30-minute safety window"),
        "{prune}"
    );
    assert!(
        stray.exists(),
        "prune removed a pack inside the safety window"
    );
    let json = json_ok(&d.ctl(&["--json", "forget", "--keep-last", "1", "--prune"]));
    assert_eq!(json["prune"]["unindexed_kept"], 1, "{json:#}");
    assert!(
        json["prune"]["unindexed_kept_until"].is_string(),
        "{json:#}"
    );

    // Out of the window: check says prune removes it, and prune does.
    run(
        "touch",
        &["-d", "2 hours ago", stray.to_str().expect("UTF-8")],
    );
    let check = stdout(&d.ctl(&["repo", "check"]));
    assert!(
        check.contains("1 pack is not in the index and older than the 30-minute safety window (left by an interrupted backup); prune removes them"),
        "{check}"
    );
    let prune = stdout(&d.ctl(&["forget", "--keep-last", "1", "--prune"]));
    assert!(!prune.contains("kept 1 pack"), "{prune}");
    assert!(
        !stray.exists(),
        "prune kept a pack older than the safety window"
    );
    let check: Value = json_ok(&d.ctl(&["--json", "repo", "check"]));
    assert_eq!(check["notes"], serde_json::json!([]), "{check:#}");
}
