//! Issue 16: the performance monitor samples, opens bottlenecks past its thresholds, the tuner
//! acts on them (engine threads really run at the tuned nice level), the changes are recorded
//! and survive a reload and a restart, `perf auto off` restores the configured values, the
//! health score counts the bottlenecks, and a non-admin sees no paths and cannot tune.
//!
//! Thresholds of 0 % make the bottlenecks certain on any machine; a busy thread in the test
//! keeps the CPU above 0 while the samples are taken.

use backupd_tests::{bin, is_root, json_ok, s, wait_until, DaemonOptions, TestDaemon, OPEN_SOCKET};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PRESSURE: &str = r#"
[perf]
sample_every = "1s"
optimize_every = "1h"
cpu_percent = 0.0
cpu_critical_percent = 100.0
disk_percent = 0.0
disk_critical_percent = 100.0
"#;

/// Keeps one core busy until dropped.
struct Spinner(Arc<AtomicBool>);

impl Spinner {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !flag.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
        Self(stop)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn perf(d: &TestDaemon, args: &[&str]) -> Value {
    let mut all = vec!["--json", "perf"];
    all.extend_from_slice(args);
    json_ok(&d.ctl(&all))
}

fn kinds(bottlenecks: &Value) -> Vec<String> {
    bottlenecks
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["kind"].as_str().expect("kind").to_owned())
        .collect()
}

/// The nice level of each of the daemon's threads whose name starts with `prefix`.
fn thread_nice(pid: u32, prefix: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after the parenthesised name; nice is field 19 overall.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if let Some(n) = fields.get(16).and_then(|f| f.parse().ok()) {
                out.push(n);
            }
        }
    }
    out
}

fn source_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    for i in 0..50 {
        std::fs::write(
            src.join("sub").join(format!("f{i}")),
            vec![i as u8; 100_000],
        )
        .expect("write");
    }
    src
}

#[test]
fn bottlenecks_are_detected_tuned_recorded_and_the_tuning_survives_reload_and_restart() {
    let base = tempfile::tempdir().expect("tempdir");
    let state = base.path().join("state");
    let config = base.path().join("backupd.toml");
    std::fs::write(&config, PRESSURE).expect("config");
    let options = || DaemonOptions {
        extra_args: vec!["--config".into(), s(&config).into()],
        state_dir: Some(state.clone()),
        ..Default::default()
    };
    let mut d = TestDaemon::start_with(options());
    let spin = Spinner::start();

    let current = wait_until(
        "a sample with a cpu bottleneck",
        Duration::from_secs(20),
        || {
            let c = perf(&d, &["current"]);
            let k = kinds(&c["bottlenecks"]);
            (k.contains(&"cpu".to_owned()) && k.contains(&"disk".to_owned())).then_some(c)
        },
    );
    let sample = &current["sample"];
    assert!(sample["memory_total_bytes"].as_u64().expect("memory") > 0);
    assert!(sample["daemon_rss_bytes"].as_u64().expect("rss") > 0);
    let disks = sample["disks"].as_array().expect("disks");
    assert!(
        disks.iter().any(|d| d["holds"]
            .as_array()
            .expect("holds")
            .iter()
            .any(|h| h == "state")),
        "{disks:?}"
    );
    assert_eq!(current["tunables"]["nice"], 10);
    assert_eq!(current["tunables"]["io_class"], "best-effort/7");
    assert_eq!(current["auto"], true);

    // One round: CPU pressure makes backups nicer, the filling repository disk compresses
    // harder; both are recorded with the metric that triggered them.
    let round = perf(&d, &["optimize"]);
    let changed: Vec<(String, String, String)> = round["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["tunable"].as_str().expect("tunable").to_owned(),
                c["old"].as_str().expect("old").to_owned(),
                c["new"].as_str().expect("new").to_owned(),
            )
        })
        .collect();
    assert!(
        changed.contains(&("nice".into(), "10".into(), "15".into())),
        "{round}"
    );
    assert!(
        changed.contains(&("zstd_level".into(), "1".into(), "3".into())),
        "{round}"
    );
    assert_eq!(round["tunables"]["nice"], 15);
    let history = perf(&d, &["history"]);
    let first = &history.as_array().expect("history")[0];
    assert_eq!(first["trigger"], "manual");
    assert!(
        history
            .as_array()
            .expect("history")
            .iter()
            .any(|c| c["tunable"] == "nice"
                && c["metric"].as_str().expect("metric").starts_with("cpu ")),
        "{history}"
    );
    let bottlenecks = perf(&d, &["bottlenecks"]);
    let cpu = bottlenecks
        .as_array()
        .expect("bottlenecks")
        .iter()
        .find(|b| b["kind"] == "cpu" && b["ended"].is_null())
        .expect("open cpu bottleneck");
    assert_eq!(cpu["severity"], "warning");
    assert!(
        cpu["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .any(|a| a.as_str().expect("action").starts_with("nice: 10 -> 15")),
        "{cpu}"
    );

    // The health score counts the open bottlenecks.
    let health = json_ok(&d.ctl(&["--json", "system", "health"]));
    let score = &health["score"];
    assert!(score["score"].as_u64().expect("score") < 100, "{score}");
    assert!(
        score["factors"]
            .as_array()
            .expect("factors")
            .iter()
            .any(|f| f["name"] == "bottlenecks"),
        "{score}"
    );

    // A backup's engine threads run at the tuned nice level.
    let src = source_tree(base.path());
    let out = d.ctl(&["backup", s(&src)]);
    assert!(out.status.success(), "{out:?}");
    let nice = thread_nice(d.pid(), "engine-bg");
    assert!(!nice.is_empty(), "no engine-bg threads");
    assert!(nice.iter().all(|n| *n == 15), "{nice:?}");
    // ... and the daemon's own threads do not.
    assert!(thread_nice(d.pid(), "tokio").iter().all(|n| *n == 0));

    // A reload keeps the tuned values; so does a restart.
    assert!(d.ctl(&["system", "reload"]).status.success());
    assert_eq!(perf(&d, &["current"])["tunables"]["nice"], 15);
    d.stop();
    drop(spin);
    let d = TestDaemon::start_with(options());
    let after = perf(&d, &["current"]);
    assert_eq!(after["tunables"]["nice"], 15, "{after}");
    assert_eq!(after["tunables"]["zstd_level"], 3, "{after}");
    assert_eq!(after["configured"]["nice"], 10);

    // Off: the configured values are back in force, and stay so across a restart.
    let off = perf(&d, &["auto", "off"]);
    assert_eq!(off["auto"], false);
    assert_eq!(off["tunables"]["nice"], 10);
    assert_eq!(perf(&d, &["current"])["auto"], false);
    let report = perf(&d, &["report", "--since", "1h"]);
    assert!(report["samples"].as_u64().expect("samples") > 0, "{report}");
    assert!(
        report["tuning_changes"].as_u64().expect("changes") >= 2,
        "{report}"
    );
    assert!(
        report["time_in_bottlenecks"]
            .as_array()
            .expect("times")
            .iter()
            .any(|t| t["kind"] == "disk"),
        "{report}"
    );
    let metrics = perf(&d, &["metrics", "--since", "1h", "--max-points", "3"]);
    let points = metrics.as_array().expect("samples");
    assert!(!points.is_empty() && points.len() <= 3, "{metrics}");
}

#[test]
fn a_non_admin_sees_no_paths_and_cannot_tune() {
    assert!(
        is_root(),
        "this test needs root (it asks as `nobody`); CI runs tests as root"
    );
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!("{OPEN_SOCKET}{PRESSURE}")),
        ..Default::default()
    });
    d.open_to_all();
    wait_until("a sample", Duration::from_secs(20), || {
        let c = perf(&d, &["current"]);
        (!c["sample"].is_null()).then_some(())
    });
    let out = d.ctl_as_nobody(&["--json", "perf", "current"]);
    let c: Value = json_ok(&out);
    let state_dir = d.state_dir.display().to_string();
    let text = c.to_string();
    assert!(!text.contains(&state_dir), "{text}");
    for disk in c["sample"]["disks"].as_array().expect("disks") {
        for h in disk["holds"].as_array().expect("holds") {
            assert!(!h.as_str().expect("hold").contains(' '), "{disk}");
        }
    }
    let out = d.ctl_as_nobody(&["perf", "optimize"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("system.manage") || err.contains("permission"),
        "{err}"
    );
}

#[test]
fn bad_perf_and_metrics_settings_are_refused_with_their_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("[perf]\ncpu_percent = 120.0\n", "perf.cpu_percent"),
        (
            "[perf]\nsample_every = \"10s\"\noptimize_every = \"5s\"\n",
            "perf.optimize_every",
        ),
        ("[perf]\nio_class = \"realtime\"\n", "perf.io_class"),
        ("[metrics]\nlisten = \"0.0.0.0:9911\"\n", "metrics.listen"),
    ];
    for (text, key) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).expect("write");
        let out = Command::new(bin("backupd"))
            .args(["--check-config", "--config"])
            .arg(&file)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}: {err}");
    }
}
