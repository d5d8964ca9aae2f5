//! Repository replication through the real daemon and backupctl: `repo init --replica-of`,
//! `repo replicate add|list|run|remove`. A replica checks clean reading all its data and
//! restores byte for byte: after a full copy, after an incremental one (which copies only the
//! new blobs), after two kill -9 of the daemon in the middle of a (slowed down) replication,
//! and with a data key of its own. `--mirror-forget` follows the source's forgets,
//! `--after-each-snapshot` replicates without a command, and a replica behind its allowed lag
//! shows in `repo replicate list` and degrades `system health`.

use backupd_tests::treecmp::CompareOptions;
use backupd_tests::wait_until;
use backupd_tests::{json_ok, s, DaemonOptions, TestDaemon};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn write(path: &Path, len: usize, seed: u64) {
    std::fs::write(path, backupd_tests::pseudo_random_bytes(len, seed)).expect("write");
}

/// A source tree of a few files in two directories.
fn source_tree(d: &TestDaemon, mib: usize) -> PathBuf {
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("src");
    for i in 0..mib {
        write(&src.join(format!("big{i}")), 1 << 20, i as u64 + 1);
    }
    write(&src.join("sub/small"), 4_000, 100);
    std::fs::write(src.join("sub/text"), "hello\n".repeat(1000)).expect("text");
    src
}

fn backup(d: &TestDaemon, src: &Path) -> serde_json::Value {
    json_ok(&d.ctl(&["--json", "backup", s(src)]))
}

fn init_replica(d: &TestDaemon, name: &str, extra: &[&str]) -> PathBuf {
    let dir = d.dir.path().join(name);
    let mut args = vec![
        "--json",
        "repo",
        "init",
        "--name",
        name,
        "--location",
        s(&dir),
        "--replica-of",
        "default",
    ];
    args.extend_from_slice(extra);
    json_ok(&d.ctl(&args));
    dir
}

fn add(d: &TestDaemon, to: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--json",
        "repo",
        "replicate",
        "add",
        "--from",
        "default",
        "--to",
        to,
    ];
    args.extend_from_slice(extra);
    json_ok(&d.ctl(&args))
}

fn run(d: &TestDaemon, to: &str) -> serde_json::Value {
    json_ok(&d.ctl(&["--json", "repo", "replicate", "run", to]))
}

fn snapshot_ids(d: &TestDaemon, repo: &str) -> Vec<String> {
    let list = json_ok(&d.ctl(&["--json", "snapshots", "--repo", repo]));
    let mut ids: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

fn listed(d: &TestDaemon, to: &str) -> serde_json::Value {
    let list = json_ok(&d.ctl(&["--json", "repo", "replicate", "list"]));
    list.as_array()
        .expect("array")
        .iter()
        .find(|r| r["to"] == to)
        .cloned()
        .unwrap_or_else(|| panic!("no replication into {to}: {list:#}"))
}

fn assert_replica_restores(d: &TestDaemon, repo: &str, src: &Path, what: &str) {
    d.check_clean(Some(repo));
    let target = d.dir.path().join(format!("restore-{what}"));
    d.restore_and_compare(src, &target, &["--repo", repo], CompareOptions::default());
}

#[test]
fn a_replica_restores_byte_for_byte_and_an_incremental_run_copies_only_the_new_blobs() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = source_tree(&d, 3);
    backup(&d, &src);
    init_replica(&d, "r2", &[]);
    let added = add(&d, "r2", &["--verify"]);
    assert_eq!(added["trigger"], "manual", "{added:#}");
    assert_eq!(added["snapshots_behind"], 1, "{added:#}");

    let first = run(&d, "r2");
    assert_eq!(first["kind"], "replicate", "{first:#}");
    assert_eq!(first["snapshots_copied"], 1, "{first:#}");
    assert!(first["packs_copied"].as_u64() >= Some(1), "{first:#}");
    assert_eq!(first["packs_verified"], first["packs_copied"], "{first:#}");
    assert_eq!(snapshot_ids(&d, "r2"), snapshot_ids(&d, "default"));
    assert_replica_restores(&d, "r2", &src, "full");
    let l = listed(&d, "r2");
    assert_eq!(
        (l["snapshots_behind"].as_u64(), l["lag_ms"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(l["last_success"].is_string(), "{l:#}");

    // One small file changes: its chunk and the trees above it are all that is copied.
    write(&src.join("sub/small"), 4_100, 101);
    backup(&d, &src);
    assert_eq!(listed(&d, "r2")["snapshots_behind"], 1);
    let second = run(&d, "r2");
    assert_eq!(second["snapshots_copied"], 1, "{second:#}");
    assert_eq!(second["snapshots_present"], 1, "{second:#}");
    let trees = src.join("sub").components().count() as u64;
    assert_eq!(
        second["blobs_copied"].as_u64(),
        Some(1 + trees),
        "one chunk and {trees} trees: {second:#}"
    );
    assert_replica_restores(&d, "r2", &src, "incremental");

    // remove: the replication goes, the replica stays.
    let removed = json_ok(&d.ctl(&["--json", "repo", "replicate", "remove", "r2"]));
    assert_eq!(removed["to"], "r2");
    let list = json_ok(&d.ctl(&["--json", "repo", "replicate", "list"]));
    assert_eq!(list, serde_json::json!([]));
    assert_eq!(snapshot_ids(&d, "r2").len(), 2);
}

#[test]
fn mirror_forget_follows_the_sources_forgets_and_without_it_the_replica_keeps_them() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = source_tree(&d, 1);
    backup(&d, &src);
    write(&src.join("sub/small"), 5_000, 7);
    backup(&d, &src);
    init_replica(&d, "keep", &[]);
    init_replica(&d, "mirror", &[]);
    add(&d, "keep", &[]);
    add(&d, "mirror", &["--mirror-forget"]);
    run(&d, "keep");
    run(&d, "mirror");
    json_ok(&d.ctl(&["--json", "forget", "--keep-last", "1", "--prune"]));
    assert_eq!(snapshot_ids(&d, "default").len(), 1);
    assert_eq!(run(&d, "keep")["snapshots_forgotten"], 0);
    assert_eq!(run(&d, "mirror")["snapshots_forgotten"], 1);
    assert_eq!(snapshot_ids(&d, "keep").len(), 2);
    assert_eq!(snapshot_ids(&d, "mirror"), snapshot_ids(&d, "default"));
    json_ok(&d.ctl(&["--json", "repo", "prune", "--repo", "mirror"]));
    assert_replica_restores(&d, "mirror", &src, "mirror");
    assert_replica_restores(&d, "keep", &src, "keep");
}

#[test]
fn a_replica_with_its_own_data_key_gets_every_blob_sealed_again_and_restores() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = source_tree(&d, 2);
    backup(&d, &src);
    init_replica(&d, "own", &["--own-data-key"]);
    add(&d, "own", &[]);
    let r = run(&d, "own");
    assert_eq!(r["packs_copied"], 0, "{r:#}");
    assert_eq!(r["blobs_resealed"], r["blobs_copied"], "{r:#}");
    assert!(r["blobs_resealed"].as_u64() > Some(0), "{r:#}");
    assert_replica_restores(&d, "own", &src, "own-key");
}

#[test]
fn after_each_snapshot_replicates_without_a_command() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = source_tree(&d, 1);
    init_replica(&d, "auto", &[]);
    let a = add(&d, "auto", &["--after-each-snapshot"]);
    assert_eq!(a["trigger"], "after-each-snapshot", "{a:#}");
    backup(&d, &src);
    let want = snapshot_ids(&d, "default");
    wait_until(
        "the replica gets the snapshot",
        Duration::from_secs(60),
        || (snapshot_ids(&d, "auto") == want).then_some(()),
    );
    backupd_tests::wait_queue_idle(&d, Duration::from_secs(60));
    assert!(listed(&d, "auto")["last_job"].is_u64());
    assert_replica_restores(&d, "auto", &src, "auto");
}

#[test]
fn a_replica_over_its_allowed_lag_is_listed_so_and_degrades_health() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = source_tree(&d, 1);
    init_replica(&d, "late", &[]);
    add(&d, "late", &["--max-lag", "1s"]);
    backup(&d, &src);
    std::thread::sleep(Duration::from_millis(1500));
    let l = listed(&d, "late");
    assert_eq!(l["snapshots_behind"], 1, "{l:#}");
    assert!(l["lag_ms"].as_u64() >= Some(1000), "{l:#}");
    assert_eq!(l["over_lag"], true, "{l:#}");
    assert_eq!(l["max_lag_ms"], 1000);
    let note = wait_until(
        "health degraded by the replica",
        Duration::from_secs(60),
        || {
            let h = d.health();
            let notes = h["notes"].as_array()?.clone();
            let note = notes
                .iter()
                .filter_map(|n| n.as_str())
                .find(|n| n.contains("replica late"))?
                .to_owned();
            (h["status"] == "degraded").then_some(note)
        },
    );
    assert!(note.contains("1 snapshot behind default"), "{note}");
    // Caught up: no longer over its lag.
    run(&d, "late");
    assert_eq!(listed(&d, "late")["over_lag"], false);
}

/// The replication is slowed down by `--bwlimit`, the daemon killed (SIGKILL) twice in its
/// middle, and the replica still ends complete: the queue runs the job again after each crash
/// and every run continues with the packs the killed one left.
#[test]
fn a_replication_interrupted_twice_by_kill_9_resumes_and_the_replica_checks_clean() {
    let first = TestDaemon::start();
    first.wait_repo("default");
    // 40 MiB: three source packs (16, 16 and 8 MiB), 4 s, 4 s and 2 s at 4 MiB/s.
    let src = source_tree(&first, 40);
    json_ok(&backupd_tests::ctl_within(
        &first.socket,
        &["--json", "backup", s(&src)],
        Duration::from_secs(300),
    ));
    init_replica(&first, "slow", &[]);
    add(&first, "slow", &["--bwlimit", "4MiB/s"]);
    let state = first.state_dir.clone();
    let id = first.submit(&["repo", "replicate", "run", "slow"]);
    let mut daemon = first;
    let mut dead = Vec::new();
    for round in 0..2 {
        daemon.wait_job(id, &["running"], Duration::from_secs(60));
        // Long enough to write a pack, well before the end (6 s are left in the second round).
        std::thread::sleep(Duration::from_millis(4500));
        assert_eq!(daemon.job(id)["state"], "running", "round {round}");
        daemon.signal(nix::sys::signal::Signal::SIGKILL);
        daemon.wait_exit(Duration::from_secs(10)).expect("killed");
        let next = TestDaemon::start_with(DaemonOptions {
            state_dir: Some(state.clone()),
            ..Default::default()
        });
        dead.push(std::mem::replace(&mut daemon, next));
    }
    // The third attempt of the same job finishes.
    let job = daemon.wait_job(id, &["succeeded"], Duration::from_secs(120));
    let result = &job["result"];
    assert!(result["packs_adopted"].as_u64() >= Some(1), "{job:#}");
    assert_eq!(result["snapshots_copied"], 1, "{job:#}");
    assert_eq!(
        snapshot_ids(&daemon, "slow"),
        snapshot_ids(&daemon, "default")
    );
    assert_replica_restores(&daemon, "slow", &src, "after-kills");
}
