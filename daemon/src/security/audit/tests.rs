//! The chain, both stores and retention, tampered with in every way `verify` must catch.

use super::*;
use crate::settings::{Overrides, Settings};
use backupd_common::config::Config;
use backupd_common::protocol::{AuditStore, RunMode};

struct Log {
    dir: tempfile::TempDir,
    state: State,
    audit: Audit,
}

fn settings(dir: &Path, checkpoint_every: u64) -> SettingsHandle {
    let mut config = Config::default();
    config.audit.checkpoint_every = checkpoint_every;
    SettingsHandle::new(Settings {
        mode: RunMode::User,
        config_file: None,
        config,
        socket: dir.join("sock"),
        state_dir: dir.to_owned(),
        log_level: "info".into(),
        overrides: Overrides::default(),
    })
}

fn log_with(n: u64, checkpoint_every: u64) -> Log {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = State::open(dir.path()).expect("state");
    let audit =
        Audit::open(&state, dir.path(), settings(dir.path(), checkpoint_every)).expect("open");
    for i in 0..n {
        let mut e = NewEntry::alert(1000 + i as u32, "test", format!("entry {}", i + 1));
        e.severity = Severity::Notice;
        audit.append(e).expect("append");
    }
    Log { dir, state, audit }
}

impl Log {
    fn reopen(self) -> Log {
        let Log { dir, state, audit } = self;
        drop(audit);
        let audit = Audit::open(&state, dir.path(), settings(dir.path(), 1000)).expect("reopen");
        Log { dir, state, audit }
    }

    fn day_file(&self) -> PathBuf {
        files::list(&self.dir.path().join("audit")).expect("list")[0]
            .path
            .clone()
    }

    fn edit_file(&self, edit: impl FnOnce(&mut Vec<String>)) {
        let path = self.day_file();
        let text = std::fs::read_to_string(&path).expect("read");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        edit(&mut lines);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    }

    fn problem(&self) -> backupd_common::protocol::AuditProblem {
        let report = self.audit.verify();
        report.problem.expect("verify finds the tampering")
    }
}

fn entry_json(line: &str) -> AuditEntry {
    serde_json::from_str(line).expect("entry")
}

#[test]
fn an_untouched_log_verifies_with_its_checkpoints() {
    let log = log_with(25, 10);
    let report = log.audit.verify();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 25);
    assert_eq!((report.first_seq, report.last_seq), (Some(1), Some(25)));
    // The first entry, then every 10th after it.
    assert_eq!(report.checkpoints, 3);
    assert_eq!(report.last_checkpoint.map(|c| c.seq), Some(21));
    let log = log.reopen();
    assert_eq!(
        log.audit
            .append(NewEntry::alert(1, "x", "after restart"))
            .ok(),
        Some(26)
    );
    assert!(log.audit.verify().intact());
}

#[test]
fn an_edited_line_in_the_day_file_is_named() {
    let log = log_with(10, 1000);
    log.edit_file(|lines| lines[6] = lines[6].replace("entry 7", "entry 7 (nothing to see)"));
    let p = log.problem();
    assert_eq!(
        (p.store, p.seq, p.kind.as_str()),
        (AuditStore::Files, 7, "changed"),
        "{p:?}"
    );
    assert!(p.location.ends_with("line 7"), "{p:?}");
}

#[test]
fn an_edit_with_recomputed_hashes_is_caught_against_sled() {
    let log = log_with(10, 1000);
    log.edit_file(|lines| {
        let mut prev = entry_json(&lines[3]).hash;
        for line in lines.iter_mut().skip(4) {
            let mut e = entry_json(line);
            if e.seq == 5 {
                e.uid = 0;
            }
            e.prev = prev;
            e.hash = chain::entry_hash(&e);
            prev = e.hash.clone();
            *line = serde_json::to_string(&e).expect("json");
        }
    });
    let p = log.problem();
    assert_eq!((p.seq, p.kind.as_str()), (5, "mismatch"), "{p:?}");
}

#[test]
fn a_deleted_line_is_named() {
    let log = log_with(10, 1000);
    log.edit_file(|lines| {
        lines.remove(3);
    });
    let p = log.problem();
    assert_eq!(
        (p.store, p.seq, p.kind.as_str()),
        (AuditStore::Files, 4, "removed"),
        "{p:?}"
    );
}

#[test]
fn swapped_lines_are_named_as_reordered() {
    let log = log_with(10, 1000);
    log.edit_file(|lines| lines.swap(4, 5));
    let p = log.problem();
    assert_eq!(
        (p.store, p.seq, p.kind.as_str()),
        (AuditStore::Files, 5, "reordered"),
        "{p:?}"
    );
}

#[test]
fn the_last_entries_cut_from_the_file_are_named() {
    let log = log_with(10, 1000);
    log.edit_file(|lines| lines.truncate(8));
    let p = log.problem();
    assert_eq!(
        (p.store, p.seq, p.kind.as_str()),
        (AuditStore::Files, 9, "removed"),
        "{p:?}"
    );
}

#[test]
fn sled_edits_deletions_and_reorders_are_named() {
    let log = log_with(10, 1000);
    let tree = log.state.tree(ENTRIES_TREE).expect("tree");
    let key = |seq: u64| seq.to_be_bytes();
    let original3 = tree.get(key(3)).expect("get").expect("entry 3");
    let edited = String::from_utf8(original3.to_vec())
        .expect("utf8")
        .replace("entry 3", "entry three");
    tree.insert(key(3), edited.as_bytes()).expect("edit");
    let p = log.problem();
    assert_eq!(
        (p.store, p.seq, p.kind.as_str()),
        (AuditStore::Sled, 3, "changed"),
        "{p:?}"
    );

    tree.insert(key(3), original3.clone()).expect("restore");
    assert!(log.audit.verify().intact());
    tree.remove(key(6)).expect("delete");
    let p = log.problem();
    assert_eq!(
        (p.store, p.seq, p.kind.as_str()),
        (AuditStore::Sled, 6, "removed"),
        "{p:?}"
    );

    let (two, three) = (tree.get(key(2)).expect("get").expect("2"), original3);
    tree.insert(key(2), three).expect("swap");
    tree.insert(key(3), two).expect("swap");
    let p = log.problem();
    assert_eq!(
        (p.store, p.seq, p.kind.as_str()),
        (AuditStore::Sled, 2, "reordered"),
        "{p:?}"
    );
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let log = log_with(3, 1000);
    let tree = log.state.tree(CHECKPOINTS_TREE).expect("tree");
    let (k, v) = tree.first().expect("read").expect("one checkpoint");
    let mut cp = decode_checkpoint(&v).expect("checkpoint");
    cp.mac = "00".repeat(32);
    tree.insert(k, serde_json::to_vec(&cp).expect("json"))
        .expect("forge");
    let p = log.problem();
    assert_eq!(
        (p.store, p.kind.as_str()),
        (AuditStore::Checkpoints, "bad-signature"),
        "{p:?}"
    );
}

#[test]
fn retention_keeps_a_signed_anchor_and_the_rest_still_verifies() {
    let log = log_with(5, 1000);
    // Two days from now with one day of retention: everything written today is past it.
    let later = now_ns() + 2 * 86_400 * 1_000_000_000;
    retention::apply(&log.audit, later, 1).expect("retention");
    assert!(files::list(&log.dir.path().join("audit"))
        .expect("list")
        .is_empty());
    let log = log.reopen();
    assert_eq!(
        log.audit
            .append(NewEntry::alert(1, "x", "after the cut"))
            .ok(),
        Some(6)
    );
    let report = log.audit.verify();
    assert!(report.intact(), "{report:?}");
    assert_eq!((report.entries, report.first_seq), (1, Some(6)));
}

#[test]
fn past_days_are_compressed_and_still_verify() {
    let log = log_with(4, 1000);
    let tomorrow = now_ns() + 86_400 * 1_000_000_000;
    retention::apply(&log.audit, tomorrow, 400).expect("compress");
    let days = files::list(&log.dir.path().join("audit")).expect("list");
    assert!(days.iter().all(|d| d.compressed), "{days:?}");
    let report = log.audit.verify();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 4);
    // The same day written again after a restart and compressed again keeps both parts.
    let log = log.reopen();
    log.audit
        .append(NewEntry::alert(1, "x", "fifth"))
        .expect("append");
    retention::apply(&log.audit, tomorrow, 400).expect("compress again");
    let report = log.audit.verify();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 5);
}

#[test]
fn a_half_written_last_line_is_cut_and_sled_catches_up_from_the_file() {
    let log = log_with(3, 1000);
    let path = log.day_file();
    // Entry 3 reached the file but not sled (a crash before sled flushed), then half a line.
    log.state
        .tree(ENTRIES_TREE)
        .expect("tree")
        .remove(3u64.to_be_bytes())
        .expect("remove");
    let mut text = std::fs::read(&path).expect("read");
    text.extend_from_slice(b"{\"seq\":4,\"ti");
    std::fs::write(&path, text).expect("write");
    let log = log.reopen();
    assert_eq!(
        log.audit.append(NewEntry::alert(1, "x", "next")).ok(),
        Some(4)
    );
    let report = log.audit.verify();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 4);
}

#[test]
fn queries_filter_and_keep_the_newest() {
    let log = log_with(20, 1000);
    let q = AuditQuery {
        limit: 5,
        ..Default::default()
    };
    let got: Vec<u64> = log
        .audit
        .query(&q)
        .expect("query")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, vec![16, 17, 18, 19, 20]);
    let q = AuditQuery {
        uid: Some(1003),
        ..Default::default()
    };
    let got: Vec<u64> = log
        .audit
        .query(&q)
        .expect("query")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, vec![4]);
    let q = AuditQuery {
        severity: Some(Severity::Warning),
        ..Default::default()
    };
    assert!(log.audit.query(&q).expect("query").is_empty());
}

#[test]
fn a_lost_state_database_is_refilled_from_the_day_files() {
    let log = log_with(6, 1000);
    log.state
        .tree(ENTRIES_TREE)
        .expect("tree")
        .clear()
        .expect("clear");
    let log = log.reopen();
    assert_eq!(
        log.audit.append(NewEntry::alert(1, "x", "next")).ok(),
        Some(7)
    );
    let report = log.audit.verify();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.entries, 7);
}

/// Cuts the last `n` entries from both stores, as someone with the daemon stopped could.
fn cut_tail(log: &Log, n: usize) {
    log.edit_file(|lines| {
        let keep = lines.len() - n;
        lines.truncate(keep);
    });
    for _ in 0..n {
        let last = log.audit.entries.last().expect("sled").expect("an entry");
        log.audit.entries.remove(last.0).expect("remove");
    }
}

#[test]
fn entries_cut_from_both_stores_after_a_clean_stop_are_caught() {
    // Checkpoints every 1000 entries: only the first entry is checkpointed while running.
    let log = log_with(10, 1000);
    log.audit.close().expect("close");
    cut_tail(&log, 3);
    let log = log.reopen();
    let p = log.problem();
    assert_eq!((p.seq, p.kind.as_str()), (8, "removed"), "{p:?}");
}

#[test]
fn without_the_closing_checkpoint_a_cut_tail_goes_unnoticed() {
    // Why `close` exists: a crash leaves the entries after the last checkpoint unprotected.
    let log = log_with(10, 1000);
    cut_tail(&log, 3);
    let log = log.reopen();
    let report = log.audit.verify();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.last_seq, Some(7));
}
