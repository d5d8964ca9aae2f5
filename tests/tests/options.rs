//! Options a user relies on that nothing else exercises end to end: backup's exclusion flags,
//! `check --read-data-subset`, every way of giving a passphrase, and the queue's housekeeping
//! (dead-letter purge, history limit, worker count).

use backupd_tests::{is_root, json_ok, wait_until, DaemonOptions, SmallFs, TestDaemon};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().expect("sh")
}

#[test]
fn exclude_file_exclude_caches_and_one_file_system_leave_out_what_they_name() {
    assert!(
        is_root(),
        "this test needs root (it mounts a tmpfs inside the source); CI runs as root"
    );
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("cache")).expect("mkdir");
    std::fs::write(src.join("keep"), b"kept").expect("write");
    std::fs::write(src.join("noise.log"), b"excluded by the file").expect("write");
    std::fs::write(
        src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    )
    .expect("write tag");
    std::fs::write(src.join("cache/blob"), b"cached").expect("write");
    let _mounted = SmallFs::mount(&src.join("mnt"), "1m");
    std::fs::write(src.join("mnt/elsewhere"), b"another file system").expect("write");
    let patterns = d.dir.path().join("excludes.txt");
    std::fs::write(&patterns, "# comment\n*.log\n").expect("write excludes");

    json_ok(&d.ctl(&[
        "--json",
        "backup",
        "--exclude-file",
        patterns.to_str().expect("utf8"),
        "--exclude-caches",
        "--one-file-system",
        src.to_str().expect("utf8"),
    ]));
    let target = d.dir.path().join("restored");
    d.restore_latest(&src, &target, &[]);
    assert_eq!(std::fs::read(target.join("keep")).expect("keep"), b"kept");
    assert!(!target.join("noise.log").exists(), "--exclude-file");
    assert!(
        target.join("cache").is_dir() && !target.join("cache/blob").exists(),
        "--exclude-caches keeps the tagged directory, empty"
    );
    assert!(!target.join("mnt").exists(), "--one-file-system");

    // Without the flags, all of it is there.
    json_ok(&d.ctl(&["--json", "backup", "--force", src.to_str().expect("utf8")]));
    let all = d.dir.path().join("all");
    d.restore_latest(&src, &all, &[]);
    for p in ["noise.log", "cache/blob", "mnt/elsewhere"] {
        assert!(all.join(p).exists(), "{p} backed up without the flags");
    }
}

#[test]
fn read_data_subset_reads_a_share_of_the_packs_and_read_data_all_of_them() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    // One pack per backup: 24 packs, so a 50 % share is neither none nor all of them
    // (the share is chosen by pack id; both extremes have odds of 2 in 16 million).
    for i in 0..24u64 {
        std::fs::write(
            src.join("file"),
            backupd_tests::pseudo_random_bytes(20_000, i),
        )
        .expect("write");
        json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    }
    let subset = json_ok(&d.ctl(&["--json", "repo", "check", "--read-data-subset", "50"]));
    let packs = subset["packs"].as_u64().expect("packs");
    let read = subset["packs_read"].as_u64().expect("packs_read");
    assert!(packs >= 24, "{subset}");
    assert!(read > 0 && read < packs, "read {read} of {packs} packs");
    let all = json_ok(&d.ctl(&["--json", "repo", "check", "--read-data"]));
    assert_eq!(all["packs_read"], all["packs"], "{all}");
}

#[test]
fn read_data_subsets_together_read_every_pack_and_the_one_holding_damage_finds_it() {
    let d = TestDaemon::start();
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    // One pack per backup: 16 packs, so each half is very likely not empty (it does not
    // need to be: the halves must only add up).
    for i in 0..16u64 {
        std::fs::write(
            src.join("file"),
            backupd_tests::pseudo_random_bytes(20_000, i + 1000),
        )
        .expect("write");
        json_ok(&d.ctl(&["--json", "backup", src.to_str().expect("utf8")]));
    }
    let part = |n: &str| {
        let out = d.ctl(&["--json", "repo", "check", "--read-data-subset", n]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("check json")
    };
    let (first, second) = (part("1/2"), part("2/2"));
    assert_eq!(first["subset"], "1/2", "{first}");
    assert_eq!(second["subset"], "2/2", "{second}");
    let packs = first["packs"].as_u64().expect("packs");
    assert!(packs >= 16, "{first}");
    let read = |v: &serde_json::Value| v["packs_read"].as_u64().expect("packs_read");
    assert_eq!(read(&first) + read(&second), packs, "{first}\n{second}");

    // Damage one pack: exactly one of the halves reads it, and that one says so.
    let data = d.state_dir.join("repository").join("data");
    let pack = std::fs::read_dir(&data)
        .expect("data dir")
        .flatten()
        .flat_map(|dir| std::fs::read_dir(dir.path()).expect("pack dir").flatten())
        .map(|e| e.path())
        .next()
        .expect("a pack");
    let mut bytes = std::fs::read(&pack).expect("read pack");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&pack, bytes).expect("write pack");
    let name = pack
        .file_name()
        .and_then(|n| n.to_str())
        .expect("pack name")
        .to_owned();
    let damaged = |v: &serde_json::Value| v["damaged_packs"].to_string().contains(&name);
    let (first, second) = (part("1/2"), part("2/2"));
    assert!(
        damaged(&first) != damaged(&second),
        "the damaged pack {name} is found by exactly one half:\n{first}\n{second}"
    );
    // A part and a percentage together are refused, and so is a part that is not one.
    let out = d.ctl(&["repo", "check", "--read-data", "--read-data-subset", "1/2"]);
    assert_eq!(out.status.code(), Some(64));
    let out = d.ctl(&["repo", "check", "--read-data-subset", "3/2"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("count from 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn passphrases_come_from_an_env_var_a_command_a_file_and_a_descriptor() {
    let d = TestDaemon::start();
    let repo = d.dir.path().join("pw-repo");
    let out = Command::new(backupd_tests::bin("backupctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "repo", "init", "--name", "by-env", "--path"])
        .arg(&repo)
        .args(["--password-env", "BACKUPD_TEST_PW"])
        .env("BACKUPD_TEST_PW", "correct horse")
        .output()
        .expect("backupctl");
    json_ok(&out);
    // The same repository, added again under other names (one at a time: a repository is
    // registered under one name): each source must yield the same passphrase, or the key file
    // does not open and `repo add` fails.
    json_ok(&d.ctl(&["--json", "repo", "remove", "by-env"]));
    let ctl = backupd_tests::bin("backupctl");
    let pw_file = d.dir.path().join("pw.txt");
    std::fs::write(&pw_file, "correct horse\n").expect("write");
    let base = format!(
        "{} --socket {} --json repo add --path {}",
        ctl.display(),
        d.socket.display(),
        repo.display()
    );
    for (name, how) in [
        (
            "by-command",
            "--password-command 'printf \"correct horse\"'".to_owned(),
        ),
        ("by-file", format!("--password-file {}", pw_file.display())),
        ("by-fd", format!("--password-fd 3 3<{}", pw_file.display())),
    ] {
        let out = sh(&format!("{base} --name {name} {how}"));
        assert!(
            out.status.success(),
            "{name}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        json_ok(&d.ctl(&["--json", "repo", "remove", name]));
    }
    let wrong = sh(&format!(
        "{base} --name wrong --password-command 'printf nope'"
    ));
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "a wrong passphrase is refused"
    );
    let list = json_ok(&d.ctl(&["--json", "repo", "list"]));
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(!names.contains(&"wrong"), "{names:?}");
}

fn queue_states(d: &TestDaemon) -> Value {
    json_ok(&d.ctl(&["--json", "queue", "status"]))
}

#[test]
fn dlq_purge_history_limit_and_worker_count_do_what_they_say() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[queue]\nhistory_max_jobs = 5\n[history]\nmax_entries = 7\n".into()),
        ..Default::default()
    });
    // A permanent failure goes to the dead-letter queue; purge empties it.
    let dead = d.ctl(&[
        "--json",
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "1",
        "--permanent",
    ]);
    assert_eq!(
        dead.status.code(),
        Some(2),
        "a permanent failure fails the wait"
    );
    let dlq = json_ok(&d.ctl(&["--json", "queue", "dlq", "list"]));
    assert_eq!(dlq.as_array().expect("dlq").len(), 1, "{dlq}");
    json_ok(&d.ctl(&["--json", "queue", "dlq", "purge"]));
    let dlq = json_ok(&d.ctl(&["--json", "queue", "dlq", "list"]));
    assert_eq!(dlq, Value::Array(vec![]), "purged");

    // The live queue keeps at most `queue.history_max_jobs` finished jobs; the job history
    // keeps its own `[history] max_entries`, independently.
    for _ in 0..8 {
        json_ok(&d.ctl(&["--json", "queue", "add", "noop"]));
    }
    let live: u64 = queue_states(&d)["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .filter(|c| c["state"] == "succeeded")
        .map(|c| c["count"].as_u64().expect("count"))
        .sum();
    assert!(live <= 5, "{live} finished jobs kept in the queue, limit 5");
    assert!(live >= 1, "the newest are kept");
    let history = json_ok(&d.ctl(&["--json", "queue", "history", "--limit", "100"]));
    let kept = history.as_array().expect("history").len();
    assert_eq!(
        kept, 7,
        "the history keeps max_entries, more than the queue: {history}"
    );
    assert_eq!(history[0]["kind"], "noop", "{history}");

    // The worker count changes at runtime: with one worker, two jobs run one after the other.
    json_ok(&d.ctl(&["--json", "queue", "workers", "1"]));
    assert_eq!(queue_states(&d)["workers"], 1);
    let ids: Vec<u64> = (0..2)
        .map(|_| {
            json_ok(&d.ctl(&[
                "--json",
                "queue",
                "add",
                "noop",
                "--no-wait",
                "--duration",
                "1s",
            ]))["id"]
                .as_u64()
                .expect("id")
        })
        .collect();
    let mut most_running = 0;
    wait_until("both jobs to finish", Duration::from_secs(30), || {
        let status = queue_states(&d);
        let running = status["running"].as_array().map_or(0, Vec::len);
        most_running = most_running.max(running);
        ids.iter()
            .all(|id| d.job(*id)["state"] == "succeeded")
            .then_some(())
    });
    assert_eq!(most_running, 1, "one worker runs one job at a time");
}
