//! Working on behalf of a user: root runs the daemon, unprivileged uids run backupctl, and the
//! kernel (not the daemon) decides what their jobs may read and write. Needs root (to run
//! backupctl as other uids); CI runs as root. The uids have no passwd entry
//! ([`spare_uid_at`]), so nothing is left behind on the machine.

use backupd_tests::{
    chown_tree, is_root, json_ok, pseudo_random_bytes, s, shared_tempdir, spare_uid_at, text,
    DaemonOptions, TestDaemon,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Every uid without a binding is a `user`; the socket is open to all.
const CONFIG: &str = "[server]\nsocket_mode = \"0666\"\n[security]\ndefault_role = \"user\"\n";

fn daemon(extra: &str) -> TestDaemon {
    assert!(
        is_root(),
        "this test needs root (it runs backupctl as other uids); CI runs as root"
    );
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!("{CONFIG}{extra}")),
        ..Default::default()
    });
    d.open_to_all();
    d
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("JSON: {}", text(out)))
}

fn write(path: &Path, data: &[u8], mode: u32) {
    std::fs::write(path, data).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A private home for `uid`: `0700`, owned by it, with a few files (one of them setuid).
fn home(base: &Path, name: &str, uid: u32) -> std::path::PathBuf {
    let home = base.join(name);
    mkdir(&home, 0o700);
    write(
        &home.join("notes.txt"),
        format!("{name}'s notes").as_bytes(),
        0o644,
    );
    write(
        &home.join("big.bin"),
        &pseudo_random_bytes(300_000, 7),
        0o600,
    );
    write(&home.join("tool"), b"#!/bin/sh\necho hi\n", 0o4755);
    mkdir(&home.join("docs"), 0o750);
    write(&home.join("docs/plan.txt"), b"the plan", 0o640);
    chown_tree(&home, uid, uid);
    // chown clears setuid bits: set it again, as the owner would.
    std::fs::set_permissions(home.join("tool"), std::fs::Permissions::from_mode(0o4755))
        .expect("chmod setuid");
    home
}

#[test]
fn a_user_backs_up_and_restores_their_own_files_owned_by_them_without_setuid() {
    let d = daemon("");
    let base = shared_tempdir();
    let alice = spare_uid_at(0);
    let a_home = home(base.path(), "alice", alice);
    let out = base.path().join("out");
    mkdir(&out, 0o700);
    chown_tree(&out, alice, alice);

    let backup = d.ctl_as(alice, &["--json", "backup", s(&a_home)]);
    let b = json_ok(&backup);
    assert_eq!(b["skipped"], serde_json::json!([]), "{b:#}");
    let snap = b["snapshot"].as_str().expect("snapshot id").to_owned();

    let spec = format!("{snap}:{}", s(&a_home));
    let r = json_ok(&d.ctl_as(alice, &["--json", "restore", &spec, "--target", s(&out)]));
    assert_eq!(r["failed"], serde_json::json!([]), "{r:#}");
    for name in ["notes.txt", "big.bin", "tool", "docs/plan.txt"] {
        let (orig, back) = (a_home.join(name), out.join(name));
        assert_eq!(
            std::fs::read(&orig).expect("original"),
            std::fs::read(&back).expect("restored"),
            "{name} byte for byte"
        );
        let meta = std::fs::symlink_metadata(&back).expect("stat");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (alice, alice),
            "{name} owned by the user"
        );
    }
    let tool = std::fs::metadata(out.join("tool"))
        .expect("stat tool")
        .mode();
    assert_eq!(tool & 0o7777, 0o755, "setuid stripped, the rest kept");
    let big = std::fs::metadata(out.join("big.bin")).expect("stat").mode();
    assert_eq!(big & 0o7777, 0o600);
}

#[test]
fn a_user_cannot_back_up_a_root_only_file_and_its_content_never_reaches_the_repository() {
    let d = daemon("");
    let base = shared_tempdir();
    let alice = spare_uid_at(0);
    let public = base.path().join("public");
    mkdir(&public, 0o755);
    write(&public.join("mine.txt"), b"alice's", 0o644);
    chown_tree(&public.join("mine.txt"), alice, alice);
    write(&public.join("secret"), b"TOP SECRET, root only", 0o600);

    let out = d.ctl_as(alice, &["--json", "backup", s(&public)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a partial backup: {}",
        text(&out)
    );
    let b = json(&out);
    let skipped = b["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{b:#}");
    assert!(
        skipped[0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/secret")),
        "{b:#}"
    );
    assert!(
        skipped[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ermission denied")),
        "the kernel refused the open: {b:#}"
    );

    // Root restores the user's snapshot: the root-only file is not in it.
    let snap = b["snapshot"].as_str().expect("snapshot");
    let check = tempfile::tempdir().expect("tempdir");
    let spec = format!("{snap}:{}", s(&public));
    json_ok(&d.ctl(&["--json", "restore", &spec, "--target", s(check.path())]));
    assert_eq!(
        std::fs::read(check.path().join("mine.txt")).expect("mine"),
        b"alice's"
    );
    assert!(
        !check.path().join("secret").exists(),
        "root's file was not backed up"
    );

    // A path inside a directory the user cannot enter is refused at submission, with the
    // kernel's answer (and not the daemon's view of the directory).
    let private = base.path().join("private");
    mkdir(&private, 0o700);
    write(&private.join("f"), b"x", 0o644);
    let out = d.ctl_as(alice, &["backup", s(&private.join("f"))]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_user_cannot_restore_into_etc_or_another_users_home() {
    let d = daemon("");
    let base = shared_tempdir();
    let (alice, bob) = (spare_uid_at(0), spare_uid_at(1));
    let a_home = home(base.path(), "alice", alice);
    let b_home = home(base.path(), "bob", bob);
    let b = json_ok(&d.ctl_as(alice, &["--json", "backup", s(&a_home)]));
    let spec = format!("{}:{}", b["snapshot"].as_str().expect("id"), s(&a_home));

    let etc = format!("/etc/backupd-on-behalf-{}", std::process::id());
    let stolen = b_home.join("stolen");
    for target in [etc.as_str(), s(&stolen)] {
        let out = d.ctl_as(alice, &["restore", &spec, "--target", target]);
        assert!(
            !out.status.success(),
            "restore into {target}: {}",
            text(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ermission denied"), "{target}: {err}");
        assert!(err.contains(target), "the error names the target: {err}");
        assert!(!Path::new(target).exists(), "nothing written at {target}");
    }
    let mut names: Vec<_> = std::fs::read_dir(&b_home)
        .expect("list bob's home")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["big.bin", "docs", "notes.txt", "tool"],
        "bob's home untouched"
    );

    // No target: the daemon's restore area is root's, so a user must name one.
    let out = d.ctl_as(alice, &["restore", &spec]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--target"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_user_backup_never_merges_into_a_queued_root_backup() {
    let d = daemon("[queue]\nworkers = 1\n");
    let base = shared_tempdir();
    let alice = spare_uid_at(0);
    let public = base.path().join("public");
    mkdir(&public, 0o755);
    write(&public.join("secret"), b"root only", 0o600);
    write(&public.join("open"), b"for all", 0o644);

    // The blocker holds the only worker so both backups wait in the queue side by side.
    let blocker = d.submit(&["queue", "add", "noop", "--duration", "60s"]);
    d.wait_job(blocker, &["running"], Duration::from_secs(10));
    let root_job = json_ok(&d.ctl(&["--json", "backup", "--no-wait", s(&public)]));
    let user_job = json_ok(&d.ctl_as(alice, &["--json", "backup", "--no-wait", s(&public)]));
    assert_ne!(
        root_job["id"], user_job["id"],
        "a user's submission rides on no root job"
    );
    assert_eq!(user_job["coalesced"], false);
    json_ok(&d.ctl(&["--json", "queue", "cancel", &blocker.to_string()]));

    let wait = |id: &serde_json::Value| {
        let id = id.as_u64().expect("id");
        d.wait_job(id, &["succeeded", "dead-letter"], Duration::from_secs(60))
    };
    let (root_done, user_done) = (wait(&root_job["id"]), wait(&user_job["id"]));
    assert_eq!(
        root_done["result"]["skipped"],
        serde_json::json!([]),
        "{root_done:#}"
    );
    let skipped = user_done["result"]["skipped"].as_array().expect("skipped");
    assert_eq!(
        skipped.len(),
        1,
        "the user's own job could not read it: {user_done:#}"
    );
}

#[test]
fn a_user_cannot_restore_or_build_on_a_snapshot_they_did_not_make() {
    let d = daemon("");
    let base = shared_tempdir();
    let alice = spare_uid_at(0);
    let public = base.path().join("public");
    mkdir(&public, 0o755);
    write(&public.join("secret"), b"root only", 0o600);
    let rooted = json_ok(&d.ctl(&["--json", "backup", s(&public)]));
    let root_snap = rooted["snapshot"].as_str().expect("id").to_owned();
    let out = base.path().join("out");
    mkdir(&out, 0o700);
    chown_tree(&out, alice, alice);

    // Root's snapshot does not exist for the user: the same answer as a made-up id.
    for spec in [root_snap.as_str(), "latest", "0123abcd"] {
        let res = d.ctl_as(alice, &["--json", "restore", spec, "--target", s(&out)]);
        assert!(!res.status.success(), "{spec}: {}", text(&res));
        assert_eq!(
            json(&res)["error"]["code"],
            "NotFound",
            "{spec}: {}",
            text(&res)
        );
        assert!(
            !text(&res).contains(&root_snap[..8]) || spec == root_snap,
            "{}",
            text(&res)
        );
    }
    assert_eq!(
        std::fs::read_dir(&out).expect("list").count(),
        0,
        "nothing restored"
    );

    // A backup by the user of the same directory has root's snapshot as its parent, yet the
    // unchanged root-only file is not taken over from it: the kernel is asked again.
    let res = d.ctl_as(alice, &["--json", "backup", s(&public)]);
    assert_eq!(res.status.code(), Some(1), "partial: {}", text(&res));
    let skipped = json(&res)["skipped"].clone();
    assert_eq!(skipped.as_array().map(Vec::len), Some(1), "{skipped:#}");
}

#[test]
fn a_user_sees_counts_and_restores_latest_among_their_own_snapshots_only() {
    let d = daemon("");
    let base = shared_tempdir();
    let (alice, bob) = (spare_uid_at(0), spare_uid_at(1));
    let a_home = home(base.path(), "alice", alice);
    let b_home = home(base.path(), "bob", bob);
    let a_backup = json_ok(&d.ctl_as(alice, &["--json", "backup", s(&a_home)]));
    let a_snap = a_backup["snapshot"].as_str().expect("id").to_owned();
    // The job says whose rights it worked with.
    let job = a_backup["job"].as_u64().expect("job id").to_string();
    let info = json_ok(&d.ctl_as(alice, &["--json", "queue", "job", &job]));
    assert_eq!(info["acts_as_uid"], alice, "{info:#}");
    let b_snap = json_ok(&d.ctl_as(bob, &["--json", "backup", s(&b_home)]))["snapshot"]
        .as_str()
        .expect("id")
        .to_owned();
    // Root's is the newest snapshot in the repository.
    let public = base.path().join("public");
    mkdir(&public, 0o755);
    write(&public.join("root.txt"), b"root's", 0o644);
    let r_snap = json_ok(&d.ctl(&["--json", "backup", s(&public)]))["snapshot"]
        .as_str()
        .expect("id")
        .to_owned();

    // The listing: only alice's own, with its owner.
    let list = json(&d.ctl_as(alice, &["--json", "snapshots"]));
    let ids: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list:#}"))
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [a_snap.as_str()], "{list:#}");
    assert_eq!(list[0]["owner_uid"], alice);
    let all = json_ok(&d.ctl(&["--json", "snapshots"]));
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(3),
        "root sees all: {all:#}"
    );
    let text_list = d.ctl_as(alice, &["snapshots"]);
    assert!(text_list.status.success(), "{}", text(&text_list));
    let shown = String::from_utf8_lossy(&text_list.stdout);
    assert!(
        shown.contains(&a_snap[..8]) && !shown.contains(&b_snap[..8]) && !shown.contains("bob"),
        "{shown}"
    );

    // `stats`: alice's snapshot only; naming bob's is the same as naming nothing.
    let st = json_ok(&d.ctl_as(alice, &["--json", "stats"]));
    assert_eq!(st["snapshots"], serde_json::json!([a_snap]), "{st:#}");
    assert_eq!(st["files"], 4, "{st:#}");
    let other = d.ctl_as(alice, &["--json", "stats", &b_snap]);
    assert_eq!(
        json(&other)["error"]["code"],
        "NotFound",
        "{}",
        text(&other)
    );
    // The packs on storage hold everyone's data: a user's view does not count them.
    let raw = json_ok(&d.ctl_as(alice, &["--json", "stats", "--mode", "raw"]));
    assert_eq!(raw["raw"]["packs"], serde_json::Value::Null, "{raw:#}");

    // `latest` is alice's newest, though root's is newer.
    let out = base.path().join("out");
    mkdir(&out, 0o700);
    chown_tree(&out, alice, alice);
    let r = json_ok(&d.ctl_as(alice, &["--json", "restore", "latest", "--target", s(&out)]));
    assert_eq!(r["snapshot"], a_snap.as_str(), "{r:#}");
    assert_ne!(r["snapshot"], r_snap.as_str());

    // A prefix is matched among alice's own: bob's never makes it ambiguous, and never matches.
    let res = d.ctl_as(
        alice,
        &["--json", "restore", &b_snap[..12], "--target", s(&out)],
    );
    assert_eq!(json(&res)["error"]["code"], "NotFound", "{}", text(&res));

    // Repositories are listed, without where they live.
    let repos = json_ok(&d.ctl_as(alice, &["--json", "repo", "list"]));
    assert_eq!(repos[0]["name"], "default", "{repos:#}");
    assert_eq!(repos[0]["path"], "(hidden: admins only)", "{repos:#}");
    assert_eq!(repos[0]["key_file"], "(hidden: admins only)", "{repos:#}");
    let info = json_ok(&d.ctl_as(alice, &["--json", "repo", "info"]));
    assert_eq!(info["location"], "(hidden: admins only)", "{info:#}");
    let root_view = json_ok(&d.ctl(&["--json", "repo", "list"]));
    assert_ne!(root_view[0]["path"], "(hidden: admins only)");
}

/// One line of the attacker's `session` output.
fn session_line(out: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("session output");
    line.trim().to_owned()
}

#[test]
fn a_role_granted_or_revoked_mid_connection_decides_the_next_reply() {
    use std::io::Write;
    let d = daemon("");
    let base = shared_tempdir();
    let alice = spare_uid_at(0);
    let a_home = home(base.path(), "alice", alice);
    json_ok(&d.ctl_as(alice, &["--json", "backup", s(&a_home)]));
    let public = base.path().join("public");
    mkdir(&public, 0o755);
    write(&public.join("f"), b"root's", 0o644);
    json_ok(&d.ctl(&["--json", "backup", s(&public)]));

    let mut session = backupd_tests::Attacker::command(
        env!("CARGO_BIN_EXE_attacker"),
        alice,
        &["session", s(&d.socket)],
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("spawn the session");
    let mut stdin = session.stdin.take().expect("stdin");
    let mut stdout = std::io::BufReader::new(session.stdout.take().expect("stdout"));
    assert_eq!(session_line(&mut stdout), "ready");
    let mut ask = || {
        writeln!(stdin, "snapshots").expect("ask");
        session_line(&mut stdout)
    };
    assert_eq!(ask(), "snapshots 1", "a user sees their own");

    let grant = &[
        "--json",
        "security",
        "grant",
        "admin",
        "--uid",
        &alice.to_string(),
    ];
    let b = json_ok(&d.ctl(grant));
    assert_eq!(ask(), "snapshots 2", "the same connection, now an admin");

    let id = b["id"].as_str().expect("binding id");
    json_ok(&d.ctl(&["--json", "security", "revoke", id]));
    assert_eq!(ask(), "snapshots 1", "revoked: back to the default role");
    let _ = session.kill();
    let _ = session.wait();
}
