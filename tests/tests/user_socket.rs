//! The user-mode socket fallback `/tmp/backupd-UID` (no XDG_RUNTIME_DIR under su, runuser,
//! cron): created private, and when another user squatted it, refused by backupd and by
//! backupctl before a single byte reaches the squatter. Needs root (it runs binaries as other
//! uids); CI runs as root.

use backupd_tests::{
    as_uid_like_su, is_root, json_ok, poll_until, shared_tempdir, spare_uid, spare_uid_at,
    wait_child, wait_until, Attacker, KillOnDrop, NOBODY,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn received(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_squatted_fallback_socket_directory_is_refused_by_backupd_and_backupctl() {
    assert!(
        is_root(),
        "this test needs root (it runs binaries as other uids); CI runs as root"
    );
    let victim = spare_uid();
    let home = shared_tempdir();
    std::os::unix::fs::chown(home.path(), Some(victim), Some(victim)).expect("chown home");
    // The attack: `nobody` creates the victim's fallback directory first, open to all, and
    // listens in it.
    let squatted = PathBuf::from(format!("/tmp/backupd-{victim}"));
    let _ = std::fs::remove_dir_all(&squatted);
    std::fs::create_dir(&squatted).expect("mkdir squatted dir");
    std::os::unix::fs::chown(&squatted, Some(NOBODY), Some(NOBODY)).expect("chown");
    std::fs::set_permissions(&squatted, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(squatted.clone());
    let socket = squatted.join("backupd.sock");
    let log = squatted.join("fake.log");
    let _fake = Attacker::fake_daemon(env!("CARGO_BIN_EXE_attacker"), NOBODY, &socket, &log);

    // backupctl finds the socket by its default and refuses the daemon behind it.
    let out = as_uid_like_su("backupctl", victim, home.path())
        .args(["system", "health"])
        .output()
        .expect("backupctl");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        socket.to_str().expect("utf8"),
        "uid 65534",
        "--socket-owner",
    ] {
        assert!(err.contains(part), "{part:?} missing: {err}");
    }
    // An explicit --socket alone is not enough.
    let out = as_uid_like_su("backupctl", victim, home.path())
        .arg("--socket")
        .arg(&socket)
        .args(["--json", "system", "health"])
        .output()
        .expect("backupctl");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(v["error"]["code"], "PermissionDenied");

    // backupd refuses to put its socket there, naming the directory, its owner and mode.
    let out = as_uid_like_su("backupd", victim, home.path())
        .output()
        .expect("backupd");
    assert_eq!(out.status.code(), Some(73), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        squatted.to_str().expect("utf8"),
        "uid 65534",
        "0777",
        "XDG_RUNTIME_DIR",
    ] {
        assert!(err.contains(part), "{part:?} missing: {err}");
    }
    assert!(socket.exists(), "the fake's socket is left alone");
    // Nothing reached the fake: it saw the two connections, not one byte of a Hello.
    let seen = poll_until(Duration::from_secs(5), || {
        let seen = received(&log);
        (seen.len() >= 2).then_some(seen)
    })
    .unwrap_or_else(|| received(&log));
    assert_eq!(seen, ["received 0", "received 0"], "{seen:?}");

    // Naming the owner is the way to talk to another user's daemon on purpose; then the Hello
    // goes out (which also shows the fake would have seen one).
    let out = as_uid_like_su("backupctl", victim, home.path())
        .arg("--socket")
        .arg(&socket)
        .args(["--socket-owner", "nobody", "system", "health"])
        .output()
        .expect("backupctl");
    assert_ne!(out.status.code(), Some(4), "{}", text(&out));
    let seen = poll_until(Duration::from_secs(5), || {
        let seen = received(&log);
        (seen.len() == 3).then_some(seen)
    })
    .expect("a third connection");
    assert_ne!(seen[2], "received 0", "{seen:?}");
}

#[test]
fn the_fallback_socket_directory_is_created_private() {
    assert!(
        is_root(),
        "this test needs root (it runs backupd as another uid); CI runs as root"
    );
    let victim = spare_uid_at(1);
    let home = shared_tempdir();
    std::os::unix::fs::chown(home.path(), Some(victim), Some(victim)).expect("chown home");
    let dir = PathBuf::from(format!("/tmp/backupd-{victim}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut daemon = KillOnDrop(
        as_uid_like_su("backupd", victim, home.path())
            .stderr(Stdio::null())
            .spawn()
            .expect("backupd"),
    );
    let health = wait_until("the user daemon", Duration::from_secs(20), || {
        let out = as_uid_like_su("backupctl", victim, home.path())
            .args(["--json", "system", "health"])
            .output()
            .ok()?;
        out.status.success().then_some(out)
    });
    let meta = std::fs::symlink_metadata(&dir).expect("fallback dir");
    let mode = meta.mode() & 0o7777;
    let stop = as_uid_like_su("backupctl", victim, home.path())
        .args(["system", "shutdown"])
        .output()
        .expect("shutdown");
    let status = wait_child(&mut daemon.0, Duration::from_secs(30), "backupd");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        json_ok(&health)["socket"],
        format!("{}/backupd.sock", dir.display())
    );
    assert!(meta.is_dir() && meta.uid() == victim, "{meta:?}");
    assert_eq!(mode, 0o700);
    assert!(stop.status.success() && status.success(), "{}", text(&stop));
}
