//! Data-key rotation and passphrase management through the real daemon and backupctl:
//! `repo key rotate|list|remove` with `add`, `passwd` and `export` around them.

use backupd_tests::treecmp::CompareOptions;
use backupd_tests::{json_ok, pseudo_random_bytes, s, text, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::path::Path;

fn fill(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..3u64 {
        std::fs::write(
            dir.join(format!("f{i}")),
            pseudo_random_bytes(200_000 + i as usize * 1000, seed + i),
        )
        .expect("write");
    }
}

fn backup(d: &TestDaemon, repo: &str, src: &Path) {
    json_ok(&d.ctl(&["--json", "backup", "--repo", repo, s(src)]));
}

fn key_list(d: &TestDaemon, repo: &str) -> Value {
    json_ok(&d.ctl(&["--json", "repo", "key", "list", "--repo", repo]))
}

fn version(list: &Value, v: u64) -> &Value {
    list["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|x| x["version"] == v))
        .unwrap_or_else(|| panic!("no version {v} in {list:#}"))
}

#[test]
fn after_a_rotation_new_data_is_sealed_with_the_new_version_and_both_snapshots_restore() {
    let mut d = TestDaemon::start();
    d.wait_repo("default");
    let (a, b) = (d.dir.path().join("a"), d.dir.path().join("b"));
    fill(&a, 1);
    backup(&d, "default", &a);
    let before = key_list(&d, "default");
    assert_eq!(before["current"], 1, "{before:#}");

    let rotated = json_ok(&d.ctl(&["--json", "repo", "key", "rotate", "--repo", "default"]));
    assert_eq!(
        (&rotated["previous_version"], &rotated["version"]),
        (&Value::from(1), &Value::from(2)),
        "{rotated:#}"
    );
    fill(&b, 2);
    backup(&d, "default", &b);

    let after = key_list(&d, "default");
    assert_eq!(after["current"], 2, "{after:#}");
    let (v1, v2) = (version(&after, 1), version(&after, 2));
    assert!(v1["packs"].as_u64() >= Some(1), "{after:#}");
    assert!(
        v2["packs"].as_u64() >= Some(1),
        "new packs use version 2: {after:#}"
    );
    assert_eq!(v2["current"], true);
    assert_eq!(v1["packs"], version(&before, 1)["packs"], "old packs stay");
    assert!(after["key_files"]
        .as_array()
        .is_some_and(|f| f.iter().all(|f| f["format_version"] == 2)));

    d.check_clean(None);
    let (ra, rb) = (d.dir.path().join("ra"), d.dir.path().join("rb"));
    d.restore_and_compare(&a, &ra, &[], CompareOptions::default());
    d.restore_and_compare(&b, &rb, &[], CompareOptions::default());

    // A restarted daemon opens the new generation: still version 2, everything restores.
    d.stop();
    let d2 = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        ..Default::default()
    });
    d2.wait_repo("default");
    assert_eq!(key_list(&d2, "default")["current"], 2);
    let rb2 = d2.dir.path().join("rb2");
    d2.restore_and_compare(&b, &rb2, &[], CompareOptions::default());
}

#[test]
fn every_passphrase_follows_a_rotation_and_remove_keeps_the_daemons_and_the_last_key() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let pw = |name: &str, text: &str| {
        let p = d.dir.path().join(name);
        std::fs::write(&p, text).expect("pw");
        p
    };
    let (first, escrow) = (pw("first", "first"), pw("escrow", "escrow"));
    let repo = d.dir.path().join("repo-k");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "k",
        "--path",
        s(&repo),
        "--password-file",
        s(&first),
    ]));
    let added = json_ok(&d.ctl(&[
        "--json",
        "repo",
        "key",
        "add",
        "k",
        "--password-file",
        s(&escrow),
    ]));
    let escrow_file = added["added"].as_str().expect("name").to_owned();
    let files = key_list(&d, "k")["key_files"].clone();
    let daemon_file = files
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] != escrow_file.as_str()))
        .and_then(|f| f["id"].as_str())
        .expect("the daemon's key file")
        .to_owned();
    let refused = d.ctl(&["repo", "key", "remove", &daemon_file, "--repo", "k"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("daemon's passphrase") && text(&refused).contains("passwd"),
        "{}",
        text(&refused)
    );

    let rotated = json_ok(&d.ctl(&["--json", "repo", "key", "rotate", "--repo", "k"]));
    assert_eq!(
        rotated["key_files_written"].as_array().map(Vec::len),
        Some(2),
        "{rotated:#}"
    );
    let src = d.dir.path().join("src");
    fill(&src, 7);
    backup(&d, "k", &src);

    // The escrow passphrase's rewritten file holds version 2: registered with it, the data
    // sealed after the rotation checks clean and restores.
    json_ok(&d.ctl(&["--json", "repo", "remove", "k"]));
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "add",
        "--name",
        "kb",
        "--path",
        s(&repo),
        "--password-file",
        s(&escrow),
    ]));
    d.check_clean(Some("kb"));
    let restored = d.dir.path().join("restored");
    d.restore_and_compare(
        &src,
        &restored,
        &["--repo", "kb"],
        CompareOptions::default(),
    );
    let export = json_ok(&d.ctl(&["--json", "repo", "key", "export", "kb"]));
    assert_eq!(export["password"], "escrow");

    // The daemon now uses the escrow passphrase: the first one's file may go, the escrow's
    // may not (the daemon's, then the last).
    let list = key_list(&d, "kb");
    let ids: Vec<String> = list["key_files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{list:#}");
    let mut removed = 0;
    for id in &ids {
        let out = d.ctl(&["--json", "repo", "key", "remove", id, "--repo", "kb"]);
        if out.status.success() {
            removed += 1;
        } else {
            let t = text(&out);
            assert!(
                t.contains("daemon's passphrase") || t.contains("last"),
                "{t}"
            );
        }
    }
    assert_eq!(removed, 1, "exactly the first passphrase's file goes");
    let last = key_list(&d, "kb")["key_files"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let out = d.ctl(&["repo", "key", "remove", &last, "--repo", "kb"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("last"), "{}", text(&out));
    // The first passphrase no longer opens the repository.
    let out = d.ctl(&[
        "repo",
        "add",
        "--name",
        "k2",
        "--path",
        s(&repo),
        "--password-file",
        s(&first),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let missing = d.ctl(&["repo", "key", "remove", "ffffffffffff", "--repo", "kb"]);
    assert!(
        text(&missing).contains("repo key list"),
        "{}",
        text(&missing)
    );
}

/// Stops `d`, waits a little over a second (so its keys are older than a "1s" policy) and
/// starts a daemon on the same state with `config`.
fn restarted_a_second_later(d: &mut TestDaemon, config: &str) -> TestDaemon {
    d.stop();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let d2 = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        config: Some(config.into()),
        ..Default::default()
    });
    d2.wait_repo("default");
    d2
}

#[test]
fn a_daemon_with_key_rotation_rotates_an_older_key_at_start_and_audits_it() {
    let mut d = TestDaemon::start();
    d.wait_repo("default");
    assert_eq!(key_list(&d, "default")["current"], 1);
    // The key is older than one second by then: the start-up check rotates it.
    let d2 = restarted_a_second_later(
        &mut d,
        "[security]\nkey_rotation = \"1s\"\nkey_reencrypt_after = \"30d\"\n",
    );
    let rotated = backupd_tests::wait_until(
        "the start-up rotation",
        std::time::Duration::from_secs(30),
        || {
            let list = key_list(&d2, "default");
            (list["current"].as_u64() >= Some(2)).then_some(list)
        },
    );
    assert_eq!(version(&rotated, 2)["current"], true, "{rotated:#}");
    let out = d2.ctl(&["--json", "security", "audit"]);
    assert!(out.status.success(), "{}", text(&out));
    let audited = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| {
            e["event"] == "key"
                && e["request"] == "repo key rotate"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("automatic rotation"))
        });
    assert!(audited, "no audit entry for the automatic rotation");
}

/// The repository directory of `repo`, as `repo info` names it.
fn repo_dir(d: &TestDaemon, repo: &str) -> std::path::PathBuf {
    let info = json_ok(&d.ctl(&["--json", "repo", "info", repo]));
    std::path::PathBuf::from(
        info["location"]
            .as_str()
            .unwrap_or_else(|| panic!("{info:#}")),
    )
}

#[test]
fn reencrypt_seals_everything_under_the_current_version_and_destroys_the_old_key() {
    let mut d = TestDaemon::start();
    d.wait_repo("default");
    let (a, b) = (d.dir.path().join("a"), d.dir.path().join("b"));
    fill(&a, 11);
    backup(&d, "default", &a);
    let dir = repo_dir(&d, "default");
    // A copy of a snapshot file version 1 sealed, to bring back after the key is destroyed.
    let v1_snapshot = std::fs::read_dir(dir.join("snapshots"))
        .expect("snapshots dir")
        .flatten()
        .next()
        .expect("a snapshot file");
    let v1_bytes = std::fs::read(v1_snapshot.path()).expect("read snapshot");
    json_ok(&d.ctl(&["--json", "repo", "key", "rotate", "--repo", "default"]));
    fill(&b, 12);
    backup(&d, "default", &b);

    let r = json_ok(&d.ctl(&["--json", "repo", "key", "reencrypt", "--repo", "default"]));
    assert_eq!(r["kind"], "reencrypt", "{r:#}");
    assert!(r["packs_rewritten"].as_u64() >= Some(1), "{r:#}");
    assert_eq!(r["current"], 2, "{r:#}");
    assert_eq!(r["retired"], serde_json::json!([1]), "{r:#}");
    assert!(r["snapshots_rewritten"].as_u64() >= Some(1), "{r:#}");
    assert_eq!(
        r["snapshots_renamed"],
        serde_json::json!([]),
        "format 2 keeps ids"
    );

    let list = key_list(&d, "default");
    let v1 = version(&list, 1);
    assert_eq!(v1["retired"], true, "{list:#}");
    assert_eq!(v1["packs"], 0, "{list:#}");
    d.check_clean(None);
    d.restore_and_compare(&a, &d.dir.path().join("ra"), &[], CompareOptions::default());
    d.restore_and_compare(&b, &d.dir.path().join("rb"), &[], CompareOptions::default());

    // Running it again finds nothing to do.
    let again = json_ok(&d.ctl(&["--json", "repo", "key", "reencrypt"]));
    assert_eq!(again["packs_rewritten"], 0, "{again:#}");
    assert_eq!(again["retired"], serde_json::json!([]), "{again:#}");

    // The destroyed key opens nothing any more, after a restart too: the old snapshot file
    // brought back is unreadable, and `check` says so.
    d.stop();
    let d2 = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        ..Default::default()
    });
    d2.wait_repo("default");
    let back = dir.join("snapshots").join(v1_snapshot.file_name());
    std::fs::write(&back, &v1_bytes).expect("bring the old snapshot back");
    let check = d2.ctl(&["--json", "repo", "check"]);
    let report: Value = serde_json::from_slice(&check.stdout).expect("check json");
    assert!(
        report["problems"].as_array().is_some_and(|p| !p.is_empty()
            && p.iter().any(|p| p
                .to_string()
                .contains(&v1_snapshot.file_name().to_string_lossy().to_string()))),
        "{report:#}"
    );
    std::fs::remove_file(&back).expect("rm");
    d2.check_clean(None);
}

#[test]
fn reencrypt_killed_with_sigkill_continues_after_the_restart_and_loses_nothing() {
    let mut d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("big");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..6u64 {
        std::fs::write(
            src.join(format!("f{i}")),
            pseudo_random_bytes(24 << 20, 100 + i),
        )
        .expect("write");
    }
    backup(&d, "default", &src);
    json_ok(&d.ctl(&["--json", "repo", "key", "rotate"]));
    let submitted = json_ok(&d.ctl(&["--json", "repo", "key", "reencrypt", "--no-wait"]));
    let id = submitted["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{submitted:#}"));
    // Kill it once it has rewritten a pack and before it finished.
    let mut killed_mid_job = false;
    for _ in 0..2000 {
        let job = json_ok(&d.ctl(&["--json", "queue", "job", &id.to_string()]));
        if job["state"] != "running" && job["state"] != "queued" {
            break;
        }
        if job["progress"]["files_done"].as_u64() >= Some(1) {
            killed_mid_job = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(std::time::Duration::from_secs(5))
        .expect("killed");
    assert!(
        killed_mid_job,
        "the job ended before it could be killed mid-way"
    );

    let d2 = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        ..Default::default()
    });
    d2.wait_repo("default");
    backupd_tests::wait_queue_idle(&d2, std::time::Duration::from_secs(300));
    let job = json_ok(&d2.ctl(&["--json", "queue", "job", &id.to_string()]));
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let list = key_list(&d2, "default");
    assert_eq!(version(&list, 1)["retired"], true, "{list:#}");
    assert_eq!(version(&list, 1)["packs"], 0, "{list:#}");
    d2.check_clean(None);
    d2.restore_and_compare(
        &src,
        &d2.dir.path().join("r"),
        &[],
        CompareOptions::default(),
    );
}

#[test]
fn key_reencrypt_after_queues_a_low_priority_reencryption_that_retires_the_old_version() {
    let mut d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("a");
    fill(&src, 21);
    backup(&d, "default", &src);
    json_ok(&d.ctl(&["--json", "repo", "key", "rotate"]));
    // Version 2 is older than one second by then: the start-up check queues the job.
    let d2 = restarted_a_second_later(&mut d, "[security]\nkey_reencrypt_after = \"1s\"\n");
    let list = backupd_tests::wait_until(
        "the automatic re-encryption",
        std::time::Duration::from_secs(60),
        || {
            let list = key_list(&d2, "default");
            (version(&list, 1)["retired"] == true).then_some(list)
        },
    );
    assert_eq!(version(&list, 1)["packs"], 0, "{list:#}");
    // The key list shows the retirement as soon as the job has done it; the job is recorded
    // as finished a moment later.
    let history = backupd_tests::wait_until(
        "the re-encryption job in the history",
        std::time::Duration::from_secs(30),
        || {
            let history = json_ok(&d2.ctl(&["--json", "queue", "history", "--kind", "reencrypt"]));
            history[0]["outcome"].is_string().then_some(history)
        },
    );
    assert_eq!(history[0]["outcome"], "succeeded", "{history:#}");
    let id = history[0]["id"].as_u64().expect("id").to_string();
    let job = json_ok(&d2.ctl(&["--json", "queue", "job", &id]));
    assert_eq!(job["priority"], "low", "{job:#}");
    let out = d2.ctl(&["--json", "security", "audit"]);
    let audited = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| e["event"] == "key" && e["request"] == "repo key reencrypt");
    assert!(audited, "no audit entry for the queued re-encryption");
    d2.check_clean(None);
    d2.restore_and_compare(
        &src,
        &d2.dir.path().join("r"),
        &[],
        CompareOptions::default(),
    );
}
