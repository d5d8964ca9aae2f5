//! Operations that run themselves, end to end with a real daemon on short schedules: a
//! schedule fires and makes a snapshot, a missed run is caught up once after a restart,
//! retention keeps exactly what `source show` predicted and what it keeps restores.

use backupd_tests::{json_ok, s, text, wait_until_else, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Backups of `source` in the history, oldest first.
fn backups(d: &TestDaemon, source: &str) -> Vec<Value> {
    let list = json_ok(&d.ctl(&[
        "--json", "queue", "history", "--kind", "backup", "--source", source, "--limit", "1000",
    ]));
    let mut list = list.as_array().expect("history").clone();
    list.reverse();
    list
}

fn wait_backups(d: &TestDaemon, source: &str, at_least: usize, within: Duration) -> Vec<Value> {
    wait_until_else(
        &format!("{at_least} backups of {source}"),
        within,
        || {
            let b = backups(d, source);
            (b.len() >= at_least).then_some(b)
        },
        || format!("history: {:#?}\nlog:\n{}", backups(d, source), d.log_text()),
    )
}

fn source(d: &TestDaemon, name: &str) -> Value {
    let list = json_ok(&d.ctl(&["--json", "source", "list"]));
    list.as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no source {name}: {list:#}"))
}

fn with_state(state_dir: &Path) -> DaemonOptions {
    DaemonOptions {
        state_dir: Some(state_dir.to_owned()),
        ..Default::default()
    }
}

#[test]
fn a_calendar_schedule_fires_and_makes_snapshots() {
    let tree = tempfile::tempdir().expect("tree");
    std::fs::write(tree.path().join("a.txt"), b"one").expect("write");
    let d = TestDaemon::start();
    d.wait_repo("default");
    // Every 4 seconds, as a systemd calendar event; not watched: only the schedule backs it up.
    let out = d.ctl(&[
        "--json",
        "source",
        "add",
        s(tree.path()),
        "--name",
        "cal",
        "--no-watch",
        "--schedule",
        "*:*:0/4",
        "--keep-all",
    ]);
    let added = json_ok(&out);
    assert_eq!(added["schedule"], "*:*:0/4");
    assert_eq!(added["retention"], "keep-all");
    // The first run happens at once; the schedule makes the next ones.
    let first = wait_backups(&d, "cal", 1, Duration::from_secs(30));
    std::fs::write(tree.path().join("b.txt"), b"two").expect("write");
    let later = wait_backups(&d, "cal", first.len() + 2, Duration::from_secs(30));
    assert!(
        later.iter().all(|b| b["outcome"] == "succeeded"),
        "{later:#?}"
    );
    // The change made after the first run is in a scheduled snapshot.
    let snap = later.last().expect("a backup")["snapshot"]
        .as_str()
        .expect("snapshot")
        .to_owned();
    let target = tempfile::tempdir().expect("target");
    let restored = d.ctl(&["restore", &snap, "--target", s(target.path())]);
    assert!(restored.status.success(), "{}", text(&restored));
    let b = target
        .path()
        .join(tree.path().strip_prefix("/").expect("absolute"))
        .join("b.txt");
    assert_eq!(std::fs::read(&b).expect("restored b.txt"), b"two");
    // `source list` shows the schedule and its next run, in the future.
    let listed = source(&d, "cal");
    let next = listed["next_run_ns"].as_i64().expect("next run");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64;
    assert!(
        next > now - 5_000_000_000 && next < now + 10_000_000_000,
        "{listed:#}"
    );
    let table = text(&d.ctl(&["source", "list"]));
    assert!(table.contains("schedule: *:*:0/4; next "), "{table}");
}

#[test]
fn a_run_missed_while_the_daemon_was_down_happens_once_at_start() {
    let tree = tempfile::tempdir().expect("tree");
    std::fs::write(tree.path().join("a.txt"), b"one").expect("write");
    let state = tempfile::tempdir().expect("state");
    let mut d = TestDaemon::start_with(with_state(state.path()));
    d.wait_repo("default");
    let every = 12;
    let out = d.ctl(&[
        "source",
        "add",
        s(tree.path()),
        "--name",
        "nightly",
        "--no-watch",
        "--every",
        &format!("{every}s"),
        "--keep-all",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    wait_backups(&d, "nightly", 1, Duration::from_secs(30));
    d.stop();

    // Restarted at once: no slot was missed, and a scheduled source that is not watched does
    // not scan just because the daemon started.
    let mut d = TestDaemon::start_with(with_state(state.path()));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        backups(&d, "nightly").len(),
        1,
        "no run at a start that missed nothing"
    );
    d.stop();

    // Down for more than two slots: one catch-up run at start, not one per missed slot.
    std::thread::sleep(Duration::from_secs(2 * every + 2));
    let started = Instant::now();
    let d = TestDaemon::start_with(with_state(state.path()));
    let after = wait_backups(&d, "nightly", 2, Duration::from_secs(30));
    let caught_up_in = started.elapsed();
    assert!(
        caught_up_in < Duration::from_secs(every - 4),
        "the catch-up run came {caught_up_in:?} after the start, not at once"
    );
    // Until the next slot (counted from the catch-up run), nothing else runs.
    std::thread::sleep(
        Duration::from_secs(every).saturating_sub(caught_up_in + Duration::from_secs(3)),
    );
    assert_eq!(
        backups(&d, "nightly").len(),
        2,
        "exactly one catch-up run: {after:#?}"
    );
}

/// Seconds since the epoch as `backup --time` takes them.
fn epoch_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn retention_keeps_what_source_show_predicted_and_the_kept_snapshots_restore() {
    let tree = tempfile::tempdir().expect("tree");
    let counter = tree.path().join("counter.txt");
    std::fs::write(&counter, b"start").expect("write");
    let d = TestDaemon::start();
    d.wait_repo("default");
    // A simulated week of a watched source: 300 snapshots of the directory, each with its own
    // content, every 33.6 minutes, ending two hours ago.
    let now = epoch_secs();
    let step = 7 * 86_400 / 300;
    let mut by_time = std::collections::BTreeMap::new();
    for i in 0..300i64 {
        let t = now - 7200 - (299 - i) * step;
        std::fs::write(&counter, i.to_string()).expect("write");
        let out = d.ctl(&["--json", "backup", s(tree.path()), "--time", &t.to_string()]);
        let done = json_ok(&out);
        by_time.insert(
            t,
            (i, done["snapshot"].as_str().expect("snapshot").to_owned()),
        );
    }
    std::fs::write(&counter, b"now").expect("write");
    let out = d.ctl(&[
        "--json",
        "source",
        "add",
        s(tree.path()),
        "--name",
        "week",
        "--debounce",
        "500ms",
        "--keep-within",
        "1h",
        "--keep-hourly",
        "12",
        "--keep-daily",
        "5",
        "--keep-weekly",
        "2",
        "--retention-every",
        "20s",
    ]);
    let added = json_ok(&out);
    assert_eq!(added["retention"], "keep");
    // The source's own first scan: the newest snapshot.
    wait_backups(&d, "week", 1, Duration::from_secs(30));

    let shown = json_ok(&d.ctl(&["--json", "source", "show", "week"]));
    let plan = shown["retention_plan"]["decisions"]
        .as_array()
        .unwrap_or_else(|| panic!("no plan: {shown:#}"))
        .clone();
    assert_eq!(
        plan.len(),
        301,
        "every snapshot of the source is in the plan"
    );
    let predicted: BTreeSet<String> = plan
        .iter()
        .filter(|x| x["keep"] == true)
        .map(|x| x["snapshot"].as_str().expect("id").to_owned())
        .collect();
    let forgotten = plan.len() - predicted.len();
    // 12 hourly + 5 daily + 2 weekly buckets overlap; the newest is kept by `within 1h`.
    assert!(
        (12..=20).contains(&predicted.len()) && forgotten > 250,
        "keeps {} of {}: {shown:#}",
        predicted.len(),
        plan.len()
    );
    let table = text(&d.ctl(&["source", "show", "week"]));
    assert!(table.contains("retention now would keep"), "{table}");

    // Retention runs by itself (20 s after the source was added) and keeps exactly that.
    let week = wait_until_else(
        "retention to run",
        Duration::from_secs(90),
        || {
            let health = d.health();
            let week = health["sources"]
                .as_array()?
                .iter()
                .find(|x| x["name"] == "week")?
                .clone();
            (week["retention"]["last_outcome"] == "succeeded").then_some(week)
        },
        || format!("{:#}\nlog:\n{}", d.health(), d.log_text()),
    );
    assert!(week["within_rpo"] == true, "{week:#}");
    let list = json_ok(&d.ctl(&["--json", "snapshots"]));
    let kept: BTreeSet<String> = list
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|x| x["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(kept, predicted);

    // The kept snapshots restore, each with the content it was made with.
    for (t, (i, id)) in &by_time {
        if !kept.contains(id) {
            continue;
        }
        let target = tempfile::tempdir().expect("target");
        let out = d.ctl(&["restore", id, "--target", s(target.path())]);
        assert!(out.status.success(), "{}", text(&out));
        let restored = target
            .path()
            .join(counter.strip_prefix("/").expect("absolute"));
        assert_eq!(
            std::fs::read_to_string(&restored).expect("restored"),
            i.to_string(),
            "snapshot {id} of time {t}"
        );
    }
}

/// Finished jobs of `kind`, oldest first, with their full records.
fn jobs_of(d: &TestDaemon, kind: &str) -> Vec<Value> {
    let list = json_ok(&d.ctl(&[
        "--json", "queue", "history", "--kind", kind, "--limit", "1000",
    ]));
    let mut list = list.as_array().expect("history").clone();
    list.reverse();
    list.iter()
        .map(|e| d.job(e["id"].as_u64().expect("id")))
        .collect()
}

fn default_repo_health(d: &TestDaemon) -> Value {
    d.health()["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .find(|r| r["name"] == "default")
        .cloned()
        .expect("default repository in health")
}

const ROTATING: &str = "[maintenance]\nprune = \"off\"\ncheck = \"off\"\n\
                        read_data = \"every 2s\"\nread_data_subsets = 3\njitter = \"0s\"\n";

#[test]
fn verification_rotates_through_the_subsets_remembers_where_it_was_and_alerts_on_damage() {
    let tree = tempfile::tempdir().expect("tree");
    for i in 0..40 {
        let data = backupd_tests::pseudo_random_bytes(64 * 1024, i);
        std::fs::write(tree.path().join(format!("f{i}")), data).expect("write");
    }
    let state = tempfile::tempdir().expect("state");
    let options = || DaemonOptions {
        state_dir: Some(state.path().to_owned()),
        config: Some(ROTATING.into()),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(options());
    d.wait_repo("default");
    let out = d.ctl(&["backup", s(tree.path())]);
    assert!(out.status.success(), "{}", text(&out));
    let checks = wait_until_else(
        "four scheduled read-data checks",
        Duration::from_secs(60),
        || {
            let c = jobs_of(&d, "check");
            (c.len() >= 4).then_some(c)
        },
        || d.log_text(),
    );
    let parts: Vec<&str> = checks
        .iter()
        .map(|j| j["read_data_subset"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(parts[..4], ["1/3", "2/3", "3/3", "1/3"], "{checks:#?}");
    assert!(checks.iter().all(|j| j["priority"] == "low"), "{checks:#?}");
    // Every pack is read once per round.
    let read: u64 = checks[..3]
        .iter()
        .map(|j| j["result"]["packs_read"].as_u64().expect("packs_read"))
        .sum();
    assert_eq!(read, checks[0]["result"]["packs"].as_u64().expect("packs"));
    let repo = default_repo_health(&d);
    assert_eq!(repo["read_data"]["schedule"], "every 2s", "{repo:#}");
    assert_eq!(repo["prune"]["schedule"], Value::Null, "{repo:#}");
    d.stop();

    // The rotation survives a restart: the next run reads the part after the last one.
    let done = jobs_of_state(state.path());
    let d = TestDaemon::start_with(options());
    let next = format!("{}/3", done % 3 + 1);
    let after = wait_until_else(
        "a read-data check after the restart",
        Duration::from_secs(30),
        || {
            let c = jobs_of(&d, "check");
            (c.len() > done).then_some(c)
        },
        || d.log_text(),
    );
    assert_eq!(after[done]["read_data_subset"], next.as_str());

    // Damage a pack: within one round a scheduled check finds it, and health is degraded.
    let data = state.path().join("repository").join("data");
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
    let health = wait_until_else(
        "health degraded by a failed verification",
        Duration::from_secs(60),
        || {
            let h = d.health();
            (h["status"] == "degraded").then_some(h)
        },
        || format!("{:#}\n{}", d.health(), d.log_text()),
    );
    let notes = health["notes"].to_string();
    assert!(
        notes.contains("scheduled data verification of repository default found"),
        "{health:#}"
    );
    let repo = default_repo_health(&d);
    assert_eq!(repo["read_data"]["last_outcome"], "problems", "{repo:#}");
}

/// Read-data checks the daemon recorded in the state directory before it stopped, counted
/// through a short-lived daemon's history (the state is the daemon's, not the test's).
fn jobs_of_state(state: &Path) -> usize {
    let d = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(state.to_owned()),
        config: Some(
            "[maintenance]\nprune = \"off\"\ncheck = \"off\"\nread_data = \"off\"\n".into(),
        ),
        ..Default::default()
    });
    let n = jobs_of(&d, "check").len();
    drop(d);
    n
}

#[test]
fn a_scheduled_prune_removes_forgotten_data_and_leaves_a_clean_repository() {
    let tree = tempfile::tempdir().expect("tree");
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(
            "[maintenance]\nprune = \"every 3s\"\ncheck = \"off\"\nread_data = \"off\"\n\
             jitter = \"0s\"\n"
                .into(),
        ),
        ..Default::default()
    });
    d.wait_repo("default");
    for i in 0..4u64 {
        let data = backupd_tests::pseudo_random_bytes(256 * 1024, 100 + i);
        std::fs::write(tree.path().join("data.bin"), data).expect("write");
        let out = d.ctl(&["backup", s(tree.path())]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = d.ctl(&["forget", "--keep-last", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let before = jobs_of(&d, "prune").len();
    let prunes = wait_until_else(
        "a scheduled prune after the forget",
        Duration::from_secs(60),
        || {
            let p = jobs_of(&d, "prune");
            (p.len() > before + 1).then_some(p)
        },
        || d.log_text(),
    );
    let last = prunes.last().expect("a prune");
    assert_eq!(last["state"], "succeeded", "{last:#}");
    assert_eq!(last["priority"], "low", "{last:#}");
    let check = json_ok(&d.ctl(&["--json", "repo", "check", "--read-data"]));
    assert!(
        check["problems"].as_array().expect("problems").is_empty(),
        "{check:#}"
    );
    assert_eq!(check["snapshots"], 1);
    // What the forgotten snapshots alone held is gone: one file's worth of packs is left.
    let bytes_after = prunes
        .iter()
        .filter_map(|p| p["result"]["bytes_after"].as_u64())
        .min()
        .expect("a prune result");
    assert!(bytes_after < 600 * 1024, "{prunes:#?}");
}

#[test]
fn a_second_source_of_the_same_directory_and_repository_is_refused() {
    let tree = tempfile::tempdir().expect("tree");
    let d = TestDaemon::start();
    d.wait_repo("default");
    let first = d.ctl(&[
        "source",
        "add",
        s(tree.path()),
        "--name",
        "first",
        "--no-watch",
    ]);
    assert!(first.status.success(), "{}", text(&first));
    // Its retention would apply to the first one's snapshots as well.
    let second = d.ctl(&[
        "source",
        "add",
        s(tree.path()),
        "--name",
        "second",
        "--every",
        "1h",
    ]);
    assert!(!second.status.success(), "{}", text(&second));
    let message = text(&second);
    assert!(
        message.contains("already backed up") && message.contains("\"first\""),
        "{message}"
    );
    let names: Vec<Value> = json_ok(&d.ctl(&["--json", "source", "list"]))
        .as_array()
        .expect("list")
        .iter()
        .map(|x| x["name"].clone())
        .collect();
    assert_eq!(names, vec![Value::from("first")]);
}
