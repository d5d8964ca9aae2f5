//! backupctl's command line as users meet it: usage errors, help, and no daemon.

use std::process::Command;

fn backupctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_backupctl"))
}

#[test]
fn usage_error_exits_64() {
    let out = backupctl()
        .args(["system", "frobnicate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let out = backupctl().output().expect("run");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn help_exits_zero_and_lists_exit_codes() {
    let out = backupctl().arg("--help").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Exit codes"), "{text}");
}

#[test]
fn unreachable_daemon_exits_3_naming_the_socket_and_how_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nobody-home.sock");
    let out = backupctl()
        .arg("--socket")
        .arg(&socket)
        .args(["system", "health"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(err.contains("start it with `backupd`"), "{err}");
}

#[test]
fn socket_from_the_environment_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("env.sock");
    let out = backupctl()
        .env("BACKUPD_SOCKET", &socket)
        .args(["--json", "system", "health"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error object");
    assert_eq!(v["error"]["code"], "Unreachable");
    assert!(String::from_utf8_lossy(&out.stderr).contains("env.sock"));
}

/// `analytics` checks its flags and its `--path` before it looks for a daemon: a bad command
/// line says so (exit 64) even with no daemon to ask.
#[test]
fn analytics_refuses_bad_flags_and_paths_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nobody-home.sock");
    let run = |args: &[&str]| {
        backupctl()
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["--json", "analytics", "report", "--format", "html"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.contains("\"code\":\"Usage\""), "{reply}");
    let missing = dir.path().join("absent");
    let out = run(&[
        "analytics",
        "estimate",
        "--path",
        &missing.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = run(&["analytics", "predict", "--days", "91"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    // A good path is scanned, then the missing daemon is the failure (exit 3).
    let out = run(&[
        "analytics",
        "estimate",
        "--path",
        &dir.path().to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}
