//! Where a restore writes and what it does with files already there: `--overwrite
//! always|if-changed|never`, the default target under the daemon's state directory, and the
//! error for a target on a read-only file system (what `ProtectSystem=strict` does).

use backupd_tests::{ctl_within, is_root, json_ok, SmallFs, TestDaemon};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A daemon with one snapshot of `src` holding `a`, `b` and `c`.
fn backed_up() -> (TestDaemon, std::path::PathBuf) {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    for (name, seed) in [("a", 1), ("b", 2), ("c", 3)] {
        std::fs::write(
            src.join(name),
            backupd_tests::pseudo_random_bytes(20_000, seed),
        )
        .expect("write");
    }
    json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("UTF-8")]));
    (d, src)
}

fn restore(d: &TestDaemon, src: &Path, target: &Path, overwrite: Option<&str>) -> Value {
    let mut extra = vec![];
    if let Some(o) = overwrite {
        extra.extend(["--overwrite", o]);
    }
    d.restore_latest(src, target, &extra)
}

fn counts(r: &Value) -> (u64, u64, u64) {
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r:#}"));
    (n("replaced"), n("unchanged"), n("kept"))
}

#[test]
fn overwrite_if_changed_replaces_only_locally_changed_files() {
    let (d, src) = backed_up();
    let target = d.dir.path().join("target");
    let first = restore(&d, &src, &target, None);
    assert_eq!(counts(&first), (0, 0, 0), "{first:#}");
    assert_eq!(first["files"], 3, "{first:#}");

    std::fs::write(target.join("a"), "local edit").expect("edit");
    let again = restore(&d, &src, &target, None);
    assert_eq!(counts(&again), (1, 2, 0), "{again:#}");
    assert_eq!(again["files"], 1, "{again:#}");
    assert_eq!(
        std::fs::read(target.join("a")).expect("read"),
        std::fs::read(src.join("a")).expect("read")
    );
    // Same size and mtime but other bytes: the content decides.
    let b = target.join("b");
    let mtime = std::fs::metadata(&b)
        .expect("meta")
        .modified()
        .expect("mtime");
    let mut bytes = std::fs::read(&b).expect("read");
    bytes[0] ^= 0xff;
    std::fs::write(&b, &bytes).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&b)
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
    let third = restore(&d, &src, &target, Some("if-changed"));
    assert_eq!(counts(&third), (1, 2, 0), "{third:#}");
    assert_eq!(
        std::fs::read(&b).expect("read"),
        std::fs::read(src.join("b")).expect("read")
    );
}

#[test]
fn overwrite_never_leaves_existing_files_and_counts_them() {
    let (d, src) = backed_up();
    let target = d.dir.path().join("target");
    restore(&d, &src, &target, None);
    std::fs::write(target.join("a"), "local edit").expect("edit");
    std::fs::remove_file(target.join("c")).expect("rm");
    let r = restore(&d, &src, &target, Some("never"));
    assert_eq!(counts(&r), (0, 0, 2), "{r:#}");
    assert_eq!(r["files"], 1, "only the missing file is restored: {r:#}");
    assert_eq!(
        std::fs::read(target.join("a")).expect("read"),
        b"local edit"
    );
    assert!(target.join("c").exists());
    let shown = d.ctl(&[
        "restore",
        &format!("latest:{}", src.display()),
        "--target",
        target.to_str().expect("UTF-8"),
        "--overwrite",
        "never",
    ]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("existing: 0 replaced, 0 left as they equal the snapshot, 3 left"),
        "{text}"
    );
}

#[test]
fn overwrite_always_replaces_every_existing_file() {
    let (d, src) = backed_up();
    let target = d.dir.path().join("target");
    restore(&d, &src, &target, None);
    std::fs::write(target.join("a"), "local edit").expect("edit");
    let r = restore(&d, &src, &target, Some("always"));
    assert_eq!(counts(&r), (3, 0, 0), "{r:#}");
    assert_eq!(r["files"], 3, "{r:#}");
    assert_eq!(
        std::fs::read(target.join("a")).expect("read"),
        std::fs::read(src.join("a")).expect("read")
    );
}

#[test]
fn a_restore_without_target_goes_under_the_state_directory() {
    let (d, src) = backed_up();
    let latest = format!("latest:{}", src.display());
    let r = json_ok(&ctl_within(
        &d.socket,
        &["--json", "restore", &latest],
        Duration::from_secs(120),
    ));
    let id = r["snapshot"].as_str().expect("snapshot");
    let want = d.state_dir.join("restore").join(&id[..8]);
    assert_eq!(r["target"], want.to_str().expect("UTF-8"), "{r:#}");
    assert_eq!(
        std::fs::read(want.join("b")).expect("restored file"),
        std::fs::read(src.join("b")).expect("read")
    );
    let shown = d.ctl(&["restore", &latest]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains(&format!("into {}", want.display())), "{text}");
}

#[test]
fn a_restore_onto_a_read_only_file_system_names_the_systemd_setting() {
    assert!(is_root(), "this test mounts a tmpfs; CI runs tests as root");
    let (d, src) = backed_up();
    let mount = d.dir.path().join("ro");
    let fs = SmallFs::mount(&mount, "4m");
    fs.remount("ro");
    for target in [mount.clone(), mount.join("missing/sub")] {
        let out = d.ctl(&[
            "restore",
            &format!("latest:{}", src.display()),
            "--target",
            target.to_str().expect("UTF-8"),
        ]);
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is on a read-only file system"), "{err}");
        assert!(err.contains("ProtectSystem=strict"), "{err}");
        assert!(err.contains("ReadWritePaths="), "{err}");
        assert!(err.contains("docs/OPERATIONS.md"), "{err}");
    }
}
