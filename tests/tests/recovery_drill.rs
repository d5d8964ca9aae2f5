//! `recovery drill` and `recovery objectives` on a live daemon: a drill of a real source passes
//! and leaves no scratch copy, a damaged pack fails it (and raises an alert), a live file
//! changed after the snapshot is not a mismatch, objectives report a missed RPO and RTO (and
//! `system health` degrades for the RTO), and the compliance control `drill` turns green
//! after a drill.

use backupd_tests::{json_ok, pseudo_random_bytes, s, text, wait_until_else, TestDaemon};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A directory of `n` files of `size` bytes each, inside the daemon's temp dir.
fn tree(d: &TestDaemon, name: &str, n: u64, size: usize) -> PathBuf {
    let dir = d.dir.path().join(name);
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    for i in 0..n {
        let at = if i % 2 == 0 {
            dir.clone()
        } else {
            dir.join("sub")
        };
        std::fs::write(
            at.join(format!("f{i:03}")),
            pseudo_random_bytes(size, i + 1),
        )
        .expect("write");
    }
    dir
}

fn source(d: &TestDaemon, name: &str) -> Value {
    let list = json_ok(&d.ctl(&["--json", "source", "list"]));
    list.as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no source {name}: {list:#}"))
}

/// Adds `dir` as an unwatched source and waits for its first snapshot.
fn add_source(d: &TestDaemon, dir: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["source", "add", s(dir), "--name", name, "--no-watch"];
    args.extend_from_slice(extra);
    let out = d.ctl(&args);
    assert!(out.status.success(), "{}", text(&out));
    wait_until_else(
        &format!("the first snapshot of {name}"),
        Duration::from_secs(30),
        || source(d, name)["last_snapshot"].as_str().map(str::to_owned),
        || d.log_text(),
    )
}

fn drill(d: &TestDaemon, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--json", "recovery", "drill"];
    all.extend_from_slice(args);
    let out = d.ctl(&all);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("drill JSON ({e}): {}", text(&out)));
    (out.status.code(), v)
}

/// What is left under the state directory's drill scratch area.
fn scratch_left(d: &TestDaemon) -> Vec<PathBuf> {
    match std::fs::read_dir(d.state_dir.join("drill")) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn objectives(d: &TestDaemon) -> (Option<i32>, Value) {
    let out = d.ctl(&["--json", "recovery", "objectives"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("objectives JSON ({e}): {}", text(&out)));
    (out.status.code(), v)
}

fn of<'a>(objectives: &'a Value, name: &str) -> &'a Value {
    objectives["sources"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("source {name} in {objectives:#}"))
}

#[test]
fn a_drill_over_a_real_source_passes_measures_and_leaves_no_scratch_copy() {
    let d = TestDaemon::start();
    let dir = tree(&d, "docs", 20, 30_000);
    let snapshot = add_source(&d, &dir, "docs", &[]);
    let (code, r) = drill(&d, &["--source", "docs", "--sample", "100%"]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["kind"], "drill");
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["snapshot"], snapshot.as_str());
    assert_eq!(r["source"], "docs");
    assert_eq!(r["sampled_files"], 20);
    assert_eq!(r["files_restored"], 20);
    assert_eq!(r["bytes_restored"], 20 * 30_000);
    assert_eq!(r["verified"], 20);
    assert_eq!(r["live_compared"], 20, "the live files are unchanged");
    assert_eq!(r["mismatches"], serde_json::json!([]));
    assert!(r["bytes_per_sec"].as_u64() > Some(0), "{r:#}");
    assert!(r["rto_per_gb_ms"].as_u64().is_some(), "{r:#}");
    assert!(scratch_left(&d).is_empty(), "{:?}", scratch_left(&d));

    // 1 % of 20 files is one file.
    let (code, one) = drill(&d, &["--source", "docs", "--sample", "1%"]);
    assert_eq!(code, Some(0), "{one:#}");
    assert_eq!(one["sampled_files"], 1);
    assert_eq!(one["verified"], 1);
    assert!(scratch_left(&d).is_empty());

    // The last drill is the source's in the objectives, and measured the throughput.
    let (_, o) = objectives(&d);
    let docs = of(&o, "docs");
    assert_eq!(docs["last_drill"]["ok"], true, "{o:#}");
    assert_eq!(docs["last_drill"]["job"], one["job"]);
    assert_eq!(o["throughput"]["measured"], true, "{o:#}");
    // A bad share is refused before anything is queued.
    let out = d.ctl(&["recovery", "drill", "--source", "docs", "--sample", "0%"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let out = d.ctl(&["recovery", "drill", "--source", "nothing-here"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
}

#[test]
fn a_drill_finds_a_damaged_pack_fails_and_raises_an_alert() {
    let d = TestDaemon::start();
    let dir = tree(&d, "data", 12, 1_200_000);
    add_source(&d, &dir, "data", &[]);
    // Damage the largest pack (file data, not the trees).
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    let mut stack = vec![d.state_dir.join("repository").join("data")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("read_dir").flatten() {
            let m = e.metadata().expect("meta");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                packs.push((m.len(), e.path()));
            }
        }
    }
    packs.sort();
    let (_, largest) = packs.last().expect("a pack").clone();
    let mut bytes = std::fs::read(&largest).expect("read pack");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&largest, bytes).expect("write pack");

    let (code, r) = drill(&d, &["--source", "data", "--sample", "100%"]);
    assert_eq!(code, Some(1), "a failed drill exits 1: {r:#}");
    assert_eq!(r["ok"], false, "{r:#}");
    let mismatches = r["mismatches"].as_array().expect("mismatches");
    assert!(!mismatches.is_empty(), "{r:#}");
    assert!(
        mismatches[0]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("damaged")),
        "{r:#}"
    );
    assert!(
        mismatches[0]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with(s(&dir))),
        "{r:#}"
    );
    assert!(scratch_left(&d).is_empty(), "{:?}", scratch_left(&d));
    let health = d.health();
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert!(
        health["notes"]
            .to_string()
            .contains("recovery drill of source data"),
        "{health:#}"
    );
    let (_, o) = objectives(&d);
    assert_eq!(of(&o, "data")["last_drill"]["ok"], false, "{o:#}");
}

#[test]
fn a_live_file_changed_after_the_snapshot_is_not_a_mismatch() {
    let d = TestDaemon::start();
    let dir = tree(&d, "live", 6, 10_000);
    add_source(&d, &dir, "live", &[]);
    // One file rewritten (another size), one removed: both changed since the snapshot.
    std::fs::write(dir.join("f000"), b"changed after the snapshot").expect("write");
    std::fs::remove_file(dir.join("sub/f001")).expect("remove");
    let (code, r) = drill(&d, &["--source", "live", "--sample", "100%"]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["verified"], 6);
    assert_eq!(r["live_changed"], 2, "{r:#}");
    assert_eq!(r["live_compared"], 4, "{r:#}");
}

#[test]
fn objectives_report_a_missed_rpo_and_a_tiny_rto_degrades_health() {
    let d = TestDaemon::start();
    let dir = tree(&d, "fast", 8, 20_000);
    add_source(&d, &dir, "fast", &["--rpo", "2s", "--rto", "1ms"]);
    let o = wait_until_else(
        "the RPO of source fast to be missed",
        Duration::from_secs(20),
        || {
            let (code, o) = objectives(&d);
            (of(&o, "fast")["rpo"]["met"] == false).then(|| {
                assert_eq!(code, Some(1), "a missed objective exits 1");
                o
            })
        },
        || objectives(&d).1.to_string(),
    );
    let fast = of(&o, "fast");
    assert_eq!(fast["rpo"]["target_ms"], 2000);
    assert!(fast["rpo"]["achieved_ms"].as_u64() > Some(2000), "{o:#}");
    assert!(fast["rpo"]["worst_gap_ms"].as_u64() > Some(2000), "{o:#}");
    assert_eq!(fast["rto"]["target_ms"], 1);
    assert_eq!(fast["rto"]["snapshot_files"], 8);
    assert!(fast["rto"]["estimate_ms"].as_u64() > Some(1), "{o:#}");
    assert_eq!(fast["rto"]["met"], false, "{o:#}");
    assert!(fast["last_drill"].is_null());
    // The scheduler's report degrades health for the RTO as well as the RPO.
    let health = wait_until_else(
        "system health to name the missed RTO",
        Duration::from_secs(40),
        || {
            let h = d.health();
            h["notes"]
                .to_string()
                .contains("source fast misses its RTO")
                .then_some(h)
        },
        || d.health().to_string(),
    );
    assert_eq!(health["status"], "degraded");
}

#[test]
fn the_drill_compliance_control_fails_before_a_drill_and_passes_after_one() {
    let d = TestDaemon::start();
    let dir = tree(&d, "audit", 4, 5_000);
    add_source(&d, &dir, "audit", &[]);
    let control = || {
        let out = d.ctl(&["--json", "security", "compliance"]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("compliance JSON");
        v["controls"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == "drill").cloned())
            .unwrap_or_else(|| panic!("control drill in {v:#}"))
    };
    let before = control();
    assert_eq!(before["status"], "fail", "{before:#}");
    assert!(
        before["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("audit: never drilled")),
        "{before:#}"
    );
    let (code, r) = drill(&d, &["--source", "audit"]);
    assert_eq!(code, Some(0), "{r:#}");
    let after = control();
    assert_eq!(after["status"], "pass", "{after:#}");
    assert!(
        after["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("drilled: audit")),
        "{after:#}"
    );
}

#[test]
fn scratch_copies_left_by_a_crash_are_removed_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let stale = state.join("drill").join("12-0badc0de");
    std::fs::create_dir_all(stale.join("srv/docs")).expect("mkdir");
    std::fs::write(stale.join("srv/docs/a"), b"restored before the crash").expect("write");
    let d = TestDaemon::start_with(backupd_tests::DaemonOptions {
        state_dir: Some(state.clone()),
        ..Default::default()
    });
    assert!(!stale.exists(), "{}", d.log_text());
    assert!(scratch_left(&d).is_empty());
}
