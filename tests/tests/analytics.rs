//! Analytics end to end: a real daemon watching a real directory, its backups' statistics, and
//! the attack the analytics issue names: ransomware encrypting 500 files of a watched source
//! with `openssl enc`. The alert and the retention hold must be there with the first snapshot
//! of the encrypted files, forget must keep the held snapshots (and refuse to remove one by
//! name) until an admin releases the hold.

use backupd_tests::{json_ok, s, text, wait_until_else, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const FILES: usize = 500;

fn write_text(path: &Path, seed: usize) {
    let mut body = String::new();
    for line in 0..80 {
        body.push_str(&format!(
            "line {line} of document {seed}: the quarterly figures are in the usual place\n"
        ));
    }
    std::fs::write(path, body).expect("write");
}

fn source(d: &TestDaemon) -> Value {
    let list = json_ok(&d.ctl(&["--json", "source", "list"]));
    list.as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == "docs")
        .cloned()
        .unwrap_or_else(|| panic!("no source docs: {list:#}"))
}

/// Waits for a snapshot other than `before` with nothing pending or running.
fn next_snapshot(d: &TestDaemon, before: Option<&str>) -> String {
    let last = std::cell::RefCell::new(Value::Null);
    wait_until_else(
        "the next snapshot of docs",
        Duration::from_secs(120),
        || {
            let s = source(d);
            *last.borrow_mut() = s.clone();
            let snap = s["last_snapshot"].as_str().map(str::to_owned);
            let idle = s["pending_paths"] == 0 && s["job"].is_null();
            (idle && snap.is_some() && snap.as_deref() != before).then(|| snap.expect("snap"))
        },
        || format!("{:#}\nlog:\n{}", last.borrow(), d.log_text()),
    )
}

/// `value` matches docs/json/NAME.json (json_interface checks the others against a live daemon;
/// a hold only exists after the attack below).
fn assert_schema(name: &str, value: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/json/{name}.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema")).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{value:#}");
}

fn snapshot_ids(d: &TestDaemon) -> Vec<String> {
    json_ok(&d.ctl(&["--json", "snapshots"]))
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn mass_encryption_raises_a_critical_alert_and_holds_older_snapshots_until_released() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("docs");
    for i in 0..FILES {
        let dir = src.join(format!("d{}", i % 5));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write_text(&dir.join(format!("f{i}.txt")), i);
    }
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!(
            "[[source]]\nname = \"docs\"\npath = \"{}\"\ndebounce = \"1s\"\nkeep_all = true\n",
            s(&src)
        )),
        ..Default::default()
    });
    let mut snap = next_snapshot(&d, None);
    // Ordinary days: two documents edited per backup, eleven times (ten values are needed
    // before anything is judged; the first, full backup is not one of them).
    for round in 0..11 {
        for k in 0..2 {
            let i = (round * 7 + k * 3) % FILES;
            write_text(
                &src.join(format!("d{}/f{i}.txt", i % 5)),
                1000 + round * 2 + k,
            );
        }
        snap = next_snapshot(&d, Some(&snap));
    }
    let quiet = json_ok(&d.ctl(&["--json", "analytics", "anomalies"]));
    assert!(
        quiet
            .as_array()
            .expect("list")
            .iter()
            .all(|a| a["critical"] == false),
        "ordinary edits raised a critical anomaly: {quiet:#}"
    );
    assert_eq!(
        json_ok(&d.ctl(&["--json", "analytics", "hold", "list"])),
        serde_json::json!([])
    );
    let before_attack = snapshot_ids(&d);

    // The attack: every document replaced by its AES-256 ciphertext, in place.
    let script = "for f in $(find \"$1\" -type f); do \
                  openssl enc -aes-256-cbc -pbkdf2 -salt -pass pass:ransom -in \"$f\" -out \"$f.x\" \
                  && mv \"$f.x\" \"$f\" || exit 1; done";
    let out = Command::new("sh")
        .args(["-c", script, "sh", s(&src)])
        .output()
        .expect("sh");
    assert!(out.status.success(), "openssl enc: {}", text(&out));

    // Within one snapshot: the first one after the attack already has them.
    let attacked = next_snapshot(&d, Some(&snap));
    let holds = json_ok(&d.ctl(&["--json", "analytics", "hold", "list"]));
    assert_schema("analytics-hold-list", &holds);
    let holds = holds.as_array().expect("holds");
    assert_eq!(holds.len(), 1, "{holds:#?}\nlog:\n{}", d.log_text());
    assert_eq!(holds[0]["source"], "docs");
    assert_eq!(holds[0]["snapshot"], attacked.as_str());
    let anomalies = json_ok(&d.ctl(&["--json", "analytics", "anomalies", "--source", "docs"]));
    assert_schema("analytics-anomalies", &anomalies);
    let critical: Vec<&Value> = anomalies
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| a["critical"] == true)
        .collect();
    assert_eq!(critical.len(), 1, "{anomalies:#}");
    assert_eq!(critical[0]["metric"], "mass_encryption");
    assert!(critical[0]["value"].as_f64().expect("ratio") <= 1.1);
    let health = d.health();
    assert!(
        health["notes"].as_array().expect("notes").iter().any(|n| n
            .as_str()
            .unwrap_or_default()
            .contains("analytics hold release docs")),
        "{health:#}"
    );
    d.wait_log_line(
        &["suspected mass encryption", "docs"],
        Duration::from_secs(5),
    );

    // Retention cannot take the snapshots from before the attack, by policy or by name.
    let forget = json_ok(&d.ctl(&["--json", "forget", "--keep-last", "1"]));
    assert_eq!(forget["removed"], 0, "{forget:#}");
    let mut ids = snapshot_ids(&d);
    ids.sort();
    let mut expected = before_attack.clone();
    expected.push(attacked.clone());
    expected.sort();
    assert_eq!(ids, expected);
    let named = d.ctl(&["forget", &before_attack[0]]);
    assert!(!named.status.success(), "{}", text(&named));
    assert!(
        String::from_utf8_lossy(&named.stderr).contains("retention hold"),
        "{}",
        text(&named)
    );

    // An admin looked, and releases it: retention applies again.
    let released = json_ok(&d.ctl(&["--json", "analytics", "hold", "release", "docs"]));
    assert_schema("analytics-hold-release", &released);
    assert_eq!(released["source"], "docs");
    let forget = json_ok(&d.ctl(&["--json", "forget", "--keep-last", "1"]));
    assert_eq!(
        forget["removed"].as_u64(),
        Some(before_attack.len() as u64),
        "{forget:#}"
    );
    assert_eq!(snapshot_ids(&d), vec![attacked]);
    let again = d.ctl(&["analytics", "hold", "release", "docs"]);
    assert!(!again.status.success(), "{}", text(&again));
}

/// Predictions, trends, risk, recommendations and the report answer from a real daemon's
/// statistics, and a source nobody configured is an error that says what to do.
#[test]
fn every_analytics_request_answers_for_a_real_source() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("docs");
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..20 {
        write_text(&src.join(format!("f{i}.txt")), i);
    }
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!(
            "[[source]]\nname = \"docs\"\npath = \"{}\"\ndebounce = \"1s\"\n",
            s(&src)
        )),
        ..Default::default()
    });
    let mut snap = next_snapshot(&d, None);
    for round in 0..4 {
        write_text(&src.join(format!("f{round}.txt")), 100 + round);
        snap = next_snapshot(&d, Some(&snap));
    }
    let predictions = json_ok(&d.ctl(&["--json", "analytics", "predict", "--days", "7"]));
    let p = &predictions[0];
    assert_eq!(p["source"], "docs");
    let rate = p["success_rate"].as_f64().expect("rate");
    assert!(rate > 0.5 && rate <= 1.0, "{p:#}");
    assert!(p["low"].as_f64() <= Some(rate) && Some(rate) <= p["high"].as_f64());
    assert_eq!(p["jobs"], 5);

    let estimates = json_ok(&d.ctl(&["--json", "analytics", "estimate", "--source", "docs"]));
    assert_eq!(estimates["estimates"][0]["jobs"], 5, "{estimates:#}");

    let risk = json_ok(&d.ctl(&["--json", "analytics", "risk"]));
    let factors = risk["sources"][0]["factors"].as_array().expect("factors");
    assert_eq!(factors.len(), 7, "{risk:#}");
    let weights: f64 = factors
        .iter()
        .map(|f| f["weight"].as_f64().expect("w"))
        .sum();
    assert!((weights - 100.0).abs() < 1e-9);
    // Never checked and no replica: those two factors apply in full.
    let level = |name: &str| {
        factors
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["level"].as_f64())
    };
    assert_eq!(level("unverified"), Some(1.0), "{risk:#}");
    assert_eq!(level("no_replica"), Some(1.0), "{risk:#}");

    let recommendations = json_ok(&d.ctl(&["--json", "analytics", "recommendations"]));
    let kinds: Vec<&str> = recommendations
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"add-replica"), "{recommendations:#}");
    assert!(
        kinds.contains(&"schedule-verification"),
        "{recommendations:#}"
    );

    let trends = json_ok(&d.ctl(&["--json", "analytics", "trends"]));
    assert_eq!(trends.as_array().expect("list").len(), 4, "{trends:#}");

    let report = json_ok(&d.ctl(&["--json", "analytics", "report"]));
    assert_schema("analytics-report", &report);
    let html = d.ctl(&["analytics", "report", "--format", "html"]);
    assert!(html.status.success(), "{}", text(&html));
    let page = String::from_utf8_lossy(&html.stdout);
    assert!(page.contains("<svg") && page.contains("docs"), "{page}");
    // Self-contained: nothing is fetched from anywhere.
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!page.contains(fetch), "{fetch} in the report");
    }

    let unknown = d.ctl(&["analytics", "predict", "--source", "nope"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("source list"),
        "{}",
        text(&unknown)
    );
}
