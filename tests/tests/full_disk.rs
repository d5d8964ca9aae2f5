//! A repository on a full or read-only file system: backups fail with `NoSpace`, saying which
//! file system is full and what to do, and are retried; check, restore and snapshot listing
//! still work; once space is freed the retried backup succeeds.

use backupd_tests::treecmp::CompareOptions;
use backupd_tests::{is_root, json_ok, pseudo_random_bytes, SmallFs, TestDaemon};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn init(d: &TestDaemon, name: &str, path: &Path) {
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        name,
        "--path",
        path.to_str().expect("utf8"),
    ]));
}

fn source(dir: &Path, files: u64, len: usize, seed: u64) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..files {
        std::fs::write(
            dir.join(format!("f{i}")),
            pseudo_random_bytes(len, seed + i),
        )
        .expect("write source");
    }
}

/// Check (reading all data) and restore to a target elsewhere, both on a repository that
/// takes no writes.
fn check_and_restore_work(d: &TestDaemon, repo: &str, src: &Path, target: &Path) {
    d.check_clean(Some(repo));
    let snaps = json_ok(&d.ctl(&["--json", "snapshots", "--repo", repo]));
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "{snaps:#}");
    d.restore_and_compare(src, target, &["--repo", repo], CompareOptions::default());
    d.wait_log_line(
        &["cannot write a lock file; going on without one"],
        Duration::from_secs(5),
    );
}

/// The first `key` anywhere in `v` (the job result nests the snapshot's statistics).
fn find_u64(v: &Value, key: &str) -> Option<u64> {
    match v {
        Value::Object(m) => m
            .get(key)
            .and_then(Value::as_u64)
            .or_else(|| m.values().find_map(|x| find_u64(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_u64(x, key)),
        _ => None,
    }
}

#[test]
fn a_full_repository_disk_fails_backups_with_no_space_and_still_checks_and_restores() {
    assert!(is_root(), "this test mounts a tmpfs; CI runs as root");
    let d = TestDaemon::start();
    let fs = SmallFs::mount(&d.dir.path().join("small"), "8m");
    let repo = fs.path.join("repo");
    init(&d, "small", &repo);
    let kept = d.dir.path().join("kept");
    source(&kept, 4, 100_000, 1);
    json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--repo",
        "small",
        kept.to_str().expect("utf8"),
    ]));

    // Leave about 1 MiB: the next backup (4 MiB of incompressible data) runs out mid-way.
    fs.fill("filler", fs.free().saturating_sub(1 << 20));
    let big = d.dir.path().join("big");
    source(&big, 4, 1 << 20, 10);
    let id = d.submit(&[
        "backup",
        "--repo",
        "small",
        "--retries",
        "1",
        "--backoff",
        "1s",
        big.to_str().expect("utf8"),
    ]);
    let j = d.wait_job(id, &["retry-wait", "dead-letter"], Duration::from_secs(60));
    let first = &j["attempts"][0]["error"];
    assert_eq!(first["code"], "NoSpace", "{j:#}");
    let msg = first["message"].as_str().expect("message");
    let mount = format!("mounted at {} is full", fs.path.display());
    for part in [
        mount.as_str(),
        "free of 8.0 MiB",
        "backupctl queue dlq retry",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    // Retryable: it was tried again (and, the disk still full, gave up).
    let j = d.wait_job(id, &["dead-letter"], Duration::from_secs(60));
    assert_eq!(j["attempts"].as_array().map(Vec::len), Some(2), "{j:#}");
    assert_eq!(j["error"]["code"], "NoSpace", "{j:#}");

    // At 100 % full, reading still works: the lock cannot be written, so it is skipped.
    fs.fill("filler2", u64::MAX);
    assert_eq!(fs.free(), 0);
    check_and_restore_work(&d, "small", &kept, &d.dir.path().join("restored"));

    // Space freed: the retried job succeeds.
    std::fs::remove_file(fs.path.join("filler")).expect("free space");
    std::fs::remove_file(fs.path.join("filler2")).expect("free space");
    json_ok(&d.ctl(&["--json", "queue", "dlq", "retry", &id.to_string()]));
    d.wait_job(id, &["succeeded"], Duration::from_secs(60));
    d.check_clean(Some("small"));
}

#[test]
fn a_read_only_repository_still_checks_and_restores() {
    assert!(is_root(), "this test mounts a tmpfs; CI runs as root");
    let d = TestDaemon::start();
    let fs = SmallFs::mount(&d.dir.path().join("ro"), "16m");
    init(&d, "ro", &fs.path.join("repo"));
    let src = d.dir.path().join("src");
    source(&src, 3, 200_000, 7);
    json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--repo",
        "ro",
        src.to_str().expect("utf8"),
    ]));
    fs.remount("ro");
    check_and_restore_work(&d, "ro", &src, &d.dir.path().join("restored"));
    // A backup cannot work there, and says why and what to do.
    let out = d.ctl(&[
        "--json",
        "backup",
        "--retries",
        "0",
        "--repo",
        "ro",
        src.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("read-only") && text.contains("remount"),
        "{text}"
    );
}

#[test]
fn the_retry_of_a_backup_interrupted_by_a_full_disk_reuses_the_packs_it_wrote() {
    assert!(is_root(), "this test mounts a tmpfs; CI runs as root");
    let d = TestDaemon::start();
    let fs = SmallFs::mount(&d.dir.path().join("small"), "64m");
    init(&d, "small", &fs.path.join("repo"));
    // 48 MiB of incompressible data: three 16 MiB packs. Room for two of them.
    let src = d.dir.path().join("src");
    source(&src, 6, 8 << 20, 100);
    fs.fill("filler", fs.free().saturating_sub(40 << 20));
    let id = d.submit(&[
        "backup",
        "--repo",
        "small",
        "--retries",
        "0",
        src.to_str().expect("utf8"),
    ]);
    let j = d.wait_job(id, &["dead-letter"], Duration::from_secs(120));
    assert_eq!(j["error"]["code"], "NoSpace", "{j:#}");
    std::fs::remove_file(fs.path.join("filler")).expect("free space");
    json_ok(&d.ctl(&["--json", "queue", "dlq", "retry", &id.to_string()]));
    let j = d.wait_job(id, &["succeeded"], Duration::from_secs(120));
    let added = find_u64(&j["result"], "bytes_added").expect("bytes_added in the result");
    assert!(
        added < 24 << 20,
        "the retry stored {added} bytes of 48 MiB: the first two packs were not reused; {j:#}"
    );
    d.wait_log_line(
        &["indexed packs left by an interrupted backup"],
        Duration::from_secs(1),
    );
    d.check_clean(Some("small"));
}
