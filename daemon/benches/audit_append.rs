//! What one audit entry costs a write request: `Audit::append` (hash, JSON, day-file append and
//! fdatasync, sled insert, checkpoints at the default interval) timed 10,000 times on the state
//! directory's file system. Prints p50/p99/max and checks the target (p99 < 1 ms).
//!
//! Run: `bench/audit.sh`, or `cargo bench -p backupd --bench audit_append`. `AUDIT_BENCH_DIR`
//! picks the directory (default: a temp dir under /var/tmp, which is on disk, unlike /tmp on
//! many systems); `AUDIT_BENCH_ENTRIES` the count.

use backupd::context::SettingsHandle;
use backupd::security::audit::{Audit, NewEntry};
use backupd::settings::{Overrides, Settings};
use backupd::state::State;
use backupd_common::config::Config;
use backupd_common::protocol::{AuditOutcome, AuditTarget, EventType, Role, RunMode, Severity};
use std::time::Instant;

fn main() {
    let entries: usize = std::env::var("AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let base = std::env::var_os("AUDIT_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into());
    let dir = tempfile::tempdir_in(&base).expect("temp dir for the bench");
    let settings = SettingsHandle::new(Settings {
        mode: RunMode::User,
        config_file: None,
        config: Config::default(),
        socket: dir.path().join("sock"),
        state_dir: dir.path().to_owned(),
        log_level: "warn".into(),
        overrides: Overrides::default(),
    });
    let state = State::open(dir.path()).expect("state");
    let audit = Audit::open(&state, dir.path(), settings).expect("audit log");
    let entry = NewEntry {
        uid: 1000,
        gid: 1000,
        pid: Some(4242),
        role: Some(Role::User),
        permission: Some("backup.own".into()),
        event: EventType::Backup,
        severity: Severity::Info,
        request: "queue add".into(),
        target: AuditTarget {
            repo: Some("default".into()),
            paths: vec!["/home/user/documents".into(), "/home/user/photos".into()],
            job: Some("123456".into()),
            ..Default::default()
        },
        outcome: AuditOutcome::Ok,
        error_code: None,
        message: None,
    };
    let mut micros = Vec::with_capacity(entries);
    let started = Instant::now();
    for _ in 0..entries {
        let t = Instant::now();
        audit.append(entry.clone()).expect("append");
        micros.push(t.elapsed().as_micros() as u64);
    }
    let total = started.elapsed();
    micros.sort_unstable();
    let pct = |p: f64| micros[((micros.len() as f64 * p) as usize).min(micros.len() - 1)];
    let (p50, p99, max) = (pct(0.50), pct(0.99), micros[micros.len() - 1]);
    println!(
        "audit append on {}: {entries} entries in {:.2} s ({:.0}/s); p50 {p50} µs, p99 {p99} µs, max {max} µs",
        dir.path().display(),
        total.as_secs_f64(),
        entries as f64 / total.as_secs_f64()
    );
    let report = audit.verify();
    println!(
        "verify: {} entries, {} checkpoints, intact: {}",
        report.entries,
        report.checkpoints,
        report.intact()
    );
    println!(
        "target p99 < 1 ms: {} ({p99} µs)",
        if p99 < 1000 { "met" } else { "NOT met" }
    );
}
