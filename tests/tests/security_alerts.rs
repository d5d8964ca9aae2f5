//! Suspicious activity: each pattern driven past its threshold through the real daemon and
//! backupctl shows as an alert in `security alerts` and on `events`; a
//! lockout refuses the uid's next request with its message until `security unlock`, and
//! survives a restart; `ack` records who acknowledged. Needs root (clients run as `nobody`).

use backupd_tests::{
    bin, json_ok, s, text, wait_until, DaemonOptions, KillOnDrop, TestDaemon, OPEN_SOCKET,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const NOBODY: u32 = 65534;

fn start(extra: &str) -> TestDaemon {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!("{OPEN_SOCKET}{extra}")),
        ..Default::default()
    });
    d.open_to_all();
    d
}

fn alerts(d: &TestDaemon, all: bool) -> Vec<Value> {
    let mut args = vec!["--json", "security", "alerts"];
    if all {
        args.push("--all");
    }
    json_ok(&d.ctl(&args))
        .as_array()
        .expect("alerts array")
        .clone()
}

/// `events --follow --json` as root, its stdout read line by line by a thread.
fn follow_events(d: &TestDaemon) -> (KillOnDrop, std::sync::mpsc::Receiver<Value>) {
    let mut child = KillOnDrop(
        Command::new(bin("backupctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["--json", "events", "--follow", "--backlog", "1000"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("events --follow"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    // The follower subscribed to alerts before its job events started: once it shows a job's
    // event (from the backlog or live), it gets every later alert.
    let job = d.submit(&["queue", "add", "noop"]);
    loop {
        let v = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the noop job's events on the follower");
        if v["job"].as_u64() == Some(job) {
            break;
        }
    }
    (child, rx)
}

fn next_alert_event(rx: &std::sync::mpsc::Receiver<Value>) -> Value {
    loop {
        let v = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("an alert on events within 30 s");
        if v.get("alert").is_some() {
            return v["alert"].clone();
        }
    }
}

#[test]
fn brute_force_at_the_default_thresholds_alerts_on_the_fifth_denial() {
    let d = start("");
    let (_events, rx) = follow_events(&d);
    for _ in 0..4 {
        assert_eq!(
            d.ctl_as_nobody(&["system", "shutdown"]).status.code(),
            Some(4)
        );
    }
    assert!(
        alerts(&d, true).is_empty(),
        "four denials are not yet brute force"
    );
    assert_eq!(
        d.ctl_as_nobody(&["system", "shutdown"]).status.code(),
        Some(4)
    );

    let list = alerts(&d, false);
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(a["pattern"], "brute-force");
    assert_eq!(a["uid"], NOBODY);
    assert_eq!(
        (a["count"].as_u64(), a["threshold"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(a["window_ms"], 600_000);
    assert!(a["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("system shutdown"));
    assert!(a["locked_until"].is_null(), "lockout is off by default");

    let event = next_alert_event(&rx);
    assert_eq!(event["id"], a["id"]);
    assert_eq!(event["pattern"], "brute-force");

    // Alerts are no health notes: the daemon works as before.
    assert_eq!(d.health()["status"], "ok");
    // Without a lockout the uid goes on being served.
    assert!(d.ctl_as_nobody(&["system", "health"]).status.success());
}

#[test]
fn a_lockout_refuses_every_request_survives_a_restart_and_unlock_lifts_it() {
    let config = "[security]\nlockout = \"15m\"\n[security.detect]\nbrute_force_failures = 2\n";
    let mut d = start(config);
    for _ in 0..2 {
        assert_eq!(
            d.ctl_as_nobody(&["system", "reload"]).status.code(),
            Some(4)
        );
    }
    let locked = d.ctl_as_nobody(&["system", "health"]);
    assert_eq!(locked.status.code(), Some(4), "{locked:?}");
    let message = String::from_utf8_lossy(&locked.stderr).into_owned();
    for part in [
        "uid 65534 is locked out until",
        "brute-force",
        "security unlock --uid 65534",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let a = &alerts(&d, false)[0];
    assert!(a["locked_until"].is_string(), "{a}");
    // Refusals while locked are not counted again: still one alert.
    let _ = d.ctl_as_nobody(&["system", "health"]);
    assert_eq!(alerts(&d, true).len(), 1);
    // Root is never locked out and cannot be "unlocked".
    assert_eq!(
        d.ctl(&["security", "unlock", "--uid", "0"]).status.code(),
        Some(2)
    );

    d.stop();
    let state_dir = d.state_dir.clone();
    let d2 = TestDaemon::start_with(DaemonOptions {
        config: Some(format!("{OPEN_SOCKET}{config}")),
        state_dir: Some(state_dir),
        ..Default::default()
    });
    d2.open_to_all();
    let after = d2.ctl_as_nobody(&["system", "health"]);
    assert_eq!(
        after.status.code(),
        Some(4),
        "the lockout survived the restart"
    );
    assert!(String::from_utf8_lossy(&after.stderr).contains("locked out"));

    let unlocked = json_ok(&d2.ctl(&["--json", "security", "unlock", "--uid", "65534"]));
    assert_eq!(unlocked["was_locked"], true);
    assert!(d2.ctl_as_nobody(&["system", "health"]).status.success());
    // Acknowledging needs `security.manage`: a viewer is refused.
    let id = a["id"].as_u64().expect("id").to_string();
    assert_eq!(
        d2.ctl_as_nobody(&["security", "alerts", "ack", &id])
            .status
            .code(),
        Some(4)
    );
    let acked = json_ok(&d2.ctl(&["--json", "security", "alerts", "ack", &id]));
    assert_eq!(acked["acknowledged_by"], 0);
    assert!(acked["acknowledged"].is_string());
    assert!(
        alerts(&d2, false).is_empty(),
        "acknowledged alerts leave the default list"
    );
    assert_eq!(alerts(&d2, true)[0]["acknowledged_by"], 0);
    drop(d);
}

#[test]
fn unusual_access_counts_a_non_admin_and_never_root() {
    let d = start("[security.detect]\nunusual_requests = 3\n");
    for _ in 0..10 {
        assert!(d.ctl(&["system", "health"]).status.success());
    }
    assert!(
        alerts(&d, true).is_empty(),
        "root is an admin: {:?}",
        alerts(&d, true)
    );
    for _ in 0..4 {
        assert!(d.ctl_as_nobody(&["queue", "status"]).status.success());
    }
    let list = alerts(&d, true);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["pattern"], "unusual-access");
    assert_eq!(list[0]["uid"], NOBODY);
    assert_eq!(list[0]["count"], 4);
}

#[test]
fn a_key_export_and_large_restores_are_mass_export() {
    let d = start("[security.detect]\nmass_export_files = 2\nmass_export_restores = 2\n");
    d.wait_repo("default");
    let (_events, rx) = follow_events(&d);
    let out = d.ctl(&["repo", "key", "export", "default"]);
    assert!(out.status.success(), "{out:?}");
    let a = next_alert_event(&rx);
    assert_eq!(
        (a["pattern"].as_str(), a["uid"].as_u64()),
        (Some("mass-export"), Some(0))
    );
    assert!(a["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("key export"));
    assert!(a["locked_until"].is_null(), "root is never locked out");

    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..3 {
        std::fs::write(src.join(format!("f{i}")), format!("file {i}")).expect("write");
    }
    let backup = json_ok(&d.ctl(&["--json", "backup", s(&src)]));
    let snapshot = backup["result"]["snapshot"]
        .as_str()
        .or_else(|| backup["snapshot"].as_str())
        .expect("snapshot id")
        .to_owned();
    // A restore of 3 files (more than 2) counts; the alert comes with the second.
    for n in 0..2 {
        let target = d.dir.path().join(format!("out{n}"));
        let out = d.ctl(&["restore", &snapshot, "--target", s(&target)]);
        assert!(out.status.success(), "{}", text(&out));
    }
    wait_until(
        "the mass-export alert of the restores",
        Duration::from_secs(10),
        || {
            alerts(&d, true)
                .into_iter()
                .find(|a| a["detail"].as_str().unwrap_or_default().contains("restore"))
        },
    );
    let restores = next_alert_event(&rx);
    assert_eq!(restores["pattern"], "mass-export");
    assert_eq!(restores["count"], 2);
}
