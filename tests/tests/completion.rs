//! Shell completion with the real binaries: `COMPLETE=<shell> backupctl` prints a registration
//! script that bash accepts, and answers completion requests, made as the scripts make them,
//! with the names the running daemon knows (repositories, sources, snapshots by short id) and
//! with subcommands; without a daemon it answers with nothing and prints no error.

use backupd_tests::{
    bin, bin_dir, is_root, json_ok, output_within, s, text, wait_until, DaemonOptions, TestDaemon,
    NOBODY, OPEN_SOCKET,
};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// What bash's registration script sets `_CLAP_IFS` to (`IFS=$'\013'`): candidates are
/// separated by a vertical tab.
const BASH_IFS: &str = "\u{b}";

/// One completion request as the `shell`'s registration script makes it: the words after
/// `backupctl` on the line, the last one the word being completed (`""` for a fresh word).
/// `socket` becomes `BACKUPD_SOCKET`; without it the variable is unset.
fn request(shell: &str, socket: Option<&Path>, words: &[&str]) -> Output {
    request_as(None, shell, socket, words)
}

/// As [`request`], run as `uid` when one is given (needs root).
fn request_as(uid: Option<u32>, shell: &str, socket: Option<&Path>, words: &[&str]) -> Output {
    let mut cmd = Command::new(bin("backupctl"));
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid).env("HOME", "/");
    }
    cmd.env("COMPLETE", shell).env_remove("BACKUPD_SOCKET");
    if let Some(socket) = socket {
        cmd.env("BACKUPD_SOCKET", socket);
    }
    if shell == "bash" {
        // COMP_CWORD counts `backupctl` as word 0.
        cmd.env("_CLAP_COMPLETE_INDEX", words.len().to_string())
            .env("_CLAP_COMPLETE_COMP_TYPE", "9")
            .env("_CLAP_COMPLETE_SPACE", "false")
            .env("_CLAP_IFS", BASH_IFS);
    }
    cmd.arg("--").arg("backupctl").args(words);
    let what = format!("COMPLETE={shell} backupctl -- backupctl {words:?}");
    let out = output_within(cmd, Duration::from_secs(10), &what);
    assert!(out.status.success(), "{what}: {}", text(&out));
    assert!(
        out.stderr.is_empty(),
        "{what} wrote to stderr: {}",
        text(&out)
    );
    out
}

/// The candidates bash would be given.
fn bash(socket: Option<&Path>, words: &[&str]) -> Vec<String> {
    bash_as(None, socket, words)
}

fn bash_as(uid: Option<u32>, socket: Option<&Path>, words: &[&str]) -> Vec<String> {
    let out = request_as(uid, "bash", socket, words);
    String::from_utf8_lossy(&out.stdout)
        .split(BASH_IFS)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The candidates that are not flags: on a fresh word clap offers the flags as well.
fn values(candidates: Vec<String>) -> Vec<String> {
    candidates
        .into_iter()
        .filter(|c| !c.starts_with('-'))
        .collect()
}

fn has(candidates: &[String], want: &str) -> bool {
    candidates.iter().any(|c| c == want)
}

#[test]
fn completion_offers_the_names_the_running_daemon_knows() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let vault = d.dir.path().join("vault");
    let init = d.ctl(&["repo", "init", "--name", "vault", "--path", s(&vault)]);
    assert!(init.status.success(), "{}", text(&init));
    let web = d.dir.path().join("srv/www");
    std::fs::create_dir_all(&web).expect("mkdir");
    std::fs::write(web.join("index.html"), "hello").expect("write");
    let add = d.ctl(&[
        "source",
        "add",
        s(&web),
        "--name",
        "webroot",
        "--repo",
        "vault",
    ]);
    assert!(add.status.success(), "{}", text(&add));
    let id = wait_until(
        "the source's first snapshot",
        Duration::from_secs(60),
        || {
            let list = json_ok(&d.ctl(&[
                "--json",
                "snapshots",
                "--repo",
                "vault",
                "--source",
                "webroot",
            ]));
            Some(list.as_array()?.first()?["id"].as_str()?.to_owned())
        },
    );
    let short = &id[..8];
    let sock = Some(d.socket.as_path());

    // Subcommands, as clap knows them.
    assert_eq!(bash(sock, &["sna"]), ["snapshots"]);
    // Repositories, filtered by the prefix typed.
    let repos = bash(sock, &["restore", "--repo", ""]);
    assert!(has(&repos, "vault") && has(&repos, "default"), "{repos:?}");
    assert_eq!(bash(sock, &["repo", "info", "va"]), ["vault"]);
    // Sources.
    assert_eq!(bash(sock, &["snapshots", "--source", ""]), ["webroot"]);
    assert_eq!(bash(sock, &["source", "show", "web"]), ["webroot"]);
    // Snapshots of the repository named on the line, by short id.
    let snaps = bash(sock, &["restore", "--repo", "vault", ""]);
    assert!(has(&snaps, "latest") && has(&snaps, short), "{snaps:?}");
    assert_eq!(
        bash(sock, &["forget", "--repo", "vault", &short[..3]]),
        [short]
    );
    assert_eq!(
        bash(sock, &["diff", "--repo", "vault", short, &short[..5]]),
        [short]
    );
    // `SNAPSHOT:PATH` completes the snapshot part, up to the colon.
    assert_eq!(
        bash(sock, &["cat", "--repo", "vault", &short[..4]]),
        [format!("{short}:")]
    );
    // The default repository has no snapshot.
    assert_eq!(values(bash(sock, &["forget", ""])), Vec::<String>::new());

    // A `--socket` typed on the line, with no BACKUPD_SOCKET.
    let typed = bash(None, &["--socket", s(&d.socket), "backup", "--repo", "v"]);
    assert_eq!(typed, ["vault"]);

    // fish: one candidate a line, its help after a tab.
    let out = request("fish", sock, &["restore", "--repo", "vault", short]);
    let fish = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = fish
        .lines()
        .find(|l| l.starts_with(&format!("{short}\t")))
        .unwrap_or_else(|| panic!("no {short} in {fish:?}"));
    assert!(line.ends_with("source webroot"), "{line:?}");

    // The installed script in a real bash: the function it registers, called as bash calls it
    // on TAB, runs `backupctl` from PATH and fills COMPREPLY.
    let script = "source <(COMPLETE=bash backupctl)\n\
         COMP_WORDS=(backupctl restore --repo vault '')\n\
         COMP_CWORD=4\n\
         COMP_TYPE=9\n\
         _clap_complete_backupctl backupctl '' vault\n\
         printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("BACKUPD_SOCKET", &d.socket);
    let out = output_within(cmd, Duration::from_secs(10), "bash with the script");
    assert!(out.status.success(), "{}", text(&out));
    let reply = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(reply.lines().any(|l| l == short), "{reply:?}");
    assert!(reply.lines().any(|l| l == "latest"), "{reply:?}");
}

#[test]
fn completion_without_a_daemon_offers_nothing_and_prints_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nothing = dir.path().join("no-daemon.sock");
    // `request` asserts success and an empty stderr.
    assert!(bash(Some(&nothing), &["restore", "--repo", ""]).is_empty());
    assert!(values(bash(Some(&nothing), &["source", "show", ""])).is_empty());
    let snaps = values(bash(Some(&nothing), &["forget", ""]));
    assert!(snaps.is_empty(), "{snaps:?}");
    // What needs no daemon still completes.
    assert_eq!(bash(Some(&nothing), &["sna"]), ["snapshots"]);
}

#[test]
fn completion_never_sends_a_viewer_request_the_daemon_would_refuse() {
    if !is_root() {
        eprintln!("skipped: runs backupctl as `nobody`, which needs root; CI runs tests as root");
        return;
    }
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(OPEN_SOCKET.to_owned()),
        ..Default::default()
    });
    d.wait_repo("default");
    d.open_to_all();
    let sock = Some(d.socket.as_path());
    // `nobody` holds the default role, viewer: repository names, but no snapshot list.
    let repos = bash_as(Some(NOBODY), sock, &["restore", "--repo", ""]);
    assert_eq!(repos, ["default"]);
    // More TABs than security.detect.brute_force_failures (5) would count as refusals.
    for _ in 0..6 {
        let snaps = values(bash_as(Some(NOBODY), sock, &["restore", ""]));
        assert_eq!(snaps, ["latest"]);
    }
    let out = d.ctl(&[
        "--json",
        "security",
        "audit",
        "--type",
        "denied",
        "--uid",
        &NOBODY.to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "refused: {}", text(&out));
}

#[test]
fn registration_scripts_parse_and_call_backupctl_from_path() {
    let mut cmd = Command::new(bin("backupctl"));
    cmd.env("COMPLETE", "bash");
    let out = output_within(cmd, Duration::from_secs(10), "COMPLETE=bash backupctl");
    assert!(out.status.success(), "{}", text(&out));
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        script.contains("\"backupctl\" -- ")
            && script.contains("-F _clap_complete_backupctl backupctl"),
        "{script}"
    );
    let script_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(script_file.path(), &script).expect("write script");
    let check = Command::new("bash")
        .arg("-n")
        .arg(script_file.path())
        .output()
        .expect("bash -n");
    assert!(check.status.success(), "{}\n{script}", text(&check));

    // The other shells' scripts call `backupctl` from PATH too.
    for (shell, call) in [
        ("zsh", "COMPLETE=\"zsh\" \\\n        backupctl -- "),
        ("fish", "COMPLETE=fish backupctl -- "),
    ] {
        let mut cmd = Command::new(bin("backupctl"));
        cmd.env("COMPLETE", shell);
        let out = output_within(cmd, Duration::from_secs(10), shell);
        assert!(out.status.success(), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(script.contains(call), "{shell}: {script}");
    }
}
