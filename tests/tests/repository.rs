//! The repository engine end to end: a real backupd, driven by backupctl, on real files.
//! The tests of storage (backup and restore, damaged objects, a crash during backup, prune,
//! index rebuild, rollback) run twice, by the same body: on the local backend and on a real S3
//! server (`backupd_tests::store`).

/// A test body run on every backend: `NAME` on the local one, `NAME_on_s3` on S3.
macro_rules! on_every_backend {
    ($body:ident, $local:ident, $s3:ident) => {
        #[test]
        fn $local() {
            $body(Backend::Local)
        }
        #[test]
        fn $s3() {
            $body(Backend::S3)
        }
    };
}

use backupd_tests::store::{Backend, Store};
use backupd_tests::treecmp::CompareOptions;
use backupd_tests::{bin, is_root, json_ok, text, DaemonOptions, TestDaemon};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn random_file(path: &Path, len: usize, seed: u64) {
    std::fs::write(path, backupd_tests::pseudo_random_bytes(len, seed)).expect("write random file");
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().expect("sh");
    assert!(st.success(), "{cmd} failed");
}

on_every_backend!(
    every_file_type_and_metadata,
    every_file_type_and_metadata_survives_backup_and_restore,
    every_file_type_and_metadata_survives_backup_and_restore_on_s3
);

fn every_file_type_and_metadata(backend: Backend) {
    assert!(
        is_root(),
        "this test needs root (ownership, devices); CI runs as root"
    );
    let d = TestDaemon::start();
    let _store = Store::attach(&d, backend);
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("dir/sub")).expect("mkdir");
    random_file(&src.join("dir/data.bin"), 2_500_000, 1);
    std::fs::write(src.join("text"), "line\n".repeat(5000)).expect("write");
    std::fs::write(src.join("setuid"), b"#!/bin/sh\n").expect("write");
    std::fs::set_permissions(src.join("setuid"), std::fs::Permissions::from_mode(0o4755))
        .expect("chmod");
    std::fs::create_dir(src.join("setgid-dir")).expect("mkdir");
    std::fs::set_permissions(
        src.join("setgid-dir"),
        std::fs::Permissions::from_mode(0o2775),
    )
    .expect("chmod");
    std::fs::create_dir(src.join("sticky")).expect("mkdir");
    std::fs::set_permissions(src.join("sticky"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    nix::unistd::chown(&src.join("text"), Some(1234.into()), Some(5678.into())).expect("chown");
    std::os::unix::fs::symlink("dir/data.bin", src.join("symlink")).expect("symlink");
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &src.join("symlink"),
        Some(4321.into()),
        Some(8765.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .expect("lchown");
    std::fs::hard_link(src.join("text"), src.join("dir/sub/hardlink")).expect("hardlink");
    nix::unistd::mkfifo(
        &src.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("fifo");
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    mknod(
        &src.join("chardev"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o620),
        makedev(1, 3),
    )
    .expect("mknod c");
    mknod(
        &src.join("blockdev"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        makedev(7, 200),
    )
    .expect("mknod b");
    let socket = std::os::unix::net::UnixListener::bind(src.join("socket")).expect("socket");
    xattr::set(src.join("dir/data.bin"), "user.note", b"important").expect("xattr");
    xattr::set(src.join("dir/data.bin"), "user.empty", b"").expect("empty xattr");
    sh(&format!(
        "setfacl -m u:1234:rwx,g:5678:r {}",
        src.join("dir/data.bin").display()
    ));
    sh(&format!(
        "setfacl -d -m u:1234:rx {}",
        src.join("dir/sub").display()
    ));
    std::fs::write(
        src.join(std::ffi::OsStr::from_bytes(b"bin\xff\xfename")),
        b"non-utf8",
    )
    .expect("write");
    std::fs::write(src.join("n".repeat(255)), b"long").expect("write");
    // Sparse: 64 MiB with 1 MiB of data in the middle.
    let sparse = std::fs::File::create(src.join("sparse")).expect("create");
    sparse.set_len(64 << 20).expect("set_len");
    std::os::unix::fs::FileExt::write_at(&sparse, &vec![0xAB; 1 << 20], 32 << 20)
        .expect("write_at");
    drop(sparse);
    // Times with nanoseconds, set last.
    sh(&format!(
        "touch -h -d '2021-03-04 05:06:07.123456789' {}",
        src.join("text").display()
    ));
    sh(&format!(
        "touch -h -d '2019-01-01 00:00:00.000000001' {}",
        src.join("symlink").display()
    ));

    let out = json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    assert!(
        out["skipped"].as_array().expect("skipped").is_empty(),
        "{out}"
    );
    assert!(
        out["stats"]["other"].as_u64().expect("other") >= 4,
        "fifo, devices, socket, symlink recorded: {out}"
    );
    drop(socket);
    std::fs::remove_file(src.join("socket")).expect("rm socket");

    let target = d.dir.path().join("restore");
    d.restore_and_compare(
        &src,
        &target,
        // Out of place, setuid/setgid are dropped by default; this test wants every bit back.
        &["--verify", "--keep-setid"],
        CompareOptions {
            owners: true,
            atime: false,
            sparse: true,
        },
    );
    let acl = Command::new("getfacl")
        .arg("-c")
        .arg(target.join("dir/data.bin"))
        .output()
        .expect("getfacl");
    assert!(
        String::from_utf8_lossy(&acl.stdout).contains("user:1234:rwx"),
        "{}",
        text(&acl)
    );
}

#[test]
fn restore_never_writes_outside_the_target() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::write(src.join("a/file"), b"content").expect("write");
    std::os::unix::fs::symlink("/etc", src.join("escape")).expect("symlink");
    json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    // The target already holds a symlink where the snapshot has a directory.
    let target = d.dir.path().join("target");
    let outside = d.dir.path().join("outside");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, target.join("a")).expect("planted symlink");
    let out = d.ctl(&[
        "--json",
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(&outside).expect("outside").count(),
        0,
        "wrote through a symlink"
    );
    assert!(target.join("a").symlink_metadata().expect("a").is_dir());
    assert_eq!(
        std::fs::read(target.join("a/file")).expect("file"),
        b"content"
    );
    assert_eq!(
        std::fs::read_link(target.join("escape")).expect("link"),
        PathBuf::from("/etc")
    );
}

#[test]
fn wrong_password_for_repo_add_is_refused_with_exit_2() {
    let d = TestDaemon::start();
    let repo = d.dir.path().join("other-repo");
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, "right horse\n").expect("pw");
    let init = d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "other",
        "--path",
        repo.to_str().expect("utf8"),
        "--password-file",
        pw.to_str().expect("utf8"),
    ]);
    json_ok(&init);
    let key = json_ok(&d.ctl(&["--json", "repo", "key", "export", "other"]));
    assert_eq!(key["password"], "right horse");
    assert_eq!(key["encoding"], "utf8");
    let before = listing(&repo);
    std::fs::write(&pw, "wrong horse\n").expect("pw");
    let out = d.ctl(&[
        "repo",
        "add",
        "--name",
        "again",
        "--path",
        repo.to_str().expect("utf8"),
        "--password-file",
        pw.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong password"),
        "{}",
        text(&out)
    );
    assert_eq!(listing(&repo), before, "nothing written");
    let repos = json_ok(&d.ctl(&["--json", "repo", "list"]));
    assert_eq!(repos.as_array().expect("list").len(), 2, "{repos}");
}

fn listing(p: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let m = e.metadata().expect("meta");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn lost_state_dir_repository_is_added_back_and_still_dedups() {
    let mut d = TestDaemon::start();
    let repo = d.dir.path().join("kept-repo");
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, "keep me safe").expect("pw");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "main",
        "--path",
        repo.to_str().expect("utf8"),
        "--password-file",
        pw.to_str().expect("utf8"),
    ]));
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    random_file(&src.join("big"), 20 << 20, 5);
    json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--repo",
        "main",
        src.to_str().expect("utf8"),
    ]));
    json_ok(&d.ctl(&["--json", "system", "shutdown"]));
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .expect("exit")
        .success());
    std::fs::remove_dir_all(&d.state_dir).expect("delete state dir");

    let d2 = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        ..Default::default()
    });
    json_ok(&d2.ctl(&[
        "--json",
        "repo",
        "add",
        "--name",
        "main",
        "--path",
        repo.to_str().expect("utf8"),
        "--password-file",
        pw.to_str().expect("utf8"),
    ]));
    let snaps = json_ok(&d2.ctl(&["--json", "snapshots", "--repo", "main"]));
    assert_eq!(snaps.as_array().expect("list").len(), 1);
    let size_before: u64 = listing(&repo).iter().map(|(_, l)| l).sum();
    let b = json_ok(&d2.ctl(&[
        "--json",
        "backup",
        "--repo",
        "main",
        src.to_str().expect("utf8"),
    ]));
    let size_after: u64 = listing(&repo).iter().map(|(_, l)| l).sum();
    assert!(
        size_after - size_before < (20 << 20) / 100,
        "new backup of unchanged data added {} bytes: {b}",
        size_after - size_before
    );
    let target = d.dir.path().join("restored");
    d2.restore_and_compare(
        &src,
        &target,
        &["--repo", "main"],
        CompareOptions::default(),
    );
}

on_every_backend!(
    damaged_packs,
    damaged_packs_are_named_by_check_and_restore_saves_the_rest,
    damaged_packs_are_named_by_check_and_restore_saves_the_rest_on_s3
);

fn damaged_packs(backend: Backend) {
    let d = TestDaemon::start();
    let store = Store::attach(&d, backend);
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    for i in 0..30u64 {
        random_file(&src.join(format!("file{i:02}")), 1_200_000, i + 100);
    }
    let b = json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    let snap = b["snapshot"].as_str().expect("id").to_owned();
    let packs: Vec<String> = store.list("data").into_iter().map(|(p, _)| p).collect();
    assert!(packs.len() >= 2, "{packs:?}");
    let damaged: Vec<&String> = packs.iter().take(packs.len() - 1).collect();
    for p in &damaged {
        let mut bytes = store.read(p);
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        store.write(p, &bytes);
    }
    let out = d.ctl(&["--json", "repo", "check", "--read-data"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        report["damaged_packs"].as_array().expect("packs").len(),
        damaged.len(),
        "{report}"
    );
    assert!(
        report["problems"].to_string().contains(&snap[..8]),
        "{report}"
    );
    assert!(
        report["problems"].to_string().contains("/src/file"),
        "{report}"
    );

    let target = d.dir.path().join("partial");
    let out = d.ctl(&[
        "--json",
        "restore",
        &format!("{}:{}", &snap[..10], src.display()),
        "--target",
        target.to_str().expect("utf8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "partial restore exits 1: {}",
        text(&out)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let failed = r["failed"].as_array().expect("failed").len();
    let restored = std::fs::read_dir(&target).expect("target").count();
    assert!(failed > 0);
    assert_eq!(failed + restored, 30, "{r}");
    for e in std::fs::read_dir(&target).expect("target").flatten() {
        assert_eq!(
            std::fs::read(e.path()).expect("restored"),
            std::fs::read(src.join(e.file_name())).expect("source")
        );
    }
}

on_every_backend!(
    kill_9_during_backup,
    kill_9_during_backup_leaves_a_clean_repository_and_the_resumed_job_completes_it,
    kill_9_during_backup_leaves_a_clean_repository_and_the_resumed_job_completes_it_on_s3
);

fn kill_9_during_backup(backend: Backend) {
    let work = tempfile::tempdir().expect("tempdir");
    let state = work.path().join("state");
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    random_file(&src.join("first"), 3 << 20, 1);
    let first = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(state.clone()),
        ..Default::default()
    });
    let _store = Store::attach(&first, backend);
    json_ok(&first.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    drop(first);
    // Kill the daemon at several moments of a large backup (a real SIGKILL of a real process;
    // daemon/tests/crash_points.rs stops backups at every write deterministically). Each time
    // the restarted daemon resumes the interrupted job, which must succeed; then the repository
    // checks clean reading all data and its latest snapshot restores the whole tree.
    for (round, delay_ms) in [150u64, 500, 900, 1400, 2000].into_iter().enumerate() {
        for i in 0..4u64 {
            random_file(
                &src.join(format!("big{i}")),
                30 << 20,
                1000 * round as u64 + i,
            );
        }
        let mut d = TestDaemon::start_with(DaemonOptions {
            state_dir: Some(state.clone()),
            ..Default::default()
        });
        let child = Command::new(bin("backupctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["backup", "--no-wait", src.to_str().expect("utf8")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("backup");
        std::thread::sleep(Duration::from_millis(delay_ms));
        d.signal(nix::sys::signal::Signal::SIGKILL);
        d.wait_exit(Duration::from_secs(5)).expect("killed");
        let _ = child.wait_with_output();

        let d2 = TestDaemon::start_with(DaemonOptions {
            state_dir: Some(state.clone()),
            ..Default::default()
        });
        backupd_tests::wait_queue_idle(&d2, Duration::from_secs(300));
        let history = json_ok(&d2.ctl(&["--json", "queue", "history", "--limit", "1000"]));
        for job in history.as_array().expect("history") {
            assert_eq!(
                job["outcome"], "succeeded",
                "round {round}: a job did not complete after the restart: {job}"
            );
        }
        d2.check_clean(None);
        let snaps = json_ok(&d2.ctl(&["--json", "snapshots"]));
        let oldest = snaps[0]["id"].as_str().expect("id").to_owned();
        let target = d2.dir.path().join("earlier");
        json_ok(&d2.ctl(&[
            "--json",
            "restore",
            &format!("{oldest}:{}/first", src.display()),
            "--target",
            target.to_str().expect("utf8"),
        ]));
        assert_eq!(
            std::fs::read(target.join("first")).expect("restored"),
            std::fs::read(src.join("first")).expect("src")
        );
        // A kill before the submission reached the daemon leaves no job to resume; this backup
        // then does the work, otherwise it finds everything stored already.
        json_ok(&d2.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
        let whole = d2.dir.path().join("whole");
        d2.restore_and_compare(
            &src,
            &whole,
            &[],
            CompareOptions {
                owners: true,
                atime: false,
                sparse: false,
            },
        );
    }
}

on_every_backend!(
    forget_and_prune,
    forget_dry_run_lists_decisions_and_prune_follows_them,
    forget_dry_run_lists_decisions_and_prune_follows_them_on_s3
);

fn forget_and_prune(backend: Backend) {
    let d = TestDaemon::start();
    let _store = Store::attach(&d, backend);
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    for i in 0..12u64 {
        random_file(&src.join("changing"), 300_000, i);
        let t = (1_700_000_000 + i * 43_200).to_string();
        json_ok(&d.ctl(&[
            "--json",
            "backup",
            "--time",
            &t,
            src.to_str().expect("utf8"),
        ]));
    }
    let plan = json_ok(&d.ctl(&[
        "--json",
        "forget",
        "--keep-last",
        "2",
        "--keep-daily",
        "4",
        "--dry-run",
    ]));
    let keep: Vec<String> = plan["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["snapshot"].as_str().expect("id").to_owned())
        .collect();
    assert!(plan["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .all(|d| d["keep"] == false || !d["reasons"].as_array().expect("reasons").is_empty()));
    assert_eq!(
        json_ok(&d.ctl(&["--json", "snapshots"]))
            .as_array()
            .expect("list")
            .len(),
        12
    );
    let done = json_ok(&d.ctl(&[
        "--json",
        "forget",
        "--keep-last",
        "2",
        "--keep-daily",
        "4",
        "--prune",
    ]));
    let mut now: Vec<String> = json_ok(&d.ctl(&["--json", "snapshots"]))
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    now.sort();
    let mut keep_sorted = keep.clone();
    keep_sorted.sort();
    assert_eq!(now, keep_sorted);
    assert!(
        done["prune"]["bytes_after"].as_u64() < done["prune"]["bytes_before"].as_u64(),
        "{done}"
    );
    d.check_clean(None);
}

#[test]
fn backup_of_a_missing_path_is_an_error_naming_it() {
    let d = TestDaemon::start();
    let missing = d.dir.path().join("no-such-dir");
    let out = d.ctl(&["backup", missing.to_str().expect("utf8")]);
    // Refused at submission as a usage error: nothing is queued.
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-dir"),
        "{}",
        text(&out)
    );
}

#[test]
fn unreadable_files_are_skipped_named_and_make_the_backup_partial() {
    assert!(
        is_root(),
        "this test needs root (it runs backupd as `nobody`); CI runs as root"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    nix::unistd::chown(&home, Some(65534.into()), None).expect("chown");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("readable"), b"fine").expect("write");
    std::fs::write(src.join("secret"), b"root only").expect("write");
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    for b in ["backupd", "backupctl"] {
        std::fs::copy(bin(b), dir.path().join(b)).expect("copy binary");
    }
    let env = [
        ("HOME", home.clone()),
        ("XDG_RUNTIME_DIR", home.join("run")),
        ("XDG_STATE_HOME", home.join("state")),
    ];
    let as_nobody = |program: &str| {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(dir.path().join(program));
        for (k, v) in &env {
            c.env(k, v);
        }
        c
    };
    std::fs::create_dir(home.join("run")).expect("mkdir");
    nix::unistd::chown(&home.join("run"), Some(65534.into()), None).expect("chown");
    let mut daemon = as_nobody("backupd")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let ctl = |args: &[&str]| {
        as_nobody("backupctl")
            .args(args)
            .output()
            .expect("backupctl")
    };
    backupd_tests::wait_until(
        "the daemon running as nobody",
        Duration::from_secs(10),
        || ctl(&["system", "health"]).status.success().then_some(()),
    );
    let out = ctl(&["--json", "backup", src.to_str().expect("utf8")]);
    let stop = ctl(&["system", "shutdown"]);
    backupd_tests::wait_child(&mut daemon, Duration::from_secs(30), "backupd as nobody");
    assert!(stop.status.success());
    assert_eq!(
        out.status.code(),
        Some(1),
        "partial backup exits 1: {}",
        text(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let skipped = v["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{v}");
    assert!(
        skipped[0]["path"]
            .as_str()
            .expect("path")
            .ends_with("/src/secret"),
        "{v}"
    );
    assert!(
        skipped[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("ermission denied"),
        "{v}"
    );
    assert_eq!(v["stats"]["files"], 2, "{v}");
    assert_eq!(v["stats"]["skipped"], 1, "{v}");
}

#[test]
fn restore_include_and_exclude_select_files() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("docs")).expect("mkdir");
    std::fs::create_dir_all(src.join("logs")).expect("mkdir");
    std::fs::write(src.join("docs/a.txt"), b"a").expect("write");
    std::fs::write(src.join("docs/b.md"), b"b").expect("write");
    std::fs::write(src.join("logs/x.log"), b"x").expect("write");
    json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--tag",
        "t1",
        src.to_str().expect("utf8"),
    ]));
    let target = d.dir.path().join("only-txt");
    json_ok(&d.ctl(&[
        "--json",
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().expect("utf8"),
        "--include",
        "*.txt",
    ]));
    assert!(target.join("docs/a.txt").exists());
    assert!(!target.join("docs/b.md").exists());
    assert!(
        !target.join("logs").exists(),
        "directories without wanted files are not created"
    );
    let target = d.dir.path().join("no-logs");
    json_ok(&d.ctl(&[
        "--json",
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().expect("utf8"),
        "--exclude",
        "*.log",
    ]));
    assert!(target.join("docs/b.md").exists());
    assert!(!target.join("logs/x.log").exists());
    let tagged = json_ok(&d.ctl(&["--json", "snapshots", "--tag", "t1"]));
    assert_eq!(tagged.as_array().expect("list").len(), 1);
    let untagged = json_ok(&d.ctl(&["--json", "snapshots", "--tag", "nope"]));
    assert!(untagged.as_array().expect("list").is_empty());
}

on_every_backend!(
    index_rebuild,
    index_is_rebuilt_from_packs_after_index_files_are_lost_or_damaged,
    index_is_rebuilt_from_packs_after_index_files_are_lost_or_damaged_on_s3
);

fn index_rebuild(backend: Backend) {
    let d = TestDaemon::start();
    let store = Store::attach(&d, backend);
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    for i in 0..6u64 {
        random_file(&src.join(format!("f{i}")), 3 << 20, 300 + i);
        json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    }
    let files: Vec<String> = store.list("index").into_iter().map(|(p, _)| p).collect();
    assert!(files.len() >= 3);
    // One index file damaged, one deleted.
    let mut bytes = store.read(&files[0]);
    bytes[40] ^= 1;
    store.write(&files[0], &bytes);
    store.delete(&files[1]);

    // A new daemon opens the repository despite the damage; check names the problem.
    let mut d = d;
    json_ok(&d.ctl(&["--json", "system", "shutdown"]));
    d.wait_exit(Duration::from_secs(10)).expect("exit");
    let d2 = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        ..Default::default()
    });
    let check = d2.ctl(&["--json", "repo", "check"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("rebuild-index"),
        "{}",
        text(&check)
    );

    let r = json_ok(&d2.ctl(&["--json", "repo", "rebuild-index"]));
    assert!(r["unreadable"].as_array().expect("list").is_empty(), "{r}");
    assert!(r["packs"].as_u64().expect("packs") >= 1, "{r}");
    d2.check_clean(None);
    let target = d2.dir.path().join("restored");
    d2.restore_and_compare(&src, &target, &[], CompareOptions::default());
}

on_every_backend!(
    snapshot_rollback,
    snapshot_rollback_is_reported_and_restore_latest_fails_until_the_file_is_forgotten,
    snapshot_rollback_is_reported_and_restore_latest_fails_until_the_file_is_forgotten_on_s3
);

fn snapshot_rollback(backend: Backend) {
    let d = TestDaemon::start();
    let store = Store::attach(&d, backend);
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let src_arg = src.to_str().expect("utf8");
    let mut ids = Vec::new();
    for content in ["old secret config\n", "new config\n"] {
        std::fs::write(src.join("config"), content).expect("write");
        let b = json_ok(&d.ctl(&["--json", "backup", "--force", src_arg]));
        ids.push(b["snapshot"].as_str().expect("id").to_owned());
    }
    let (old, new) = (&ids[0], &ids[1]);
    // The attack: the newest snapshot file now holds the older (validly sealed) snapshot.
    store.write(
        &format!("snapshots/{new}"),
        &store.read(&format!("snapshots/{old}")),
    );

    let check = d.ctl(&["--json", "repo", "check", "--read-data"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(new.as_str()),
        "{}",
        text(&check)
    );

    let target = d.dir.path().join("latest");
    let target_arg = target.to_str().expect("utf8");
    let spec = format!("latest:{}", src.display());
    let out = d.ctl(&["restore", &spec, "--target", target_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(new.as_str()), "{stderr}");
    assert!(
        stderr.contains("backupctl repo check") && stderr.contains("backupctl forget"),
        "{stderr}"
    );
    assert!(!target.join("config").exists(), "nothing restored");

    // An explicit id still restores.
    let older = d.dir.path().join("older");
    json_ok(&d.ctl(&[
        "--json",
        "restore",
        &format!("{}:{}", &old[..12], src.display()),
        "--target",
        older.to_str().expect("utf8"),
    ]));
    assert_eq!(
        std::fs::read_to_string(older.join("config")).expect("restored"),
        "old secret config\n"
    );

    // The fix the message names.
    json_ok(&d.ctl(&["--json", "forget", &new[..8]]));
    let check = d.ctl(&["--json", "repo", "check", "--read-data"]);
    assert!(check.status.success(), "{}", text(&check));
    json_ok(&d.ctl(&["--json", "restore", &spec, "--target", target_arg]));
    assert_eq!(
        std::fs::read_to_string(target.join("config")).expect("restored"),
        "old secret config\n"
    );
}
