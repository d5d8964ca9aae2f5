//! Roles and bindings end to end: root runs the daemon and grants, the client runs as `nobody`
//! (or a uid without a passwd entry). Needs root; CI runs tests as root.

use backupd_tests::{
    bin, json_ok, poll_until, s, spare_uid_at, text, DaemonOptions, TestDaemon, NOBODY, OPEN_SOCKET,
};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::Duration;

fn open_daemon(extra_config: &str) -> TestDaemon {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!("{OPEN_SOCKET}{extra_config}")),
        ..Default::default()
    });
    d.open_to_all();
    d.wait_repo("default");
    d
}

/// backupctl run as `uid` (which need not exist in the user database).
fn ctl_as(d: &TestDaemon, uid: u32, args: &[&str]) -> Output {
    Command::new(bin("backupctl"))
        .uid(uid)
        .gid(uid)
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .output()
        .expect("run backupctl")
}

fn denied(out: &Output, permission: &str) -> String {
    assert_eq!(out.status.code(), Some(4), "expected a denial: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains(&format!("`{permission}`")), "{err}");
    err
}

fn granted(out: &Output) -> serde_json::Value {
    json_ok(out)
}

/// A directory `nobody` can read, to back up.
fn readable_dir(d: &TestDaemon) -> String {
    let dir = d.dir.path().join("mine");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("a.txt"), b"alpha").expect("write");
    s(&dir).to_owned()
}

#[test]
fn a_viewer_is_denied_backup_until_granted_user_and_revoke_takes_effect_at_once() {
    let d = open_daemon("");
    let dir = readable_dir(&d);
    let backup = ["backup", dir.as_str(), "--no-wait"];
    let err = denied(&d.ctl_as_nobody(&backup), "backup.own");
    assert!(err.contains("`backup`"), "names the request: {err}");
    assert!(err.contains("uid 65534"), "names the uid: {err}");
    assert!(
        err.contains("viewer (security.default_role)"),
        "names the role: {err}"
    );
    assert!(
        err.contains("backupctl security grant"),
        "says what to do: {err}"
    );

    let b = granted(&d.ctl(&["--json", "security", "grant", "user", "--uid", "nobody"]));
    assert_eq!(b["role"], "user");
    assert_eq!(b["subject_id"], NOBODY);
    assert_eq!(b["granted_by"], 0);
    let year_ms = 365 * 86_400 * 1000_u64;
    let left = b["expires_in_ms"].as_u64().expect("expires by default");
    assert!(left > year_ms - 60_000 && left <= year_ms, "{left}");

    let out = d.ctl_as_nobody(&backup);
    assert!(out.status.success(), "user may back up: {out:?}");
    let who = json_ok(&d.ctl_as_nobody(&["--json", "system", "whoami"]));
    assert_eq!(who["role"], "user");

    let id = b["id"].as_str().expect("id");
    let revoked = json_ok(&d.ctl(&["--json", "security", "revoke", id]));
    assert_eq!(revoked[0]["id"], id);
    denied(&d.ctl_as_nobody(&backup), "backup.own");
    let again = d.ctl(&["security", "revoke", id]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(
        text(&again).contains(&format!("no binding `{id}`")),
        "{again:?}"
    );
}

#[test]
fn a_binding_stops_granting_when_it_expires_without_a_restart() {
    let d = open_daemon("");
    let dir = readable_dir(&d);
    let out = d.ctl(&[
        "security",
        "grant",
        "user",
        "--uid",
        "nobody",
        "--expires",
        "2s",
    ]);
    assert!(out.status.success(), "{out:?}");
    let backup = ["backup", dir.as_str(), "--no-wait"];
    assert!(d.ctl_as_nobody(&backup).status.success());
    poll_until(Duration::from_secs(10), || {
        (d.ctl_as_nobody(&backup).status.code() == Some(4)).then_some(())
    })
    .expect("the binding expires within 10 s");
    denied(&d.ctl_as_nobody(&backup), "backup.own");
    let list = json_ok(&d.ctl(&["--json", "security", "bindings"]));
    assert_eq!(list[0]["expired"], true);
    assert_eq!(list[0]["expires_in_ms"], 0);
    assert!(text(&d.ctl(&["security", "bindings"])).contains("expired"));
}

#[test]
fn a_repo_scoped_binding_grants_on_its_repository_only() {
    let d = open_daemon("");
    let out = d.ctl(&[
        "security", "grant", "user", "--uid", "65534", "--repo", "default",
    ]);
    assert!(out.status.success(), "{out:?}");
    let dir = readable_dir(&d);
    let backup =
        |repo: &[&str]| d.ctl_as_nobody(&[&["backup", dir.as_str(), "--no-wait"], repo].concat());
    // Naming no repository means the default one for a request that works on one.
    let out = backup(&[]);
    assert!(out.status.success(), "{out:?}");
    assert!(backup(&["--repo", "default"]).status.success());
    let err = denied(&backup(&["--repo", "other"]), "backup.own");
    assert!(err.contains("viewer"), "{err}");

    let check = |args: &[&str]| d.ctl(&[&["security", "check", "--uid", "nobody"], args].concat());
    let on_default = check(&["snapshot.list", "--repo", "default"]);
    assert_eq!(on_default.status.code(), Some(0), "{on_default:?}");
    assert!(text(&on_default).contains("binding b1"), "{on_default:?}");
    assert_eq!(
        check(&["snapshot.list", "--repo", "other"]).status.code(),
        Some(4)
    );
    // Without a repository only unscoped bindings count.
    assert_eq!(check(&["snapshot.list"]).status.code(), Some(4));
    assert_eq!(check(&["system.read"]).status.code(), Some(0));
    let v = json_ok(&d.ctl(&[
        "--json",
        "security",
        "check",
        "--uid",
        "0",
        "security.manage",
    ]));
    assert_eq!(v["granted"], true);
    assert_eq!(v["granted_by"][0]["kind"], "root");
}

#[test]
fn nobody_mints_a_role_stronger_than_their_own_and_never_is_for_super_admins() {
    let d = open_daemon("");
    let admin = spare_uid_at(1);
    let admin_s = admin.to_string();
    let out = d.ctl(&["security", "grant", "admin", "--uid", &admin_s]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        ctl_as(&d, admin, &["security", "bindings"]).status.code(),
        Some(0)
    );
    let out = ctl_as(
        &d,
        admin,
        &["security", "grant", "super-admin", "--uid", &admin_s],
    );
    denied(&out, "security.manage");
    assert_eq!(
        json_ok(&d.ctl(&["--json", "security", "bindings"]))
            .as_array()
            .map(Vec::len),
        Some(1),
        "nothing was granted"
    );

    let out = d.ctl(&[
        "security",
        "grant",
        "user",
        "--uid",
        "nobody",
        "--expires",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out).contains("super-admin bindings only"), "{out:?}");
    let out = d.ctl(&[
        "security",
        "grant",
        "super-admin",
        "--uid",
        "nobody",
        "--expires",
        "never",
    ]);
    assert!(out.status.success(), "{out:?}");
    let list = json_ok(&d.ctl(&["--json", "security", "bindings"]));
    assert_eq!(list[1]["expires"], serde_json::Value::Null);

    // Granted bindings persist across a restart.
    let state = d.state_dir.clone();
    let mut d = d;
    d.stop();
    let d2 = TestDaemon::start_with(DaemonOptions {
        config: Some(OPEN_SOCKET.into()),
        state_dir: Some(state),
        ..Default::default()
    });
    let list = json_ok(&d2.ctl(&["--json", "security", "bindings"]));
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}

#[test]
fn declared_bindings_apply_and_follow_the_config_on_reload() {
    let declared = "[[security.binding]]\nrole = \"user\"\nuser = \"nobody\"\n\
                    expires = \"2099-01-01\"\n";
    let d = open_daemon(declared);
    let list = json_ok(&d.ctl(&["--json", "security", "bindings"]));
    assert_eq!(list[0]["id"], "config-1");
    assert_eq!(list[0]["declared"], true);
    assert_eq!(list[0]["granted_by"], serde_json::Value::Null);
    let dir = readable_dir(&d);
    let backup = ["backup", dir.as_str(), "--no-wait"];
    assert!(d.ctl_as_nobody(&backup).status.success());
    let out = d.ctl(&["security", "revoke", "config-1"]);
    assert!(
        text(&out).contains("declared in the config file"),
        "{out:?}"
    );

    // The same config again: the binding stays.
    assert!(d.ctl(&["system", "reload"]).status.success());
    assert!(d.ctl_as_nobody(&backup).status.success());
    // Removed from the config: gone at once.
    std::fs::write(d.config_path(), OPEN_SOCKET).expect("rewrite config");
    assert!(d.ctl(&["system", "reload"]).status.success());
    denied(&d.ctl_as_nobody(&backup), "backup.own");

    // A bad one is refused, naming the table and key, and the old config stays.
    std::fs::write(
        d.config_path(),
        format!(
            "{OPEN_SOCKET}[[security.binding]]\nrole = \"admin\"\nuid = 5\nexpires = \"never\"\n"
        ),
    )
    .expect("rewrite config");
    let out = d.ctl(&["system", "reload"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("security.binding[1].expires"),
        "{out:?}"
    );
}
