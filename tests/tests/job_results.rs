//! What a user sees of a job: arguments refused at submission (exit 64, nothing queued), no
//! retry advice for permanent failures, each kind's result in `queue job` / `queue history` /
//! `events`, `queue job --follow`, the commands messages name, and counts of one.

use backupd_tests::{bin, is_root, json_ok, TestDaemon};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A daemon whose default repository holds one snapshot of a directory with one file.
fn with_one_snapshot() -> (TestDaemon, String, std::path::PathBuf) {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("only"), b"one file").expect("write");
    let v = json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    let snapshot = v["snapshot"].as_str().expect("snapshot id").to_owned();
    (d, snapshot, src)
}

fn job_count(d: &TestDaemon) -> usize {
    let history = json_ok(&d.ctl(&["--json", "queue", "history", "--limit", "100"]));
    let status = json_ok(&d.ctl(&["--json", "queue", "status"]));
    let live: u64 = status["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| c["count"].as_u64().expect("count"))
        .sum();
    history.as_array().expect("history").len() + live as usize
}

/// Runs `args`, which must be refused as a usage error naming `needle`, with nothing queued.
fn refused(d: &TestDaemon, args: &[&str], needle: &str) {
    let before = job_count(d);
    let started = Instant::now();
    let out = d.ctl(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(err.contains("nothing was queued"), "{args:?}: {err}");
    assert!(!err.contains("dlq retry"), "{args:?}: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once, not after the job ran"
    );
    assert_eq!(job_count(d), before, "{args:?} queued a job");
}

#[test]
fn arguments_wrong_at_submission_are_refused_with_exit_64_and_no_job() {
    let (d, snapshot, src) = with_one_snapshot();
    let target = d.dir.path().join("out");
    let target = target.to_str().expect("utf8");
    refused(
        &d,
        &["restore", "deadbeef", "--target", target],
        "\"deadbeef\" not found",
    );
    // Another snapshot makes a one-digit prefix of neither id likely to be unique; an empty
    // match set is refused the same way, so any prefix of a non-hex letter is wrong for sure.
    refused(
        &d,
        &["forget", "zz", "--keep-last", "1"],
        "\"zz\" not found",
    );
    refused(
        &d,
        &["restore", &snapshot, "--target", target, "--repo", "nosuch"],
        "nosuch",
    );
    refused(
        &d,
        &["restore", &snapshot, "--target", target, "--include", "a[b"],
        "a[b",
    );
    // Missing directories of a target are created; a file where one must be is refused.
    let file = d.dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let below_file = file.join("missing/out");
    refused(
        &d,
        &[
            "restore",
            &snapshot,
            "--target",
            below_file.to_str().expect("utf8"),
        ],
        "a-file exists and is not a directory",
    );
    let missing = d.dir.path().join("no-such-dir");
    refused(
        &d,
        &["backup", missing.to_str().expect("utf8")],
        "no-such-dir",
    );
    refused(
        &d,
        &["backup", src.to_str().expect("utf8"), "--exclude", "x["],
        "x[",
    );
    // `--json` keeps the daemon's error code; the exit code says it was the command line.
    let out = d.ctl(&["--json", "restore", "deadbeef", "--target", target]);
    assert_eq!(out.status.code(), Some(64));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(v["error"]["code"], "NotFound", "{v}");
    // The right id still restores.
    json_ok(&d.ctl(&["--json", "restore", &snapshot, "--target", target]));
}

#[test]
fn a_permanent_failure_suggests_no_retry_and_an_exhausted_retryable_one_does() {
    let d = TestDaemon::start();
    let out = d.ctl(&[
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "1",
        "--permanent",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("dlq retry"), "{err}");
    assert!(err.contains("permanent"), "{err}");
    let id = json_ok(&d.ctl(&["--json", "queue", "dlq", "list"]))[0]["id"]
        .as_u64()
        .expect("dead-letter id");
    let shown = stdout(&d.ctl(&["queue", "job", &id.to_string()]));
    assert!(!shown.contains("dlq retry"), "{shown}");
    assert_eq!(d.job(id)["attempts"][0]["retryable"], false);

    let out = d.ctl(&[
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "5",
        "--retries",
        "0",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("queue dlq retry"), "{err}");
}

#[test]
fn a_finished_backups_snapshot_and_stats_show_in_job_history_and_events() {
    let (d, snapshot, _) = with_one_snapshot();
    let history = json_ok(&d.ctl(&["--json", "queue", "history", "--kind", "backup"]));
    let id = history[0]["id"].as_u64().expect("job id");
    let shown = stdout(&d.ctl(&["queue", "job", &id.to_string()]));
    assert!(shown.contains(&format!("snapshot {snapshot}")), "{shown}");
    assert!(shown.contains("1 file (1 read)"), "{shown}");
    let table = stdout(&d.ctl(&["queue", "history"]));
    assert!(
        table.contains(&format!("snapshot {}", &snapshot[..8])),
        "{table}"
    );
    let events = stdout(&d.ctl(&["events", "--backlog", "50"]));
    assert!(
        events
            .lines()
            .any(|l| l.contains("succeeded") && l.contains(&snapshot)),
        "{events}"
    );
    let events = d.ctl(&["--json", "events", "--backlog", "50"]);
    let with_snapshot = stdout(&events)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["snapshot"] == snapshot.as_str())
        .count();
    assert_eq!(with_snapshot, 1);
}

#[test]
fn queue_job_follow_waits_for_the_end_and_a_no_wait_message_names_a_command_that_follows() {
    let d = TestDaemon::start();
    let out = d.ctl(&["queue", "add", "noop", "--duration", "1500ms", "--no-wait"]);
    let text = stdout(&out);
    // The command the message names, run as it is written, follows the job to its end.
    let named = text.split('`').nth(1).expect("a command in backticks");
    let mut words = named.split_whitespace();
    assert_eq!(words.next(), Some("backupctl"), "{text}");
    let args: Vec<&str> = words.collect();
    let started = Instant::now();
    let followed = d.ctl(&args);
    assert_eq!(followed.status.code(), Some(0), "{}", stderr(&followed));
    assert!(stdout(&followed).contains("done"), "{}", stdout(&followed));
    assert!(started.elapsed() >= Duration::from_millis(500), "it waited");

    let id = d.submit(&["queue", "add", "noop", "--duration", "1500ms"]);
    let started = Instant::now();
    let out = d.ctl(&["queue", "job", &id.to_string(), "--follow"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_millis(500), "it waited");
    assert_eq!(d.job(id)["state"], "succeeded");
    // A finished job: the result at once; a failed one exits as it failed.
    let out = d.ctl(&["queue", "job", &id.to_string(), "--follow"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("done"), "{}", stdout(&out));
    let failed = d.submit(&[
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "1",
        "--permanent",
    ]);
    d.wait_job(failed, &["dead-letter"], Duration::from_secs(10));
    let out = d.ctl(&["queue", "job", &failed.to_string(), "--follow"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn counts_of_one_are_singular() {
    let (d, snapshot, _) = with_one_snapshot();
    let target = d.dir.path().join("out");
    let out = d.ctl(&[
        "restore",
        &snapshot,
        "--target",
        target.to_str().expect("utf8"),
    ]);
    let text = stdout(&out);
    assert!(text.contains("restored 1 file,"), "{text}");
    let list = stdout(&d.ctl(&["repo", "list"]));
    assert!(list.contains("1 snapshot,"), "{list}");
    let forget = stdout(&d.ctl(&["forget", &snapshot]));
    assert!(forget.contains("1 snapshot removed"), "{forget}");
}

#[test]
fn a_denied_submission_names_the_command_typed() {
    assert!(
        is_root(),
        "this test needs root (it runs backupctl as `nobody`); CI runs tests as root"
    );
    let d = TestDaemon::start_with(backupd_tests::DaemonOptions {
        config: Some("[server]\nsocket_mode = \"0666\"\n".into()),
        ..Default::default()
    });
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let client = d.dir.path().join("backupctl");
    std::fs::copy(bin("backupctl"), &client).expect("copy backupctl");
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&client)
        .arg("--socket")
        .arg(&d.socket)
        .args(["repo", "check"])
        .output()
        .expect("runuser");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("`repo check` needs permission"), "{err}");
    assert!(!err.contains("queue add"), "{err}");
}

#[test]
fn queue_log_shows_the_jobs_own_lines_and_they_survive_a_restart() {
    let work = tempfile::tempdir().expect("tempdir");
    let options = || backupd_tests::DaemonOptions {
        state_dir: Some(work.path().join("state")),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(options());
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"data").expect("write");
    let id = d.submit(&["backup", src.to_str().expect("utf8")]);
    let job = d.wait_job(id, &["succeeded"], Duration::from_secs(30));
    let snapshot = job["result"]["snapshot"]
        .as_str()
        .expect("snapshot")
        .to_owned();
    let log = json_ok(&d.ctl(&["--json", "queue", "log", &id.to_string()]));
    let lines: Vec<&str> = log["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l.as_str().expect("line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("backup finished") && l.contains(&snapshot[..8])),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("job succeeded")),
        "{lines:#?}"
    );
    // Another job's lines are not in it.
    let other = d.submit(&["queue", "add", "noop"]);
    d.wait_job(other, &["succeeded"], Duration::from_secs(10));
    let again = json_ok(&d.ctl(&["--json", "queue", "log", &id.to_string()]));
    assert_eq!(again["lines"], log["lines"]);

    d.stop();
    let d = TestDaemon::start_with(options());
    let text = stdout(&d.ctl(&["queue", "log", &id.to_string()]));
    assert!(text.contains("backup finished"), "{text}");
}
