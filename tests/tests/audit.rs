//! The audit log through the real daemon and backupctl: what is recorded (and what never is),
//! queries and `--follow`, and `security audit verify` catching edits, deletions and reorders
//! in the day files and in sled.

use backupd_tests::{is_root, s, text, DaemonOptions, RawConn, TestDaemon, OPEN_SOCKET};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const PASSPHRASE: &str = "correct-horse-battery-staple-audit";

fn entries(d: &TestDaemon, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["--json", "security", "audit"];
    full.extend_from_slice(args);
    let out = d.ctl(&full);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one entry per line"))
        .collect()
}

fn verify(d: &TestDaemon) -> (Output, Value) {
    let out = d.ctl(&["--json", "security", "audit", "verify"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    (out, report)
}

/// Today's day file (the only one a fresh test log has).
fn day_file(d: &TestDaemon) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.state_dir.join("audit"))
        .expect("audit dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl") && !p.ends_with("checkpoints.jsonl"))
        .collect();
    files.sort();
    files.pop().expect("a day file")
}

fn init_repo(d: &TestDaemon) {
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, PASSPHRASE).expect("write passphrase");
    let repo = d.dir.path().join("repo");
    let out = d.ctl(&[
        "repo",
        "init",
        "--name",
        "main",
        "--path",
        s(&repo),
        "--password-file",
        s(&pw),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn changes_denials_and_failed_handshakes_are_recorded_and_secrets_never_are() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(OPEN_SOCKET.to_owned()),
        ..Default::default()
    });
    init_repo(&d);
    // Reads that reveal nothing stay out of the log.
    for _ in 0..3 {
        assert!(d.ctl(&["system", "health"]).status.success());
        assert!(d.ctl(&["queue", "status"]).status.success());
    }
    let mut conn = RawConn::connect(&d.socket).expect("connect");
    let _ = conn.hello(1).expect("the daemon answers a mismatch");
    let denied_uid = if is_root() {
        d.open_to_all();
        let out = d.ctl_as_nobody(&["repo", "key", "export", "main"]);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        Some(backupd_tests::NOBODY)
    } else {
        None
    };

    let all = entries(&d, &[]);
    let requests: Vec<&str> = all.iter().filter_map(|e| e["request"].as_str()).collect();
    assert!(
        !requests.contains(&"system health") && !requests.contains(&"queue status"),
        "{requests:?}"
    );
    let init = all
        .iter()
        .find(|e| e["request"] == "repo init")
        .expect("repo init recorded");
    assert_eq!(
        (init["event"].as_str(), init["outcome"].as_str()),
        (Some("repo"), Some("ok"))
    );
    assert_eq!(init["target"]["repo"], "main");
    assert_eq!(init["permission"], "repo.manage");
    assert_eq!(init["uid"], nix::unistd::geteuid().as_raw());
    let hs = all
        .iter()
        .find(|e| e["event"] == "auth")
        .expect("failed handshake recorded");
    assert!(
        hs["message"]
            .as_str()
            .is_some_and(|m| m.contains("protocol version mismatch")),
        "{hs}"
    );
    if let Some(uid) = denied_uid {
        let denied = entries(&d, &["--type", "denied", "--uid", &uid.to_string()]);
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert_eq!(denied[0]["request"], "repo key export");
        assert_eq!(denied[0]["permission"], "repo.key");
        assert_eq!(
            (
                denied[0]["outcome"].as_str(),
                denied[0]["severity"].as_str()
            ),
            (Some("denied"), Some("warning"))
        );
        assert_eq!(denied[0]["error_code"], "PermissionDenied");
        // Nobody cannot read the log either.
        let out = d.ctl_as_nobody(&["security", "audit"]);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    }
    let warnings = entries(&d, &["--severity", "warning"]);
    assert!(warnings
        .iter()
        .all(|e| matches!(e["severity"].as_str(), Some("warning" | "critical"))));
    assert!(!warnings.is_empty());

    // The passphrase went to the daemon in `repo init`: neither store may hold it.
    for entry in std::fs::read_dir(d.state_dir.join("audit")).expect("audit dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(!String::from_utf8_lossy(&bytes).contains(PASSPHRASE));
    }
    let (out, report) = verify(&d);
    assert!(out.status.success(), "{}", text(&out));
    assert!(report["problem"].is_null(), "{report}");
    let human = d.ctl(&["security", "audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("chain intact"),
        "{}",
        text(&human)
    );
}

#[test]
fn follow_streams_new_entries_as_they_are_written() {
    let d = TestDaemon::start();
    let mut child = Command::new(backupd_tests::bin("backupctl"))
        .args([
            "--socket",
            s(&d.socket),
            "--json",
            "security",
            "audit",
            "--follow",
            "--type",
            "repo",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn follower");
    let stdout = child.stdout.take().expect("piped stdout");
    let _follower = backupd_tests::KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The follower's connection and the one asking.
    d.wait_connections(2, Duration::from_secs(10));
    init_repo(&d);
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the follower printed the new entry");
    let entry: Value = serde_json::from_str(&line).expect("an entry");
    assert_eq!(
        (entry["request"].as_str(), entry["event"].as_str()),
        (Some("repo init"), Some("repo"))
    );
    // Filtered out: not a repo event.
    let _ = d.ctl(&["system", "reload"]);
    let _ = d.ctl(&["snapshots", "--repo", "main"]);
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the next repo entry");
    let entry: Value = serde_json::from_str(&line).expect("an entry");
    assert_eq!(entry["request"], "snapshots");
}

/// Edits the day file with `edit`, runs verify, and puts the file back with whatever the
/// daemon appended meanwhile (verify itself is recorded).
fn tampered(d: &TestDaemon, edit: impl FnOnce(&mut Vec<String>)) -> Value {
    let path = day_file(d);
    let original: Vec<String> = read_lines(&path);
    let mut lines = original.clone();
    edit(&mut lines);
    write_lines(&path, &lines);
    let (out, report) = verify(d);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let now = read_lines(&path);
    let mut restored = original;
    restored.extend_from_slice(&now[lines.len()..]);
    write_lines(&path, &restored);
    report["problem"].clone()
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

#[test]
fn verify_names_the_entry_changed_removed_or_reordered_in_the_files_and_in_sled() {
    let mut d = TestDaemon::start();
    init_repo(&d);
    for _ in 0..6 {
        let _ = d.ctl(&["snapshots", "--repo", "main"]);
    }
    let (out, _) = verify(&d);
    assert!(out.status.success(), "{}", text(&out));

    let p = tampered(&d, |l| l[3] = l[3].replacen("\"uid\":", "\"uid\":1", 1));
    assert_eq!(
        (p["store"].as_str(), p["seq"].as_u64(), p["kind"].as_str()),
        (Some("files"), Some(4), Some("changed")),
        "{p}"
    );
    let p = tampered(&d, |l| {
        l.remove(2);
    });
    assert_eq!(
        (p["seq"].as_u64(), p["kind"].as_str()),
        (Some(3), Some("removed")),
        "{p}"
    );
    let p = tampered(&d, |l| l.swap(4, 5));
    assert_eq!(
        (p["seq"].as_u64(), p["kind"].as_str()),
        (Some(5), Some("reordered")),
        "{p}"
    );
    let human = {
        let path = day_file(&d);
        let lines = read_lines(&path);
        let mut edited = lines.clone();
        edited[1] = edited[1].replacen("\"uid\":", "\"uid\":1", 1);
        write_lines(&path, &edited);
        let out = d.ctl(&["security", "audit", "verify"]);
        let now = read_lines(&path);
        let mut restored = lines;
        restored.extend_from_slice(&now[edited.len()..]);
        write_lines(&path, &restored);
        out
    };
    assert_eq!(human.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("entry 2 changed"),
        "{}",
        text(&human)
    );
    let (out, _) = verify(&d);
    assert!(out.status.success(), "the file is back: {}", text(&out));

    // sled: the daemon is stopped, the tree edited, the daemon started on the same state.
    let state_dir = d.state_dir.clone();
    d.stop();
    let key = |seq: u64| seq.to_be_bytes();
    let with_tree = |f: &dyn Fn(&sled::Tree)| {
        let db = sled::open(state_dir.join("state.sled")).expect("open sled");
        f(&db.open_tree("audit").expect("audit tree"));
        db.flush().expect("flush");
    };
    let problem_after = |f: &dyn Fn(&sled::Tree)| -> Value {
        let saved: Vec<(sled::IVec, sled::IVec)> = {
            let db = sled::open(state_dir.join("state.sled")).expect("open sled");
            let t = db.open_tree("audit").expect("audit tree");
            t.range(..key(9)).map(|r| r.expect("read")).collect()
        };
        with_tree(f);
        let mut d = TestDaemon::start_with(DaemonOptions {
            state_dir: Some(state_dir.clone()),
            ..Default::default()
        });
        let (out, report) = verify(&d);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        d.stop();
        with_tree(&|t| {
            for (k, v) in &saved {
                t.insert(k, v.clone()).expect("restore");
            }
        });
        report["problem"].clone()
    };
    let p = problem_after(&|t| {
        let v = t.get(key(5)).expect("get").expect("entry 5");
        let edited =
            String::from_utf8(v.to_vec())
                .expect("utf8")
                .replacen("\"uid\":", "\"uid\":7", 1);
        t.insert(key(5), edited.as_bytes()).expect("edit");
    });
    assert_eq!(
        (p["store"].as_str(), p["seq"].as_u64(), p["kind"].as_str()),
        (Some("sled"), Some(5), Some("changed")),
        "{p}"
    );
    let p = problem_after(&|t| {
        t.remove(key(6)).expect("delete");
    });
    assert_eq!(
        (p["store"].as_str(), p["seq"].as_u64(), p["kind"].as_str()),
        (Some("sled"), Some(6), Some("removed")),
        "{p}"
    );
    let p = problem_after(&|t| {
        let (two, three) = (
            t.get(key(2)).expect("get").expect("2"),
            t.get(key(3)).expect("get").expect("3"),
        );
        t.insert(key(2), three).expect("swap");
        t.insert(key(3), two).expect("swap");
    });
    assert_eq!(
        (p["store"].as_str(), p["seq"].as_u64(), p["kind"].as_str()),
        (Some("sled"), Some(2), Some("reordered")),
        "{p}"
    );
    // Put back, the log verifies again.
    let d = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(state_dir.clone()),
        ..Default::default()
    });
    let (out, report) = verify(&d);
    assert!(out.status.success(), "{report}");
}
