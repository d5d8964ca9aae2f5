//! The state database is not the only copy of anything: repositories and sources declared in the
//! config come back when it is deleted or corrupt, a vanished default repository is never
//! silently recreated, and the state can be exported and imported (issue 10, items 4 and 5).

use backupd_tests::{bin, json_ok, s, text, wait_until, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A scratch directory with a source tree and a passphrase file.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("src/sub")).expect("mkdir");
        std::fs::write(dir.path().join("src/a.txt"), "alpha\n").expect("write");
        std::fs::write(dir.path().join("src/sub/b.txt"), "beta\n").expect("write");
        std::fs::write(dir.path().join("pass"), "correct horse\n").expect("write");
        Self { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn state(&self) -> PathBuf {
        self.path("state")
    }
    fn daemon(&self, config: &str) -> TestDaemon {
        self.daemon_at(&self.state(), config)
    }
    fn daemon_at(&self, state: &Path, config: &str) -> TestDaemon {
        TestDaemon::start_with(DaemonOptions {
            config: Some(config.to_owned()),
            state_dir: Some(state.to_owned()),
            ..Default::default()
        })
    }
    /// Config declaring repository `offsite` at `<site>/repo` and source `docs` backing up
    /// `<site>/src` into it.
    fn declared(&self) -> String {
        format!(
            "[[repository]]\nname = \"offsite\"\npath = \"{}\"\npassword_file = \"{}\"\n\n\
             [[source]]\npath = \"{}\"\nname = \"docs\"\nrepo = \"offsite\"\n\
             excludes = [\"*.tmp\"]\n",
            s(&self.path("repo")),
            s(&self.path("pass")),
            s(&self.path("src"))
        )
    }
}

fn snapshot_ids(d: &TestDaemon, repo: &str) -> Vec<String> {
    json_ok(&d.ctl(&["--json", "snapshots", "--repo", repo]))
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect()
}

fn source(d: &TestDaemon, name: &str) -> Option<Value> {
    json_ok(&d.ctl(&["--json", "source", "list"]))
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// Creates repository `offsite` through a daemon without config and backs `src` up into it.
fn offsite_with_a_snapshot(site: &Site) -> String {
    let mut d = site.daemon("");
    let out = d.ctl(&[
        "repo",
        "init",
        "--name",
        "offsite",
        "--path",
        s(&site.path("repo")),
        "--password-file",
        s(&site.path("pass")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let backup = json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--repo",
        "offsite",
        s(&site.path("src")),
    ]));
    let id = backup["snapshot"].as_str().expect("snapshot id").to_owned();
    d.stop();
    id
}

#[test]
fn deleting_the_state_directory_brings_back_declared_repository_and_source() {
    let site = Site::new();
    let snapshot = offsite_with_a_snapshot(&site);
    std::fs::remove_dir_all(site.state()).expect("delete the state directory");

    let d = site.daemon(&site.declared());
    let repo = d.wait_repo("offsite");
    assert_eq!(repo["path"], s(&site.path("repo")), "{repo}");
    assert!(
        snapshot_ids(&d, "offsite").contains(&snapshot),
        "old snapshot listed"
    );
    let docs = source(&d, "docs").expect("declared source is back");
    assert_eq!(docs["repo"], "offsite");
    assert_eq!(docs["excludes"][0], "*.tmp");
    assert_eq!(docs["transient"], false);
    // It was declared, so no default repository was invented beside it.
    let list = json_ok(&d.ctl(&["--json", "repo", "list"]));
    assert_eq!(list.as_array().expect("list").len(), 1, "{list}");
}

/// Overwrites bytes all over the sled files, as a failing disk would.
fn corrupt(db: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    for entry in std::fs::read_dir(db).expect("db dir") {
        let path = entry.expect("entry").path();
        if !path.is_file() {
            continue;
        }
        let len = std::fs::metadata(&path).expect("stat").len();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        let mut at = 0;
        while at < len {
            f.seek(SeekFrom::Start(at)).expect("seek");
            f.write_all(&[0x5A; 8]).expect("write");
            at += 48;
        }
    }
}

#[test]
fn a_corrupt_state_database_is_moved_aside_and_the_daemon_starts() {
    let site = Site::new();
    let snapshot = offsite_with_a_snapshot(&site);
    let mut d = site.daemon(&site.declared());
    d.wait_repo("offsite");
    d.stop();
    corrupt(&site.state().join("state.sled"));

    let d = site.daemon(&site.declared());
    let health = d.health();
    assert_eq!(health["status"], "degraded", "{health}");
    let notes = health["notes"].to_string();
    assert!(
        notes.contains("corrupt") && notes.contains("state.sled.corrupt-"),
        "{notes}"
    );
    assert!(
        d.log_text().contains("corrupt"),
        "error logged: {}",
        d.log_text()
    );
    let aside: Vec<_> = std::fs::read_dir(site.state())
        .expect("state dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.sled.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "damaged database kept aside");
    d.wait_repo("offsite");
    assert!(snapshot_ids(&d, "offsite").contains(&snapshot));
    assert!(source(&d, "docs").is_some(), "declared source is back");
    // The default repository of the first run is found again in the state directory.
    d.wait_repo("default");
}

#[test]
fn a_removed_default_repository_is_never_silently_recreated() {
    let site = Site::new();
    let config = "[queue]\nretries = 0\n";
    let mut d = site.daemon(config);
    d.wait_repo("default");
    d.stop();
    let repo_dir = site.state().join("repository");
    std::fs::remove_dir_all(&repo_dir).expect("remove the default repository");

    for round in ["registry intact", "state database deleted too"] {
        if round == "state database deleted too" {
            std::fs::remove_dir_all(site.state().join("state.sled")).expect("delete sled");
        }
        let mut d = site.daemon(config);
        let repo = d.wait_repo("default");
        assert_eq!(repo["path"], s(&repo_dir), "{round}: {repo}");
        let health = d.health();
        assert_eq!(health["status"], "degraded", "{round}: {health}");
        assert!(
            health["notes"].to_string().contains("missing"),
            "{round}: {health}"
        );
        let out = d.ctl(&["backup", s(&site.path("src"))]);
        assert!(!out.status.success(), "{round}: backup must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unreachable") && err.contains(s(&repo_dir)),
            "{round}: {}",
            text(&out)
        );
        assert!(
            !repo_dir.exists(),
            "{round}: nothing created at the old path"
        );
        d.stop();
    }

    // The admin decides: a new, empty default repository at the same place.
    let d = site.daemon(config);
    d.wait_repo("default");
    let out = d.ctl(&["repo", "init", "--name", "default", "--path", s(&repo_dir)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.health()["status"], "ok");
    let out = d.ctl(&["backup", s(&site.path("src"))]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn check_config_rejects_bad_declarations_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "[[repository]]\nname = \"r\"\npath = \"/srv/r\"\n",
            "repository[1].key_file",
        ),
        (
            "[[repository]]\nname = \"r\"\npath = \"srv\"\nkey_file = \"/k\"\n",
            "repository[1].path",
        ),
        (
            "[[source]]\npath = \"/etc\"\n[[source]]\npath = \"/srv\"\nexcludes = [\"a[\"]\n",
            "source[2].excludes",
        ),
        (
            "[[source]]\npath = \"/etc\"\nrescan_every = \"1s\"\n",
            "source[1].rescan_every",
        ),
    ];
    for (config, key) in cases {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write");
        let out = Command::new(bin("backupd"))
            .arg("--check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .expect("run backupd");
        assert_eq!(out.status.code(), Some(2), "{key}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(key),
            "{key}: {}",
            text(&out)
        );
    }
}

#[test]
fn an_unusable_state_directory_exits_with_a_status_systemd_does_not_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").expect("write");
    let out = Command::new(bin("backupd"))
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .arg("--state-dir")
        .arg(&not_a_dir)
        .output()
        .expect("run backupd");
    assert_eq!(out.status.code(), Some(73), "{}", text(&out));
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/backupd.service"),
    )
    .expect("unit");
    assert!(
        unit.lines()
            .any(|l| l.starts_with("RestartPreventExitStatus=") && l.contains("73")),
        "the unit must not restart on 73"
    );
}

fn wait_source(d: &TestDaemon, name: &str) -> Value {
    wait_until(&format!("source {name}"), Duration::from_secs(20), || {
        source(d, name)
    })
}

#[test]
fn export_then_import_into_a_fresh_state_reproduces_registry_and_sources() {
    let site = Site::new();
    let snapshot = offsite_with_a_snapshot(&site);
    let mut d = site.daemon("");
    let out = d.ctl(&[
        "source",
        "add",
        s(&site.path("src")),
        "--name",
        "docs",
        "--repo",
        "offsite",
        "--exclude",
        "*.tmp",
        "--debounce",
        "3s",
        "--no-watch",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let before_repo = d.wait_repo("offsite");
    let before_source = wait_source(&d, "docs");
    let file = site.path("export.json");
    let summary = json_ok(&d.ctl(&["--json", "system", "export-state", "--output", s(&file)]));
    assert_eq!(summary["repositories"], 2, "offsite and default: {summary}");
    assert_eq!(summary["sources"], 1, "{summary}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("export")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let doc: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("export is JSON");
    assert_eq!(doc["format"], "backupd-state");
    assert_eq!(doc["version"], 1);
    assert!(
        !doc.to_string().contains("correct horse"),
        "no passphrase in the export"
    );
    // Without --output the document goes to stdout.
    let printed: Value = json_ok(&d.ctl(&["system", "export-state"]));
    assert_eq!(printed["repositories"], doc["repositories"]);
    d.stop();

    let fresh = site.path("fresh-state");
    let d = site.daemon_at(&fresh, "");
    d.wait_repo("default");
    let report = json_ok(&d.ctl(&["--json", "system", "import-state", s(&file)]));
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .expect("list")
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i["kind"].as_str().unwrap_or(""),
                    i["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert_eq!(
        names(&report["added"]),
        vec!["repository offsite", "source docs"],
        "{report}"
    );
    assert_eq!(
        names(&report["skipped"]),
        vec!["repository default"],
        "the new daemon's own default is kept: {report}"
    );
    let after_repo = d.wait_repo("offsite");
    assert_eq!(after_repo["path"], before_repo["path"]);
    assert_eq!(after_repo["key_file"], before_repo["key_file"]);
    assert!(snapshot_ids(&d, "offsite").contains(&snapshot));
    let after_source = wait_source(&d, "docs");
    for field in [
        "name",
        "path",
        "repo",
        "excludes",
        "watch",
        "debounce_ms",
        "max_delay_ms",
    ] {
        assert_eq!(after_source[field], before_source[field], "{field}");
    }

    // Importing again adds nothing; a version this backupd does not know is refused.
    let again = json_ok(&d.ctl(&["--json", "system", "import-state", s(&file)]));
    assert_eq!(again["added"].as_array().map(Vec::len), Some(0), "{again}");
    // The same repository under another name is skipped: one repository, one name.
    let mut renamed = doc.clone();
    for r in renamed["repositories"]
        .as_array_mut()
        .expect("repositories")
    {
        if r["name"] == "offsite" {
            r["name"] = "offsite2".into();
        }
    }
    let renamed_file = site.path("renamed.json");
    std::fs::write(&renamed_file, renamed.to_string()).expect("write");
    let report = json_ok(&d.ctl(&["--json", "system", "import-state", s(&renamed_file)]));
    let skipped = report["skipped"].as_array().expect("skipped");
    let second = skipped
        .iter()
        .find(|i| i["name"] == "offsite2")
        .unwrap_or_else(|| panic!("offsite2 not skipped: {report}"));
    assert!(
        second["reason"]
            .as_str()
            .is_some_and(|r| r.contains("already registered as \"offsite\"")),
        "{report}"
    );
    let mut newer = doc.clone();
    newer["version"] = 99.into();
    let newer_file = site.path("newer.json");
    std::fs::write(&newer_file, newer.to_string()).expect("write");
    let out = d.ctl(&["system", "import-state", s(&newer_file)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("version 99"),
        "{}",
        text(&out)
    );
}

#[test]
fn reload_applies_declared_sources_and_keeps_undeclared_ones() {
    let site = Site::new();
    let d = site.daemon("");
    d.wait_repo("default");
    let declared = format!(
        "[[source]]\npath = \"{}\"\nname = \"docs\"\nwatch = false\n",
        s(&site.path("src"))
    );
    std::fs::write(d.config_path(), &declared).expect("write config");
    let report = json_ok(&d.ctl(&["--json", "system", "reload"]));
    assert!(
        report["applied"].to_string().contains("source.docs"),
        "{report}"
    );
    assert_eq!(wait_source(&d, "docs")["watch"], false);

    // Declared wins over what is registered under the same name.
    std::fs::write(d.config_path(), declared.replace("false", "true")).expect("write config");
    json_ok(&d.ctl(&["--json", "system", "reload"]));
    assert_eq!(wait_source(&d, "docs")["watch"], true);

    // Dropped from the config: kept, and the log says so.
    std::fs::write(d.config_path(), "").expect("write config");
    json_ok(&d.ctl(&["--json", "system", "reload"]));
    assert!(source(&d, "docs").is_some(), "not removed silently");
    assert!(
        d.log_text().contains("no longer declared"),
        "{}",
        d.log_text()
    );
}
