//! `backupctl security encrypt|decrypt` through the real daemon: round trips byte for byte
//! (empty, one byte, around the 1 MiB chunk size, several chunks), standard input and output,
//! files sealed before a key rotation, every kind of tampering refused with OUT left alone,
//! the permission, and a root daemon that still reads only what the caller can (the client
//! opens the files and passes the descriptors). The format's own cases are unit tests in
//! `daemon/src/repo/sealed_file/tests.rs`.

use backupd_common::client::{ClientError, Connection};
use backupd_common::error::ErrorCode;
use backupd_common::protocol::{FileCryptRequest, Request, SecurityRequest};
use backupd_tests::{
    bin, chown_tree, is_root, json_ok, pseudo_random_bytes, s, shared_tempdir, spare_uid_at, text,
    DaemonOptions, TestDaemon, NOBODY, OPEN_SOCKET,
};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MIB: usize = 1 << 20;
const HEADER: usize = 48;
const TAG: usize = 16;
/// Where chunk `i` of a sealed file starts.
fn chunk_at(i: usize) -> usize {
    HEADER + i * (MIB + TAG)
}

fn daemon() -> TestDaemon {
    let d = TestDaemon::start();
    d.wait_repo("default");
    d
}

fn encrypt(d: &TestDaemon, input: &Path, output: &Path) -> serde_json::Value {
    json_ok(&d.ctl(&["--json", "security", "encrypt", s(input), s(output)]))
}

fn decrypt(d: &TestDaemon, input: &Path, output: &Path) -> Output {
    d.ctl(&["--json", "security", "decrypt", s(input), s(output)])
}

/// The names in `dir`, sorted: no temporary file may be left behind.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn files_of_every_size_round_trip_byte_for_byte() {
    let d = daemon();
    let dir = d.dir.path().join("files");
    std::fs::create_dir(&dir).expect("mkdir");
    for (i, len) in [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 123]
        .into_iter()
        .enumerate()
    {
        let plain = pseudo_random_bytes(len, i as u64);
        let (input, sealed, back) = (
            dir.join(format!("in{i}")),
            dir.join(format!("in{i}.enc")),
            dir.join(format!("in{i}.out")),
        );
        std::fs::write(&input, &plain).expect("write");
        let e = encrypt(&d, &input, &sealed);
        let chunks = len / MIB + 1;
        assert_eq!(e["repo"], "default");
        assert_eq!(e["key_version"], 1);
        assert_eq!(e["bytes_in"], len as u64);
        assert_eq!(e["chunks"], chunks as u64);
        let bytes = std::fs::read(&sealed).expect("sealed");
        assert_eq!(bytes.len(), HEADER + len + chunks * TAG, "size {len}");
        assert_eq!(e["bytes_out"], bytes.len() as u64);
        assert_eq!(&bytes[..8], b"BKPDENC\x01");
        if len > 64 {
            assert!(
                !bytes.windows(32).any(|w| w == &plain[..32]),
                "plaintext visible in the sealed file"
            );
        }
        let out = decrypt(&d, &sealed, &back);
        let o = json_ok(&out);
        assert_eq!(o["key_version"], 1);
        assert_eq!(o["bytes_out"], len as u64);
        assert!(
            std::fs::read(&back).expect("back") == plain,
            "size {len}: decrypted bytes differ"
        );
        // Decrypted plaintext is private to its owner.
        let mode = std::fs::metadata(&back).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "size {len}");
    }
    // Only the files named, no temporary ones.
    assert_eq!(names(&dir).len(), 18, "{:?}", names(&dir));
}

/// Runs backupctl with `stdin` as its standard input and returns what it printed.
fn piped(d: &TestDaemon, args: &[&str], stdin: Vec<u8>) -> Output {
    let mut child = Command::new(bin("backupctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backupctl");
    let mut pipe = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        // Written in pieces, so the daemon reads a pipe that is not full at once.
        for piece in stdin.chunks(100_000) {
            if pipe.write_all(piece).is_err() {
                return;
            }
        }
    });
    let out = child.wait_with_output().expect("backupctl");
    feeder.join().expect("feeder");
    out
}

#[test]
fn standard_input_and_output_stream_through() {
    let d = daemon();
    let plain = pseudo_random_bytes(2 * MIB + 77, 42);
    let sealed = piped(&d, &["security", "encrypt", "-", "-"], plain.clone());
    assert!(sealed.status.success(), "{}", text(&sealed));
    assert_eq!(sealed.stdout.len(), HEADER + plain.len() + 3 * TAG);
    // The summary went to stderr, not into the data.
    assert!(
        String::from_utf8_lossy(&sealed.stderr).contains("sealed - into -"),
        "{}",
        text(&sealed)
    );
    let opened = piped(&d, &["security", "decrypt", "-", "-"], sealed.stdout);
    assert!(opened.status.success(), "{}", text(&opened));
    assert!(opened.stdout == plain, "stdin/stdout round trip differs");
    // --json would mix with the data on stdout.
    let mixed = piped(&d, &["--json", "security", "encrypt", "-", "-"], Vec::new());
    assert_eq!(mixed.status.code(), Some(64), "{}", text(&mixed));
}

#[test]
fn files_sealed_before_a_rotation_still_open_and_new_ones_use_the_new_version() {
    let d = daemon();
    let dir = d.dir.path();
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, b"sealed under version 1").expect("a");
    std::fs::write(&b, b"sealed under version 2").expect("b");
    assert_eq!(encrypt(&d, &a, &dir.join("a.enc"))["key_version"], 1);
    let rotated = d.ctl(&["repo", "key", "rotate"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert_eq!(encrypt(&d, &b, &dir.join("b.enc"))["key_version"], 2);
    let old = json_ok(&decrypt(&d, &dir.join("a.enc"), &dir.join("a.out")));
    assert_eq!(old["key_version"], 1);
    assert_eq!(
        std::fs::read(dir.join("a.out")).expect("a"),
        b"sealed under version 1"
    );
    let new = json_ok(&decrypt(&d, &dir.join("b.enc"), &dir.join("b.out")));
    assert_eq!(new["key_version"], 2);
    // Another repository's keys open neither.
    let other = dir.join("other");
    let init = d.ctl(&["repo", "init", "--name", "other", "--path", s(&other)]);
    assert!(init.status.success(), "{}", text(&init));
    let foreign = d.ctl(&[
        "security",
        "decrypt",
        "--repo",
        "other",
        s(&dir.join("a.enc")),
        s(&dir.join("a.other")),
    ]);
    assert_eq!(foreign.status.code(), Some(2), "{}", text(&foreign));
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("another repository's key"),
        "{}",
        text(&foreign)
    );
}

/// Decrypts `sealed` into an OUT that already holds something; expects a refusal whose message
/// has every one of `says`, and OUT unchanged with no temporary file beside it.
fn refused(d: &TestDaemon, what: &str, sealed: &[u8], says: &[&str]) {
    let dir = d
        .dir
        .path()
        .join(format!("tamper-{}", what.replace(' ', "-")));
    std::fs::create_dir(&dir).expect("mkdir");
    let (input, output) = (dir.join("in.enc"), dir.join("out"));
    std::fs::write(&input, sealed).expect("write");
    std::fs::write(&output, b"what was there").expect("write");
    let out = d.ctl(&["security", "decrypt", s(&input), s(&output)]);
    assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in says {
        assert!(stderr.contains(part), "{what}: no {part:?} in {stderr}");
    }
    assert!(
        stderr.contains("OUT was left as it was"),
        "{what}: {stderr}"
    );
    assert_eq!(
        std::fs::read(&output).expect("out"),
        b"what was there",
        "{what}"
    );
    assert_eq!(names(&dir), ["in.enc", "out"], "{what}");
}

#[test]
fn truncated_reordered_spliced_extended_and_flipped_files_are_refused() {
    let d = daemon();
    let dir = d.dir.path();
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, pseudo_random_bytes(3 * MIB + 500, 1)).expect("a");
    std::fs::write(&b, pseudo_random_bytes(3 * MIB + 500, 2)).expect("b");
    encrypt(&d, &a, &dir.join("a.enc"));
    encrypt(&d, &b, &dir.join("b.enc"));
    let a = std::fs::read(dir.join("a.enc")).expect("a");
    let b = std::fs::read(dir.join("b.enc")).expect("b");

    refused(
        &d,
        "last chunk dropped",
        &a[..chunk_at(3)],
        &["truncated", "3 verified chunk(s)"],
    );
    refused(
        &d,
        "cut inside a chunk",
        &a[..chunk_at(2) + 1000],
        &["chunk 2 ", "failed authentication"],
    );
    let mut swapped = a.clone();
    swapped[chunk_at(0)..chunk_at(1)].copy_from_slice(&a[chunk_at(1)..chunk_at(2)]);
    swapped[chunk_at(1)..chunk_at(2)].copy_from_slice(&a[chunk_at(0)..chunk_at(1)]);
    refused(
        &d,
        "chunks reordered",
        &swapped,
        &["chunk 0 ", "failed authentication"],
    );
    let mut spliced = a.clone();
    spliced[chunk_at(1)..chunk_at(2)].copy_from_slice(&b[chunk_at(1)..chunk_at(2)]);
    refused(
        &d,
        "chunk from another file",
        &spliced,
        &["chunk 1 ", "failed authentication"],
    );
    let mut appended = a.clone();
    appended.extend_from_slice(b"appended");
    refused(
        &d,
        "bytes appended",
        &appended,
        &["chunk 3 ", "failed authentication"],
    );
    for at in [20, HEADER + 5, chunk_at(2) + MIB, a.len() - 1] {
        let mut flipped = a.clone();
        flipped[at] ^= 0x04;
        refused(
            &d,
            &format!("bit flipped at {at}"),
            &flipped,
            &["repository default"],
        );
    }
    refused(
        &d,
        "not sealed at all",
        b"plain text",
        &["not a file sealed by"],
    );
}

#[test]
fn a_failed_decrypt_to_stdout_has_written_only_verified_chunks() {
    let d = daemon();
    let dir = d.dir.path();
    let plain = pseudo_random_bytes(3 * MIB, 9);
    std::fs::write(dir.join("p"), &plain).expect("p");
    encrypt(&d, &dir.join("p"), &dir.join("p.enc"));
    let mut sealed = std::fs::read(dir.join("p.enc")).expect("sealed");
    sealed[chunk_at(2) + 10] ^= 1;
    let out = piped(&d, &["security", "decrypt", "-", "-"], sealed);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        out.stdout == plain[..2 * MIB],
        "exactly the two verified chunks"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{} bytes of verified plaintext", 2 * MIB)),
        "{stderr}"
    );
}

#[test]
fn the_daemon_takes_no_path_and_checks_the_descriptors() {
    let d = daemon();
    let dir = d.dir.path();
    std::fs::write(dir.join("in"), b"data").expect("in");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut conn = Connection::connect(&d.socket, "test")
            .await
            .expect("connect");
        let request = || {
            Request::Security(SecurityRequest::Encrypt(FileCryptRequest {
                repo: None,
                // Names the client sends are replaced by what the kernel says.
                input: b"/etc/shadow".to_vec(),
                output: b"/tmp/x".to_vec(),
            }))
        };
        // No descriptors: refused, whatever the request names.
        let err = conn.call(request()).await.expect_err("no descriptors");
        let ClientError::Remote(reply) = err else {
            panic!("{err}");
        };
        assert_eq!(reply.code, ErrorCode::InvalidArgument, "{}", reply.message);
        assert!(reply.message.contains("descriptors"), "{}", reply.message);
        // An output opened for reading only.
        let input = std::fs::File::open(dir.join("in")).expect("open");
        let output = std::fs::File::open(dir.join("in")).expect("open");
        let err = conn
            .call_passing(request(), &[input.as_fd(), output.as_fd()], |_| {})
            .await
            .expect_err("read-only output");
        let ClientError::Remote(reply) = err else {
            panic!("{err}");
        };
        assert!(
            reply.message.contains("not opened for writing"),
            "{}",
            reply.message
        );
        assert!(
            reply.message.contains(s(&dir.join("in"))),
            "{}",
            reply.message
        );
        // The connection is still good, and the same file as input and output is refused.
        let rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("in"))
            .expect("open");
        let err = conn
            .call_passing(request(), &[input.as_fd(), rw.as_fd()], |_| {})
            .await
            .expect_err("same file");
        assert!(err.to_string().contains("same file"), "{err}");
        assert_eq!(std::fs::read(dir.join("in")).expect("in"), b"data");
    });
    // The audit log names the files the daemon was passed, as its kernel knows them.
    let out = d.ctl(&[
        "security",
        "encrypt",
        "--repo",
        "default",
        s(&dir.join("in")),
        s(&dir.join("in.enc")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let audit = d.ctl(&["--json", "security", "audit"]);
    let entry = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("entry"))
        .find(|e| e["request"] == "security encrypt" && e["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no encrypt entry: {}", text(&audit)));
    assert_eq!(entry["target"]["repo"], "default", "{entry}");
    assert_eq!(entry["target"]["paths"][0], s(&dir.join("in")), "{entry}");
    let written = entry["target"]["paths"][1].as_str().expect("output path");
    assert!(written.contains(".in.enc.backupctl-"), "{entry}");
}

#[test]
fn ctrl_c_mid_stream_stops_the_daemon_side_and_leaves_no_temporary_file() {
    let d = daemon();
    let dir = d.dir.path().join("out");
    std::fs::create_dir(&dir).expect("mkdir");
    // A pipe that never ends: the daemon waits on it.
    let mut child = Command::new(bin("backupctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["security", "encrypt", "-", s(&dir.join("x.enc"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut feed = child.stdin.take().expect("stdin");
    feed.write_all(&pseudo_random_bytes(3 * MIB, 11))
        .expect("feed");
    d.wait_connections(2, std::time::Duration::from_secs(10));
    assert_eq!(
        names(&dir).len(),
        1,
        "the temporary file exists while it runs"
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("backupctl");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    // The daemon noticed (its slot is free) while the pipe is still open.
    d.wait_connections(1, std::time::Duration::from_secs(10));
    drop(feed);
    d.wait_log_line(&["client left"], std::time::Duration::from_secs(10));
}

#[test]
fn a_caller_without_repo_key_is_denied() {
    assert!(
        is_root(),
        "this test runs backupctl as nobody; CI runs as root"
    );
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!(
            "{OPEN_SOCKET}[security]\ndefault_role = \"user\"\n"
        )),
        ..Default::default()
    });
    d.open_to_all();
    d.wait_repo("default");
    let dir = shared_tempdir();
    std::fs::write(dir.path().join("mine"), b"x").expect("write");
    chown_tree(dir.path(), NOBODY, NOBODY);
    let out = d.ctl_as(
        NOBODY,
        &[
            "security",
            "encrypt",
            s(&dir.path().join("mine")),
            s(&dir.path().join("mine.enc")),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("repo.key"), "{stderr}");
    assert_eq!(names(dir.path()), ["mine"]);
}

#[test]
fn a_file_the_caller_cannot_read_is_refused_although_the_daemon_is_root() {
    assert!(
        is_root(),
        "this test runs backupctl as another uid; CI runs as root"
    );
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(OPEN_SOCKET.into()),
        ..Default::default()
    });
    d.open_to_all();
    d.wait_repo("default");
    let uid = spare_uid_at(1);
    let grant = d.ctl(&["security", "grant", "admin", "--uid", &uid.to_string()]);
    assert!(grant.status.success(), "{}", text(&grant));
    let dir = shared_tempdir();
    let secret = dir.path().join("root-only");
    std::fs::write(&secret, b"root's secret").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let home: PathBuf = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::write(home.join("own"), b"the user's own").expect("write");
    chown_tree(&home, uid, uid);

    // The user's own file works: the role is not what refuses below.
    let ok = d.ctl_as(
        uid,
        &[
            "security",
            "encrypt",
            s(&home.join("own")),
            s(&home.join("own.enc")),
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    // Root's file: backupctl, running as the user, cannot open it, so the daemon never gets it.
    let out = d.ctl_as(
        uid,
        &[
            "security",
            "encrypt",
            s(&secret),
            s(&home.join("stolen.enc")),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out)
    );
    assert!(!home.join("stolen.enc").exists());
    // Nor can it write where the user may not.
    let out = d.ctl_as(
        uid,
        &[
            "security",
            "decrypt",
            s(&home.join("own.enc")),
            s(&dir.path().join("planted")),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!dir.path().join("planted").exists());
    // Through standard input the same holds: the shell (the user) opens the file.
    let mut child = Command::new(bin("backupctl"))
        .uid(uid)
        .gid(uid)
        .env("HOME", "/")
        .arg("--socket")
        .arg(&d.socket)
        .args(["security", "encrypt", "-", s(&home.join("own2.enc"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"typed in")
        .expect("feed");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(child.wait().expect("wait").success(), "{stderr}");
}

#[test]
fn a_file_sealed_by_a_version_the_reencryption_retired_no_longer_opens_and_says_why() {
    let d = daemon();
    let dir = d.dir.path();
    let a = dir.join("a");
    std::fs::write(&a, b"sealed under version 1, shredded later").expect("a");
    assert_eq!(encrypt(&d, &a, &dir.join("a.enc"))["key_version"], 1);
    let rotated = d.ctl(&["repo", "key", "rotate"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    let r = json_ok(&d.ctl(&["--json", "repo", "key", "reencrypt"]));
    assert_eq!(r["retired"], serde_json::json!([1]), "{r:#}");
    let out = decrypt(&d, &dir.join("a.enc"), &dir.join("a.out"));
    assert!(!out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &text(&out);
    assert!(
        said.contains("version 1") && said.contains("retired"),
        "{said}"
    );
    assert!(!dir.join("a.out").exists(), "nothing written");
}
