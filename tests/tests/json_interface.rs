//! The `--json` interface: every command's output is checked against its JSON Schema in
//! `docs/json/`, every command has a schema, paths that are not UTF-8 round-trip through the
//! CLI, and waiting (the default), `--no-wait` and Ctrl-C detaching behave as documented.

use backupd_tests::{bin, json_ok, s, wait_until, DaemonOptions, TestDaemon};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/json")
}

/// Every schema file by name (without `.json`), parsed.
fn schemas() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(schema_dir()).expect("docs/json") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read schema");
        let schema: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        out.insert(name, schema);
    }
    out
}

/// Schemas of outputs that are not one command's: failures, `--no-wait`, Ctrl-C.
const SHARED: [&str; 3] = ["error", "submitted", "detached"];

/// Commands with no `--json` output (an interactive screen; `cat`, whose output is the file),
/// with a valid command line each: with `--json` they fail at once with the error object,
/// exit 64.
const NO_JSON: [&[&str]; 2] = [&["dashboard"], &["cat", "latest:/etc/hosts"]];

/// The schema a leaf command (`queue add check`) prints by: its own, or the one of the
/// command it is another spelling of.
fn schema_of(command: &str) -> String {
    match command {
        "queue-add-check" => "repo-check".into(),
        "queue-add-rebuild-index" => "repo-rebuild-index".into(),
        "queue-add-reencrypt" => "repo-key-reencrypt".into(),
        "queue-add-migrate" => "repo-migrate".into(),
        "queue-add-prune" => "repo-prune".into(),
        "queue-add-drill" => "recovery-drill".into(),
        "queue-add-backup" | "queue-add-restore" | "queue-add-forget" => {
            command.trim_start_matches("queue-add-").to_owned()
        }
        c => c.to_owned(),
    }
}

fn leaves(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = if prefix.is_empty() {
            sub.get_name().to_owned()
        } else {
            format!("{prefix}-{}", sub.get_name())
        };
        if sub.has_subcommands() {
            // A command that runs on its own as well as through its subcommands
            // (`security audit`, `security audit verify`) prints JSON both ways.
            // (`security alerts`, `security alerts ack`) prints too.
            if sub.is_args_conflicts_with_subcommands_set() {
                out.push(name.clone());
            }
            leaves(sub, &name, out);
        } else {
            out.push(name);
        }
    }
}

#[test]
fn every_json_command_has_a_schema_and_every_schema_a_command() {
    use clap::CommandFactory;
    let mut commands = Vec::new();
    leaves(&backupctl::cli::Cli::command(), "", &mut commands);
    let schemas = schemas();
    let mut used: BTreeSet<String> = SHARED.iter().map(|s| s.to_string()).collect();
    for command in &commands {
        if NO_JSON.iter().any(|c| c[0] == command.as_str()) {
            continue;
        }
        let name = schema_of(command);
        assert!(
            schemas.contains_key(&name),
            "`backupctl {}` has --json but no schema docs/json/{name}.json",
            command.replace('-', " ")
        );
        used.insert(name);
    }
    for (name, schema) in &schemas {
        assert!(
            used.contains(name),
            "docs/json/{name}.json belongs to no command"
        );
        jsonschema::validator_for(schema)
            .unwrap_or_else(|e| panic!("docs/json/{name}.json is not a valid schema: {e}"));
    }
    let error = jsonschema::validator_for(&schemas["error"]).expect("compiles");
    for command in NO_JSON {
        let out = Command::new(bin("backupctl"))
            .args(["--socket", "/nonexistent/backupd.sock", "--json"])
            .args(command)
            .output()
            .expect("run backupctl");
        assert_eq!(out.status.code(), Some(64), "{command:?}: {out:?}");
        let reply: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        assert!(error.is_valid(&reply), "{command:?}: {reply}");
    }
    // The schemas are closed: a field that is not documented fails, as does a wrong type.
    let workers = jsonschema::validator_for(&schemas["queue-workers"]).expect("compiles");
    assert!(workers.is_valid(&serde_json::json!({"workers": 2})));
    assert!(!workers.is_valid(&serde_json::json!({"workers": 2, "extra": 1})));
    assert!(!workers.is_valid(&serde_json::json!({"workers": "2"})));
}

/// Checks each JSON line `out` printed against schema `name`; returns the last value.
fn conforms(schemas: &BTreeMap<String, Value>, name: &str, out: &Output) -> Value {
    let schema = schemas
        .get(name)
        .unwrap_or_else(|| panic!("no docs/json/{name}.json"));
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut last = Value::Null;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{name}: output does not match docs/json/{name}.json:\n{}\n{value:#}",
            errors.join("\n")
        );
        last = value;
    }
    assert!(!last.is_null(), "{name}: no JSON on stdout: {out:?}");
    last
}

/// Runs `backupctl --json ARGS`, expects `success`, checks the output against `schema`.
struct Checker<'a> {
    d: &'a TestDaemon,
    schemas: BTreeMap<String, Value>,
    covered: BTreeSet<String>,
}

impl Checker<'_> {
    fn run(&mut self, schema: &str, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.d.ctl(&full);
        let want = if schema == "error" {
            !out.status.success()
        } else {
            out.status.success()
        };
        assert!(want, "backupctl {args:?} ({}): {out:?}", out.status);
        self.covered.insert(schema.to_owned());
        conforms(&self.schemas, schema, &out)
    }

    /// As [`Checker::run`] for a command that exits with `code` on purpose (a failed control).
    fn run_exiting(&mut self, schema: &str, args: &[&str], code: i32) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.d.ctl(&full);
        assert_eq!(out.status.code(), Some(code), "backupctl {args:?}: {out:?}");
        self.covered.insert(schema.to_owned());
        conforms(&self.schemas, schema, &out)
    }
}

#[test]
fn every_json_output_matches_its_schema() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[queue]\nworkers = 2\n[perf]\nsample_every = \"1s\"\n".into()),
        ..Default::default()
    });
    d.wait_repo("default");
    let mut c = Checker {
        d: &d,
        schemas: schemas(),
        covered: BTreeSet::new(),
    };
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/a.txt"), b"alpha").expect("write");
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, "horse").expect("pw");

    c.run("system-health", &["system", "health"]);
    c.run(
        "system-health",
        &[
            "system",
            "health",
            "--watch",
            "--interval",
            "10ms",
            "--count",
            "2",
        ],
    );
    c.run("system-whoami", &["system", "whoami"]);
    c.run("system-reload", &["system", "reload"]);
    let extra = d.dir.path().join("extra");
    c.run(
        "repo-init",
        &["repo", "init", "--name", "extra", "--path", s(&extra)],
    );
    c.run("repo-list", &["repo", "list"]);
    c.run("repo-key-export", &["repo", "key", "export", "extra"]);
    c.run(
        "repo-key-add",
        &["repo", "key", "add", "extra", "--password-file", s(&pw)],
    );
    let pw2 = d.dir.path().join("pw2");
    std::fs::write(&pw2, "horse two").expect("pw");
    c.run(
        "repo-key-passwd",
        &["repo", "key", "passwd", "extra", "--password-file", s(&pw2)],
    );
    c.run(
        "repo-key-rotate",
        &["repo", "key", "rotate", "--repo", "extra"],
    );
    c.run("repo-key-list", &["repo", "key", "list", "--repo", "extra"]);
    c.run(
        "repo-key-reencrypt",
        &["repo", "key", "reencrypt", "--repo", "extra"],
    );
    let pw3 = d.dir.path().join("pw3");
    std::fs::write(&pw3, "horse three").expect("pw");
    let added = c.run(
        "repo-key-add",
        &["repo", "key", "add", "extra", "--password-file", s(&pw3)],
    );
    let added = added["added"].as_str().expect("added key file").to_owned();
    c.run(
        "repo-key-remove",
        &["repo", "key", "remove", &added, "--repo", "extra"],
    );
    c.run("repo-info", &["repo", "info", "extra"]);
    c.run("repo-remove", &["repo", "remove", "extra"]);

    c.run("backup", &["backup", s(&src)]);
    c.run("backup", &["queue", "add", "backup", "--tag", "t", s(&src)]);
    let sub = format!("latest:{}/sub", s(&src));
    c.run("ls", &["ls", "--long", &sub]);
    c.run("ls", &["ls", "--recursive", "latest"]);
    c.run("find", &["find", "a.txt"]);
    c.run("find", &["find", "*/sub/*", "--since", "1h"]);
    c.run("diff", &["diff", "latest", "latest"]);
    c.run("submitted", &["backup", "--no-wait", "--force", s(&src)]);
    c.run("snapshots", &["snapshots"]);
    c.run(
        "snapshots",
        &["snapshots", "--group-by", "source", "--latest", "1"],
    );
    c.run("stats", &["stats"]);
    c.run("stats", &["stats", "--mode", "raw", "latest"]);
    c.run("repo-info", &["repo", "info"]);
    let target = d.dir.path().join("restored");
    let latest = format!("latest:{}", src.display());
    c.run("restore", &["restore", &latest, "--target", s(&target)]);
    c.run("repo-check", &["repo", "check", "--read-data"]);
    c.run("repo-check", &["queue", "add", "check"]);
    c.run("repo-rebuild-index", &["repo", "rebuild-index"]);
    c.run("repo-key-reencrypt", &["queue", "add", "reencrypt"]);
    c.run("repo-migrate", &["repo", "migrate", "--to", "2"]);
    c.run("forget", &["forget", "--keep-last", "1", "--dry-run"]);
    c.run("forget", &["forget", "--keep-last", "2", "--prune"]);
    c.run("repo-prune", &["repo", "prune"]);
    c.run("repo-prune", &["queue", "add", "prune", "--compact-only"]);
    c.run("repo-compact", &["repo", "compact"]);
    let replica = d.dir.path().join("replica");
    c.run(
        "repo-init",
        &[
            "repo",
            "init",
            "--name",
            "replica",
            "--location",
            s(&replica),
            "--replica-of",
            "default",
        ],
    );
    c.run(
        "repo-replicate-add",
        &[
            "repo",
            "replicate",
            "add",
            "--from",
            "default",
            "--to",
            "replica",
            "--every",
            "1h",
            "--verify",
            "--bwlimit",
            "50MiB/s",
        ],
    );
    c.run("repo-replicate-list", &["repo", "replicate", "list"]);
    let replicated = c.run(
        "repo-replicate-run",
        &["repo", "replicate", "run", "replica"],
    );
    let replicated = replicated["job"].as_u64().expect("job id").to_string();
    c.run("queue-job", &["queue", "job", &replicated]);
    c.run(
        "repo-replicate-remove",
        &["repo", "replicate", "remove", "replica"],
    );
    c.run(
        "recovery-fitness",
        &["recovery", "fitness", "--path", s(&src)],
    );
    c.run(
        "recovery-select",
        &["recovery", "select", "--path", s(&src)],
    );
    let into = d.dir.path().join("recovered");
    let plan = c.run(
        "recovery-plan",
        &["recovery", "plan", "--path", s(&src), "--target", s(&into)],
    );
    let plan = plan["id"].as_str().expect("plan id").to_owned();
    c.run("recovery-status", &["recovery", "status", &plan]);
    c.run("recovery-list", &["recovery", "list"]);
    c.run("recovery-run", &["recovery", "run", &plan, "--step", "1"]);
    c.run("recovery-run", &["recovery", "run", &plan]);
    c.run("recovery-commit", &["recovery", "commit", &plan]);
    let plan = c.run(
        "recovery-plan",
        &["recovery", "plan", "--path", s(&src), "--target", s(&into)],
    );
    let plan = plan["id"].as_str().expect("plan id").to_owned();
    c.run("recovery-rollback", &["recovery", "rollback", &plan]);
    let noop = c.run("queue-add-noop", &["queue", "add", "noop"]);
    let noop = noop["job"].as_u64().expect("job id").to_string();
    c.run("queue-job", &["queue", "job", &noop]);
    c.run("queue-job", &["queue", "show", &noop]);
    c.run("queue-wait", &["queue", "wait", &noop]);
    c.run("queue-wait", &["queue", "job", &noop, "--follow"]);
    c.run("queue-log", &["queue", "log", &noop]);
    let failed = c.run(
        "error",
        &[
            "queue",
            "add",
            "noop",
            "--fail-attempts",
            "1",
            "--permanent",
        ],
    );
    assert!(failed["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("dead-letter")));
    let dead = c.run("queue-dlq-list", &["queue", "dlq", "list"]);
    let dead = dead[0]["id"].as_u64().expect("dead job").to_string();
    c.run("queue-dlq-retry", &["queue", "dlq", "retry", &dead]);
    d.wait_job(
        dead.parse().expect("id"),
        &["succeeded"],
        Duration::from_secs(20),
    );
    c.run("queue-dlq-purge", &["queue", "dlq", "purge"]);
    let long = c.run(
        "submitted",
        &["queue", "add", "noop", "--no-wait", "--duration", "1h"],
    );
    let long = long["id"].as_u64().expect("id");
    d.wait_job(long, &["running"], Duration::from_secs(20));
    c.run("queue-status", &["queue", "status"]);
    c.run("queue-cancel", &["queue", "cancel", &long.to_string()]);
    c.run("queue-history", &["queue", "history", "--limit", "100"]);
    c.run("queue-workers", &["queue", "workers"]);
    c.run("queue-workers", &["queue", "workers", "3"]);
    c.run("events", &["events", "--backlog", "50"]);

    let watched = d.dir.path().join("watched");
    std::fs::create_dir_all(&watched).expect("mkdir");
    c.run(
        "source-add",
        &[
            "source",
            "add",
            s(&watched),
            "--name",
            "w",
            "--exclude",
            "*.tmp",
        ],
    );
    c.run("source-list", &["source", "list"]);
    // A drill of the repository's newest snapshot (the backups of `src` above).
    let drilled = c.run("recovery-drill", &["recovery", "drill", "--sample", "100%"]);
    assert_eq!(drilled["ok"], true, "{drilled:#}");
    c.run("recovery-drill", &["queue", "add", "drill"]);
    // Exits 1 while a source misses an objective (`w` may have no snapshot yet).
    let out = d.ctl(&["--json", "recovery", "objectives"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    c.covered.insert("recovery-objectives".into());
    conforms(&c.schemas, "recovery-objectives", &out);
    c.run(
        "source-set",
        &[
            "source",
            "set",
            "w",
            "--schedule",
            "daily 02:00",
            "--jitter",
            "5m",
            "--keep-daily",
            "7",
        ],
    );
    c.run("source-list", &["source", "list"]);
    c.run("source-show", &["source", "show", "w"]);
    c.run(
        "source-set",
        &["source", "set", "w", "--keep-all", "--no-schedule"],
    );
    c.run("source-show", &["source", "show", "w"]);
    c.run("source-remove", &["source", "remove", "w"]);

    let export = d.dir.path().join("export.json");
    c.run(
        "system-export-state",
        &["system", "export-state", "--output", s(&export)],
    );
    c.run(
        "system-import-state",
        &["system", "import-state", s(&export)],
    );

    // repo add needs a repository this daemon does not know yet: one made by another daemon.
    let other = TestDaemon::start();
    let shared = d.dir.path().join("made-elsewhere");
    json_ok(&other.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "x",
        "--path",
        s(&shared),
        "--password-file",
        s(&pw),
    ]));
    drop(other);
    c.run(
        "repo-add",
        &[
            "repo",
            "add",
            "--name",
            "elsewhere",
            "--path",
            s(&shared),
            "--password-file",
            s(&pw),
        ],
    );

    let b = c.run(
        "security-grant",
        &[
            "security", "grant", "user", "--uid", "65534", "--repo", "default",
        ],
    );
    assert_eq!(b["id"], "b1");
    c.run("security-bindings", &["security", "bindings"]);
    let v = c.run(
        "security-check",
        &[
            "security",
            "check",
            "--uid",
            "65534",
            "backup.own",
            "--repo",
            "default",
        ],
    );
    assert_eq!(v["granted_by"][0]["binding"]["id"], "b1");
    c.run("security-revoke", &["security", "revoke", "b1"]);

    c.run("security-audit", &["security", "audit", "--limit", "5"]);
    c.run("security-audit-verify", &["security", "audit", "verify"]);
    // `repo key export` above raised a mass-export alert (any key export is one).
    let alerts = c.run("security-alerts", &["security", "alerts", "--all"]);
    let id = alerts[0]["id"].as_u64().expect("an alert").to_string();
    c.run("security-alerts-ack", &["security", "alerts", "ack", &id]);
    c.run("security-unlock", &["security", "unlock", "--uid", "4242"]);
    c.run_exiting("security-compliance", &["security", "compliance"], 1);
    c.run("security-report", &["security", "report", "--days", "3"]);
    wait_until("a performance sample", Duration::from_secs(20), || {
        (!c.run("perf-current", &["perf", "current"])["sample"].is_null()).then_some(())
    });
    c.run("perf-metrics", &["perf", "metrics", "--max-points", "10"]);
    c.run("perf-report", &["perf", "report", "--since", "1h"]);
    c.run("perf-bottlenecks", &["perf", "bottlenecks"]);
    c.run("perf-optimize", &["perf", "optimize"]);
    c.run("perf-history", &["perf", "history"]);
    c.run("perf-auto", &["perf", "auto", "off"]);
    c.run("perf-auto", &["perf", "auto", "on"]);
    // Analytics over whatever history the jobs above left (empty answers are checked too).
    c.run("analytics-predict", &["analytics", "predict"]);
    c.run(
        "analytics-predict",
        &["analytics", "predict", "--backtest", "--days", "7"],
    );
    c.run("analytics-estimate", &["analytics", "estimate"]);
    let scanned = c.run(
        "analytics-estimate",
        &["analytics", "estimate", "--path", s(&src)],
    );
    assert!(scanned["scan"]["files"].as_u64() > Some(0), "{scanned:#}");
    c.run(
        "analytics-anomalies",
        &["analytics", "anomalies", "--since", "1h"],
    );
    c.run("analytics-trends", &["analytics", "trends"]);
    c.run("analytics-risk", &["analytics", "risk"]);
    c.run(
        "analytics-recommendations",
        &["analytics", "recommendations"],
    );
    c.run("analytics-report", &["analytics", "report", "--days", "7"]);
    c.run("analytics-hold-list", &["analytics", "hold", "list"]);
    // No backup above looked like mass encryption, so no source is held and releasing one is
    // NotFound. A real hold's release is checked against its schema by tests/tests/analytics.rs,
    // which performs the attack that places one.
    c.run("error", &["analytics", "hold", "release", "nosuch"]);
    c.covered.insert("analytics-hold-release".into());
    let sealed = d.dir.path().join("a.enc");
    let opened = d.dir.path().join("a.out");
    let plain = src.join("sub/a.txt");
    c.run(
        "security-encrypt",
        &["security", "encrypt", s(&plain), s(&sealed)],
    );
    c.run(
        "security-decrypt",
        &["security", "decrypt", s(&sealed), s(&opened)],
    );
    let mut follower = Command::new(bin("backupctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "events", "--follow", "--backlog", "1000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("events --follow");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let next_line = |lines: &mut Vec<String>| {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("an events line within 30 s");
        lines.push(line.clone());
        serde_json::from_str::<Value>(&line).expect("events line is JSON")
    };
    // It subscribed to alerts before its job events started: once it shows a job's event
    // (from the backlog or live), it gets every later alert.
    let job = d.submit(&["queue", "add", "noop"]);
    while next_line(&mut lines)["job"].as_u64() != Some(job) {}
    assert!(d
        .ctl(&["repo", "key", "export", "default"])
        .status
        .success());
    while next_line(&mut lines).get("alert").is_none() {}
    let _ = follower.kill();
    let status = follower.wait().expect("follower");
    let out = Output {
        status,
        stdout: lines.join("\n").into_bytes(),
        stderr: Vec::new(),
    };
    let alert_line = conforms(&c.schemas, "events", &out);
    assert!(
        alert_line.get("alert").is_some(),
        "the last event is the alert: {alert_line}"
    );

    // Sync pairs: a two-way pair with a conflict left for `sync resolve`.
    let (ssrc, sdst) = (d.dir.path().join("sync-src"), d.dir.path().join("sync-dst"));
    std::fs::create_dir_all(&ssrc).expect("mkdir");
    std::fs::create_dir_all(&sdst).expect("mkdir");
    std::fs::write(ssrc.join("f"), b"base").expect("write");
    c.run(
        "sync-add",
        &[
            "sync",
            "add",
            "--name",
            "pair",
            "--mode",
            "two-way",
            "--strategy",
            "manual",
            "--no-watch",
            s(&ssrc),
            s(&sdst),
        ],
    );
    wait_until("the pair's first run", Duration::from_secs(30), || {
        let v = json_ok(&d.ctl(&["--json", "sync", "show", "pair"]));
        (v["last_outcome"] == "succeeded" && v["job"].is_null()).then_some(())
    });
    std::fs::write(ssrc.join("f"), b"local").expect("write");
    std::fs::write(sdst.join("f"), b"remote, longer").expect("write");
    c.run_exiting("sync-run", &["sync", "run", "pair"], 1);
    c.run("sync-list", &["sync", "list"]);
    c.run("sync-show", &["sync", "show", "pair"]);
    c.run("sync-history", &["sync", "history", "pair"]);
    c.run("sync-conflicts", &["sync", "conflicts", "pair"]);
    c.run(
        "sync-resolve",
        &["sync", "resolve", "pair", "f", "--take", "local"],
    );
    c.run("sync-pause", &["sync", "pause", "pair"]);
    c.run("sync-resume", &["sync", "resume", "pair"]);
    c.run("sync-remove", &["sync", "remove", "pair"]);

    c.run("system-shutdown", &["system", "shutdown"]);
    let missing: Vec<_> = c
        .schemas
        .keys()
        .filter(|k| *k != "detached" && !c.covered.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "schemas no command was checked against: {missing:?}"
    );
}

/// Runs backupctl with raw (possibly non-UTF-8) arguments.
fn ctl_os(d: &TestDaemon, args: &[&OsStr]) -> Output {
    Command::new(backupd_tests::bin("backupctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .output()
        .expect("run backupctl")
}

#[test]
fn a_non_utf8_path_printed_in_json_round_trips_through_the_cli() {
    let d = TestDaemon::start();
    d.wait_repo("default");
    let root = d.dir.path().join("src");
    let mut raw = root.as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/caf\xe9 \\x41");
    let dir = PathBuf::from(OsStr::from_bytes(&raw));
    std::fs::create_dir_all(&dir).expect("mkdir non-UTF-8");
    std::fs::write(dir.join("inside.txt"), b"bytes kept").expect("write");

    // Backed up by its raw name, shown in JSON by the escape rule.
    let id = json_ok(&ctl_os(
        &d,
        &[
            "--json".as_ref(),
            "backup".as_ref(),
            "--no-wait".as_ref(),
            dir.as_os_str(),
        ],
    ))["id"]
        .as_u64()
        .expect("id");
    let job = d.wait_job(id, &["succeeded"], Duration::from_secs(60));
    let shown = job["paths"][0]
        .as_str()
        .expect("path is a string")
        .to_owned();
    assert_eq!(
        shown,
        format!("{}/caf\\xe9 \\\\x41", root.display()),
        "{job:#}"
    );

    // Passed back with --escaped-paths it means the same bytes: as a snapshot filter and as
    // the path inside the snapshot to restore.
    let listed = json_ok(&d.ctl(&["--json", "--escaped-paths", "snapshots", "--path", &shown]));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    // The daemon writes the snapshot's own paths by the same rule.
    assert_eq!(listed[0]["paths"][0], shown.as_str(), "{listed}");
    let target = d.dir.path().join("restored");
    json_ok(&d.ctl(&[
        "--json",
        "--escaped-paths",
        "restore",
        &format!("latest:{shown}"),
        "--target",
        s(&target),
    ]));
    assert_eq!(
        std::fs::read(target.join("inside.txt")).expect("restored file"),
        b"bytes kept"
    );
    // Without the flag a path is taken as typed, so an ordinary name with a backslash works;
    // a stray escape with the flag is a usage error that says the rule.
    let typed = json_ok(&d.ctl(&["--json", "snapshots", "--path", &shown]));
    assert_eq!(typed.as_array().map(Vec::len), Some(0), "{typed}");
    let bad = d.ctl(&["--escaped-paths", "snapshots", "--path", "/a\\q"]);
    assert_eq!(bad.status.code(), Some(64), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("\\xHH"),
        "{bad:?}"
    );
}

#[test]
fn waiting_is_the_default_and_no_wait_returns_once_queued() {
    let mut d = TestDaemon::start();
    // Waits: the exit status is the job's.
    let out = d.ctl(&["queue", "add", "noop", "--duration", "200ms"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("done"),
        "{out:?}"
    );
    let out = d.ctl(&[
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "1",
        "--permanent",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // --wait is still accepted; --no-wait with it is a usage error.
    assert!(d.ctl(&["queue", "add", "noop", "--wait"]).status.success());
    let both = d.ctl(&["queue", "add", "noop", "--wait", "--no-wait"]);
    assert_eq!(both.status.code(), Some(64), "{both:?}");
    // --no-wait: back while the job still runs, and the job is on disk already: a daemon
    // killed right after the reply still has it when it starts again.
    let id = d.submit(&["queue", "add", "noop", "--duration", "1h"]);
    assert_eq!(
        d.job(id)["state"].as_str().map(|s| s != "succeeded"),
        Some(true)
    );
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10)).expect("killed");
    let again = TestDaemon::start_with(DaemonOptions {
        state_dir: Some(d.state_dir.clone()),
        ..Default::default()
    });
    assert_eq!(again.job(id)["kind"], "noop");
    json_ok(&again.ctl(&["--json", "queue", "cancel", &id.to_string()]));
}

#[test]
fn ctrl_c_while_waiting_detaches_and_the_job_goes_on() {
    let d = TestDaemon::start();
    let child = Command::new(backupd_tests::bin("backupctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "queue", "add", "noop", "--duration", "1h"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backupctl");
    // backupctl listens for SIGINT before it submits, so once the job exists it detaches.
    let id = wait_until("the job to run", Duration::from_secs(20), || {
        let status = json_ok(&d.ctl(&["--json", "queue", "status"]));
        status["running"][0]["id"].as_u64()
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("backupctl exits");
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("goes on")
            && stderr.contains(&format!("backupctl queue wait {id}"))
            && stderr.contains(&format!("backupctl queue cancel {id}")),
        "{stderr}"
    );
    let detached = conforms(&schemas(), "detached", &out);
    assert_eq!(detached["id"], id);
    assert_eq!(d.job(id)["state"], "running");
    json_ok(&d.ctl(&["--json", "queue", "cancel", &id.to_string()]));
}
