//! Recovery plans through the real daemon and backupctl: point in time, selective recovery,
//! the swap and its rollback, commit, fitness and selection, failover to a replica, kill -9 in
//! the middle of the restore step (then `run` continues, or `rollback` puts back exactly the
//! tree that was there), and the targets a plan refuses.

use backupd_tests::treecmp::{compare_trees_skipping, CompareOptions};
use backupd_tests::{json_ok, s, DaemonOptions, TestDaemon};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read")
}

/// `cp -a`: a copy with every metadata, to compare against later.
fn copy(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

fn assert_same(expected: &Path, got: &Path, plan: &str) {
    let work = format!(".backupd-recovery-{plan}");
    let diffs = compare_trees_skipping(expected, got, CompareOptions::default(), &[&work]);
    assert!(
        diffs.is_empty(),
        "{} differs from {}: {diffs:#?}",
        got.display(),
        expected.display()
    );
}

/// A tree, version 1.
fn tree_v1(root: &Path) {
    write(&root.join("index.html"), "<h1>v1</h1>\n");
    write(&root.join("css/site.css"), "body { color: black }\n");
    write(&root.join("img/logo.svg"), &"<svg/>".repeat(200));
    write(&root.join("docs/a.txt"), "a1\n");
    write(&root.join("docs/b.txt"), "b1\n");
    std::os::unix::fs::symlink("index.html", root.join("home.html")).expect("symlink");
}

/// The same tree a day later: edited, added, removed.
fn tree_v2(root: &Path) {
    write(&root.join("index.html"), "<h1>v2, defaced</h1>\n");
    write(&root.join("new.html"), "new\n");
    std::fs::remove_file(root.join("docs/b.txt")).expect("rm");
    std::fs::remove_dir_all(root.join("img")).expect("rm img");
}

fn backup_at(d: &TestDaemon, src: &Path, time: &str) -> String {
    let r = json_ok(&d.ctl(&["--json", "backup", s(src), "--time", time]));
    r["snapshot"].as_str().expect("snapshot id").to_owned()
}

fn plan(d: &TestDaemon, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "recovery", "plan"];
    all.extend_from_slice(args);
    json_ok(&d.ctl(&all))
}

fn recovery(d: &TestDaemon, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "recovery"];
    all.extend_from_slice(args);
    json_ok(&backupd_tests::ctl_within(
        &d.socket,
        &all,
        Duration::from_secs(300),
    ))
}

fn id(p: &serde_json::Value) -> String {
    p["id"].as_str().expect("plan id").to_owned()
}

#[test]
fn a_point_in_time_recovery_brings_back_the_tree_as_it_was_and_rollback_brings_back_the_present() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("www");
    tree_v1(&src);
    let v1 = backup_at(&d, &src, "2026-11-29T10:00:00Z");
    let v1_copy = d.dir.path().join("v1-copy");
    copy(&src, &v1_copy);
    tree_v2(&src);
    let v2 = backup_at(&d, &src, "2026-11-29T12:00:00Z");
    let v2_copy = d.dir.path().join("v2-copy");
    copy(&src, &v2_copy);

    // "As it was at 11:00": the 10:00 snapshot, one hour before the point asked for.
    let p = plan(&d, &["--path", s(&src), "--at", "2026-11-29 11:00"]);
    assert_eq!(p["snapshot"], v1.as_str(), "{p:#}");
    assert_ne!(p["snapshot"], v2.as_str());
    assert_eq!(p["effective_rpo_ms"], 3_600_000, "{p:#}");
    assert_eq!(p["state"], "planned");
    assert_eq!(p["target"], s(&src));
    let kinds: Vec<&str> = p["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "preflight",
            "fetch",
            "restore",
            "verify",
            "swap",
            "post-check",
            "cleanup"
        ]
    );
    assert!(p["rto_estimate_ms"].as_u64() > Some(0), "{p:#}");
    assert_eq!(p["files"], 6, "5 files and a symlink: {p:#}");
    // Planning changed nothing.
    assert_same(&v2_copy, &src, "none");

    let plan_id = id(&p);
    // Step 4 cannot run before step 3.
    let early = d.ctl(&["recovery", "run", &plan_id, "--step", "4"]);
    assert!(!early.status.success());
    assert!(
        backupd_tests::text(&early).contains("needs step 1"),
        "{}",
        backupd_tests::text(&early)
    );
    let done = recovery(&d, &["run", &plan_id]);
    assert_eq!(done["kind"], "recovery", "{done:#}");
    assert_eq!(done["state"], "done", "{done:#}");
    assert!(
        done["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .all(|s| s["state"] == "done"),
        "{done:#}"
    );
    assert_same(&v1_copy, &src, &plan_id);
    let rollback_dir = done["rollback_dir"].as_str().expect("rollback dir");
    assert!(Path::new(rollback_dir).join("index.html").exists());

    // Undo: the present (v2) is back, entry for entry.
    let back = recovery(&d, &["rollback", &plan_id]);
    assert_eq!(back["state"], "rolled-back", "{back:#}");
    assert_same(&v2_copy, &src, &plan_id);
    assert!(!src.join(format!(".backupd-recovery-{plan_id}")).exists());
    // A rolled-back plan is finished.
    let again = d.ctl(&["recovery", "run", &plan_id]);
    assert!(!again.status.success());

    // Again, and this time committed: the rollback copy goes.
    let p2 = plan(&d, &["--path", s(&src), "--snapshot", &v1]);
    let p2_id = id(&p2);
    recovery(&d, &["run", &p2_id]);
    assert_same(&v1_copy, &src, &p2_id);
    let c = recovery(&d, &["commit", &p2_id]);
    assert_eq!(c["state"], "committed", "{c:#}");
    assert!(!src.join(format!(".backupd-recovery-{p2_id}")).exists());
    let listed = recovery(&d, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed:#}");
    assert_eq!(listed[0]["id"], p2_id.as_str(), "newest first");

    // Only what changed between 10:00 and the 12:00 snapshot: one file edited, one added.
    let changed = d.dir.path().join("changed");
    let p3 = plan(
        &d,
        &[
            "--path",
            s(&src),
            "--snapshot",
            &v2,
            "--changed-since",
            "2026-11-29 10:00",
            "--target",
            s(&changed),
        ],
    );
    assert_eq!(p3["files"], 2, "{p3:#}");
    recovery(&d, &["run", &id(&p3)]);
    assert_eq!(read(&changed.join("index.html")), "<h1>v2, defaced</h1>\n");
    assert_eq!(read(&changed.join("new.html")), "new\n");
    assert!(!changed.join("css").exists());
}

#[test]
fn a_selective_recovery_restores_what_was_lost_and_leaves_what_survived() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("www");
    tree_v1(&src);
    backup_at(&d, &src, "2026-11-29T10:00:00Z");
    // Damage: two files lost, one edited since, one new.
    std::fs::remove_file(src.join("docs/a.txt")).expect("rm");
    std::fs::remove_dir_all(src.join("img")).expect("rm");
    write(
        &src.join("index.html"),
        "<h1>edited after the backup</h1>\n",
    );
    write(&src.join("draft.txt"), "kept\n");

    let p = plan(&d, &["--path", s(&src), "--only", "missing"]);
    assert_eq!(p["files"], 2, "docs/a.txt and img/logo.svg: {p:#}");
    let pid = id(&p);
    recovery(&d, &["run", &pid]);
    assert_eq!(read(&src.join("docs/a.txt")), "a1\n");
    assert!(src.join("img/logo.svg").exists());
    // What survived is untouched; what the snapshot lacks stays.
    assert_eq!(
        read(&src.join("index.html")),
        "<h1>edited after the backup</h1>\n"
    );
    assert_eq!(read(&src.join("draft.txt")), "kept\n");
    recovery(&d, &["commit", &pid]);

    // `different`: the edited file comes back too; equal files are not part of the plan.
    let p = plan(&d, &["--path", s(&src), "--only", "different"]);
    assert_eq!(p["files"], 1, "only index.html: {p:#}");
    let pid = id(&p);
    recovery(&d, &["run", &pid]);
    assert_eq!(read(&src.join("index.html")), "<h1>v1</h1>\n");
    assert_eq!(read(&src.join("draft.txt")), "kept\n");
    // Rollback of a selective recovery puts the edited file back.
    recovery(&d, &["rollback", &pid]);
    assert_eq!(
        read(&src.join("index.html")),
        "<h1>edited after the backup</h1>\n"
    );

    // Globs and a list of paths, into another directory.
    let elsewhere = d.dir.path().join("elsewhere");
    let p = plan(
        &d,
        &[
            "--path",
            s(&src),
            "--target",
            s(&elsewhere),
            "--include",
            "*.txt",
            "--only-path",
            "docs",
        ],
    );
    assert_eq!(p["files"], 2, "{p:#}");
    let pid = id(&p);
    recovery(&d, &["run", &pid]);
    assert_eq!(read(&elsewhere.join("docs/b.txt")), "b1\n");
    assert!(!elsewhere.join("index.html").exists());
    // The target did not exist: rollback removes it again.
    recovery(&d, &["rollback", &pid]);
    assert!(!elsewhere.exists());
}

#[test]
fn fitness_scores_each_factor_with_evidence_and_select_says_why_the_runner_up_lost() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("data");
    tree_v1(&src);
    let old = backup_at(&d, &src, "2026-11-20T10:00:00Z");
    tree_v2(&src);
    let new = backup_at(&d, &src, "2026-11-29T10:00:00Z");
    json_ok(&d.ctl(&["--json", "repo", "check"]));

    let list = recovery(
        &d,
        &["fitness", "--path", s(&src), "--at", "2026-11-29 10:30"],
    );
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    let top = &list[0];
    assert_eq!(top["snapshot"], new.as_str(), "{top:#}");
    let names: Vec<&str> = top["factors"]
        .as_array()
        .expect("factors")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["integrity", "completeness", "recency", "accessibility"]
    );
    let integrity = &top["factors"][0];
    assert_eq!(
        integrity["score"], 100,
        "checked after the snapshot: {top:#}"
    );
    assert!(integrity["evidence"][0]
        .as_str()
        .expect("evidence")
        .contains("checked clean"));
    assert_eq!(
        top["factors"][2]["score"], 100,
        "30 min before the time asked: {top:#}"
    );
    assert!(list[1]["factors"][2]["score"].as_u64() < Some(100));

    let sel = recovery(
        &d,
        &["select", "--path", s(&src), "--at", "2026-11-29 10:30"],
    );
    assert_eq!(sel["chosen"]["snapshot"], new.as_str(), "{sel:#}");
    assert_eq!(sel["runner_up"]["snapshot"], old.as_str(), "{sel:#}");
    assert!(
        sel["reason"].as_str().expect("reason").contains("recency"),
        "{sel:#}"
    );
    // Before the first snapshot nothing qualifies.
    let none = d.ctl(&[
        "recovery",
        "select",
        "--path",
        s(&src),
        "--at",
        "2026-01-01 00:00",
    ]);
    assert!(!none.status.success());
    assert!(backupd_tests::text(&none).contains("no snapshot"));
}

/// A replica `offsite` of the default repository, holding everything it has now.
fn replicate_into_offsite(d: &TestDaemon) {
    let replica = d.dir.path().join("offsite");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "offsite",
        "--location",
        s(&replica),
        "--replica-of",
        "default",
    ]));
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "replicate",
        "add",
        "--from",
        "default",
        "--to",
        "offsite",
    ]));
    json_ok(&backupd_tests::ctl_within(
        &d.socket,
        &["--json", "repo", "replicate", "run", "offsite"],
        Duration::from_secs(300),
    ));
}

#[test]
fn a_recovery_fails_over_to_a_replica_when_the_repository_is_gone() {
    let d = TestDaemon::start();
    let default = d.wait_repo("default");
    let src = d.dir.path().join("www");
    tree_v1(&src);
    backup_at(&d, &src, "2026-11-29T10:00:00Z");
    let v1_copy = d.dir.path().join("v1-copy");
    copy(&src, &v1_copy);
    replicate_into_offsite(&d);
    tree_v2(&src);

    // Forced: --from-replica.
    let forced = plan(&d, &["--path", s(&src), "--from-replica"]);
    assert_eq!(forced["reading_from"], "offsite", "{forced:#}");
    assert!(forced["failover"].as_str().is_some());

    // The primary disappears between the preflight and the restore.
    let p = plan(&d, &["--path", s(&src)]);
    assert_eq!(p["reading_from"], "default");
    let pid = id(&p);
    recovery(&d, &["run", &pid, "--step", "1"]);
    recovery(&d, &["run", &pid, "--step", "2"]);
    let location = PathBuf::from(default["path"].as_str().expect("path"));
    let moved = d.dir.path().join("primary-moved-away");
    std::fs::rename(&location, &moved).expect("move the primary away");
    let done = recovery(&d, &["run", &pid]);
    assert_eq!(done["state"], "done", "{done:#}");
    assert_eq!(done["reading_from"], "offsite", "{done:#}");
    assert!(
        done["failover"]
            .as_str()
            .is_some_and(|f| f.contains("offsite")),
        "{done:#}"
    );
    assert_same(&v1_copy, &src, &pid);
    std::fs::rename(&moved, &location).expect("move it back");
}

/// 20,000 small files take the restore step seconds: long enough to kill the daemon in it.
fn many_files(root: &Path) {
    for d in 0..100 {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..200 {
            std::fs::write(
                dir.join(format!("f{f:03}")),
                format!("{d}/{f}\n").repeat(20),
            )
            .expect("write");
        }
    }
}

/// The primary repository is moved away while the restore step runs: the files it could not
/// read come from the replica, and so does the rest of the plan.
#[test]
fn a_restore_step_whose_repository_disappears_midway_completes_from_the_replica() {
    let d = TestDaemon::start();
    let default = d.wait_repo("default");
    let src = d.dir.path().join("big");
    many_files(&src);
    json_ok(&backupd_tests::ctl_within(
        &d.socket,
        &["--json", "backup", s(&src)],
        Duration::from_secs(300),
    ));
    let snap_copy = d.dir.path().join("snap-copy");
    copy(&src, &snap_copy);
    replicate_into_offsite(&d);
    std::fs::remove_dir_all(src.join("d042")).expect("rm");

    let p = plan(&d, &["--path", s(&src)]);
    let pid = id(&p);
    recovery(&d, &["run", &pid, "--step", "1"]);
    recovery(&d, &["run", &pid, "--step", "2"]);
    let job = d.submit(&["recovery", "run", &pid]);
    d.wait_job(job, &["running"], Duration::from_secs(60));
    let staging = src.join(format!(".backupd-recovery-{pid}/staging"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(staging.join("d001")).map_or(0, |d| d.count()) < 1 {
        assert!(std::time::Instant::now() < deadline, "nothing staged");
        std::thread::sleep(Duration::from_millis(2));
    }
    let location = PathBuf::from(default["path"].as_str().expect("path"));
    let moved = d.dir.path().join("primary-moved-away");
    std::fs::rename(&location, &moved).expect("move the primary away");
    let done = d.wait_job(job, &["succeeded", "dead-letter"], Duration::from_secs(120));
    let result = &done["result"];
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(result["state"], "done", "{done:#}");
    assert_eq!(result["reading_from"], "offsite", "{done:#}");
    assert_same(&snap_copy, &src, &pid);
    std::fs::rename(&moved, &location).expect("move it back");
}

fn killed_in_restore_step() -> (TestDaemon, TestDaemon, PathBuf, PathBuf, PathBuf, String) {
    let first = TestDaemon::start();
    first.wait_repo("default");
    let src = first.dir.path().join("big");
    many_files(&src);
    json_ok(&backupd_tests::ctl_within(
        &first.socket,
        &["--json", "backup", s(&src)],
        Duration::from_secs(300),
    ));
    let snap_copy = first.dir.path().join("snap-copy");
    copy(&src, &snap_copy);
    // The present differs: a directory gone, a file edited.
    std::fs::remove_dir_all(src.join("d050")).expect("rm");
    write(&src.join("d000/f000"), "edited\n");
    let present = first.dir.path().join("present-copy");
    copy(&src, &present);

    let p = plan(&first, &["--path", s(&src)]);
    let pid = id(&p);
    recovery(&first, &["run", &pid, "--step", "1"]);
    recovery(&first, &["run", &pid, "--step", "2"]);
    let job = first.submit(&["recovery", "run", &pid, "--step", "3"]);
    first.wait_job(job, &["running"], Duration::from_secs(60));
    let staging = src.join(format!(".backupd-recovery-{pid}/staging"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&staging).map_or(0, |d| d.count()) < 2 {
        assert!(std::time::Instant::now() < deadline, "nothing staged");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut first = first;
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).expect("killed");
    let second = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(first.state_dir.clone()),
        ..Default::default()
    });
    let status = recovery(&second, &["status", &pid]);
    assert_eq!(status["state"], "interrupted", "{status:#}");
    assert_eq!(status["steps"][2]["state"], "interrupted", "{status:#}");
    assert_eq!(status["steps"][1]["state"], "done", "{status:#}");
    // The queue runs the killed job again; it does not continue on its own.
    let rerun = second.wait_job(job, &["dead-letter", "failed"], Duration::from_secs(60));
    assert!(
        rerun["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rollback")),
        "{rerun:#}"
    );
    (first, second, src, snap_copy, present, pid)
}

#[test]
fn a_recovery_killed_in_its_restore_step_continues_with_run() {
    let (_first, d, src, snap_copy, _present, pid) = killed_in_restore_step();
    // What a restore killed between creating a temporary file and renaming it leaves (the
    // kill above may or may not have hit that moment): it must not reach the target.
    let staged = src.join(format!(".backupd-recovery-{pid}/staging/d007"));
    std::fs::create_dir_all(&staged).expect("mkdir");
    write(
        &staged.join(".backupd-restore.00000000deadbeef"),
        "half a file",
    );
    let done = recovery(&d, &["run", &pid]);
    assert_eq!(done["state"], "done", "{done:#}");
    assert_same(&snap_copy, &src, &pid);
}

#[test]
fn a_recovery_killed_in_its_restore_step_rolls_back_to_exactly_the_previous_tree() {
    let (_first, d, src, _snap_copy, present, pid) = killed_in_restore_step();
    let back = recovery(&d, &["rollback", &pid]);
    assert_eq!(back["state"], "rolled-back", "{back:#}");
    assert_same(&present, &src, &pid);
    assert!(!src.join(format!(".backupd-recovery-{pid}")).exists());
}

#[test]
fn a_plan_refuses_targets_that_hold_the_daemons_state_or_a_repository() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("www");
    tree_v1(&src);
    backup_at(&d, &src, "2026-11-29T10:00:00Z");
    for target in ["/", s(d.dir.path())] {
        let out = d.ctl(&["recovery", "plan", "--path", s(&src), "--target", target]);
        assert!(!out.status.success(), "{target} accepted");
        let text = backupd_tests::text(&out);
        assert!(text.contains("--target"), "{text}");
    }
    let unknown = d.ctl(&["recovery", "status", "999"]);
    assert!(!unknown.status.success());
    assert!(backupd_tests::text(&unknown).contains("no recovery plan 999"));
    let p = plan(&d, &["--path", s(&src)]);
    let early = d.ctl(&["recovery", "commit", &id(&p)]);
    assert!(!early.status.success());
    assert!(backupd_tests::text(&early).contains("only a plan whose steps are all done"));
}
