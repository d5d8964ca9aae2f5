//! `repo migrate --to 2` through the real daemon and backupctl: a format 1 repository (the
//! tests/fixtures/format-v1 fixture) is converted in place, checks clean reading every pack as
//! format 2, and restores what it held byte for byte.

use backupd_tests::{json_ok, s, text, TestDaemon};
use std::path::Path;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-v1")
}

fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

/// Every regular file under `a` has the same bytes at the same place under `b`.
fn same_files(a: &Path, b: &Path) {
    for e in std::fs::read_dir(a).expect("read_dir").flatten() {
        let (pa, pb) = (e.path(), b.join(e.file_name()));
        let ft = e.file_type().expect("type");
        if ft.is_dir() {
            same_files(&pa, &pb);
        } else if ft.is_file() {
            assert_eq!(
                std::fs::read(&pa).expect("read"),
                std::fs::read(&pb).unwrap_or_else(|e| panic!("{}: {e}", pb.display())),
                "{}",
                pb.display()
            );
        }
    }
}

#[test]
fn a_format_1_repository_migrates_to_format_2_and_restores_byte_for_byte() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let repo = d.dir.path().join("v1repo");
    copy_tree(&fixture().join("repo"), &repo);
    let pw = fixture().join("password");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "add",
        "--name",
        "old",
        "--path",
        s(&repo),
        "--password-file",
        s(&pw),
    ]));
    let info = json_ok(&d.ctl(&["--json", "repo", "info", "old"]));
    assert_eq!(info["format_version"], 1, "{info:#}");
    let snaps = json_ok(&d.ctl(&["--json", "snapshots", "--repo", "old"]));
    let old_id = snaps[0]["id"].as_str().expect("id").to_owned();

    let r = json_ok(&d.ctl(&["--json", "repo", "migrate", "--repo", "old", "--to", "2"]));
    assert_eq!(r["kind"], "migrate", "{r:#}");
    assert!(r["packs_rewritten"].as_u64() >= Some(1), "{r:#}");
    let renamed = r["snapshots_renamed"].as_array().expect("renamed");
    assert_eq!(renamed.len(), 1, "{r:#}");
    assert_eq!(renamed[0]["old"], old_id.as_str());
    let info = json_ok(&d.ctl(&["--json", "repo", "info", "old"]));
    assert_eq!(info["format_version"], 2, "{info:#}");
    d.check_clean(Some("old"));

    let target = d.dir.path().join("restored");
    let new_id = renamed[0]["new"].as_str().expect("new id");
    let out = d.ctl(&[
        "--json",
        "restore",
        "--repo",
        "old",
        new_id,
        "--target",
        s(&target),
    ]);
    let restored = json_ok(&out);
    assert_eq!(restored["failed"], serde_json::json!([]), "{}", text(&out));
    let snaps = json_ok(&d.ctl(&["--json", "snapshots", "--repo", "old"]));
    let recorded = snaps[0]["paths"][0].as_str().expect("path").to_owned();
    same_files(
        &fixture().join("source"),
        &target.join(recorded.trim_start_matches('/')),
    );
    // A second run finds nothing to do.
    let again = json_ok(&d.ctl(&["--json", "repo", "migrate", "--repo", "old", "--to", "2"]));
    assert_eq!(again["packs_rewritten"], 0, "{again:#}");
    // Asking for a format this build does not have is refused.
    let bad = d.ctl(&["repo", "migrate", "--repo", "old", "--to", "3"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("format 2 only"), "{}", text(&bad));
}
