//! `security compliance` and `security report` on a live daemon: controls measured with their
//! evidence (exit 1 while one fails), drills that turn controls green, and a score lowered by
//! what the report names. The report's denials test runs a client as `nobody` (needs root).

use backupd_tests::{json_ok, s, text, DaemonOptions, TestDaemon, OPEN_SOCKET};
use serde_json::Value;

fn compliance(d: &TestDaemon, framework: &str) -> (Option<i32>, Value) {
    let out = d.ctl(&["--json", "security", "compliance", "--framework", framework]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("compliance JSON");
    (out.status.code(), v)
}

fn control<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["controls"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("control {id} in {report:#}"))
}

#[test]
fn a_fresh_daemon_fails_compliance_on_the_missing_replica_and_drills() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let (code, r) = compliance(&d, "all");
    assert_eq!(code, Some(1), "a failed control exits 1: {r:#}");
    assert_eq!(
        r["frameworks"],
        serde_json::json!(["gdpr", "hipaa", "iso27001", "soc2"])
    );
    let enc = control(&r, "repo-encrypted");
    assert_eq!(enc["status"], "pass");
    assert!(enc["evidence"]
        .as_str()
        .unwrap_or_default()
        .contains("default: AES-256-GCM"));
    assert!(enc["clauses"].to_string().contains("GDPR Art. 32(1)(a)"));
    let replica = control(&r, "replica");
    assert_eq!(replica["status"], "fail");
    assert!(replica["evidence"]
        .as_str()
        .unwrap_or_default()
        .contains("no replica of default"));
    assert_eq!(control(&r, "restore-drill")["status"], "fail");
    assert_eq!(control(&r, "read-data-check")["status"], "fail");
    assert_eq!(control(&r, "key-age")["status"], "pass");
    let socket = control(&r, "socket-private");
    assert_eq!(socket["status"], "pass", "{socket}");
    // The audit log and the bindings are measured, not assumed.
    let evidence = |id: &str| {
        control(&r, id)["evidence"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(control(&r, "audit-chain")["status"], "pass");
    assert!(evidence("audit-chain").ends_with("entries verify"), "{r:#}");
    assert!(evidence("audit-retention").starts_with("kept "), "{r:#}");
    assert_eq!(control(&r, "binding-expiry")["status"], "pass", "{r:#}");
    assert!(r["failed"].as_u64() >= Some(1));

    // One framework: only its clauses.
    let (_, hipaa) = compliance(&d, "hipaa");
    assert_eq!(hipaa["frameworks"], serde_json::json!(["hipaa"]));
    let clauses = control(&hipaa, "restore-drill")["clauses"].to_string();
    assert!(clauses.contains("HIPAA §164.308(a)(7)(ii)(B)") && !clauses.contains("GDPR"));
}

#[test]
fn a_restore_and_a_full_read_data_check_pass_their_controls() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(OPEN_SOCKET.into()),
        ..Default::default()
    });
    d.wait_repo("default");
    let (_, before) = compliance(&d, "all");
    assert_eq!(
        control(&before, "socket-private")["status"],
        "fail",
        "socket mode 0666"
    );

    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a"), b"alpha").expect("write");
    let backup = json_ok(&d.ctl(&["--json", "backup", s(&src)]));
    let snapshot = backup["result"]["snapshot"]
        .as_str()
        .or_else(|| backup["snapshot"].as_str())
        .expect("snapshot id")
        .to_owned();
    let target = d.dir.path().join("drill");
    let out = d.ctl(&["restore", &snapshot, "--target", s(&target)]);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.ctl(&["repo", "check", "--read-data"]);
    assert!(out.status.success(), "{}", text(&out));

    let (_, after) = compliance(&d, "all");
    let drill = control(&after, "restore-drill");
    assert_eq!(drill["status"], "pass", "{drill}");
    assert!(drill["evidence"]
        .as_str()
        .unwrap_or_default()
        .contains("0 days ago"));
    assert_eq!(
        control(&after, "read-data-check")["status"],
        "pass",
        "{after:#}"
    );
}

#[test]
fn the_report_scores_what_lowered_it_and_counts_denials_and_alerts_by_uid() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(format!(
            "{OPEN_SOCKET}[security.detect]\nbrute_force_failures = 3\n"
        )),
        ..Default::default()
    });
    d.open_to_all();
    d.wait_repo("default");
    let before = json_ok(&d.ctl(&["--json", "security", "report"]));
    assert_eq!(before["days"], 30);
    let lost: u64 = before["factors"]
        .as_array()
        .expect("factors")
        .iter()
        .map(|f| f["points"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(before["score"].as_u64(), Some(100 - lost), "{before:#}");
    assert!(
        before["factors"].to_string().contains("replica"),
        "{before:#}"
    );
    // The report runs the compliance controls, so it has just walked the audit chain.
    assert!(
        before["audit_last_verify"]
            .as_str()
            .is_some_and(|v| v.starts_with("verified at ")),
        "{before:#}"
    );

    for _ in 0..3 {
        assert_eq!(
            d.ctl_as_nobody(&["system", "shutdown"]).status.code(),
            Some(4)
        );
    }
    let after = json_ok(&d.ctl(&["--json", "security", "report", "--days", "7"]));
    assert_eq!(after["days"], 7);
    assert!(
        after["score"].as_u64() < before["score"].as_u64(),
        "{after:#}"
    );
    assert_eq!(after["unacknowledged_alerts"], 1);
    assert!(after["factors"]
        .to_string()
        .contains("1 unacknowledged alert"));
    assert_eq!(
        after["denials_by_uid"],
        serde_json::json!([{"key": "65534", "count": 3}])
    );
    assert_eq!(
        after["denials_by_permission"],
        serde_json::json!([{"key": "system.manage", "count": 3}])
    );
    assert_eq!(
        after["alerts_by_pattern"],
        serde_json::json!([{"key": "brute-force", "count": 1}])
    );
    assert_eq!(after["key_ages"][0]["repo"], "default");
    assert_eq!(after["key_ages"][0]["age_days"], 0);
    let bad = d.ctl(&["security", "report", "--days", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("expected 1 to 366"), "{}", text(&bad));
}

#[test]
fn the_replica_control_passes_once_a_replica_is_within_its_lag() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("src");
    std::fs::write(src.join("a"), b"replicated").expect("write");
    json_ok(&d.ctl(&["--json", "backup", s(&src)]));
    let offsite = d.dir.path().join("offsite");
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "offsite",
        "--location",
        s(&offsite),
        "--replica-of",
        "default",
    ]));
    json_ok(&d.ctl(&[
        "--json",
        "repo",
        "replicate",
        "add",
        "--from",
        "default",
        "--to",
        "offsite",
    ]));
    // Added but never run: no copy exists yet.
    let (_, before) = compliance(&d, "all");
    assert_eq!(control(&before, "replica")["status"], "fail", "{before:#}");
    json_ok(&d.ctl(&["--json", "repo", "replicate", "run", "offsite"]));
    let (_, after) = compliance(&d, "all");
    let replica = control(&after, "replica");
    assert_eq!(replica["status"], "pass", "{after:#}");
    assert!(
        replica["evidence"]
            .as_str()
            .unwrap_or_default()
            .contains("default → offsite"),
        "{replica}"
    );
}
