//! Who may do what over the socket. Needs root (to run backupctl as `nobody`); CI runs as root.

use backupd_tests::{bin, is_root, json_ok, DaemonOptions, TestDaemon};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn non_root_caller_reads_health_but_cannot_shut_down() {
    assert!(
        is_root(),
        "this test needs root (it runs backupctl as `nobody`); CI runs tests as root"
    );
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nsocket_mode = \"0666\"\n".into()),
        ..Default::default()
    });
    // `nobody` must be able to reach the socket and run the client binary.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mode = std::fs::metadata(&d.socket)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666, "socket mode from server.socket_mode");
    let client = d.dir.path().join("backupctl");
    std::fs::copy(bin("backupctl"), &client).expect("copy backupctl");

    let as_nobody = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&client)
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .output()
            .expect("runuser")
    };

    let v = json_ok(&as_nobody(&["--json", "system", "health"]));
    assert_eq!(v["status"], "ok");

    let who = json_ok(&as_nobody(&["--json", "system", "whoami"]));
    assert_eq!(who["role"], "observer");
    assert_ne!(who["uid"], 0);

    let out = as_nobody(&["system", "shutdown"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "exit code 4 for PermissionDenied"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("system.admin"), "{err}");
    assert!(err.contains("system shutdown"), "{err}");

    let out = as_nobody(&["--json", "system", "reload"]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(v["error"]["code"], "PermissionDenied");

    // The daemon keeps running.
    assert_eq!(
        json_ok(&d.ctl(&["--json", "system", "health"]))["status"],
        "ok"
    );
}

#[test]
fn default_user_mode_socket_is_private() {
    let d = TestDaemon::start();
    let mode = std::fs::metadata(&d.socket)
        .expect("stat")
        .permissions()
        .mode();
    let expected = if is_root() { 0o660 } else { 0o600 };
    assert_eq!(mode & 0o777, expected);
}
