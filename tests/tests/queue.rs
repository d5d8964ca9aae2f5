//! The job queue end to end: a real daemon, `backupctl` over the socket, real repositories.
//! One test per "must be true" point of the queue issue, plus coalescing.

use backupd_tests::{json_ok, pseudo_random_bytes, wait_until, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn one_worker() -> TestDaemon {
    TestDaemon::start_with(DaemonOptions {
        config: Some("[queue]\nworkers = 1\n".into()),
        ..Default::default()
    })
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// About 1 GiB of incompressible data in 8 files, so a backup of it takes seconds.
fn big_source(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..8u64 {
        std::fs::write(
            dir.join(format!("big{i}")),
            pseudo_random_bytes(128 << 20, 77 + i),
        )
        .expect("write");
    }
}

#[test]
fn one_worker_runs_high_then_normal_then_low() {
    let d = one_worker();
    let long = d.submit(&["queue", "add", "noop", "--duration", "1500ms"]);
    d.wait_job(long, &["running"], Duration::from_secs(10));
    let low = d.submit(&["queue", "add", "noop", "--priority", "low"]);
    let normal = d.submit(&["queue", "add", "noop"]);
    let high = d.submit(&["queue", "add", "noop", "--priority", "high"]);
    let started = |id| {
        let j = d.wait_job(id, &["succeeded"], Duration::from_secs(20));
        j["started_ns"].as_i64().expect("started")
    };
    let (h, n, l) = (started(high), started(normal), started(low));
    assert!(h < n && n < l, "start times high {h}, normal {n}, low {l}");
    assert!(
        h > d.wait_job(long, &["succeeded"], Duration::from_secs(1))["finished_ns"]
            .as_i64()
            .expect("finished"),
        "the high job started only after the running one ended (one worker)"
    );
}

#[test]
fn unreachable_repository_is_retried_with_growing_delays_then_dead_letters_and_dlq_retry_succeeds()
{
    let d = TestDaemon::start();
    let repo = d.dir.path().join("repo");
    let away = d.dir.path().join("repo.away");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "moving",
        "--path",
        repo.to_str().expect("utf8"),
    ]));
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("a"), b"some data").expect("write");
    std::fs::rename(&repo, &away).expect("move the repository away");

    let id = d.submit(&[
        "backup",
        "--repo",
        "moving",
        "--backoff",
        "1s",
        src.to_str().expect("utf8"),
    ]);
    let j = d.wait_job(id, &["dead-letter"], Duration::from_secs(60));
    let attempts = j["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 4, "1 attempt + 3 retries: {j:#}");
    for a in attempts {
        let message = a["error"]["message"]
            .as_str()
            .expect("each attempt's error");
        assert!(message.contains("unreachable"), "{message}");
    }
    let delays: Vec<u64> = attempts[..3]
        .iter()
        .map(|a| a["retry_in_ms"].as_u64().expect("delay"))
        .collect();
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]) && delays[0] >= 1000,
        "delays grow: {delays:?}"
    );
    assert!(!repo.exists(), "the missing repository was not recreated");
    let dlq = json_ok(&d.ctl(&["--json", "queue", "dlq", "list"]));
    assert!(dlq
        .as_array()
        .expect("list")
        .iter()
        .any(|j| j["id"].as_u64() == Some(id)));

    std::fs::rename(&away, &repo).expect("move it back");
    json_ok(&d.ctl(&["--json", "queue", "dlq", "retry", &id.to_string()]));
    let j = d.wait_job(id, &["succeeded"], Duration::from_secs(30));
    assert_eq!(j["attempts"].as_array().expect("attempts").len(), 5);
    assert!(j["result"]["snapshot"].is_string(), "{j:#}");
    d.check_clean(Some("moving"));

    // A path that does not exist is a permanent error: refused at submission, no job to
    // retry (tests/tests/job_results.rs covers the refusals).
    let missing = d.dir.path().join("does-not-exist");
    let out = d.ctl(&["backup", "--backoff", "1s", missing.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist"));
}

#[test]
fn a_timed_out_backup_ends_within_seconds_and_leaves_the_repository_clean() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("big");
    big_source(&src);
    let out = d.ctl(&[
        "--json",
        "backup",
        "--timeout",
        "2s",
        src.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success(), "a timed-out job fails");
    let history = json_ok(&d.ctl(&["--json", "queue", "history"]));
    let j = &history[0];
    assert_eq!(j["outcome"], "timed-out", "{j:#}");
    let ran_ms = j["duration_ms"].as_u64().expect("duration");
    assert!(ran_ms < 5_000, "ended {ran_ms} ms after it started");
    let snaps = json_ok(&d.ctl(&["--json", "snapshots"]));
    assert_eq!(
        snaps,
        Value::Array(vec![]),
        "no snapshot from a timed-out backup"
    );
    d.check_clean(None);
}

#[test]
fn cancelling_a_running_backup_stops_it_promptly_without_a_snapshot() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("big");
    big_source(&src);
    let id = d.submit(&["backup", src.to_str().expect("utf8")]);
    // Cancel once it is really reading data.
    wait_until("the backup reading data", Duration::from_secs(60), || {
        let j = d.job(id);
        (j["state"] == "running" && j["progress"]["bytes_done"].as_u64().unwrap_or(0) > 0)
            .then_some(())
    });
    let asked = now_ns();
    let j = json_ok(&d.ctl(&["--json", "queue", "cancel", &id.to_string()]));
    assert_eq!(j["state"], "cancelled", "{j:#}");
    // The reply comes once the job has stopped; the bound is generous because it includes
    // starting backupctl on a loaded machine (the stop itself is measured by bench/queue.sh).
    let took = j["finished_ns"].as_i64().expect("finished") - asked;
    assert!(
        took < 5_000_000_000,
        "stopped {} ms after the cancel",
        took / 1_000_000
    );
    let snaps = json_ok(&d.ctl(&["--json", "snapshots"]));
    assert_eq!(
        snaps,
        Value::Array(vec![]),
        "no snapshot from a cancelled backup"
    );
    d.check_clean(None);

    // Cancelling a queued job is immediate; cancelling a finished one is a conflict.
    let blocker = d.submit(&["queue", "add", "noop", "--duration", "2s"]);
    let blocker2 = d.submit(&["queue", "add", "noop", "--duration", "2s"]);
    let queued = d.submit(&["queue", "add", "noop"]);
    let j = json_ok(&d.ctl(&["--json", "queue", "cancel", &queued.to_string()]));
    assert_eq!(j["state"], "cancelled");
    let again = d.ctl(&["--json", "queue", "cancel", &queued.to_string()]);
    assert_eq!(again.status.code(), Some(2));
    for b in [blocker, blocker2] {
        d.wait_job(b, &["succeeded"], Duration::from_secs(20));
    }
}

#[test]
fn a_job_running_at_three_daemon_crashes_in_a_row_goes_to_the_dead_letter_queue() {
    let work = tempfile::tempdir().expect("tempdir");
    let state = work.path().join("state");
    let options = || DaemonOptions {
        config: Some("[queue]\nworkers = 1\n".into()),
        state_dir: Some(state.clone()),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(options());
    let id = d.submit(&["queue", "add", "noop", "--duration", "1h"]);
    // Each round: the job is running, the daemon is killed (as if the job had crashed it), and
    // a new daemon starts on the same state.
    for crash in 1..=3 {
        d.wait_job(id, &["running"], Duration::from_secs(10));
        d.signal(nix::sys::signal::Signal::SIGKILL);
        d.wait_exit(Duration::from_secs(5)).expect("killed");
        d = TestDaemon::start_with(options());
        let j = d.job(id);
        if crash < 3 {
            assert!(j["state"] == "queued" || j["state"] == "running", "{j:#}");
        } else {
            assert_eq!(j["state"], "dead-letter", "{j:#}");
        }
        assert_eq!(
            j["attempts"][crash - 1]["outcome"],
            "crashed",
            "attempt {crash}: {j:#}"
        );
    }
    let j = d.job(id);
    let error = j["error"]["message"].as_str().expect("error message");
    assert!(error.contains("crashed the daemon 3 times"), "{j:#}");
    let dlq = json_ok(&d.ctl(&["--json", "queue", "dlq", "list"]));
    assert!(
        dlq.to_string().contains("crashed the daemon 3 times"),
        "{dlq:#}"
    );
    // It is not run again: the daemon stays up and other work goes on.
    let other = d.submit(&["queue", "add", "noop", "--duration", "10ms"]);
    d.wait_job(other, &["succeeded"], Duration::from_secs(10));
    assert_eq!(d.job(id)["attempts"].as_array().expect("attempts").len(), 3);
}

#[test]
fn kill_9_keeps_queued_and_running_jobs_and_all_finish_after_restart() {
    let work = tempfile::tempdir().expect("tempdir");
    let state = work.path().join("state");
    let options = || DaemonOptions {
        config: Some("[queue]\nworkers = 1\n".into()),
        state_dir: Some(state.clone()),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(options());
    let running = d.submit(&["queue", "add", "noop", "--duration", "2s"]);
    let queued: Vec<u64> = (0..5)
        .map(|_| d.submit(&["queue", "add", "noop", "--duration", "100ms"]))
        .collect();
    d.wait_job(running, &["running"], Duration::from_secs(10));
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(5)).expect("killed");

    let d = TestDaemon::start_with(options());
    let j = d.job(running);
    assert!(
        j["state"] == "queued" || j["state"] == "running",
        "the interrupted job is queued again: {j:#}"
    );
    assert_eq!(j["attempts"][0]["outcome"], "crashed", "{j:#}");
    let mut starts = Vec::new();
    for id in std::iter::once(running).chain(queued.iter().copied()) {
        let j = d.wait_job(id, &["succeeded"], Duration::from_secs(30));
        starts.push(j["started_ns"].as_i64().expect("started"));
    }
    let j = d.job(running);
    assert_eq!(
        j["attempts"].as_array().expect("attempts").len(),
        2,
        "{j:#}"
    );
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "jobs kept their order across the crash: {starts:?}"
    );
}

#[test]
fn events_follow_shows_every_transition_of_a_job_in_order() {
    let d = TestDaemon::start();
    // The backlog covers events from before the follower subscribed, so the test cannot race.
    let mut follower = Command::new(backupd_tests::bin("backupctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "events", "--follow", "--backlog", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("events --follow");
    let id = d.submit(&[
        "queue",
        "add",
        "noop",
        "--duration",
        "300ms",
        "--fail-attempts",
        "1",
        "--backoff",
        "1s",
    ]);
    let stdout = follower.stdout.take().expect("stdout");
    // Lines arrive through a channel so that the wait for each has a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut transitions = Vec::new();
    let mut last_seq = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = follower.kill();
            panic!("no `succeeded` event within 60 s; saw {transitions:?}");
        };
        let e: Value = serde_json::from_str(&line.expect("line")).expect("JSON line");
        let seq = e["seq"].as_u64().expect("seq");
        assert!(seq > last_seq, "events in order");
        last_seq = seq;
        if e["job"].as_u64() != Some(id) || !e["progress"].is_null() {
            continue;
        }
        let from = e["from"].as_str().unwrap_or("-").to_owned();
        let to = e["state"].as_str().expect("state").to_owned();
        let done = to == "succeeded";
        transitions.push(format!("{from}>{to}"));
        if done {
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(
        transitions,
        [
            "->queued",
            "queued>running",
            "running>retry-wait",
            "retry-wait>queued",
            "queued>running",
            "running>succeeded"
        ]
    );
}

#[test]
fn submissions_over_the_rate_get_busy_with_retry_after_and_none_is_lost() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[queue]\nsubmit_rate = 0.5\nsubmit_burst = 3\n".into()),
        ..Default::default()
    });
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut retry_after = 0;
    let started = Instant::now();
    for _ in 0..10 {
        let out = d.ctl(&["--json", "queue", "add", "noop", "--no-wait"]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        if out.status.success() {
            accepted.push(v["id"].as_u64().expect("id"));
        } else {
            assert_eq!(v["error"]["code"], "Busy", "{v}");
            let wait = v["error"]["retry_after_ms"].as_u64().expect("retry-after");
            assert!(wait > 0 && wait <= 2000, "one token per 2 s: {wait}");
            retry_after = wait;
            refused += 1;
        }
    }
    // However slowly the submissions went, the bucket held 3 and gained one per 2 s.
    let refill = (started.elapsed().as_secs_f64() * 0.5).ceil() as usize;
    assert!(accepted.len() >= 3, "the burst is accepted: {accepted:?}");
    assert!(
        accepted.len() <= 3 + refill,
        "{} accepted in {:?}",
        accepted.len(),
        started.elapsed()
    );
    assert!(refused >= 1, "none refused of 10");
    // Retrying after the advertised delay gets through.
    std::thread::sleep(Duration::from_millis(retry_after + 100));
    accepted.push(d.submit(&["queue", "add", "noop"]));
    for id in &accepted {
        d.wait_job(*id, &["succeeded"], Duration::from_secs(20));
    }
    let history = json_ok(&d.ctl(&["--json", "queue", "history", "--limit", "100"]));
    let mut ids: Vec<u64> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|j| j["id"].as_u64().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids, accepted,
        "exactly the accepted jobs exist, and all ran"
    );
}

#[test]
fn equal_backups_waiting_in_the_queue_are_coalesced() {
    let d = one_worker();
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"x").expect("write");
    // The blocker holds the only worker while both backups are submitted; it runs long enough
    // for two backupctl calls on a loaded machine and is cancelled as soon as they are in.
    let blocker = d.submit(&["queue", "add", "noop", "--duration", "60s"]);
    d.wait_job(blocker, &["running"], Duration::from_secs(10));
    let first = json_ok(&d.ctl(&["--json", "backup", "--no-wait", src.to_str().expect("utf8")]));
    let second = json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--no-wait",
        "--priority",
        "high",
        src.to_str().expect("utf8"),
    ]));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["coalesced"], true);
    json_ok(&d.ctl(&["--json", "queue", "cancel", &blocker.to_string()]));
    let id = first["id"].as_u64().expect("id");
    let j = d.wait_job(id, &["succeeded"], Duration::from_secs(30));
    assert_eq!(j["coalesced"], 1);
    assert_eq!(
        j["priority"], "high",
        "the merged job takes the higher priority"
    );
    let snaps = json_ok(&d.ctl(&["--json", "snapshots"]));
    assert_eq!(snaps.as_array().expect("list").len(), 1);
}

#[test]
fn wait_reports_retries_and_exits_as_the_job_ended() {
    let d = TestDaemon::start();
    let out = d.ctl(&[
        "--json",
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "1",
        "--backoff",
        "1s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("attempt 1 failed"), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v["job"].is_u64() && v["slept_ms"].is_u64(), "{v}");

    let out = d.ctl(&[
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "1",
        "--permanent",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dead-letter queue"), "{stderr}");
}
