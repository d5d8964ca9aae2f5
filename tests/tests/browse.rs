//! Browsing snapshots with the real daemon and backupctl: `ls` (plain, `--long`,
//! `--recursive`, a subpath, a single file), `find` (which snapshots hold which version),
//! `diff` (each kind of change) and `cat` (byte for byte, a file of several content frames and
//! a binary one), their errors, and who may see what: a user browses only their own snapshots,
//! a viewer nothing. Needs root for the part run as other uids; CI runs tests as root.

use backupd_tests::{
    chown_tree, is_root, json_ok, pseudo_random_bytes, s, shared_tempdir, spare_uid_at, text,
    DaemonOptions, TestDaemon,
};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("JSON: {}", text(out)))
}

/// The stdout of a command that must succeed.
fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Sets a file's mtime to 2020-01-01 (content unchanged).
fn touch_old(path: &Path) {
    let st = Command::new("touch")
        .args(["-m", "-d", "2020-01-01T00:00:00Z"])
        .arg(path)
        .status()
        .expect("touch");
    assert!(st.success());
}

fn backup(d: &TestDaemon, path: &Path) -> String {
    let b = json_ok(&d.ctl(&["--json", "backup", s(path)]));
    b["snapshot"].as_str().expect("snapshot id").to_owned()
}

/// The snapshot ids of each version of the one path `find` matched.
fn versions(found: &Value) -> Vec<Vec<String>> {
    let matches = found["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), 1, "{found:#}");
    matches[0]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            v["snapshots"]
                .as_array()
                .expect("snapshots")
                .iter()
                .map(|s| s.as_str().expect("id").to_owned())
                .collect()
        })
        .collect()
}

/// The changes of a `diff --json` as (path relative to `base`, change, fields).
fn changes(diff: &Value, base: &str) -> Vec<(String, String, String)> {
    diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| {
            let p = c["path"].as_str()?.strip_prefix(base)?.to_owned();
            let fields: Vec<&str> = c["fields"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            Some((p, c["change"].as_str()?.to_owned(), fields.join(",")))
        })
        .collect()
}

#[test]
fn two_snapshots_are_listed_searched_compared_and_read_back_byte_for_byte() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).expect("mkdir");
    std::fs::write(src.join("a.txt"), b"alpha").expect("write");
    std::fs::write(src.join("keep.txt"), b"kept as it is").expect("write");
    std::fs::write(src.join("gone.txt"), b"soon gone").expect("write");
    std::fs::write(src.join("run.sh"), b"#!/bin/sh\n").expect("write");
    chmod(&src.join("run.sh"), 0o644);
    std::fs::write(src.join("touched.txt"), b"same bytes").expect("write");
    std::fs::write(src.join("sub/deeper/deep.txt"), b"deep").expect("write");
    // Several content frames (1 MiB each) and several chunks.
    let big = pseudo_random_bytes(5 * 1024 * 1024 + 123, 42);
    std::fs::write(src.join("big.bin"), &big).expect("write");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(src.join("binary.dat"), &binary).expect("write");
    std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");
    let first = backup(&d, &src);

    std::fs::write(src.join("a.txt"), b"alpha, second version").expect("write");
    std::fs::remove_file(src.join("gone.txt")).expect("rm");
    std::fs::write(src.join("new.txt"), b"new").expect("write");
    chmod(&src.join("run.sh"), 0o755);
    touch_old(&src.join("touched.txt"));
    let second = backup(&d, &src);
    assert_ne!(first, second);
    let base = s(&src).to_owned();

    // ls: the directory's names, the long form, everything below, a subpath, one file.
    let at = |snap: &str, p: &str| format!("{snap}:{base}{p}");
    let names = stdout(&d.ctl(&["ls", &at(&second, "")]));
    let listed: Vec<&str> = names.lines().collect();
    assert_eq!(
        listed,
        [
            "a.txt",
            "big.bin",
            "binary.dat",
            "keep.txt",
            "link",
            "new.txt",
            "run.sh",
            "sub/",
            "touched.txt"
        ],
        "{names}"
    );
    let long = stdout(&d.ctl(&["ls", "--long", &at(&second, "")]));
    let line = |name: &str| {
        long.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} in {long}"))
            .to_owned()
    };
    assert!(line("run.sh").starts_with("-rwxr-xr-x"), "{long}");
    assert!(line("link -> a.txt").starts_with("lrwxrwxrwx"), "{long}");
    assert!(line("big.bin").contains(&big.len().to_string()), "{long}");
    assert!(line("sub/").starts_with('d'), "{long}");
    let old = stdout(&d.ctl(&["ls", "--long", &at(&first, "")]));
    assert!(
        old.contains("-rw-r--r--") && old.contains("gone.txt"),
        "{old}"
    );
    let deep = stdout(&d.ctl(&["ls", "--recursive", &at(&second, "/sub")]));
    assert_eq!(
        deep.lines().collect::<Vec<_>>(),
        ["deeper/", "deeper/deep.txt"]
    );
    // Above what was backed up, `latest` is the newest snapshot with something below.
    let above = stdout(&d.ctl(&["ls", &format!("latest:{}", s(d.dir.path()))]));
    assert_eq!(above.trim(), "src/", "{above}");
    let one = json_ok(&d.ctl(&["--json", "ls", &at(&first, "/a.txt")]));
    assert_eq!(one["entries"].as_array().map(Vec::len), Some(1), "{one:#}");
    assert_eq!(one["entries"][0]["size"], 5);
    assert_eq!(one["entries"][0]["type"], "file");
    let all = json_ok(&d.ctl(&["--json", "ls", "-R", "latest"]));
    assert_eq!(all["snapshot"], second.as_str());
    assert!(all["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["path"] == format!("{base}/sub/deeper/deep.txt")));
    let cut = json_ok(&d.ctl(&["--json", "ls", "-R", "--limit", "3", "latest"]));
    assert_eq!(cut["entries"].as_array().map(Vec::len), Some(3));
    assert_eq!(cut["truncated"], true);

    // find: which snapshots hold which version.
    let found = json_ok(&d.ctl(&["--json", "find", "a.txt"]));
    assert_eq!(found["matches"][0]["path"], format!("{base}/a.txt"));
    assert_eq!(
        versions(&found),
        [vec![first.clone()], vec![second.clone()]]
    );
    let v = &found["matches"][0]["versions"];
    assert_eq!(
        (v[0]["size"].as_u64(), v[1]["size"].as_u64()),
        (Some(5), Some(21))
    );
    assert_ne!(v[0]["content"], v[1]["content"]);
    let kept = json_ok(&d.ctl(&["--json", "find", "keep.txt"]));
    assert_eq!(versions(&kept), [vec![first.clone(), second.clone()]]);
    let touched = json_ok(&d.ctl(&["--json", "find", "touched.txt"]));
    assert_eq!(
        versions(&touched),
        [vec![first.clone(), second.clone()]],
        "an mtime alone does not make a version"
    );
    let gone = json_ok(&d.ctl(&["--json", "find", "gone.txt"]));
    assert_eq!(versions(&gone), [vec![first.clone()]]);
    let only = json_ok(&d.ctl(&["--json", "find", "*.txt", "--snapshot", &second]));
    let paths: Vec<&str> = only["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .filter_map(|m| m["path"].as_str())
        .collect();
    assert!(!paths.iter().any(|p| p.ends_with("gone.txt")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("new.txt")), "{paths:?}");
    let by_path = json_ok(&d.ctl(&["--json", "find", "sub/**/*.txt"]));
    assert_eq!(
        by_path["matches"][0]["path"],
        format!("{base}/sub/deeper/deep.txt")
    );
    let under = json_ok(&d.ctl(&["--json", "find", "*.txt", "--path", &format!("{base}/sub")]));
    assert_eq!(under["matches"].as_array().map(Vec::len), Some(1));
    let human = stdout(&d.ctl(&["find", "a.txt"]));
    assert!(
        human.contains(&first[..8]) && human.contains(&second[..8]),
        "{human}"
    );
    let none = json_ok(&d.ctl(&["--json", "find", "no-such-*"]));
    assert_eq!(none["matches"].as_array().map(Vec::len), Some(0));

    // diff: every kind of change, and nothing below an unchanged subtree.
    let diff = json_ok(&d.ctl(&["--json", "diff", &first, &second]));
    let got = changes(&diff, &base);
    let expect = [
        ("/a.txt", "modified", "content,mtime"),
        ("/gone.txt", "removed", ""),
        ("/new.txt", "added", ""),
        ("/run.sh", "metadata", "mode"),
        ("/touched.txt", "metadata", "mtime"),
    ];
    for (p, change, fields) in expect {
        assert!(
            got.iter()
                .any(|(gp, gc, gf)| gp == p && gc == change && gf.starts_with(fields)),
            "{p} {change} {fields} in {got:?}"
        );
    }
    for unchanged in ["/keep.txt", "/big.bin", "/link", "/sub"] {
        assert!(!got.iter().any(|(p, _, _)| p == unchanged), "{got:?}");
    }
    assert_eq!(diff["summary"]["added"], 1);
    assert_eq!(diff["summary"]["removed"], 1);
    assert_eq!(diff["summary"]["modified"], 1);
    let human = stdout(&d.ctl(&["diff", &first, &second]));
    assert!(
        human.contains("1 added, 1 removed, 1 modified"),
        "summary line: {human}"
    );
    let sub = json_ok(&d.ctl(&[
        "--json",
        "diff",
        &first,
        &second,
        "--path",
        &format!("{base}/sub"),
    ]));
    assert_eq!(sub["changes"].as_array().map(Vec::len), Some(0), "{sub:#}");

    // cat: byte for byte, across frames, binary, and an older version.
    let cat = |spec: &str| {
        let out = d.ctl(&["cat", spec]);
        assert!(out.status.success(), "cat {spec}: {}", text(&out));
        out.stdout
    };
    assert!(cat(&at(&second, "/big.bin")) == big, "big.bin differs");
    assert!(
        cat(&at(&second, "/binary.dat")) == binary,
        "binary.dat differs"
    );
    assert_eq!(cat(&at(&first, "/a.txt")), b"alpha");
    assert_eq!(cat(&at("latest", "/a.txt")), b"alpha, second version");
    assert_eq!(cat(&at(&first, "/sub/deeper/deep.txt")), b"deep");

    // Errors.
    // `cat` has no JSON: its errors are the line on stderr, and nothing on stdout.
    let fails = |args: &[&str], code: i32, error: &str, says: &str| {
        let json_out = args[0] != "cat";
        let mut full = if json_out { vec!["--json"] } else { vec![] };
        full.extend_from_slice(args);
        let out = d.ctl(&full);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        let message = if json_out {
            let v = json(&out);
            assert_eq!(v["error"]["code"], error, "{args:?}: {v}");
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        } else {
            assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        assert!(message.contains(says), "{args:?}: {message}");
    };
    fails(&["ls", "ffffffff"], 2, "NotFound", "ffffffff");
    fails(
        &["ls", &at(&second, "/gone.txt")],
        2,
        "NotFound",
        "gone.txt",
    );
    fails(
        &["cat", &at(&second, "/sub")],
        2,
        "InvalidArgument",
        "is a directory",
    );
    fails(&["cat", &at(&second, "/nothing")], 2, "NotFound", "nothing");
    fails(&["diff", &first, "0000000"], 2, "NotFound", "0000000");
    fails(
        &["find", "[", "--snapshot", &second],
        2,
        "InvalidArgument",
        "pattern",
    );
    fails(&["ls", &at(&second, "/../etc")], 2, "InvalidArgument", "..");
    let out = d.ctl(&["cat", &second]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "cat without a path: {}",
        text(&out)
    );
    let out = d.ctl(&["--json", "cat", &at(&second, "/a.txt")]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "cat has no JSON: {}",
        text(&out)
    );
}

#[test]
fn a_user_browses_only_their_own_snapshots_and_a_viewer_none() {
    assert!(
        is_root(),
        "this test needs root (it runs backupctl as other uids); CI runs as root"
    );
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(
            "[server]\nsocket_mode = \"0666\"\n[security]\ndefault_role = \"user\"\n".into(),
        ),
        ..Default::default()
    });
    d.open_to_all();
    let base = shared_tempdir();
    let (alice, bob) = (spare_uid_at(0), spare_uid_at(1));
    let public = base.path().join("public");
    std::fs::create_dir(&public).expect("mkdir");
    std::fs::write(public.join("secret.txt"), b"root's").expect("write");
    let root_snap = backup(&d, &public);
    let home = base.path().join("alice");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::write(home.join("mine.txt"), b"alice's").expect("write");
    chown_tree(&home, alice, alice);
    chmod(&home, 0o700);
    let b = json(&d.ctl_as(alice, &["--json", "backup", s(&home)]));
    let own = b["snapshot"].as_str().expect("alice's snapshot").to_owned();

    // Her own: listed, found, read.
    let ls = json_ok(&d.ctl_as(alice, &["--json", "ls", "latest"]));
    assert_eq!(ls["snapshot"], own.as_str(), "{ls:#}");
    let mine = format!("{}:{}/mine.txt", own, s(&home));
    let out = d.ctl_as(alice, &["cat", &mine]);
    assert_eq!(out.stdout, b"alice's", "{}", text(&out));
    let found = json(&d.ctl_as(alice, &["--json", "find", "*.txt"]));
    assert_eq!(
        found["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{found:#}"
    );
    assert_eq!(
        found["matches"].as_array().map(Vec::len),
        Some(1),
        "{found:#}"
    );

    // Root's: as if it did not exist, for every command.
    let secret = format!("{}:{}/secret.txt", root_snap, s(&public));
    for args in [
        vec!["--json", "ls", root_snap.as_str()],
        vec!["--json", "diff", root_snap.as_str(), own.as_str()],
        vec![
            "--json",
            "find",
            "secret.txt",
            "--snapshot",
            root_snap.as_str(),
        ],
    ] {
        let out = d.ctl_as(alice, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert_eq!(json(&out)["error"]["code"], "NotFound", "{args:?}");
        assert!(!out.stdout.windows(6).any(|w| w == b"root's"));
    }
    let out = d.ctl_as(alice, &["cat", &secret]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty(), "no byte of root's file");
    assert!(text(&out).contains("not found"), "{}", text(&out));
    let none = json(&d.ctl_as(alice, &["--json", "find", "secret.txt"]));
    assert_eq!(
        none["matches"].as_array().map(Vec::len),
        Some(0),
        "{none:#}"
    );

    // A viewer may neither list nor read.
    json_ok(&d.ctl(&[
        "--json",
        "security",
        "grant",
        "viewer",
        "--uid",
        &bob.to_string(),
    ]));
    for args in [
        vec!["ls", "latest"],
        vec!["cat", secret.as_str()],
        vec!["find", "*"],
    ] {
        let out = d.ctl_as(bob, &args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("snapshot.list") || text(&out).contains("restore.own"));
    }
}
