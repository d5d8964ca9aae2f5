//! The S3 backend against a real S3 server (moto's, on 127.0.0.1): many hosts backing up into
//! one repository while another prunes it, the local cache, and the errors a user sees for a
//! missing bucket, an unreachable endpoint, bad credentials files and plain HTTP.

use backupd_tests::store::{self, Backend, Store};
use backupd_tests::{json_ok, text, TestDaemon};
use std::path::Path;
use std::time::Duration;

fn random_file(path: &Path, len: usize, seed: u64) {
    std::fs::write(path, backupd_tests::pseudo_random_bytes(len, seed)).expect("write random file");
}

/// Three daemons (three state directories and sockets, standing for three hosts) back up
/// overlapping data into one S3 repository at the same time, while a fourth runs `forget
/// --prune` over and over. Afterwards the repository checks clean reading every pack, each
/// host's latest snapshot restores identically, and the data the hosts share is stored once.
#[test]
fn three_hosts_back_up_into_one_bucket_while_a_fourth_prunes() {
    let first = TestDaemon::start();
    let store = Store::attach(&first, Backend::S3);
    let hosts: Vec<TestDaemon> = std::iter::once(first)
        .chain((0..3).map(|_| {
            let d = TestDaemon::start();
            store.join(&d);
            d
        }))
        .collect();
    let (backers, pruner) = hosts.split_at(3);
    let pruner = &pruner[0];

    // Each host: the same 12 MiB of shared files, and 2 MiB of its own that change each round.
    let work = tempfile::tempdir().expect("tmp");
    let trees: Vec<std::path::PathBuf> = (0..3)
        .map(|h| {
            let root = work.path().join(format!("host{h}"));
            std::fs::create_dir_all(root.join("shared")).expect("mkdir");
            std::fs::create_dir_all(root.join("own")).expect("mkdir");
            for i in 0..12u64 {
                random_file(&root.join(format!("shared/f{i}")), 1 << 20, 7000 + i);
            }
            root
        })
        .collect();
    const ROUNDS: u64 = 4;
    std::thread::scope(|scope| {
        for (h, (d, root)) in backers.iter().zip(&trees).enumerate() {
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    for i in 0..2u64 {
                        let seed = 100_000 * h as u64 + 10 * round + i;
                        random_file(&root.join(format!("own/g{i}")), 1 << 20, seed);
                    }
                    let host = format!("host{h}");
                    let out = d.ctl(&[
                        "--json",
                        "backup",
                        "--host",
                        &host,
                        root.to_str().expect("utf8"),
                    ]);
                    assert!(out.status.success(), "{host} round {round}: {}", text(&out));
                }
            });
        }
        scope.spawn(|| {
            for round in 0..3 {
                std::thread::sleep(Duration::from_millis(700));
                let out = pruner.ctl(&["--json", "forget", "--keep-last", "1", "--prune"]);
                assert!(out.status.success(), "prune round {round}: {}", text(&out));
            }
        });
    });
    // One more prune after the dust settles: every host keeps its newest snapshot only.
    json_ok(&pruner.ctl(&["--json", "forget", "--keep-last", "1", "--prune"]));

    let check = pruner.check_clean(None);
    println!("check --read-data after concurrent backups and prunes: {check}");
    let snapshots = json_ok(&pruner.ctl(&["--json", "snapshots"]));
    assert_eq!(
        snapshots.as_array().expect("list").len(),
        3,
        "one per host: {snapshots:#}"
    );
    for (h, (d, root)) in backers.iter().zip(&trees).enumerate() {
        let target = work.path().join(format!("restored{h}"));
        d.restore_and_compare(
            root,
            &target,
            &[],
            backupd_tests::treecmp::CompareOptions::default(),
        );
    }

    // Shared data once: 12 MiB shared + 3 x 2 MiB own (the newest round) is what the three
    // snapshots need; 3 x 14 MiB is what they hold.
    let stored: u64 = store.list("data").iter().map(|(_, len)| len).sum();
    let held: u64 = (3 * 14) << 20;
    let needed: u64 = (12 + 3 * 2) << 20;
    println!(
        "dedup across hosts: snapshots hold {} MiB, packs store {:.1} MiB: ratio {:.2} (ideal {:.2})",
        held >> 20,
        stored as f64 / (1 << 20) as f64,
        held as f64 / stored as f64,
        held as f64 / needed as f64
    );
    assert!(
        stored < needed + needed / 10,
        "shared data stored more than once: {stored} bytes for {needed} needed"
    );
}

/// The local cache: a second backup of an unchanged tree asks the store for a small constant
/// number of things, whatever the tree's size; the cache under the state directory holds the
/// index and the trees. Counted by the daemon's `backupd_object_store_requests_total`.
#[test]
fn an_unchanged_backup_makes_a_constant_number_of_requests() {
    let port = backupd_tests::scrape::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let d = TestDaemon::start_with(backupd_tests::DaemonOptions {
        config: Some(format!("[metrics]\nlisten = \"{addr}\"\n")),
        ..Default::default()
    });
    let _store = Store::attach(&d, Backend::S3);
    let requests = || {
        // The endpoint renders at most once a second.
        std::thread::sleep(Duration::from_millis(1100));
        let text = backupd_tests::scrape::scrape(addr).expect("scrape");
        backupd_tests::scrape::samples(&text)["backupd_object_store_requests_total"] as u64
    };
    let src = d.dir.path().join("src");
    for dir in 0..40 {
        let sub = src.join(format!("d{dir}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in 0..5 {
            std::fs::write(sub.join(format!("f{f}")), format!("{dir}/{f}")).expect("write");
        }
    }
    let arg = src.to_str().expect("utf8");
    json_ok(&d.ctl(&["--json", "backup", arg]));
    let before = requests();
    let second = json_ok(&d.ctl(&["--json", "backup", arg]));
    let after = requests();
    assert_eq!(second["unchanged"], true, "{second}");
    let requests = after - before;
    println!("requests for a backup of an unchanged tree of 40 directories: {requests}");
    assert!(requests <= 12, "{requests} requests: the cache is not used");
    let cache = d.state_dir.join("cache");
    let cached_trees = walk_count(&cache);
    assert!(
        cached_trees >= 41,
        "index and trees cached: {cached_trees} files"
    );
    // The cache is not the truth: gone, the next backup reads what it needs again.
    std::fs::remove_dir_all(&cache).expect("rm cache");
    let third = json_ok(&d.ctl(&["--json", "backup", arg]));
    assert_eq!(third["unchanged"], true, "{third}");
}

fn walk_count(p: &Path) -> usize {
    std::fs::read_dir(p)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// What a user sees when the store is not what the location says.
#[test]
fn store_errors_say_which_and_what_to_do() {
    let d = TestDaemon::start();
    let endpoint = store::s3_endpoint();
    let creds = d.dir.path().join("creds");
    std::fs::write(&creds, store::S3_CREDENTIALS).expect("creds");
    let init = |location: &str, endpoint: &str, creds: &Path| {
        d.ctl(&[
            "repo",
            "init",
            "--name",
            "s3",
            "--location",
            location,
            "--endpoint",
            endpoint,
            "--credentials-file",
            creds.to_str().expect("utf8"),
        ])
    };

    // A missing bucket: permanent, named, and how to create it.
    let out = init("s3://no-such-bucket-here/r", &endpoint, &creds);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("no-such-bucket-here") && msg.contains("create it"),
        "{msg}"
    );

    // An endpoint nobody listens on: unreachable, naming it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let out = init(
        "s3://bucket-x/r",
        &format!("http://127.0.0.1:{closed}"),
        &creds,
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains(&format!("127.0.0.1:{closed}")), "{msg}");

    // Plain HTTP off this machine needs --allow-http.
    let out = init("s3://bucket-x/r", "http://s3.example.net", &creds);
    assert!(!out.status.success());
    assert!(text(&out).contains("--allow-http"), "{}", text(&out));

    // A credentials file that is not one: refused before anything is stored, secret unquoted.
    let bad = d.dir.path().join("bad-creds");
    std::fs::write(
        &bad,
        "[default]\naws_access_key_id = AKIAEXAMPLE\nSUPERSECRETLINE\n",
    )
    .expect("bad");
    let bucket = store::fresh_bucket();
    store::create_bucket(&endpoint, &bucket);
    let out = init(&format!("s3://{bucket}/r"), &endpoint, &bad);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("credentials") && !msg.contains("SUPERSECRETLINE"),
        "{msg}"
    );
    assert!(!d.state_dir.join("keys/s3.s3-credentials").exists());

    // Credentials never reach the log, the registry's listing or the audit log.
    let out = init(&format!("s3://{bucket}/r"), &endpoint, &creds);
    assert!(out.status.success(), "{}", text(&out));
    let stored = d.state_dir.join("keys/s3.s3-credentials");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&stored)
        .expect("stored")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "stored credentials are private");
    let list = text(&d.ctl(&["--json", "repo", "list"]));
    let log = d.log_text();
    let secret = "backupd-test-secret";
    assert!(
        !list.contains(secret) && !log.contains(secret),
        "secret leaked"
    );
    assert!(list.contains(&format!("s3://{bucket}/r")), "{list}");
}
