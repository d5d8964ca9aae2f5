//! Attacks by a local unprivileged user (`nobody`) on a root daemon's backup and restore walks,
//! each performed for real: the attacker races the daemon from its own process while root
//! backs up or restores the attacker's tree. These need root (CI runs as root).

use backupd_tests::treecmp::CompareOptions;
use backupd_tests::{
    chown_tree, ctl_within, is_root, json_ok, shared_tempdir, Attacker, TestDaemon, NOBODY,
};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const ATTACKER: &str = env!("CARGO_BIN_EXE_attacker");
const JOB_DEADLINE: Duration = Duration::from_secs(120);

fn need_root() {
    assert!(
        is_root(),
        "this test needs root (it attacks a root daemon as nobody); CI runs as root"
    );
}

fn run(d: &TestDaemon, args: &[&str]) -> Output {
    ctl_within(&d.socket, args, JOB_DEADLINE)
}

/// The JSON a finished job printed (success or partial).
fn job_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON ({}): {} {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A root-only directory holding a root-only file, as an attacker's goal.
fn vault(area: &Path) -> std::path::PathBuf {
    let vault = area.join("vault");
    std::fs::create_dir(&vault).expect("mkdir vault");
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(vault.join("secret"), b"TOPSECRET").expect("write secret");
    std::fs::set_permissions(vault.join("secret"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    vault
}

fn assert_vault_untouched(vault: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(vault)
        .expect("list vault")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["secret"],
        "files appeared in the root-only directory"
    );
    let dir = std::fs::metadata(vault).expect("stat vault");
    assert_eq!(dir.mode() & 0o7777, 0o700, "vault mode changed");
    assert_eq!((dir.uid(), dir.gid()), (0, 0), "vault owner changed");
    let secret = std::fs::symlink_metadata(vault.join("secret")).expect("stat secret");
    assert_eq!(secret.mode() & 0o7777, 0o600, "secret mode changed");
    assert_eq!((secret.uid(), secret.gid()), (0, 0), "secret owner changed");
    assert_eq!(
        std::fs::read(vault.join("secret")).expect("read secret"),
        b"TOPSECRET"
    );
}

#[test]
fn restore_race_never_writes_or_chmods_outside_the_target() {
    need_root();
    let (uid, gid) = (NOBODY, NOBODY);
    let d = TestDaemon::start();
    let area = shared_tempdir();
    let home = area.path().join("home");
    // Two directories the attacker will swap for symlinks: one full of files (writes would
    // land in the vault), one with mode 0777 (a path-based chmod would open the vault up).
    std::fs::create_dir_all(home.join("sub")).expect("mkdir");
    std::fs::create_dir_all(home.join("open")).expect("mkdir");
    std::fs::write(home.join("sub/ld.so.preload"), b"/home/evil.so\n").expect("write");
    for i in 0..200 {
        std::fs::write(home.join(format!("sub/f{i:03}")), format!("user data {i}")).expect("w");
    }
    std::fs::write(home.join("open/note"), b"note").expect("write");
    chown_tree(&home, uid, gid);
    std::fs::set_permissions(home.join("open"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    json_ok(&run(
        &d,
        &["--json", "backup", home.to_str().expect("utf8")],
    ));

    let vault = vault(area.path());
    let dir_link = home.join("dir-link");
    let file_link = home.join("file-link");
    std::os::unix::fs::symlink(&vault, &dir_link).expect("symlink");
    std::os::unix::fs::symlink(vault.join("secret"), &file_link).expect("symlink");
    chown_tree(&dir_link, uid, gid);
    chown_tree(&file_link, uid, gid);

    let attacker = Attacker::swap(
        ATTACKER,
        uid,
        &[
            (&home.join("sub"), &dir_link),
            (&home.join("open"), &file_link),
        ],
    );
    let mut outcomes = Vec::new();
    for _ in 0..15 {
        let out = run(
            &d,
            &[
                "--json",
                "restore",
                &format!("latest:{}", home.display()),
                "--target",
                home.to_str().expect("utf8"),
            ],
        );
        outcomes.push(out.status.code());
        assert_vault_untouched(&vault);
    }
    drop(attacker);
    assert_vault_untouched(&vault);
    // The daemon is still there and serving.
    json_ok(&run(&d, &["--json", "system", "health"]));
    eprintln!("restore exit codes under attack: {outcomes:?}");
}

#[test]
fn restore_target_through_a_symlink_another_user_planted_is_refused() {
    need_root();
    let (uid, gid) = (NOBODY, NOBODY);
    let d = TestDaemon::start();
    let area = shared_tempdir();
    let src = area.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("payload"), b"evil").expect("write");
    json_ok(&run(&d, &["--json", "backup", src.to_str().expect("utf8")]));
    let vault = vault(area.path());
    // nobody's directory, with nobody's symlink to the vault where the target's parent is.
    let home = area.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::os::unix::fs::symlink(&vault, home.join("restore")).expect("symlink");
    chown_tree(&home, uid, gid);
    let target = home.join("restore").join("here");
    let out = run(
        &d,
        &[
            "restore",
            &format!("latest:{}", src.display()),
            "--target",
            target.to_str().expect("utf8"),
        ],
    );
    assert!(
        !out.status.success(),
        "restore through a planted symlink ran"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("symlink owned by uid"),
        "error names the symlink: {stderr}"
    );
    assert_vault_untouched(&vault);
}

#[test]
fn backup_never_reads_through_an_entry_swapped_for_a_symlink() {
    need_root();
    let (uid, gid) = (NOBODY, NOBODY);
    let d = TestDaemon::start();
    let area = shared_tempdir();
    let vault = vault(area.path());
    let home = area.path().join("home");
    std::fs::create_dir_all(home.join("d")).expect("mkdir");
    std::fs::write(home.join("file"), b"mine").expect("write");
    std::fs::write(home.join("d/secret"), b"my own secret").expect("write");
    std::os::unix::fs::symlink(vault.join("secret"), home.join("file-link")).expect("symlink");
    std::os::unix::fs::symlink(&vault, home.join("dir-link")).expect("symlink");
    chown_tree(&home, uid, gid);
    let attacker = Attacker::swap(
        ATTACKER,
        uid,
        &[
            (&home.join("file"), &home.join("file-link")),
            (&home.join("d"), &home.join("dir-link")),
        ],
    );
    let restored = area.path().join("restored");
    let mut replaced = 0;
    for i in 0..40 {
        let out = run(
            &d,
            &["--json", "backup", "--force", home.to_str().expect("utf8")],
        );
        let snap = job_json(&out);
        replaced += snap["stats"]["changed_during_read"].as_u64().unwrap_or(0);
        let id = snap["snapshot"].as_str().expect("snapshot id").to_owned();
        let target = restored.join(i.to_string());
        run(
            &d,
            &[
                "restore",
                &format!("{id}:{}", home.display()),
                "--target",
                target.to_str().expect("utf8"),
            ],
        );
        for entry in walk_files(&target) {
            let content = std::fs::read(&entry).unwrap_or_default();
            assert!(
                !content.windows(9).any(|w| w == b"TOPSECRET"),
                "snapshot {id} holds the root-only file's content at {}",
                entry.display()
            );
        }
    }
    drop(attacker);
    eprintln!("entries seen replaced during 40 backups: {replaced}");
}

fn walk_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_file_swapped_for_a_fifo_never_hangs_a_backup() {
    need_root();
    let (uid, gid) = (NOBODY, NOBODY);
    let d = TestDaemon::start();
    let area = shared_tempdir();
    let home = area.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::write(home.join("f"), b"regular").expect("write");
    nix::unistd::mkfifo(
        &home.join("p"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    chown_tree(&home, uid, gid);
    let attacker = Attacker::swap(ATTACKER, uid, &[(&home.join("f"), &home.join("p"))]);
    for _ in 0..25 {
        // ctl_within fails the test if a backup hangs.
        let out = run(
            &d,
            &["--json", "backup", "--force", home.to_str().expect("utf8")],
        );
        job_json(&out);
    }
    drop(attacker);
    json_ok(&run(&d, &["--json", "system", "health"]));
}

#[test]
fn a_tree_deeper_than_the_limit_is_backed_up_partially_and_the_daemon_survives() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("deep");
    // 1,100 levels of `d`: deeper than the 1,024 a backup descends.
    let mut path = src.clone();
    for i in 0..1100 {
        path.push("d");
        if i == 500 {
            std::fs::create_dir_all(&path).expect("mkdir");
            std::fs::write(path.join("middle"), b"at level 501").expect("write");
        }
    }
    std::fs::create_dir_all(&path).expect("mkdir deep");
    std::fs::write(path.join("bottom"), b"too deep").expect("write");
    let out = run(&d, &["--json", "backup", src.to_str().expect("utf8")]);
    let snap = job_json(&out);
    let skipped = snap["skipped"].as_array().expect("skipped").clone();
    assert_eq!(skipped.len(), 1, "{snap}");
    assert!(
        skipped[0].to_string().contains("directory levels deep"),
        "{skipped:?}"
    );
    json_ok(&run(&d, &["--json", "system", "health"]));
    // What is within the limit restores.
    let target = d.dir.path().join("restored");
    let out = run(
        &d,
        &[
            "--json",
            "restore",
            &format!("latest:{}", src.display()),
            "--target",
            target.to_str().expect("utf8"),
        ],
    );
    json_ok(&out);
    let mut middle = target.clone();
    for _ in 0..501 {
        middle.push("d");
    }
    assert_eq!(
        std::fs::read(middle.join("middle")).expect("middle file restored"),
        b"at level 501"
    );
}

#[test]
fn names_up_to_255_bytes_of_any_encoding_back_up_and_restore() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("names");
    std::fs::create_dir_all(&src).expect("mkdir");
    let names: Vec<Vec<u8>> = vec![
        "日".repeat(85).into_bytes(), // 255 bytes
        "😀".repeat(63).into_bytes(), // 252 bytes
        vec![0xff; 255],
        b"x".repeat(255),
    ];
    for (i, name) in names.iter().enumerate() {
        let p = src.join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(&p, format!("content {i}")).expect("write long name");
        std::fs::create_dir(src.join(format!("dir{i}"))).expect("mkdir");
        std::os::unix::fs::symlink(
            "target",
            src.join(format!("dir{i}"))
                .join(std::ffi::OsStr::from_bytes(name)),
        )
        .expect("symlink with a long name");
    }
    json_ok(&run(&d, &["--json", "backup", src.to_str().expect("utf8")]));
    let target = d.dir.path().join("restored");
    d.restore_and_compare(
        &src,
        &target,
        &[],
        CompareOptions {
            owners: true,
            atime: false,
            sparse: false,
        },
    );
}

#[test]
fn out_of_place_restore_drops_setuid_and_no_owner_keeps_the_restorer_as_owner() {
    need_root();
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("shared")).expect("mkdir");
    std::fs::write(src.join("su-tool"), b"#!/bin/sh\n").expect("write");
    // chown clears setuid/setgid, so it goes first.
    nix::unistd::chown(&src.join("su-tool"), Some(1234.into()), Some(5678.into())).expect("chown");
    std::fs::set_permissions(src.join("su-tool"), std::fs::Permissions::from_mode(0o6755))
        .expect("chmod");
    std::fs::set_permissions(src.join("shared"), std::fs::Permissions::from_mode(0o2775))
        .expect("chmod");
    json_ok(&run(&d, &["--json", "backup", src.to_str().expect("utf8")]));
    let restore = |name: &str, extra: &[&str]| {
        let target = d.dir.path().join(name);
        let mut args = vec![
            "--json".to_owned(),
            "restore".into(),
            format!("latest:{}", src.display()),
            "--target".into(),
            target.to_str().expect("utf8").into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        json_ok(&run(&d, &args));
        target
    };
    let default = restore("default", &[]);
    let tool = std::fs::metadata(default.join("su-tool")).expect("stat");
    assert_eq!(
        tool.mode() & 0o7777,
        0o755,
        "setuid/setgid dropped out of place"
    );
    assert_eq!(tool.uid(), 1234, "owner restored as root");
    let shared = std::fs::metadata(default.join("shared")).expect("stat");
    assert_eq!(
        shared.mode() & 0o7777,
        0o2775,
        "a setgid directory only steers group inheritance; it is kept"
    );
    let kept = restore("kept", &["--keep-setid"]);
    let tool = std::fs::metadata(kept.join("su-tool")).expect("stat");
    assert_eq!(tool.mode() & 0o7777, 0o6755);
    let no_owner = restore("no-owner", &["--no-owner"]);
    let tool = std::fs::metadata(no_owner.join("su-tool")).expect("stat");
    assert_eq!((tool.uid(), tool.gid()), (0, 0), "--no-owner keeps root");
}

#[test]
fn sigterm_stops_the_daemon_even_with_a_worker_stuck_in_a_read() {
    need_root();
    let mut d = TestDaemon::start_with(backupd_tests::DaemonOptions {
        config: Some("[server]\nshutdown_grace = \"2s\"\n".into()),
        ..Default::default()
    });
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("file"), b"some content").expect("write");
    json_ok(&run(&d, &["--json", "backup", src.to_str().expect("utf8")]));
    // A hostile storage location: the pack becomes a FIFO nobody writes to, so a read of it
    // blocks in open(2) and ignores cancellation.
    let packs: Vec<_> = walk_files(&d.state_dir)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "data"))
        .collect();
    assert!(!packs.is_empty(), "no pack under {}", d.state_dir.display());
    for pack in &packs {
        std::fs::remove_file(pack).expect("rm pack");
        nix::unistd::mkfifo(pack, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    }
    let target = d.dir.path().join("restored");
    let out = run(
        &d,
        &[
            "--json",
            "restore",
            "--no-wait",
            &format!("latest:{}", src.display()),
            "--target",
            target.to_str().expect("utf8"),
        ],
    );
    let job = json_ok(&out)["id"].as_u64().expect("job id").to_string();
    // The worker gets stuck (and stays so).
    std::thread::sleep(Duration::from_secs(1));
    let info = json_ok(&run(&d, &["--json", "queue", "job", &job]));
    assert_eq!(info["state"], "running", "{info}");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some(),
        "backupd still running 15 s after SIGTERM (grace 2 s); log:\n{}",
        d.log_text()
    );
}
