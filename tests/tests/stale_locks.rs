//! Repository locks whose holder is gone in disguise: a pid reused by another process, the
//! daemon's own pid left by an earlier run. Both are recognised as stale at once (and the
//! removal logged); a lock from another host is honoured and the message says how to remove it.

use backupd_tests::{json_ok, pseudo_random_bytes, TestDaemon};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn hostname() -> String {
    nix::unistd::gethostname()
        .expect("hostname")
        .into_string()
        .expect("utf8 hostname")
}

/// Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    rest.split_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .expect("number")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A daemon with repository `r` and a small source; returns (repo path, source).
fn setup(d: &TestDaemon) -> (PathBuf, PathBuf) {
    let repo = d.dir.path().join("repo");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "r",
        "--path",
        repo.to_str().expect("utf8"),
    ]));
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("a"), pseudo_random_bytes(50_000, 3)).expect("write");
    (repo, src)
}

fn plant(repo: &Path, name: &str, lock: serde_json::Value) -> PathBuf {
    let path = repo.join("locks").join(name);
    std::fs::write(&path, lock.to_string()).expect("plant lock");
    path
}

/// Backs up within `within` (well below the 30-minute lock wait).
fn backup_promptly(d: &TestDaemon, src: &Path, within: Duration) {
    let started = Instant::now();
    json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--repo",
        "r",
        src.to_str().expect("utf8"),
    ]));
    assert!(started.elapsed() < within, "took {:?}", started.elapsed());
}

#[test]
fn a_lock_whose_pid_now_belongs_to_another_process_is_removed_at_once() {
    let d = TestDaemon::start();
    let (repo, src) = setup(&d);
    let mut other = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = other.id();
    let lock = plant(
        &repo,
        "0123456789abcdef0123456789abcdef",
        serde_json::json!({"exclusive": true, "host": hostname(), "pid": pid,
            "pid_start": start_time(pid) + 7, "purpose": "forget --prune", "refreshed": now()}),
    );
    backup_promptly(&d, &src, Duration::from_secs(20));
    assert!(!lock.exists(), "the stale lock was removed");
    d.wait_log_line(
        &[
            "ignoring stale repository lock",
            "pid now belongs to another process",
            &pid.to_string(),
        ],
        Duration::from_secs(1),
    );
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn a_lock_with_the_daemons_own_pid_from_before_a_restart_is_removed_at_once() {
    let d = TestDaemon::start();
    let (repo, src) = setup(&d);
    // What a daemon that got the same pid after a restart (pid 1 in a container) finds: an
    // old lock file (no start time recorded) with its own pid.
    let lock = plant(
        &repo,
        "fedcba9876543210fedcba9876543210",
        serde_json::json!({"exclusive": true, "host": hostname(), "pid": d.pid(),
            "purpose": "forget --prune", "refreshed": now() - 10}),
    );
    backup_promptly(&d, &src, Duration::from_secs(20));
    assert!(!lock.exists(), "the stale lock was removed");
    d.wait_log_line(
        &["ignoring stale repository lock", "this daemon's pid"],
        Duration::from_secs(1),
    );
}

#[test]
fn a_lock_from_another_host_is_honoured_and_the_message_says_how_to_remove_it() {
    let d = TestDaemon::start();
    let (repo, src) = setup(&d);
    let lock = plant(
        &repo,
        "00112233445566778899aabbccddeeff",
        serde_json::json!({"exclusive": true, "host": "nas-two.example", "pid": d.pid(),
            "pid_start": 1, "purpose": "forget --prune", "refreshed": now()}),
    );
    let id = d.submit(&["backup", "--repo", "r", src.to_str().expect("utf8")]);
    d.wait_log_line(
        &[
            "repository is locked; waiting",
            "nas-two.example",
            &format!("rm {}", lock.display()),
        ],
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.job(id)["state"], "running", "still waiting for the lock");
    assert!(
        lock.exists(),
        "another host's lock is never removed before it expires"
    );
    // What the message tells the admin to do, once they know nas-two no longer uses it.
    std::fs::remove_file(&lock).expect("rm lock");
    d.wait_job(id, &["succeeded"], Duration::from_secs(20));
}
