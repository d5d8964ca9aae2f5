//! Continuous backup end to end: a real daemon watching real directories, snapshots restored and
//! compared with the tree as it is. One test per "must be true" point of the continuous-backup
//! issue.

use backupd_tests::treecmp::CompareOptions;
use backupd_tests::{json_ok, wait_until_else, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn watching(dir: &Path) -> TestDaemon {
    TestDaemon::start_with(DaemonOptions {
        extra_args: vec!["--watch".into(), dir.display().to_string()],
        ..Default::default()
    })
}

fn source(d: &TestDaemon, name: &str) -> Value {
    let list = json_ok(&d.ctl(&["--json", "source", "list"]));
    list.as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no source {name}: {list:#}"))
}

fn snapshot_of(s: &Value) -> Option<String> {
    s["last_snapshot"].as_str().map(str::to_owned)
}

/// Waits until the source has a snapshot other than `before`, nothing is pending or running,
/// and that stays so for a debounce period: the tree has settled into a snapshot.
fn settle(d: &TestDaemon, name: &str, before: Option<&str>, within: Duration) -> Value {
    let mut quiet_since: Option<(Instant, Option<String>)> = None;
    let last = std::cell::RefCell::new(Value::Null);
    wait_until_else(
        &format!("source {name} to settle"),
        within,
        || {
            let s = source(d, name);
            *last.borrow_mut() = s.clone();
            let snap = snapshot_of(&s);
            let idle = s["pending_paths"] == 0 && s["job"].is_null();
            if !(idle && snap.is_some() && snap.as_deref() != before) {
                quiet_since = None;
                return None;
            }
            match &quiet_since {
                Some((t, seen)) if *seen == snap && t.elapsed() > Duration::from_millis(2500) => {
                    Some(s)
                }
                Some((_, seen)) if *seen == snap => None,
                _ => {
                    quiet_since = Some((Instant::now(), snap));
                    None
                }
            }
        },
        || format!("{:#}", last.borrow()),
    )
}

/// The newest finished backup job's result.
fn last_backup(d: &TestDaemon) -> Value {
    let history = json_ok(&d.ctl(&[
        "--json", "queue", "history", "--kind", "backup", "--limit", "1",
    ]));
    let id = history[0]["id"].as_u64().expect("a backup job").to_string();
    json_ok(&d.ctl(&["--json", "queue", "job", &id]))["result"].clone()
}

/// Restores the latest snapshot of `src` and compares it with the tree on disk.
fn assert_latest_equals(d: &TestDaemon, src: &Path, label: &str) {
    let target = d.dir.path().join(format!("restore-{label}"));
    d.restore_and_compare(src, &target, &[], CompareOptions::default());
}

fn snapshot_count(d: &TestDaemon) -> usize {
    json_ok(&d.ctl(&["--json", "snapshots"]))
        .as_array()
        .expect("list")
        .len()
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn small_tree(root: &Path) {
    for i in 0..20 {
        write(&root.join(format!("d{}/f{i}", i % 4)), &format!("file {i}"));
    }
}

#[test]
fn one_modified_file_is_in_a_snapshot_within_seconds_having_read_only_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    small_tree(&src);
    let d = watching(&src);
    let first = settle(&d, "src", None, Duration::from_secs(60));
    assert_eq!(first["state"], "watching", "{first:#}");
    assert_eq!(first["dirs_watched"], 5, "{first:#}");

    write(&src.join("d1/f1"), "changed content");
    let s = settle(
        &d,
        "src",
        snapshot_of(&first).as_deref(),
        Duration::from_secs(30),
    );
    let latency = s["last_latency_ms"].as_u64().expect("latency");
    assert!(latency < 5000, "change to snapshot took {latency} ms");
    let job = last_backup(&d);
    assert_eq!(job["incremental"], true, "{job:#}");
    assert_eq!(job["stats"]["files_read"], 1, "{job:#}");
    assert_eq!(job["dirs_scanned"], 0, "{job:#}");
    assert_eq!(
        job["stats"]["files"], 20,
        "totals as a full walk counts them: {job:#}"
    );
    assert_latest_equals(&d, &src, "one");
}

#[test]
fn a_change_in_a_200000_file_tree_reads_one_file_and_gives_a_complete_snapshot() {
    let files: usize = std::env::var("BACKUPD_TEST_TREE_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("tree");
    // 20 x 10 x 10 directories of 100 files each at 200,000 files.
    let per_dir = 100;
    for n in 0..files {
        let leaf = n / per_dir;
        let dir = src.join(format!(
            "a{}/b{}/c{}",
            leaf / 100,
            leaf / 10 % 10,
            leaf % 10
        ));
        if n % per_dir == 0 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        std::fs::write(dir.join(format!("f{n}")), format!("content of file {n}\n")).expect("write");
    }
    let d = watching(&src);
    let first = settle(&d, "tree", None, Duration::from_secs(900));
    let changed = src.join("a1/b2/c3/f12345");
    assert!(changed.exists() || files < 20_000);
    let changed = if changed.exists() {
        changed
    } else {
        src.join("a0/b0/c0/f0")
    };
    write(&changed, "one changed file\n");
    settle(
        &d,
        "tree",
        snapshot_of(&first).as_deref(),
        Duration::from_secs(60),
    );
    let job = last_backup(&d);
    assert_eq!(job["incremental"], true, "{job:#}");
    assert_eq!(job["stats"]["files_read"], 1, "{job:#}");
    assert_eq!(job["dirs_scanned"], 0, "no directory was listed: {job:#}");
    assert_eq!(job["stats"]["files"], files as u64, "{job:#}");
    assert_latest_equals(&d, &src, "large");
}

#[test]
fn ten_thousand_writes_in_five_seconds_make_at_most_three_snapshots() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("busy");
    small_tree(&src);
    let d = watching(&src);
    let first = settle(&d, "busy", None, Duration::from_secs(60));
    let before = snapshot_count(&d);
    let started = Instant::now();
    for round in 0..100 {
        for f in 0..100 {
            write(
                &src.join(format!("hot/f{f}")),
                &format!("round {round} file {f}"),
            );
        }
        // Spread over about four seconds.
        std::thread::sleep(Duration::from_millis(35));
    }
    // How long the writes took is the machine's business, not the daemon's; a slow machine
    // may legitimately get one more snapshot per 60 s max-delay window it spent writing.
    let extra_windows = (started.elapsed().as_secs() / 60) as usize;
    settle(
        &d,
        "busy",
        snapshot_of(&first).as_deref(),
        Duration::from_secs(60),
    );
    let made = snapshot_count(&d) - before;
    assert!(
        (1..=3 + extra_windows).contains(&made),
        "{made} snapshots for the burst"
    );
    assert_latest_equals(&d, &src, "burst");
}

type Step<'a> = Box<dyn Fn() + 'a>;

#[test]
fn directory_operations_each_settle_into_an_exact_snapshot() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("ops");
    let outside = work.path().join("outside");
    small_tree(&src);
    write(&outside.join("incoming/deep/x"), "from outside");
    write(&outside.join("incoming/y"), "also from outside");
    let d = watching(&src);
    let mut snap = snapshot_of(&settle(&d, "ops", None, Duration::from_secs(60)));

    let steps: Vec<(&str, Step)> = vec![
        (
            "nested tree created",
            Box::new(|| {
                for i in 0..5 {
                    write(&src.join(format!("new/a/b/c{i}/file")), "nested");
                }
            }),
        ),
        (
            "directory renamed",
            Box::new(|| std::fs::rename(src.join("new/a"), src.join("new/renamed")).expect("mv")),
        ),
        (
            "directory moved in",
            Box::new(|| {
                std::fs::rename(outside.join("incoming"), src.join("incoming")).expect("mv")
            }),
        ),
        (
            "directory moved out",
            Box::new(|| std::fs::rename(src.join("d2"), outside.join("d2")).expect("mv")),
        ),
        (
            "files deleted",
            Box::new(|| {
                std::fs::remove_file(src.join("d1/f1")).expect("rm");
                std::fs::remove_file(src.join("incoming/deep/x")).expect("rm");
            }),
        ),
        (
            "file changed in a renamed directory",
            Box::new(|| {
                write(
                    &src.join("new/renamed/b/c0/file"),
                    "changed after the rename",
                )
            }),
        ),
    ];
    for (label, step) in steps {
        step();
        let s = settle(&d, "ops", snap.as_deref(), Duration::from_secs(60));
        snap = snapshot_of(&s);
        assert_latest_equals(&d, &src, &label.replace(' ', "-"));
    }
}

#[test]
fn changes_made_while_the_daemon_was_stopped_are_caught_at_start() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("offline");
    let state = work.path().join("state");
    small_tree(&src);
    let options = || DaemonOptions {
        extra_args: vec!["--watch".into(), src.display().to_string()],
        state_dir: Some(state.clone()),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(options());
    let first = settle(&d, "offline", None, Duration::from_secs(60));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20)).expect("stopped");

    write(&src.join("d0/f0"), "changed while stopped, 0");
    write(&src.join("d1/f5"), "changed while stopped, 5");
    write(&src.join("d2/f10"), "changed while stopped, 10");
    std::fs::remove_file(src.join("d3/f3")).expect("rm");

    let d = TestDaemon::start_with(options());
    settle(
        &d,
        "offline",
        snapshot_of(&first).as_deref(),
        Duration::from_secs(30),
    );
    let job = last_backup(&d);
    assert_eq!(
        job["stats"]["files_read"], 3,
        "only the changed files were read: {job:#}"
    );
    assert_eq!(job["stats"]["files"], 19, "{job:#}");
    assert_latest_equals(&d, &src, "restart");
}

#[test]
fn an_inotify_overflow_leads_to_a_rescan_and_a_complete_snapshot() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("flood");
    small_tree(&src);
    let d = watching(&src);
    let first = settle(&d, "flood", None, Duration::from_secs(60));
    let scans_before = first["scans"].as_u64().expect("scans");
    // While the daemon cannot read them, create, modify and close events for enough new files
    // in watched directories overflow the kernel's queue (`fs.inotify.max_queued_events`,
    // 16,384 by default: 20,000 files make 60,000 events).
    let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16_384);
    let files = (queue / 3 * 2 + 2000).max(20_000);
    assert!(
        files <= 400_000,
        "fs.inotify.max_queued_events is {queue}: too large to overflow in a test; lower it to \
         run this test"
    );
    d.signal(nix::sys::signal::Signal::SIGSTOP);
    for i in 0..files {
        write(&src.join(format!("d{}/flood{i}", i % 4)), "x");
    }
    d.signal(nix::sys::signal::Signal::SIGCONT);
    let s = settle(
        &d,
        "flood",
        snapshot_of(&first).as_deref(),
        Duration::from_secs(120),
    );
    assert!(
        s["scans"].as_u64().expect("scans") > scans_before,
        "the overflow made the source rescan: {s:#}"
    );
    assert!(
        d.log_text().contains("overflowed"),
        "the log says why it rescanned"
    );
    assert_latest_equals(&d, &src, "overflow");
}

#[test]
fn excludes_are_honoured_for_watched_changes() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("excl");
    small_tree(&src);
    let d = TestDaemon::start();
    let added = json_ok(&d.ctl(&[
        "--json",
        "source",
        "add",
        src.to_str().expect("utf8"),
        "--exclude",
        "*.tmp",
        "--debounce",
        "500ms",
    ]));
    assert_eq!(added["name"], "excl");
    let first = settle(&d, "excl", None, Duration::from_secs(60));
    write(&src.join("d0/kept.txt"), "kept");
    write(&src.join("d0/left-out.tmp"), "excluded file");
    write(
        &src.join("cache.tmp/inner/file"),
        "inside an excluded directory",
    );
    settle(
        &d,
        "excl",
        snapshot_of(&first).as_deref(),
        Duration::from_secs(30),
    );
    let target = d.dir.path().join("restore-excl");
    d.restore_latest(&src, &target, &[]);
    assert!(target.join("d0/kept.txt").exists());
    assert!(!target.join("d0/left-out.tmp").exists());
    assert!(!target.join("cache.tmp").exists());

    // The source survives a restart (it is persisted) and can be removed.
    let removed = json_ok(&d.ctl(&["--json", "source", "remove", "excl"]));
    assert_eq!(removed["name"], "excl");
    let list = json_ok(&d.ctl(&["--json", "source", "list"]));
    assert_eq!(list, Value::Array(vec![]));
}

#[test]
fn bad_sources_are_refused_with_the_reason() {
    let d = TestDaemon::start();
    let missing = PathBuf::from("/nonexistent/backupd-source");
    let out = d.ctl(&["source", "add", missing.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/backupd-source"), "{stderr}");
    let out = d.ctl(&["source", "add", "/tmp", "--name", "bad name"]);
    assert_eq!(out.status.code(), Some(2));
    let inside = d.state_dir.join("inside");
    std::fs::create_dir_all(&inside).expect("mkdir");
    let out = d.ctl(&["source", "add", inside.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("state directory"));
    let out = d.ctl(&["source", "remove", "nothing-here"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing-here"));
}

#[test]
fn watching_a_tree_of_many_directories_does_not_stall_on_its_own_events() {
    // Listing 6,000 directories to watch them makes 12,000 open/close events, more than the
    // event channel holds; setting up must still finish (it once deadlocked here).
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("dirs");
    for i in 0..6000 {
        std::fs::create_dir_all(src.join(format!("{}/{i}", i % 60))).expect("mkdir");
    }
    write(&src.join("0/0/file"), "one file");
    let d = watching(&src);
    let s = settle(&d, "dirs", None, Duration::from_secs(120));
    assert_eq!(s["state"], "watching", "{s:#}");
    assert_eq!(s["dirs_watched"], 6061, "{s:#}");
    write(&src.join("59/5999/new"), "a change deep down");
    settle(
        &d,
        "dirs",
        snapshot_of(&s).as_deref(),
        Duration::from_secs(30),
    );
    assert_latest_equals(&d, &src, "dirs");
}

#[test]
fn the_state_dir_and_repository_inside_a_source_are_never_backed_up() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("home");
    small_tree(&src);
    // The default repository lives in the state directory, so both are inside the source.
    let d = TestDaemon::start_with(DaemonOptions {
        extra_args: vec!["--watch".into(), src.display().to_string()],
        state_dir: Some(src.join(".backupd-state")),
        ..Default::default()
    });
    let first = settle(&d, "home", None, Duration::from_secs(60));
    write(&src.join("d0/new"), "a change");
    let s = settle(
        &d,
        "home",
        snapshot_of(&first).as_deref(),
        Duration::from_secs(30),
    );
    let target = d.dir.path().join("restore-home");
    d.restore_latest(&src, &target, &[]);
    assert!(target.join("d0/new").exists());
    assert!(!target.join(".backupd-state").exists());
    // Writing the repository and the state database is not a change of the source: the
    // source stays settled instead of backing itself up in a loop.
    std::thread::sleep(Duration::from_secs(4));
    let later = source(&d, "home");
    assert_eq!(later["last_snapshot"], s["last_snapshot"], "{later:#}");
    assert_eq!(later["pending_paths"], 0, "{later:#}");
}
