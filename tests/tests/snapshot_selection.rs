//! `latest` in a snapshot spec means the newest snapshot that holds the path asked for,
//! narrowed by `--host`, `--tag` and `--source`; `snapshots` filters by the same rules.

use backupd_tests::{json_ok, s, text, wait_until, TestDaemon};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Restores `spec` (with `extra` flags) into a fresh directory; returns what `file` holds
/// there, found by its absolute path under the target.
fn restore_file(d: &TestDaemon, spec: &str, file: &Path, extra: &[&str]) -> String {
    let target = tempfile::tempdir_in(d.dir.path()).expect("target");
    let mut args = vec!["restore", spec, "--target", s(target.path())];
    args.extend_from_slice(extra);
    let out = d.ctl(&args);
    assert!(
        out.status.success(),
        "restore {spec} {extra:?}: {}",
        text(&out)
    );
    std::fs::read_to_string(target.path().join(file.file_name().expect("name")))
        .unwrap_or_else(|e| panic!("{} not restored: {e}", file.display()))
}

fn backup(d: &TestDaemon, dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--json", "backup", "--force", s(dir)];
    args.extend_from_slice(extra);
    json_ok(&d.ctl(&args))["snapshot"]
        .as_str()
        .expect("snapshot id")
        .to_owned()
}

/// The snapshots of `source` (by `snapshots --source`), once there are `at_least`.
fn source_snapshots(d: &TestDaemon, source: &str, at_least: usize) -> Vec<Value> {
    wait_until(
        &format!("{at_least} snapshots of source {source}"),
        Duration::from_secs(60),
        || {
            let list = json_ok(&d.ctl(&["--json", "snapshots", "--source", source]));
            let list = list.as_array()?.clone();
            (list.len() >= at_least).then_some(list)
        },
    )
}

#[test]
fn latest_is_the_newest_snapshot_of_the_path_even_when_another_source_is_newer() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let docs = d.dir.path().join("home/u/Documents");
    let other = d.dir.path().join("srv/other");
    std::fs::create_dir_all(&docs).expect("mkdir");
    std::fs::create_dir_all(&other).expect("mkdir");
    let file = docs.join("f.txt");
    std::fs::write(&file, "documents v1").expect("write");
    std::fs::write(other.join("g.txt"), "other").expect("write");

    // Two watched sources; the other one's snapshot is the newer.
    json_ok(&d.ctl(&["--json", "source", "add", s(&docs), "--name", "docs"]));
    let docs_snaps = source_snapshots(&d, "docs", 1);
    json_ok(&d.ctl(&["--json", "source", "add", s(&other), "--name", "other"]));
    let other_snaps = source_snapshots(&d, "other", 1);
    assert!(
        other_snaps[0]["time_ns"].as_i64() > docs_snaps[0]["time_ns"].as_i64(),
        "the other source's snapshot is the newer: {other_snaps:?} {docs_snaps:?}"
    );
    let all = json_ok(&d.ctl(&["--json", "snapshots"]));
    let newest = all.as_array().and_then(|a| a.last()).expect("snapshots");
    assert_eq!(newest["source"], "other", "{all:#}");

    let spec = format!("latest:{}", file.display());
    assert_eq!(restore_file(&d, &spec, &file, &[]), "documents v1");
    assert_eq!(
        restore_file(&d, &spec, &file, &["--source", "docs"]),
        "documents v1"
    );

    // Filters that leave nothing holding the path: the error names the path, the filters and
    // the newest snapshot considered (the other source's, which does not hold the path).
    let target = d.dir.path().join("nothing");
    let out = d.ctl(&[
        "restore",
        &spec,
        "--target",
        s(&target),
        "--source",
        "other",
    ]);
    // Refused at submission: a usage error, nothing queued.
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let other_id = other_snaps[0]["id"].as_str().expect("id");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("source other"), "{stderr}");
    assert!(stderr.contains(&other_id[..8]), "{stderr}");
    assert!(!target.join("f.txt").exists());

    // `snapshots --path` lists the snapshots holding the file: the docs source's only.
    let holding = json_ok(&d.ctl(&["--json", "snapshots", "--path", s(&file)]));
    let sources: Vec<&str> = holding
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["source"].as_str().unwrap_or("-"))
        .collect();
    assert!(
        !sources.is_empty() && sources.iter().all(|s| *s == "docs"),
        "{holding:#}"
    );
}

#[test]
fn a_snapshot_of_a_directory_above_the_path_counts_and_host_and_tags_narrow_latest() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let home = d.dir.path().join("home/u");
    let docs = home.join("Documents");
    let sibling = d.dir.path().join("home/u2");
    std::fs::create_dir_all(&docs).expect("mkdir");
    std::fs::create_dir_all(&sibling).expect("mkdir");
    let file = docs.join("f.txt");
    let spec = format!("latest:{}", file.display());

    std::fs::write(&file, "v1 docs alpha").expect("write");
    backup(&d, &docs, &["--host", "alpha", "--tag", "daily"]);
    std::fs::write(&file, "v2 home alpha").expect("write");
    backup(
        &d,
        &home,
        &["--host", "alpha", "--tag", "daily", "--tag", "home"],
    );
    std::fs::write(&file, "v3 docs beta").expect("write");
    backup(&d, &docs, &["--host", "beta"]);
    // Newest of all, but `/home/u2` does not hold `/home/u/...` (whole components).
    std::fs::write(sibling.join("x"), "x").expect("write");
    let newest = backup(&d, &sibling, &["--host", "alpha"]);

    assert_eq!(restore_file(&d, &spec, &file, &[]), "v3 docs beta");
    assert_eq!(
        restore_file(&d, &spec, &file, &["--host", "alpha"]),
        "v2 home alpha"
    );
    assert_eq!(
        restore_file(&d, &spec, &file, &["--tag", "daily"]),
        "v2 home alpha"
    );
    // Every tag given must be there.
    assert_eq!(
        restore_file(
            &d,
            &spec,
            &file,
            &["--host", "alpha", "--tag", "daily", "--tag", "home"]
        ),
        "v2 home alpha"
    );
    let out = d.ctl(&[
        "restore",
        &spec,
        "--target",
        s(&d.dir.path().join("none")),
        "--host",
        "alpha",
        "--tag",
        "weekly",
    ]);
    // Refused at submission: a usage error, nothing queued.
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host alpha") && stderr.contains("tag weekly"),
        "{stderr}"
    );
    // A path nothing holds: the newest snapshot considered is named.
    let missing = d.dir.path().join("home/nobody/file");
    let out = d.ctl(&[
        "restore",
        &format!("latest:{}", missing.display()),
        "--target",
        s(&d.dir.path().join("none2")),
    ]);
    // Refused at submission: a usage error, nothing queued.
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains(&newest[..8]),
        "{stderr}"
    );

    // The listing takes the same filters.
    let listed = json_ok(&d.ctl(&["--json", "snapshots", "--path", s(&file), "--host", "alpha"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed:#}");
    let tagged = json_ok(&d.ctl(&["--json", "snapshots", "--tag", "daily", "--tag", "home"]));
    assert_eq!(tagged.as_array().map(Vec::len), Some(1), "{tagged:#}");
}
