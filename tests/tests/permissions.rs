//! Who may do what over the socket. Needs root (to run backupctl as `nobody`); CI runs as root.

use backupd_tests::{bin, is_root, json_ok, poll_until, DaemonOptions, TestDaemon};
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
    assert_eq!(who["role"], "viewer");
    assert_ne!(who["uid"], 0);

    let out = as_nobody(&["system", "shutdown"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "exit code 4 for PermissionDenied"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("system.manage"), "{err}");
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
fn default_socket_mode_is_0660_as_root_and_0600_otherwise() {
    let d = TestDaemon::start();
    let mode = std::fs::metadata(&d.socket)
        .expect("stat")
        .permissions()
        .mode();
    let expected = if is_root() { 0o660 } else { 0o600 };
    assert_eq!(mode & 0o777, expected);
}

#[test]
fn configured_socket_group_owns_the_socket_and_a_missing_one_is_a_config_error() {
    use std::os::unix::fs::MetadataExt;
    assert!(
        is_root(),
        "this test needs root (chown to another group); CI runs as root"
    );
    let group = nix::unistd::Group::from_name("nogroup")
        .expect("group lookup")
        .expect("Debian's `nogroup` group");
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nsocket_group = \"nogroup\"\nsocket_mode = \"0660\"\n".into()),
        ..Default::default()
    });
    let meta = std::fs::metadata(&d.socket).expect("stat");
    assert_eq!(meta.gid(), group.gid.as_raw());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let mut bad = TestDaemon::spawn(DaemonOptions {
        config: Some("[server]\nsocket_group = \"no-such-group-xyz\"\n".into()),
        ..Default::default()
    });
    let status = bad
        .wait_exit(std::time::Duration::from_secs(10))
        .expect("exits");
    assert_eq!(status.code(), Some(78));
    let log = bad.log_text();
    assert!(
        log.contains("no-such-group-xyz") && log.contains("does not exist"),
        "{log}"
    );
}

#[test]
fn user_mode_uses_xdg_directories() {
    assert!(
        is_root(),
        "this test needs root (it runs backupd as `nobody`); CI runs as root"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path().join("home");
    let runtime = dir.path().join("run");
    for d in [&home, &runtime] {
        std::fs::create_dir(d).expect("mkdir");
        nix::unistd::chown(d.as_path(), Some(nix::unistd::Uid::from_raw(65534)), None)
            .expect("chown");
    }
    let daemon_bin = dir.path().join("backupd");
    std::fs::copy(bin("backupd"), &daemon_bin).expect("copy backupd");
    let client = dir.path().join("backupctl");
    std::fs::copy(bin("backupctl"), &client).expect("copy backupctl");
    let env = [
        ("HOME", home.clone()),
        ("XDG_RUNTIME_DIR", runtime.clone()),
        ("XDG_STATE_HOME", home.join("state")),
        ("XDG_CONFIG_HOME", home.join("config")),
    ];
    let mut daemon = Command::new("runuser");
    daemon.args(["-u", "nobody", "--"]).arg(&daemon_bin);
    for (k, v) in &env {
        daemon.env(k, v);
    }
    let mut daemon = daemon
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn backupd as nobody");
    let socket = runtime.join("backupd").join("backupd.sock");
    let socket_mode = || {
        std::fs::metadata(&socket)
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    let as_nobody = |args: &[&str]| {
        let mut ctl = Command::new("runuser");
        ctl.args(["-u", "nobody", "--"]).arg(&client).args(args);
        for (k, v) in &env {
            ctl.env(k, v);
        }
        ctl.output().expect("backupctl")
    };
    let health = poll_until(std::time::Duration::from_secs(10), || {
        let out = as_nobody(&["--json", "system", "health"]);
        out.status.success().then_some(out)
    })
    .unwrap_or_else(|| as_nobody(&["--json", "system", "health"]));
    // A user daemon's socket is private to its user.
    assert_eq!(socket_mode(), Some(0o600), "user-mode socket mode");
    // The daemon's own uid is admin: it may shut its daemon down.
    let who = json_ok(&as_nobody(&["--json", "system", "whoami"]));
    let stop = as_nobody(&["system", "shutdown"]);
    let exited = backupd_tests::wait_child(
        &mut daemon,
        std::time::Duration::from_secs(30),
        "backupd (user mode)",
    );
    assert_eq!(who["role"], "admin");
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(exited.success());
    let v = json_ok(&health);
    assert_eq!(v["mode"], "user");
    assert_eq!(v["socket"], socket.display().to_string());
    assert_eq!(
        v["state_dir"],
        home.join("state/backupd").display().to_string()
    );
    let mode =
        std::fs::metadata(socket.parent().expect("dir")).map(|m| m.permissions().mode() & 0o777);
    assert!(
        matches!(mode, Ok(0o700) | Err(_)),
        "private socket directory: {mode:?}"
    );
}
