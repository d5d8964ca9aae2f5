//! What restic and borg users reach for on day one: `snapshots` with filters, groups and a
//! size column, `stats`, `repo info`, `repo remove`, `repo key add|passwd`, `forget ID...`.
//! Every figure is checked against what the test itself wrote.

use backupd_tests::{
    json_ok, pseudo_random_bytes, s, text, wait_queue_idle, DaemonOptions, TestDaemon,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files of distinct random content (nothing deduplicates within them); returns their total
/// size.
fn fill(dir: &Path, sizes: &[usize], seed: u64) -> u64 {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (i, len) in sizes.iter().enumerate() {
        std::fs::write(
            dir.join(format!("f{i}")),
            pseudo_random_bytes(*len, seed + i as u64),
        )
        .expect("write");
    }
    sizes.iter().map(|n| *n as u64).sum()
}

fn backup(d: &TestDaemon, args: &[&str]) -> String {
    let mut full = vec!["--json", "backup"];
    full.extend_from_slice(args);
    json_ok(&d.ctl(&full))["snapshot"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Every file under `root` (relative path) with the SHA-256 of its bytes.
fn hash_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                let rel = path.strip_prefix(root).expect("under root").to_owned();
                out.insert(rel, hex(&Sha256::digest(&bytes)));
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn snapshots_filter_by_host_keep_the_latest_per_group_and_show_the_size() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let a = d.dir.path().join("a");
    let b = d.dir.path().join("b");
    let a_bytes = fill(&a, &[1000, 2345], 1);
    let b_bytes = fill(&b, &[777], 2);
    backup(&d, &[s(&a), "--host", "h1"]);
    backup(&d, &["--force", s(&a), "--host", "h1"]);
    let b1 = backup(&d, &[s(&b), "--host", "h2"]);
    let a3 = backup(&d, &["--force", s(&a), "--host", "h2"]);

    let all = json_ok(&d.ctl(&["--json", "snapshots"]));
    let sizes: Vec<u64> = all
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["size"].as_u64().expect("size"))
        .collect();
    assert_eq!(sizes, [a_bytes, a_bytes, b_bytes, a_bytes], "{all:#}");

    let h2 = json_ok(&d.ctl(&["--json", "snapshots", "--host", "h2"]));
    assert_eq!(ids(&h2), [b1.clone(), a3.clone()]);
    let newest = json_ok(&d.ctl(&["--json", "snapshots", "--latest", "1"]));
    assert_eq!(ids(&newest), std::slice::from_ref(&a3));

    let grouped = json_ok(&d.ctl(&[
        "--json",
        "snapshots",
        "--group-by",
        "paths",
        "--latest",
        "1",
    ]));
    let groups = grouped.as_array().expect("groups");
    assert_eq!(groups.len(), 2, "{grouped:#}");
    assert_eq!(groups[0]["group"]["paths"][0], s(&a));
    assert_eq!(ids(&groups[0]["snapshots"]), [a3]);
    assert_eq!(ids(&groups[1]["snapshots"]), [b1]);
    let by_host = json_ok(&d.ctl(&["--json", "snapshots", "--group-by", "host"]));
    let counts: Vec<(String, usize)> = by_host
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["group"]["host"].as_str().expect("host").to_owned(),
                g["snapshots"].as_array().map(Vec::len).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(counts, [("h1".to_owned(), 2), ("h2".to_owned(), 2)]);

    // The human table has the size column and says what size means.
    let human = d.ctl(&["snapshots", "--host", "h1"]);
    let out = String::from_utf8_lossy(&human.stdout);
    assert!(out.contains("size") && out.contains("3.3 KiB"), "{out}");
    assert!(
        out.contains("2 snapshots (size: bytes of the files"),
        "{out}"
    );
}

#[test]
fn stats_restore_size_is_the_bytes_written_and_raw_shows_the_dedup() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("src");
    let sizes = [300_000, 1_500_000, 12, 0, 64 * 1024];
    let total = fill(&src, &sizes, 7);
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink("f0", src.join("link")).expect("symlink");
    let first = backup(&d, &[s(&src)]);
    let second = backup(&d, &["--force", s(&src)]);

    let one = json_ok(&d.ctl(&["--json", "stats", &first]));
    assert_eq!(one["mode"], "restore-size");
    assert_eq!(one["bytes"].as_u64(), Some(total), "{one:#}");
    assert_eq!(one["files"].as_u64(), Some(sizes.len() as u64), "{one:#}");
    assert_eq!(one["other"].as_u64(), Some(1), "{one:#}");
    assert!(one.get("raw").is_none(), "{one:#}");
    // What a restore writes is what stats said.
    let target = d.dir.path().join("restored");
    let restored = json_ok(&d.ctl(&[
        "--json",
        "restore",
        &format!("{first}:{}", src.display()),
        "--target",
        s(&target),
    ]));
    assert_eq!(restored["bytes"].as_u64(), Some(total), "{restored:#}");

    // Every snapshot: twice the bytes, stored once.
    let all = json_ok(&d.ctl(&["--json", "stats"]));
    assert_eq!(all["bytes"].as_u64(), Some(2 * total), "{all:#}");
    assert_eq!(all["snapshots"].as_array().map(Vec::len), Some(2));
    let raw = json_ok(&d.ctl(&["--json", "stats", "--mode", "raw"]));
    let r = &raw["raw"];
    assert_eq!(r["dedup_ratio"].as_f64(), Some(2.0), "{raw:#}");
    assert!(r["data_blobs"].as_u64() >= Some(4), "{raw:#}");
    assert!(r["raw_bytes"].as_u64() >= Some(total), "{raw:#}");
    assert!(r["packs"].as_u64() >= Some(1), "{raw:#}");
    let pack_bytes = r["pack_bytes"].as_u64().expect("whole repository");
    assert!(
        pack_bytes >= r["stored_bytes"].as_u64().expect("stored"),
        "{raw:#}"
    );
    // Random data does not compress: the ratio is about 1.
    let c = r["compression_ratio"].as_f64().expect("ratio");
    assert!((0.9..1.1).contains(&c), "{raw:#}");
    // One snapshot named: its blobs only, no pack totals, no dedup.
    let raw_one = json_ok(&d.ctl(&["--json", "stats", "--mode", "raw", &second]));
    assert_eq!(
        raw_one["raw"]["dedup_ratio"].as_f64(),
        Some(1.0),
        "{raw_one:#}"
    );
    assert!(raw_one["raw"]["packs"].is_null(), "{raw_one:#}");

    let human = d.ctl(&["stats", "--mode", "raw"]);
    let out = String::from_utf8_lossy(&human.stdout);
    assert!(out.contains("dedup ratio 2.00x"), "{out}");
    let bad = d.ctl(&["stats", "nosuchid"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(stderr(&bad).contains("nosuchid"), "{}", text(&bad));
}

#[test]
fn repo_info_reports_format_chunker_counts_and_sizes() {
    let d = TestDaemon::start();
    let listed = d.wait_repo("default");
    let src = d.dir.path().join("src");
    let total = fill(&src, &[2_000_000, 5000], 3);
    backup(&d, &[s(&src)]);
    backup(&d, &["--force", s(&src)]);
    let info = json_ok(&d.ctl(&["--json", "repo", "info"]));
    assert_eq!(info["name"], "default");
    assert_eq!(info["id"], listed["id"]);
    assert_eq!(info["location"], listed["path"]);
    assert_eq!(info["format_version"], 2);
    assert_eq!(info["chunker"]["min_bytes"], 512 * 1024);
    assert_eq!(info["chunker"]["avg_bytes"], 1024 * 1024);
    assert_eq!(info["chunker"]["max_bytes"], 8 * 1024 * 1024);
    assert_eq!(info["snapshots"], 2);
    assert_eq!(info["key_files"], 1);
    assert!(info["index_files"].as_u64() >= Some(1), "{info:#}");
    assert!(info["packs"].as_u64() >= Some(1), "{info:#}");
    assert!(info["original_bytes"].as_u64() >= Some(total), "{info:#}");
    assert!(info["stored_bytes"].as_u64() >= Some(total), "{info:#}");
    assert_eq!(info["dedup_ratio"].as_f64(), Some(2.0), "{info:#}");
    let human = d.ctl(&["repo", "info", "default"]);
    let out = String::from_utf8_lossy(&human.stdout);
    assert!(
        out.contains("format version 2") && out.contains("2 snapshots"),
        "{out}"
    );
    let missing = d.ctl(&["repo", "info", "nope"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

#[test]
fn one_repository_is_never_registered_twice_and_remove_leaves_its_files_byte_identical() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, "horse").expect("pw");
    let repo = d.dir.path().join("repo-a");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "a",
        "--path",
        s(&repo),
        "--password-file",
        s(&pw),
    ]));
    let src = d.dir.path().join("src");
    fill(&src, &[4096, 100], 5);
    backup(&d, &["--repo", "a", s(&src)]);

    // The same location, and a copy of it (same repository id), under another name.
    let out = d.ctl(&[
        "repo",
        "add",
        "--name",
        "b",
        "--path",
        s(&repo),
        "--password-file",
        s(&pw),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("already registered as \"a\""),
        "{}",
        text(&out)
    );
    let copy = d.dir.path().join("copy-a");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&repo)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(cp.success());
    let out = d.ctl(&[
        "repo",
        "add",
        "--name",
        "c",
        "--path",
        s(&copy),
        "--password-file",
        s(&pw),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("\"a\""), "{}", text(&out));
    let names: Vec<String> = json_ok(&d.ctl(&["--json", "repo", "list"]))
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["a", "default"]);

    // In use by a source and a queued job: refused, naming them.
    let watched = d.dir.path().join("watched");
    std::fs::create_dir_all(&watched).expect("mkdir");
    json_ok(&d.ctl(&[
        "--json",
        "source",
        "add",
        s(&watched),
        "--name",
        "w",
        "--repo",
        "a",
        "--no-watch",
    ]));
    json_ok(&d.ctl(&["--json", "queue", "workers", "1"]));
    let blocker = d.submit(&["queue", "add", "noop", "--duration", "1h"]);
    d.wait_job(blocker, &["running"], std::time::Duration::from_secs(30));
    let queued = d.submit(&["backup", "--repo", "a", s(&src)]);
    let out = d.ctl(&["repo", "remove", "a"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("source w") && err.contains(&format!("backup job {queued}")),
        "{err}"
    );
    json_ok(&d.ctl(&["--json", "queue", "cancel", &queued.to_string()]));
    json_ok(&d.ctl(&["--json", "queue", "cancel", &blocker.to_string()]));
    json_ok(&d.ctl(&["--json", "source", "remove", "w"]));
    // The source's first backup, if it was still queued, is done before the tree is hashed.
    wait_queue_idle(&d, std::time::Duration::from_secs(60));

    let before = hash_tree(&repo);
    let before_list = json_ok(&d.ctl(&["--json", "snapshots", "--repo", "a"]));
    let removed = json_ok(&d.ctl(&["--json", "repo", "remove", "a"]));
    assert_eq!(removed["name"], "a");
    assert_eq!(hash_tree(&repo), before, "repository files changed");
    let gone = d.ctl(&["snapshots", "--repo", "a"]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone));
    // Registered again, it is the same repository with the same snapshots.
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "add",
        "--name",
        "a",
        "--path",
        s(&repo),
        "--password-file",
        s(&pw),
    ]));
    assert_eq!(hash_tree(&repo), before, "repository files changed");
    let after_list = json_ok(&d.ctl(&["--json", "snapshots", "--repo", "a"]));
    assert_eq!(ids(&after_list), ids(&before_list));
}

#[test]
fn key_add_gives_a_second_passphrase_and_passwd_retires_the_old_one() {
    let mut d = TestDaemon::start();
    d.wait_repo("default");
    let pw = |name: &str, text: &str| {
        let p = d.dir.path().join(name);
        std::fs::write(&p, text).expect("pw");
        p
    };
    let (a, b, c) = (pw("a", "first"), pw("b", "second"), pw("c", "third"));
    let repo = d.dir.path().join("repo-k");
    let register = |name: &str, pass: &Path| {
        d.ctl(&[
            "repo",
            "add",
            "--name",
            name,
            "--path",
            s(&repo),
            "--password-file",
            s(pass),
        ])
    };
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "k",
        "--path",
        s(&repo),
        "--password-file",
        s(&a),
    ]));
    let src = d.dir.path().join("src");
    fill(&src, &[1000], 9);
    let snap = backup(&d, &["--repo", "k", s(&src)]);

    let added = json_ok(&d.ctl(&[
        "--json",
        "repo",
        "key",
        "add",
        "k",
        "--password-file",
        s(&b),
    ]));
    assert_eq!(added["key_files"], 2, "{added:#}");
    assert!(added["removed"].as_array().is_some_and(Vec::is_empty));
    // Both passphrases open it: registered again with the second one.
    json_ok(&d.ctl(&["--json", "repo", "remove", "k"]));
    let out = register("kb", &b);
    assert!(out.status.success(), "{}", text(&out));
    json_ok(&d.ctl(&["--json", "repo", "remove", "kb"]));
    let out = register("k", &a);
    assert!(out.status.success(), "{}", text(&out));

    let missing = d.ctl(&["repo", "key", "passwd", "k"]);
    assert_eq!(missing.status.code(), Some(64), "{}", text(&missing));
    let changed = json_ok(&d.ctl(&[
        "--json",
        "repo",
        "key",
        "passwd",
        "k",
        "--password-file",
        s(&c),
    ]));
    assert_eq!(
        changed["removed"].as_array().map(Vec::len),
        Some(1),
        "{changed:#}"
    );
    assert_eq!(changed["key_files"], 2, "{changed:#}");
    let key_file = changed["daemon_key_file"].as_str().expect("key file");
    assert_eq!(std::fs::read_to_string(key_file).expect("key"), "third");

    // After a restart the daemon opens it with the new passphrase.
    d.stop();
    let d2 = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        ..Default::default()
    });
    let listed = json_ok(&d2.ctl(&["--json", "snapshots", "--repo", "k"]));
    assert_eq!(ids(&listed), [snap]);
    json_ok(&d2.ctl(&["--json", "repo", "remove", "k"]));
    let old = d2.ctl(&[
        "repo",
        "add",
        "--name",
        "k",
        "--path",
        s(&repo),
        "--password-file",
        s(&a),
    ]);
    assert_eq!(old.status.code(), Some(2), "{}", text(&old));
    assert!(stderr(&old).contains("wrong password"), "{}", text(&old));
    let new = d2.ctl(&[
        "repo",
        "add",
        "--name",
        "k",
        "--path",
        s(&repo),
        "--password-file",
        s(&c),
    ]);
    assert!(new.status.success(), "{}", text(&new));
}

#[test]
fn forget_by_id_removes_exactly_the_named_snapshots() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("src");
    fill(&src, &[10], 4);
    let made: Vec<String> = (0..3).map(|_| backup(&d, &["--force", s(&src)])).collect();
    let out = json_ok(&d.ctl(&["--json", "forget", &made[0][..8], &made[2]]));
    assert_eq!(out["removed"], 2, "{out:#}");
    let left = json_ok(&d.ctl(&["--json", "snapshots"]));
    assert_eq!(ids(&left), [made[1].clone()]);
    let unknown = d.ctl(&["forget", "ffffffff"]);
    // Refused at submission as a usage error: nothing is queued.
    assert_eq!(unknown.status.code(), Some(64), "{}", text(&unknown));
    assert_eq!(
        ids(&json_ok(&d.ctl(&["--json", "snapshots"]))),
        [made[1].clone()]
    );
}
