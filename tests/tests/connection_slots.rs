//! Issue 9, item 5 and 17: connection slots come back when clients leave (also in the middle of
//! a streamed reply), one non-admin uid cannot take every slot, root always gets in, and a
//! refused backupctl shows the daemon's Busy message. Needs root (the attacks run as `nobody`).

use backupd_tests::{
    is_root, json_ok, Attacker, DaemonOptions, RawConn, TestDaemon, NOBODY, OPEN_SOCKET,
};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

fn open_daemon(extra: &str) -> TestDaemon {
    assert!(
        is_root(),
        "this test needs root (it attacks as `nobody`); CI runs tests as root"
    );
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!("{OPEN_SOCKET}{extra}")),
        ..Default::default()
    });
    d.open_to_all();
    d
}

fn attacker(args: &[&str]) -> Command {
    Attacker::command(env!("CARGO_BIN_EXE_attacker"), NOBODY, args)
}

fn summary(line: &str) -> serde_json::Value {
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("summary {line:?}: {e}"))
}

/// Runs `attacker churn` as nobody and returns its summary.
fn churn(d: &TestDaemon, count: usize, request: &str) -> serde_json::Value {
    let socket = d.socket.display().to_string();
    let out = attacker(&["churn", &socket, &count.to_string(), request])
        .output()
        .expect("run attacker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary(&String::from_utf8_lossy(&out.stdout))
}

/// Connections held by a `attacker hold` as nobody; closing stdin releases them.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    summary: serde_json::Value,
}

impl Holder {
    fn start(d: &TestDaemon, count: usize) -> Self {
        let socket = d.socket.display().to_string();
        let mut child = attacker(&["hold", &socket, &count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn attacker");
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("summary line");
        Self {
            child,
            stdin,
            summary: summary(&line),
        }
    }

    fn release(mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn streams_closed_by_their_client_free_their_slots() {
    // One worker busy with a long job keeps a second job queued: waiting for it streams nothing,
    // so only reading the socket can tell that the waiter left.
    let d = open_daemon("[queue]\nworkers = 1\n");
    let submit = |secs: &str| {
        json_ok(&d.ctl(&[
            "--json",
            "queue",
            "add",
            "noop",
            "--no-wait",
            "--duration",
            secs,
        ]))["id"]
            .as_u64()
            .expect("job id")
    };
    submit("120s");
    let queued = submit("1s");
    for request in ["events", "health", &format!("wait:{queued}")] {
        let s = churn(&d, 400, request);
        assert_eq!(s["refused"], 0, "{request}: {s}");
    }
    // Every slot is back: only the health request itself is being served.
    d.wait_connections(1, Duration::from_secs(5));
    // And both root and nobody connect at once.
    assert_eq!(d.health()["status"], "ok");
    let who = json_ok(&d.ctl_as_nobody(&["--json", "system", "whoami"]));
    assert_eq!(who["role"], "viewer");
}

#[test]
fn one_uid_holds_at_most_its_cap_and_root_still_gets_in() {
    let d = open_daemon("");
    let holder = Holder::start(&d, 70);
    assert_eq!(holder.summary["ok"], 64, "{}", holder.summary);
    assert_eq!(holder.summary["refused"], 6, "{}", holder.summary);
    let refusal = holder.summary["last_refusal"].as_str().expect("message");
    assert!(
        refusal.contains("max_connections_per_uid") && refusal.contains("65534"),
        "{refusal}"
    );
    // Root is not limited per uid.
    let mut root_conns = Vec::new();
    for _ in 0..5 {
        let c = RawConn::admitted(&d.socket, Duration::from_secs(5)).expect("root gets in");
        root_conns.push(c);
    }
    // Refused connections may still be closing under load: wait for the count to settle.
    d.wait_connections(64 + 5 + 1, Duration::from_secs(5));
    drop(root_conns);
    holder.release();
    d.wait_connections(1, Duration::from_secs(5));
    let who = json_ok(&d.ctl_as_nobody(&["--json", "system", "whoami"]));
    assert_eq!(who["uid"], NOBODY);
}

#[test]
fn non_admins_filling_their_share_leave_the_reserved_slots_to_root() {
    let d = open_daemon("max_connections = 40\nadmin_reserved_connections = 8\n");
    let holder = Holder::start(&d, 40);
    assert_eq!(holder.summary["ok"], 32, "{}", holder.summary);
    let refusal = holder.summary["last_refusal"].as_str().expect("message");
    assert!(refusal.contains("admin_reserved_connections"), "{refusal}");
    // A second non-admin attempt is refused with the same reason and says what to do.
    let out = d.ctl_as_nobody(&["system", "health"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("non-admin users") && err.contains("try again"),
        "{err}"
    );
    // Root gets every reserved slot.
    let mut root_conns = Vec::new();
    for _ in 0..7 {
        let c = RawConn::admitted(&d.socket, Duration::from_secs(5))
            .expect("root gets a reserved slot");
        root_conns.push(c);
    }
    d.wait_connections(40, Duration::from_secs(5));
    drop(root_conns);
    holder.release();
    d.wait_connections(1, Duration::from_secs(5));
}

#[test]
fn backupctl_refused_at_the_cap_shows_busy_never_broken_pipe() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nmax_connections = 3\n".into()),
        ..Default::default()
    });
    d.wait_connections(1, Duration::from_secs(5));
    let mut held = Vec::new();
    for _ in 0..3 {
        let c = RawConn::admitted(&d.socket, Duration::from_secs(5)).expect("handshake");
        held.push(c);
    }
    // The refusal races the client's Hello; repeat to hit both orders.
    for round in 0..30 {
        let out = d.ctl(&["system", "health"]);
        assert_eq!(out.status.code(), Some(2), "round {round}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("maximum of 3 connections") && err.contains("try again"),
            "round {round}: {err}"
        );
        assert!(
            !err.to_lowercase().contains("broken pipe"),
            "round {round}: {err}"
        );
        let out = d.ctl(&["--json", "system", "health"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
        assert_eq!(v["error"]["code"], "Busy", "round {round}: {v}");
    }
    drop(held);
    d.wait_connections(1, Duration::from_secs(5));
}
