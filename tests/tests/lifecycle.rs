//! Start, serve, reload, stop: the daemon's life as an administrator sees it.

use backupd_tests::{
    bin, ctl, json_ok, poll_until, wait_until, DaemonOptions, RawConn, TestDaemon,
};
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn health_reports_ok_and_version_as_json() {
    let d = TestDaemon::start();
    let out = d.ctl(&["--json", "system", "health"]);
    let v = json_ok(&out);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], backupd_common::VERSION);
    assert_eq!(v["pid"], d.pid());
    assert_eq!(v["socket"], d.socket.display().to_string());
    assert_eq!(v["state_dir"], d.state_dir.display().to_string());
    assert!(v["config_file"].is_null());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "one JSON object"
    );
    assert!(d.state_dir.join("state.sled").is_dir());

    let human = d.ctl(&["system", "health"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("status:") && text.contains("ok"), "{text}");
    assert!(text.contains("embedded defaults"), "{text}");
}

#[test]
fn whoami_reports_uid_and_role() {
    let d = TestDaemon::start();
    let v = json_ok(&d.ctl(&["--json", "system", "whoami"]));
    assert_eq!(v["uid"], nix::unistd::getuid().as_raw());
    assert_eq!(v["gid"], nix::unistd::getgid().as_raw());
    // Root is always super-admin; the daemon's own uid (a user-mode daemon's owner) is admin.
    let expected = if nix::unistd::getuid().is_root() {
        "super-admin"
    } else {
        "admin"
    };
    assert_eq!(v["role"], expected);
}

#[test]
fn watch_health_streams_reports_then_ends() {
    let d = TestDaemon::start();
    let out = d.ctl(&[
        "--json",
        "system",
        "health",
        "--watch",
        "--interval",
        "100ms",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["status"] == "ok"));
}

#[test]
fn sigterm_exits_zero_promptly_and_removes_the_socket() {
    let mut d = TestDaemon::start();
    // An idle client must not hold up the stop.
    let mut idle = RawConn::connect(&d.socket).expect("connect");
    idle.handshake().expect("handshake");
    d.signal(Signal::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .expect("exited within 10 s");
    assert!(status.success(), "exit status {status}");
    assert!(!d.socket.exists(), "socket file left behind");
    assert!(idle.closed_by_peer());
    assert!(d.log_text().contains("backupd stopped"));
}

#[test]
fn system_shutdown_replies_then_stops() {
    let mut d = TestDaemon::start();
    let out = d.ctl(&["--json", "system", "shutdown"]);
    let v = json_ok(&out);
    assert_eq!(v["shutting_down"], true);
    let status = d.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    assert!(!d.socket.exists());
}

#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let d = TestDaemon::start();
    let other_state = d.dir.path().join("other-state");
    let out = Command::new(bin("backupd"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("--state-dir")
        .arg(&other_state)
        .output()
        .expect("run second backupd");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains(&d.socket.display().to_string()), "{err}");
    // The first one is unharmed.
    assert_eq!(
        json_ok(&d.ctl(&["--json", "system", "health"]))["status"],
        "ok"
    );
}

#[test]
fn second_daemon_on_the_same_state_dir_names_the_lock() {
    let d = TestDaemon::start();
    let out = Command::new(bin("backupd"))
        .arg("--socket")
        .arg(d.dir.path().join("other.sock"))
        .arg("--state-dir")
        .arg(&d.state_dir)
        .output()
        .expect("run second backupd");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("locked"), "{err}");
    assert!(
        !d.dir.path().join("other.sock").exists(),
        "socket left behind"
    );
}

#[test]
fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("backupd.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists());
    let mut daemon = Command::new(bin("backupd"))
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let ok = poll_until(Duration::from_secs(10), || {
        ctl(&socket, &["system", "health"])
            .status
            .success()
            .then_some(())
    })
    .is_some();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(ok, "daemon did not take over the stale socket");
}

#[test]
fn a_regular_file_at_the_socket_path_is_never_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not-a-socket");
    std::fs::write(&path, b"precious").expect("write");
    let out = Command::new(bin("backupd"))
        .arg("--socket")
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a socket"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&path).expect("read"), b"precious");
}

#[test]
fn check_config_names_the_file_and_the_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nmax_connections = 10\nmax_conections = 5\n").expect("write");
    let out = Command::new(bin("backupd"))
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&bad.display().to_string()), "{err}");
    assert!(err.contains("max_conections"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    std::fs::write(&bad, "[server]\nsocket_mode = \"0999\"\n").expect("write");
    let out = Command::new(bin("backupd"))
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("server.socket_mode"),
        "{}",
        stderr(&out)
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[daemon]\nlog_level = \"debug\"\n[server]\nidle_timeout = \"2m\"\n",
    )
    .expect("write");
    let out = Command::new(bin("backupd"))
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));

    let missing = dir.path().join("missing.toml");
    let out = Command::new(bin("backupd"))
        .args(["--check-config", "--config"])
        .arg(&missing)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.toml"));
}

#[test]
fn bad_config_at_start_is_refused_with_the_key() {
    let d = TestDaemon::spawn(DaemonOptions {
        config: Some("[server]\nmax_connections = 0\n".into()),
        ..Default::default()
    });
    let mut d = d;
    let status = d.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(
        status.code(),
        Some(78),
        "EX_CONFIG, so systemd does not restart-loop"
    );
    assert!(
        d.log_text().contains("server.max_connections"),
        "{}",
        d.log_text()
    );
    assert!(!d.socket.exists());
}

#[test]
fn sighup_with_an_invalid_config_keeps_the_old_one() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nidle_timeout = \"5m\"\n".into()),
        ..Default::default()
    });
    std::fs::write(d.config_path(), "[server]\nidle_timeout = \"soon\"\n").expect("write");
    d.signal(Signal::SIGHUP);
    d.wait_log_line(&["reload rejected"], Duration::from_secs(5));
    assert!(d.log_text().contains("idle_timeout"), "{}", d.log_text());
    assert_eq!(
        json_ok(&d.ctl(&["--json", "system", "health"]))["status"],
        "ok"
    );

    // `system reload` reports the same error to the caller, with exit code 2.
    let out = d.ctl(&["system", "reload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("idle_timeout"), "{}", stderr(&out));

    // A valid file is applied and the change is reported.
    std::fs::write(d.config_path(), "[server]\nidle_timeout = \"300ms\"\n").expect("write");
    let v = json_ok(&d.ctl(&["--json", "system", "reload"]));
    assert_eq!(v["applied"], serde_json::json!(["server.idle_timeout"]));
    // ... and really in force: an idle connection now times out quickly.
    let mut c = RawConn::connect(&d.socket).expect("connect");
    c.handshake().expect("handshake");
    match c.recv().expect("recv") {
        Some(backupd_common::protocol::ServerMessage::Fatal(e)) => {
            assert_eq!(e.code, backupd_common::error::ErrorCode::Timeout)
        }
        other => panic!("expected idle timeout, got {other:?}"),
    }
}

#[test]
fn sighup_applies_a_valid_config() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nmax_connections = 100\n".into()),
        ..Default::default()
    });
    std::fs::write(d.config_path(), "[server]\nmax_connections = 200\n").expect("write");
    d.signal(Signal::SIGHUP);
    d.wait_log_line(&["configuration reloaded"], Duration::from_secs(5));
    assert!(d.log_text().contains("server.max_connections"));
}

#[test]
fn sd_notify_reports_ready_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut d = TestDaemon::start_with(DaemonOptions {
        env: vec![("NOTIFY_SOCKET".into(), notify_path.display().to_string())],
        ..Default::default()
    });
    let mut buf = [0u8; 4096];
    let n = notify.recv(&mut buf).expect("READY datagram");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(msg.contains("STATUS=serving on"), "{msg}");
    d.signal(Signal::SIGTERM);
    let n = notify.recv(&mut buf).expect("STOPPING datagram");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.contains("STOPPING=1"), "{msg}");
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .expect("exit")
        .success());
}

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    let Ok(activate) = which("systemd-socket-activate") else {
        panic!(
            "systemd-socket-activate is required (apt-get install systemd); .ci/run installs it"
        );
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("activated.sock");
    let mut child = Command::new(activate)
        .arg("-l")
        .arg(&socket)
        .arg(bin("backupd"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(dir.path().join("unused.sock"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn systemd-socket-activate");
    wait_until("the socket", Duration::from_secs(10), || {
        socket.exists().then_some(())
    });
    let out = ctl(&socket, &["--json", "system", "health"]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    let status = child.wait().expect("wait");
    let v = json_ok(&out);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["socket_activated"], true);
    assert_eq!(v["socket"], socket.display().to_string());
    assert!(status.success(), "{status}");
    assert!(!dir.path().join("unused.sock").exists());
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .ok_or(())
}

#[test]
fn watchdog_pings_at_half_the_requested_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // WATCHDOG_PID must be backupd's own pid: a shell exports its pid, then execs backupd.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(bin("backupd"))
        .arg("--socket")
        .arg(dir.path().join("d.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut buf = [0u8; 4096];
    let mut pings = Vec::new();
    let start = Instant::now();
    while pings.len() < 7 && start.elapsed() < Duration::from_secs(10) {
        let Ok(n) = notify.recv(&mut buf) else { break };
        if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
            pings.push(Instant::now());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(pings.len(), 7, "seven WATCHDOG=1 pings");
    // The median gap, so one late wake-up on a loaded machine does not decide: half of the
    // 200 ms interval is 100 ms; the full interval would be a miss under load.
    let mut gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(50) && median <= Duration::from_millis(150),
        "pings every ~100 ms (half of 200 ms), median gap {median:?} of {gaps:?}"
    );
}
