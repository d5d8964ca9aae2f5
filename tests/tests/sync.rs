//! Directory sync pairs end to end (`backupctl sync ...` against a real daemon): a watched
//! mirror follows every kind of change, two-way conflicts end as each strategy says, a kill -9
//! in the middle of a large file resumes after the last chunk, a vanished DST fails the run
//! retryably, overlapping pairs are refused, symlinks are copied as links, and `--bwlimit`
//! limits.

use backupd_tests::treecmp::{compare_trees_skipping, CompareOptions};
use backupd_tests::{json_ok, pseudo_random_bytes, s, text, wait_until, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

const TRASH: &str = ".backupd-trash";

fn diffs(src: &Path, dst: &Path) -> Vec<String> {
    compare_trees_skipping(src, dst, CompareOptions::default(), &[TRASH])
}

/// Waits until `dst` equals `src` byte for byte, mode and mtime included.
fn wait_synced(d: &TestDaemon, src: &Path, dst: &Path, within: Duration) {
    let ok = backupd_tests::poll_until(within, || diffs(src, dst).is_empty().then_some(()));
    if ok.is_none() {
        panic!(
            "{} never matched {}: {:?}\nlog tail:\n{}",
            dst.display(),
            src.display(),
            diffs(src, dst),
            tail(&d.log_text())
        );
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn show(d: &TestDaemon, name: &str) -> Value {
    json_ok(&d.ctl(&["--json", "sync", "show", name]))
}

/// `sync run NAME`, waited for; its result.
fn run(d: &TestDaemon, name: &str) -> Value {
    json_ok(&d.ctl(&["--json", "sync", "run", name]))
}

/// `sync run NAME` that leaves conflicts for `sync resolve`: exit code 1 (a warning).
fn run_pending(d: &TestDaemon, name: &str) -> Value {
    let out = d.ctl(&["--json", "sync", "run", name]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sync resolve"),
        "{}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn add(d: &TestDaemon, args: &[&str]) -> Value {
    let mut full = vec!["--json", "sync", "add"];
    full.extend_from_slice(args);
    json_ok(&d.ctl(&full))
}

/// Waits until the pair's first run (queued by `sync add`) is over.
fn wait_first_run(d: &TestDaemon, name: &str) {
    wait_until("the first sync run", Duration::from_secs(30), || {
        let v = show(d, name);
        (v["last_outcome"].is_string() && v["job"].is_null()).then_some(())
    });
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .expect("set mtime");
}

#[test]
fn a_watched_mirror_follows_creates_edits_renames_deletes_and_directory_moves() {
    let d = TestDaemon::start();
    let t = tempfile::tempdir().expect("tmp");
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir_all(src.join("docs/old")).expect("mkdir");
    std::fs::create_dir(&dst).expect("mkdir");
    std::fs::write(src.join("a.txt"), b"first").expect("write");
    std::fs::write(src.join("docs/big.bin"), pseudo_random_bytes(7 << 20, 1)).expect("write");
    std::fs::write(src.join("docs/old/c.txt"), b"c").expect("write");
    std::fs::set_permissions(src.join("a.txt"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    let added = add(
        &d,
        &["--name", "m", "--debounce", "200ms", s(&src), s(&dst)],
    );
    assert_eq!(added["mode"], "mirror");
    assert_eq!(added["delete"], true, "mirror deletes by default");
    wait_synced(&d, &src, &dst, Duration::from_secs(30));

    // Every kind of change, while watched.
    std::fs::write(src.join("a.txt"), b"second, longer").expect("edit");
    std::fs::write(src.join("new.txt"), b"new").expect("create");
    std::fs::rename(src.join("docs/big.bin"), src.join("docs/big2.bin")).expect("rename");
    std::fs::create_dir(src.join("moved")).expect("mkdir");
    std::fs::rename(src.join("docs/old"), src.join("moved/old")).expect("move dir");
    std::fs::remove_file(src.join("new.txt")).expect("delete");
    std::fs::write(src.join("kept.txt"), b"kept").expect("create");
    std::fs::set_permissions(src.join("kept.txt"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    wait_synced(&d, &src, &dst, Duration::from_secs(30));
    assert_eq!(
        std::fs::read(dst.join("a.txt")).expect("read"),
        b"second, longer"
    );
    assert!(!dst.join("docs/big.bin").exists());
    // What left DST went to its trash, not away.
    let trash = dst.join(TRASH);
    let runs: Vec<_> = std::fs::read_dir(&trash)
        .expect("trash")
        .flatten()
        .collect();
    assert!(!runs.is_empty(), "nothing in {}", trash.display());
    let trashed = walk_names(&trash);
    assert!(
        trashed.iter().any(|n| n.ends_with("docs/big.bin")),
        "{trashed:?}"
    );

    // An unchanged run reads nothing and copies nothing.
    let r = run(&d, "m");
    assert_eq!(r["kind"], "sync");
    assert_eq!(r["files_copied"], 0, "{r}");
    assert_eq!(r["files_hashed"], 0, "{r}");
    let history = json_ok(&d.ctl(&["--json", "sync", "history", "m"]));
    let runs = history.as_array().expect("runs");
    assert!(runs.len() >= 2, "{history}");
    assert!(
        runs.iter().any(|r| r["files_copied"].as_u64() > Some(0)),
        "{history}"
    );
    assert!(
        runs.iter().all(|r| r["job"].as_u64().is_some()),
        "every run names its job: {history}"
    );
    let list = json_ok(&d.ctl(&["--json", "sync", "list"]));
    assert_eq!(list[0]["name"], "m");
    assert_eq!(list[0]["state"], "watching");
}

fn walk_names(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

/// A two-way pair (not watched) with `f` = "base" synced to both sides.
fn two_way(
    d: &TestDaemon,
    t: &Path,
    name: &str,
    strategy: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (src, dst) = (t.join(format!("{name}-src")), t.join(format!("{name}-dst")));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&dst).expect("mkdir");
    std::fs::write(src.join("f"), b"base").expect("write");
    std::fs::write(src.join("g"), b"base g").expect("write");
    add(
        d,
        &[
            "--name",
            name,
            "--mode",
            "two-way",
            "--strategy",
            strategy,
            "--delete",
            "--no-watch",
            s(&src),
            s(&dst),
        ],
    );
    wait_first_run(d, name);
    assert_eq!(std::fs::read(dst.join("f")).expect("synced"), b"base");
    (src, dst)
}

/// Both sides change `f`: SRC to a larger, older version, DST to a smaller, newer one.
fn conflict(src: &Path, dst: &Path) {
    std::fs::write(src.join("f"), b"local, the larger version").expect("write");
    set_mtime(&src.join("f"), 3600);
    std::fs::write(dst.join("f"), b"remote").expect("write");
    set_mtime(&dst.join("f"), 60);
}

#[test]
fn two_way_conflicts_end_as_each_strategy_says_and_delete_versus_change_is_a_conflict() {
    let d = TestDaemon::start();
    let t = tempfile::tempdir().expect("tmp");
    let local: &[u8] = b"local, the larger version";
    let remote: &[u8] = b"remote";
    for (strategy, want) in [
        ("newer", remote),
        ("larger", local),
        ("local", local),
        ("remote", remote),
    ] {
        let (src, dst) = two_way(&d, t.path(), strategy, strategy);
        conflict(&src, &dst);
        let r = run(&d, strategy);
        assert_eq!(r["conflicts"], 1, "{strategy}: {r}");
        for side in [&src, &dst] {
            assert_eq!(
                std::fs::read(side.join("f")).expect("read"),
                want,
                "{strategy}"
            );
        }
        assert!(
            diffs(&src, &dst).is_empty(),
            "{strategy}: {:?}",
            diffs(&src, &dst)
        );
    }

    // keep-both: SRC's version wins, DST's is kept under a conflict name on both sides.
    let (src, dst) = two_way(&d, t.path(), "keep-both", "keep-both");
    conflict(&src, &dst);
    run(&d, "keep-both");
    assert_eq!(std::fs::read(dst.join("f")).expect("read"), local);
    let kept: Vec<_> = std::fs::read_dir(&dst)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("f.conflict-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(dst.join(&kept[0])).expect("read"), remote);
    assert_eq!(std::fs::read(src.join(&kept[0])).expect("read"), remote);

    // manual: listed, nothing decided until `sync resolve`.
    let (src, dst) = two_way(&d, t.path(), "manual", "manual");
    conflict(&src, &dst);
    let r = run_pending(&d, "manual");
    assert_eq!(r["conflicts_pending"], 1, "{r}");
    let listed = json_ok(&d.ctl(&["--json", "sync", "conflicts", "manual"]));
    assert_eq!(listed[0]["path"], "f", "{listed}");
    assert_eq!(std::fs::read(src.join("f")).expect("read"), local);
    assert_eq!(std::fs::read(dst.join("f")).expect("read"), remote);
    let left = json_ok(&d.ctl(&[
        "--json", "sync", "resolve", "manual", "f", "--take", "remote",
    ]));
    assert_eq!(left, serde_json::json!([]));
    run(&d, "manual");
    assert_eq!(std::fs::read(src.join("f")).expect("read"), remote);
    assert!(json_ok(&d.ctl(&["--json", "sync", "conflicts", "manual"]))
        .as_array()
        .is_some_and(Vec::is_empty));

    // Deleted on DST, changed on SRC: the change survives (newer), never a silent delete.
    let (src, dst) = two_way(&d, t.path(), "delchange", "newer");
    std::fs::remove_file(dst.join("g")).expect("rm");
    std::fs::write(src.join("g"), b"changed g").expect("write");
    let r = run(&d, "delchange");
    assert_eq!(r["conflicts"], 1, "{r}");
    assert_eq!(
        std::fs::read(dst.join("g")).expect("restored"),
        b"changed g"
    );
    // Under manual it waits for a decision.
    let (src, dst) = two_way(&d, t.path(), "delchange-manual", "manual");
    std::fs::remove_file(dst.join("g")).expect("rm");
    std::fs::write(src.join("g"), b"changed g").expect("write");
    let r = run_pending(&d, "delchange-manual");
    assert_eq!(r["conflicts_pending"], 1, "{r}");
    assert!(src.join("g").exists(), "a change was deleted silently");
    // A plain deletion on DST goes to SRC's trash.
    std::fs::remove_file(dst.join("f")).expect("rm");
    let r = run_pending(&d, "delchange-manual");
    assert_eq!(r["files_deleted"], 1, "{r}");
    assert!(!src.join("f").exists());
    assert!(walk_names(&src.join(TRASH))
        .iter()
        .any(|n| n.ends_with("/f")));
}

#[test]
fn a_transfer_killed_mid_file_resumes_after_the_last_chunk() {
    let state = tempfile::tempdir().expect("state");
    let t = tempfile::tempdir().expect("tmp");
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&dst).expect("mkdir");
    let size: u64 = 40 << 20;
    std::fs::write(src.join("large.bin"), pseudo_random_bytes(size as usize, 7)).expect("write");
    let options = || DaemonOptions {
        state_dir: Some(state.path().join("s")),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(options());
    add(
        &d,
        &[
            "--name",
            "big",
            "--no-watch",
            "--bwlimit",
            "10MiB/s",
            s(&src),
            s(&dst),
        ],
    );
    // Well into the file: at least three chunks written and synced.
    wait_until("the transfer to get going", Duration::from_secs(30), || {
        let v = show(&d, "big");
        (v["current"]["bytes_done"].as_u64()? >= 16 << 20).then_some(())
    });
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    assert!(
        !dst.join("large.bin").exists(),
        "not renamed into place half-copied"
    );

    let d = TestDaemon::start_with(options());
    // The run that resumed (the pair's own start-up run finds nothing left to do).
    let resumed = wait_until("the resumed run", Duration::from_secs(60), || {
        let h = json_ok(&d.ctl(&["--json", "sync", "history", "big"]));
        h.as_array()?
            .iter()
            .find(|r| r["outcome"] == "succeeded" && r["bytes_resumed"].as_u64() > Some(0))
            .cloned()
    });
    let copied = resumed["bytes_copied"].as_u64().expect("bytes_copied");
    assert!(
        copied < size,
        "copied {copied} of {size} after the restart: {resumed}"
    );
    assert_eq!(
        copied + resumed["bytes_resumed"].as_u64().expect("resumed"),
        size
    );
    assert!(diffs(&src, &dst).is_empty(), "{:?}", diffs(&src, &dst));
}

#[test]
fn a_dst_that_disappears_mid_run_fails_it_retryably_and_the_next_run_completes() {
    let d = TestDaemon::start();
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    let parent = t.path().join("mnt");
    let dst = parent.join("dst");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&dst).expect("mkdir");
    std::fs::write(src.join("large.bin"), pseudo_random_bytes(30 << 20, 3)).expect("write");
    add(
        &d,
        &[
            "--name",
            "gone",
            "--no-watch",
            "--bwlimit",
            "8MiB/s",
            s(&src),
            s(&dst),
        ],
    );
    let job = wait_until("the transfer to start", Duration::from_secs(30), || {
        let v = show(&d, "gone");
        (v["current"]["bytes_done"].as_u64()? > 0).then_some(())?;
        v["job"].as_u64()
    });
    let away = t.path().join("mnt-away");
    std::fs::rename(&parent, &away).expect("rename DST's parent away");
    let failed = wait_until("the run to fail", Duration::from_secs(30), || {
        let j = json_ok(&d.ctl(&["--json", "queue", "job", &job.to_string()]));
        (j["state"] == "retry-wait").then_some(j)
    });
    let error = failed["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("not reachable"), "{failed}");
    assert!(
        !away.join("dst/large.bin").exists(),
        "written into the moved directory"
    );
    std::fs::rename(&away, &parent).expect("back");
    let r = run(&d, "gone");
    assert!(r["bytes_resumed"].as_u64() > Some(0), "{r}");
    assert!(diffs(&src, &dst).is_empty(), "{:?}", diffs(&src, &dst));
}

#[test]
fn overlapping_pairs_are_refused_and_symlinks_are_copied_as_links_not_followed() {
    let d = TestDaemon::start();
    let t = tempfile::tempdir().expect("tmp");
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir_all(src.join("inner")).expect("mkdir");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for (a, b) in [
        (src.clone(), src.join("inner")),
        (src.join("inner"), src.clone()),
        (src.clone(), d.state_dir.clone()),
    ] {
        let out = d.ctl(&["sync", "add", "--name", "bad", s(&a), s(&b)]);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("overlap"),
            "{}",
            text(&out)
        );
    }
    let outside = t.path().join("secret");
    std::fs::write(&outside, b"outside the tree").expect("write");
    std::os::unix::fs::symlink(&outside, src.join("link")).expect("symlink");
    std::os::unix::fs::symlink("/", src.join("root")).expect("symlink");
    add(&d, &["--name", "links", "--no-watch", s(&src), s(&dst)]);
    wait_first_run(&d, "links");
    let meta = std::fs::symlink_metadata(dst.join("link")).expect("copied");
    assert!(meta.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(dst.join("link")).expect("target"),
        outside
    );
    assert!(std::fs::symlink_metadata(dst.join("root"))
        .expect("copied")
        .file_type()
        .is_symlink());
    assert!(diffs(&src, &dst).is_empty(), "{:?}", diffs(&src, &dst));
}

#[test]
fn bwlimit_limits_a_pairs_transfers() {
    let d = TestDaemon::start();
    let t = tempfile::tempdir().expect("tmp");
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&dst).expect("mkdir");
    std::fs::write(src.join("f.bin"), pseudo_random_bytes(16 << 20, 5)).expect("write");
    add(
        &d,
        &[
            "--name",
            "slow",
            "--no-watch",
            "--bwlimit",
            "8MiB/s",
            s(&src),
            s(&dst),
        ],
    );
    wait_first_run(&d, "slow");
    let h = json_ok(&d.ctl(&["--json", "sync", "history", "slow"]));
    let r = &h[0];
    assert_eq!(r["outcome"], "succeeded", "{h}");
    let rate = r["bytes_per_sec"].as_u64().expect("rate");
    // 16 MiB at 8 MiB/s: about 2 s; generous, but it must be limited at all.
    assert!(
        rate < 8 << 20 << 1,
        "{rate} B/s is not limited to about 8 MiB/s: {r}"
    );
    assert!(r["duration_ms"].as_u64() >= Some(1200), "{r}");
}
