//! Hooks from the config file around real jobs: a failing `before` fails the job with the
//! hook's message and makes no snapshot; `on_success` is told the snapshot, source and job id;
//! `on_failure` runs when a job fails for good; hooks past their timeout are killed; their
//! output is in `backupctl queue log`.

use backupd_tests::{json_ok, s, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A `#!/bin/sh` script `name` in `dir`, mode 0755.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A directory to back up, with one file.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"some data").expect("write");
    src
}

/// Scripts (and the files they write) live outside the daemon's dir: they must exist before
/// the config that names them.
fn daemon(hooks: &str) -> TestDaemon {
    TestDaemon::start_with(DaemonOptions {
        config: Some(hooks.to_owned()),
        ..Default::default()
    })
}

/// `KEY=value` lines of a file a hook wrote with `env`.
fn env_file(path: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn wait_file(path: &Path, within: Duration) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < within,
            "{} not written within {within:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The hook may still be writing it.
    std::thread::sleep(Duration::from_millis(200));
}

fn log_lines(d: &TestDaemon, id: u64) -> Vec<String> {
    let log = json_ok(&d.ctl(&["--json", "queue", "log", &id.to_string()]));
    log["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l.as_str().expect("line").to_owned())
        .collect()
}

fn snapshot_count(d: &TestDaemon) -> usize {
    json_ok(&d.ctl(&["--json", "snapshots"]))
        .as_array()
        .expect("snapshots")
        .len()
}

fn error_message(job: &Value) -> String {
    job["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_failing_before_hook_fails_the_job_with_its_message_and_makes_no_snapshot() {
    let work = tempfile::tempdir().expect("tempdir");
    let dump = script(
        work.path(),
        "dump.sh",
        "echo starting the dump\necho database dump failed >&2\nexit 3",
    );
    let failed = work.path().join("on_failure.env");
    let on_failure = script(
        work.path(),
        "on_failure.sh",
        &format!("env > {}", failed.display()),
    );
    let d = daemon(&format!(
        "[hooks]\nbefore = [\"{}\"]\non_failure = [\"{}\"]\n",
        dump.display(),
        on_failure.display()
    ));
    let src = source(work.path());
    let out = d.ctl(&["backup", s(&src), "--retries", "0"]);
    assert!(!out.status.success(), "the backup succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database dump failed"), "{stderr}");

    let history = json_ok(&d.ctl(&["--json", "queue", "history", "--limit", "10"]));
    let id = history[0]["id"].as_u64().expect("job id");
    let job = d.job(id);
    assert_eq!(job["state"], "dead-letter", "{job:#}");
    let message = error_message(&job);
    assert!(
        message.contains("before hook")
            && message.contains(s(&dump))
            && message.contains("exit status 3")
            && message.contains("database dump failed"),
        "{message}"
    );
    assert_eq!(snapshot_count(&d), 0, "a snapshot was made");

    // The hook's output, both streams, is in the job's log.
    let lines = log_lines(&d, id);
    for wanted in ["starting the dump", "database dump failed"] {
        assert!(lines.iter().any(|l| l.contains(wanted)), "{lines:#?}");
    }
    // `on_failure` heard of it, with the error.
    let env = env_file(&failed);
    assert_eq!(
        env.get("BACKUPD_HOOK").map(String::as_str),
        Some("on_failure")
    );
    assert_eq!(
        env.get("BACKUPD_OUTCOME").map(String::as_str),
        Some("failed")
    );
    assert_eq!(env.get("BACKUPD_JOB_ID"), Some(&id.to_string()));
    assert!(
        env.get("BACKUPD_ERROR")
            .is_some_and(|e| e.contains("database dump failed")),
        "{env:?}"
    );
}

#[test]
fn on_success_is_told_the_snapshot_the_source_and_the_job() {
    let work = tempfile::tempdir().expect("tempdir");
    let global = work.path().join("global.env");
    let db = work.path().join("db.env");
    let order = work.path().join("order");
    let log = |name: &str| format!("echo {name} >> {}", order.display());
    let global_ok = script(
        work.path(),
        "global_ok.sh",
        &format!("env > {}\n{}", global.display(), log("global-on_success")),
    );
    let db_ok = script(
        work.path(),
        "db_ok.sh",
        &format!("env > {}\n{}", db.display(), log("source-on_success")),
    );
    let g_before = script(work.path(), "g_before.sh", &log("global-before"));
    let db_before = script(work.path(), "db_before.sh", &log("source-before"));
    let db_after = script(work.path(), "db_after.sh", &log("source-after"));
    let src = source(work.path());
    let d = daemon(&format!(
        "[hooks]\nbefore = [\"{}\"]\non_success = [\"{}\"]\n\
         [[source]]\npath = \"{}\"\nname = \"db\"\nwatch = false\n\
         [source.hooks]\nbefore = [\"{}\"]\nafter = [\"{}\"]\non_success = [\"{}\"]\n",
        g_before.display(),
        global_ok.display(),
        src.display(),
        db_before.display(),
        db_after.display(),
        db_ok.display(),
    ));
    // The declared source backs up once at start.
    wait_file(&global, Duration::from_secs(60));
    let snapshots = json_ok(&d.ctl(&["--json", "snapshots"]));
    let snapshot = snapshots[0]["id"].as_str().expect("snapshot id").to_owned();
    let env = env_file(&db);
    assert_eq!(env.get("BACKUPD_SNAPSHOT"), Some(&snapshot), "{env:?}");
    assert_eq!(env.get("BACKUPD_SOURCE").map(String::as_str), Some("db"));
    assert_eq!(
        env.get("BACKUPD_OUTCOME").map(String::as_str),
        Some("succeeded")
    );
    assert_eq!(
        env.get("BACKUPD_JOB_KIND").map(String::as_str),
        Some("backup")
    );
    assert_eq!(
        env.get("BACKUPD_REPOSITORY").map(String::as_str),
        Some("default")
    );
    let id: u64 = env
        .get("BACKUPD_JOB_ID")
        .and_then(|v| v.parse().ok())
        .expect("job id");
    let job = d.wait_job(id, &["succeeded"], Duration::from_secs(30));
    assert_eq!(job["result"]["snapshot"].as_str(), Some(snapshot.as_str()));
    assert!(
        !env.contains_key("HOME") && !env.contains_key("BACKUPD_ERROR"),
        "{env:?}"
    );
    assert_eq!(env_file(&global).get("BACKUPD_SNAPSHOT"), Some(&snapshot));
    let order = std::fs::read_to_string(&order).expect("order");
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "global-before",
            "source-before",
            "source-after",
            "source-on_success",
            "global-on_success"
        ]
    );
}

#[test]
fn a_before_hook_past_its_timeout_is_killed_and_fails_the_job() {
    let work = tempfile::tempdir().expect("tempdir");
    let slow = script(work.path(), "slow.sh", "echo waiting\nexec sleep 60");
    let d = daemon(&format!(
        "[hooks]\nbefore = [\"{}\"]\ntimeout = \"1s\"\n",
        slow.display()
    ));
    let src = source(work.path());
    let started = std::time::Instant::now();
    let id = d.submit(&["backup", s(&src), "--retries", "0"]);
    let job = d.wait_job(id, &["dead-letter"], Duration::from_secs(30));
    assert!(started.elapsed() < Duration::from_secs(20), "not killed");
    let message = error_message(&job);
    assert!(
        message.contains("did not finish within its timeout of 1s"),
        "{message}"
    );
    assert_eq!(snapshot_count(&d), 0);
    assert!(log_lines(&d, id).iter().any(|l| l.contains("waiting")));
}

#[test]
fn an_after_hook_past_its_timeout_is_killed_and_the_job_still_succeeds() {
    let work = tempfile::tempdir().expect("tempdir");
    let slow = script(work.path(), "slow.sh", "exec sleep 60");
    let d = daemon(&format!(
        "[hooks]\nafter = [\"{}\"]\ntimeout = \"1s\"\n",
        slow.display()
    ));
    let src = source(work.path());
    let id = d.submit(&["backup", s(&src)]);
    let job = d.wait_job(id, &["succeeded"], Duration::from_secs(30));
    assert!(job["result"]["snapshot"].is_string(), "{job:#}");
    let lines = log_lines(&d, id);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("after hook") && l.contains("timeout of 1s")),
        "{lines:#?}"
    );
}

#[test]
fn cancelling_a_job_kills_its_running_before_hook() {
    let work = tempfile::tempdir().expect("tempdir");
    let slow = script(work.path(), "slow.sh", "exec sleep 60");
    let d = daemon(&format!("[hooks]\nbefore = [\"{}\"]\n", slow.display()));
    let src = source(work.path());
    let id = d.submit(&["backup", s(&src)]);
    d.wait_job(id, &["running"], Duration::from_secs(30));
    // The hook has started once its line is in the job's log.
    let start = std::time::Instant::now();
    while !log_lines(&d, id).iter().any(|l| l.contains("running hook")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "hook not started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = d.ctl(&["--json", "queue", "cancel", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = d.wait_job(id, &["cancelled"], Duration::from_secs(10));
    assert_eq!(job["state"], "cancelled");
    assert_eq!(snapshot_count(&d), 0);
}
