//! What a new user meets first when starting backupd: the daemon's own log inside a watched
//! directory, config and log-level mistakes, the `--watch` usage error and the README's quick
//! start (which needs root: it runs the command as another uid too; CI runs as root). The
//! user-mode socket fallback and its squatting are in `user_socket.rs`.

use backupd_tests::{
    as_uid_like_su, bin, is_root, json_ok, poll_until, shared_tempdir, spare_uid_at, wait_child,
    KillOnDrop,
};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `backupctl --json source list`'s one source; `None` while the daemon does not answer.
fn only_source(socket: &Path) -> Option<serde_json::Value> {
    let out = backupd_tests::ctl(socket, &["--json", "source", "list"]);
    out.status.success().then(|| json_ok(&out)[0].clone())
}

/// Waits until the source is idle (watching, nothing pending, no job) with a snapshot other
/// than `old`; returns that snapshot's id.
fn next_snapshot(socket: &Path, old: Option<&str>, log: &Path) -> String {
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    backupd_tests::wait_until_else(
        "a new snapshot of the source",
        Duration::from_secs(60),
        || {
            let s = only_source(socket)?;
            *last.borrow_mut() = s.clone();
            let snap = s["last_snapshot"].as_str()?.to_owned();
            let idle = s["state"] == "watching" && s["pending_paths"] == 0 && s["job"].is_null();
            (idle && Some(snap.as_str()) != old).then_some(snap)
        },
        || {
            format!(
                "{:#}\nlog:\n{}",
                last.borrow(),
                std::fs::read_to_string(log).unwrap_or_default()
            )
        },
    )
}

/// Asserts that no further snapshot appears over several debounce periods (2 s each).
fn assert_no_more_snapshots(socket: &Path, current: &str) {
    let count = |s: &Path| {
        json_ok(&backupd_tests::ctl(s, &["--json", "snapshots"]))
            .as_array()
            .map(Vec::len)
    };
    let before = count(socket);
    let changed = poll_until(Duration::from_secs(8), || {
        let s = only_source(socket).expect("the daemon answers");
        (s["last_snapshot"] != current || s["pending_paths"] != 0 || !s["job"].is_null())
            .then_some(s)
    });
    assert_eq!(changed, None, "the daemon went on backing up on its own");
    assert_eq!(count(socket), before);
}

fn restore_latest(socket: &Path, src: &Path, target: &Path) {
    let latest = format!("latest:{}", src.display());
    let out = backupd_tests::ctl_within(
        socket,
        &[
            "--json",
            "restore",
            &latest,
            "--target",
            target.to_str().expect("utf8"),
        ],
        Duration::from_secs(120),
    );
    json_ok(&out);
}

#[test]
fn the_daemons_own_log_in_a_watched_directory_is_never_backed_up_nor_makes_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let watched = dir.path().join("home");
    std::fs::create_dir(&watched).expect("mkdir");
    let socket = dir.path().join("backupd.sock");
    let nohup = watched.join("nohup.out");
    // `nohup backupd --watch ~`: the log goes into the watched directory.
    let log = std::fs::File::create(&nohup).expect("nohup.out");
    let _daemon = KillOnDrop(
        Command::new(bin("backupd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--log-level", "debug", "--watch"])
            .arg(&watched)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("backupd"),
    );
    let first = next_snapshot(&socket, None, &nohup);
    let said = std::fs::read_to_string(&nohup).unwrap_or_default();
    assert!(
        said.lines()
            .any(|l| l.contains("own log") && l.contains(nohup.to_str().expect("utf8"))),
        "no start message about leaving out the log:\n{said}"
    );

    std::fs::write(watched.join("a.txt"), "one change").expect("write");
    let second = next_snapshot(&socket, Some(&first), &nohup);
    assert_no_more_snapshots(&socket, &second);
    let target = dir.path().join("restored");
    restore_latest(&socket, &watched, &target);
    assert!(target.join("a.txt").exists());
    assert!(!target.join("nohup.out").exists(), "the log was backed up");

    // Found by inode: a renamed log is still the daemon's own.
    std::fs::rename(&nohup, watched.join("renamed.log")).expect("rename");
    std::fs::write(watched.join("b.txt"), "another change").expect("write");
    let third = next_snapshot(&socket, Some(&second), &watched.join("renamed.log"));
    assert_no_more_snapshots(&socket, &third);
    let target = dir.path().join("restored-2");
    restore_latest(&socket, &watched, &target);
    assert!(target.join("b.txt").exists());
    assert!(
        !target.join("renamed.log").exists(),
        "the renamed log was backed up"
    );
}

fn backupd(args: &[&str]) -> Output {
    Command::new(bin("backupd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("backupd")
}

#[test]
fn toml_errors_keep_their_caret_diagram_in_check_config_and_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[server]\nmax_connections = \"many\"\n").expect("write");
    let config = config.to_str().expect("utf8");
    let socket = dir.path().join("s.sock");
    let state = dir.path().join("state");
    let checked = backupd(&["--check-config", "--config", config]);
    let started = backupd(&[
        "--config",
        config,
        "--socket",
        socket.to_str().expect("utf8"),
        "--state-dir",
        state.to_str().expect("utf8"),
    ]);
    for (out, code) in [(&checked, 2), (&started, 78)] {
        assert_eq!(out.status.code(), Some(code), "{}", text(out));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains("2 | max_connections = \"many\""))
            .unwrap_or_else(|| panic!("no diagram line: {err}"));
        assert!(
            lines.get(at + 1).is_some_and(|l| l.contains("^^^")),
            "{err}"
        );
    }
}

#[test]
fn unknown_log_levels_are_refused_by_check_config_and_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[daemon]\nlog_level = \"verbose\"\n").expect("write");
    let config = config.to_str().expect("utf8");
    let socket = dir.path().join("s.sock");
    let socket = socket.to_str().expect("utf8");
    let state = dir.path().join("state");
    let state = state.to_str().expect("utf8");
    let run = ["--socket", socket, "--state-dir", state];
    let cases: [(Vec<&str>, i32, &str); 4] = [
        (vec!["--check-config", "--config", config], 2, "verbose"),
        (
            vec!["--check-config", "--log-level", "nonsense"],
            2,
            "nonsense",
        ),
        ([&["--config", config][..], &run].concat(), 78, "verbose"),
        (
            [&["--log-level", "nonsense"][..], &run].concat(),
            78,
            "nonsense",
        ),
    ];
    for (args, code, level) in cases {
        let out = backupd(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(level), "{args:?}: {err}");
        assert!(
            err.contains("trace, debug, info, warn, error, off"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !Path::new(socket).exists(),
        "a daemon with a bad level must not start"
    );
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let d = backupd_tests::TestDaemon::start();
    json_ok(&d.ctl(&["--json", "system", "health"]));
    d.wait_log_line(&["INFO"], Duration::from_secs(10));
    let log = std::fs::read(&d.log).expect("log");
    assert!(!log.is_empty());
    assert!(!log.contains(&0x1b), "ESC in a log that is not a terminal");
}

#[test]
fn watching_a_directory_that_does_not_exist_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let out = backupd(&[
        "--socket",
        socket.to_str().expect("utf8"),
        "--state-dir",
        dir.path().join("state").to_str().expect("utf8"),
        "--watch",
        "/nonexistent/backupd-demo",
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("/nonexistent/backupd-demo"),
        "{}",
        text(&out)
    );
    let out = backupd(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
}

/// The README's first quick-start command, as written, up to its comment.
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let quick = readme
        .split("## Quick start")
        .nth(1)
        .expect("a Quick start section");
    let block = quick.split("```sh\n").nth(1).expect("a sh block");
    let line = block.lines().next().expect("a first command");
    line.split("  #").next().unwrap_or(line).trim().to_owned()
}

/// A shell and everything it starts, killed as a process group when dropped.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Runs the README's first command on a fresh HOME as `uid` (`extra` appended, e.g. a private
/// socket for root), waits until the daemon answers, checks it watches the demo directory
/// and stops it.
fn quick_start_as(uid: u32, extra: &str, socket: Option<&Path>) {
    let command = readme_first_command();
    assert!(
        command.contains("cargo run --release --bin backupd --"),
        "{command}"
    );
    let built = bin("backupd");
    let command = command.replace(
        "cargo run --release --bin backupd --",
        built.to_str().expect("utf8"),
    );
    let home = shared_tempdir();
    std::os::unix::fs::chown(home.path(), Some(uid), Some(uid)).expect("chown home");
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("{command}{extra}"))
        .uid(uid)
        .gid(uid)
        .process_group(0)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BACKUPD_SOCKET")
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut group = Group(shell.spawn().expect("sh"));
    let ctl = |args: &[&str]| {
        let mut cmd = as_uid_like_su("backupctl", uid, home.path());
        if let Some(s) = socket {
            cmd.arg("--socket").arg(s);
        }
        cmd.args(args).output().expect("backupctl")
    };
    let sources = poll_until(Duration::from_secs(30), || {
        if group.0.try_wait().ok().flatten().is_some() {
            return Some(Err(()));
        }
        let out = ctl(&["--json", "source", "list"]);
        out.status.success().then(|| Ok(json_ok(&out)))
    });
    let sources = match sources {
        Some(Ok(s)) => s,
        _ => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(-(group.0.id() as i32)),
                nix::sys::signal::Signal::SIGKILL,
            );
            let mut err = String::new();
            if let Some(mut e) = group.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the quick start's first command did not start a daemon: {command}\n{err}");
        }
    };
    let demo = home.path().join("backupd-demo");
    assert!(demo.is_dir(), "the command makes the directory it watches");
    assert_eq!(
        sources[0]["path"],
        demo.display().to_string(),
        "{sources:#}"
    );
    let stop = ctl(&["system", "shutdown"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let status = wait_child(&mut group.0, Duration::from_secs(30), "the quick start");
    assert!(status.success(), "{status}");
}

#[test]
fn the_readme_quick_start_works_on_a_fresh_machine_as_root_and_as_a_user() {
    assert!(
        is_root(),
        "this test needs root (it runs the command as another uid too); CI runs as root"
    );
    // As root, on a private socket and state directory instead of /run and /var/lib.
    let private = tempfile::tempdir().expect("tempdir");
    let socket = private.path().join("backupd.sock");
    let extra = format!(
        " --socket {} --state-dir {}",
        socket.display(),
        private.path().join("state").display()
    );
    quick_start_as(0, &extra, Some(&socket));
    // As a user without XDG_RUNTIME_DIR: the XDG defaults and the /tmp fallback, as written.
    let uid = spare_uid_at(2);
    let fallback = PathBuf::from(format!("/tmp/backupd-{uid}"));
    let _ = std::fs::remove_dir_all(&fallback);
    quick_start_as(uid, "", None);
    let _ = std::fs::remove_dir_all(&fallback);
}

#[test]
fn check_config_reads_the_file_backupd_config_names_as_the_service_does() {
    // ExecStart= and ExecReload= share the unit's environment: a file named by
    // BACKUPD_CONFIG is the one both the daemon and the reload check read.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("site.toml");
    std::fs::write(&config, "[queue]\nworkers = 99\n").expect("write");
    let out = Command::new(bin("backupd"))
        .arg("--check-config")
        .env("BACKUPD_CONFIG", &config)
        .output()
        .expect("backupd");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("site.toml") && text(&out).contains("queue.workers"));
    std::fs::write(&config, "[queue]\nworkers = 2\n").expect("write");
    let out = Command::new(bin("backupd"))
        .arg("--check-config")
        .env("BACKUPD_CONFIG", &config)
        .output()
        .expect("backupd");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("site.toml"), "{}", text(&out));
}

/// The ```toml blocks of a document, in order.
fn toml_blocks(doc: &str) -> Vec<String> {
    let path = format!("{}/../{doc}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_config_example_in_the_docs_passes_check_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for doc in ["README.md", "docs/OPERATIONS.md", "docs/SECURITY.md"] {
        for (i, block) in toml_blocks(doc).into_iter().enumerate() {
            let config = dir
                .path()
                .join(format!("{}-{i}.toml", doc.replace('/', "-")));
            std::fs::write(&config, &block).expect("write");
            let out = backupd(&["--check-config", "--config", config.to_str().expect("utf8")]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{doc}, TOML block {}: {}",
                i + 1,
                text(&out)
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "found {checked} TOML blocks");
}
