//! `security audit verify`: walks the entries in sled and in the day files side by side, checks
//! each hash, each link, the sequence, every checkpoint's signature and hash, and that both
//! stores hold the same entries. Stops at the first problem and names the entry.

use super::{chain, files, Audit};
use crate::repo::{format_rfc3339, now_ns};
use backupd_common::protocol::{
    AuditCheckpoint, AuditEntry, AuditProblem, AuditStore, VerifyReport,
};
use std::iter::Peekable;

type Item = (String, Result<AuditEntry, String>);

fn problem(
    store: AuditStore,
    seq: u64,
    kind: &str,
    detail: String,
    location: &str,
) -> AuditProblem {
    AuditProblem {
        store,
        seq,
        kind: kind.to_owned(),
        detail,
        location: location.to_owned(),
    }
}

/// One store's walk along the chain.
struct Chain<'a> {
    store: AuditStore,
    expected_seq: u64,
    expected_prev: String,
    checkpoints: &'a [AuditCheckpoint],
    /// The last checkpoint whose entry matched: a rewrite lies after it.
    intact_through: u64,
    seen: u64,
}

impl<'a> Chain<'a> {
    fn new(
        store: AuditStore,
        anchor: Option<&AuditCheckpoint>,
        cps: &'a [AuditCheckpoint],
    ) -> Self {
        let (seq, prev) =
            anchor.map_or((0, chain::GENESIS.to_owned()), |a| (a.seq, a.hash.clone()));
        Self {
            store,
            expected_seq: seq + 1,
            expected_prev: prev,
            checkpoints: cps,
            intact_through: seq,
            seen: 0,
        }
    }

    fn feed(&mut self, at: &str, e: &AuditEntry, next: Option<u64>) -> Result<(), AuditProblem> {
        let p = |seq, kind, detail| Err(problem(self.store, seq, kind, detail, at));
        if chain::entry_hash(e) != e.hash {
            return p(
                e.seq,
                "changed",
                format!(
                    "entry {} was changed: its contents no longer match its hash",
                    e.seq
                ),
            );
        }
        let want = self.expected_seq;
        if e.seq < want {
            return p(
                e.seq,
                "reordered",
                format!("entry {} appears after entry {}", e.seq, want - 1),
            );
        }
        if e.seq > want {
            if next == Some(want) {
                return p(
                    want,
                    "reordered",
                    format!("entry {want} appears after entry {}", e.seq),
                );
            }
            let missing = if e.seq - want == 1 {
                format!("entry {want} is")
            } else {
                format!("entries {want} to {} are", e.seq - 1)
            };
            return p(
                want,
                "removed",
                format!("{missing} missing (the next one found is {})", e.seq),
            );
        }
        if e.prev != self.expected_prev {
            let before = e.seq - 1;
            return p(
                before,
                "changed",
                format!(
                    "entry {before} was changed or replaced: entry {} links to a different hash",
                    e.seq
                ),
            );
        }
        if let Some(cp) = self.checkpoints.iter().find(|c| c.seq == e.seq) {
            if cp.hash != e.hash {
                let first = self.intact_through + 1;
                return p(first, "changed", format!(
                    "entry {} does not match the checkpoint signed at {}: an entry from {first} to {} \
                     was changed and the hashes after it recomputed", e.seq, cp.time, e.seq));
            }
            self.intact_through = e.seq;
        }
        self.expected_seq += 1;
        self.expected_prev = e.hash.clone();
        self.seen += 1;
        Ok(())
    }

    /// After the walk: entries up to `head` (and up to every checkpoint) must have been seen.
    fn finish(&self, head: u64, at: &str) -> Result<(), AuditProblem> {
        let last_needed = self
            .checkpoints
            .iter()
            .map(|c| c.seq)
            .max()
            .unwrap_or(0)
            .max(head);
        if self.expected_seq <= last_needed {
            let want = self.expected_seq;
            return Err(problem(
                self.store,
                want,
                "removed",
                format!("entries {want} to {last_needed} are missing from the end"),
                at,
            ));
        }
        Ok(())
    }

    fn done(&self, head: u64) -> bool {
        self.expected_seq > head
    }
}

/// The next item of one store's walk; entries an interrupted retention left behind (at or
/// before the anchor) are skipped.
fn next_item(it: &mut Peekable<Box<dyn Iterator<Item = Item> + '_>>, floor: u64) -> Option<Item> {
    loop {
        let item = it.next()?;
        if matches!(&item.1, Ok(e) if e.seq <= floor) {
            continue;
        }
        return Some(item);
    }
}

fn peek_seq(it: &mut Peekable<Box<dyn Iterator<Item = Item> + '_>>) -> Option<u64> {
    it.peek().and_then(|(_, r)| r.as_ref().ok().map(|e| e.seq))
}

pub fn run(audit: &Audit, head: u64) -> VerifyReport {
    let mut report = VerifyReport {
        entries: 0,
        first_seq: None,
        last_seq: None,
        checkpoints: 0,
        last_checkpoint: None,
        problem: None,
        verified_at: format_rfc3339(now_ns()),
    };
    if let Err(p) = walk(audit, head, &mut report) {
        report.problem = Some(p);
    }
    report
}

fn walk(audit: &Audit, head: u64, report: &mut VerifyReport) -> Result<(), AuditProblem> {
    let (anchor, checkpoints) = signed_records(audit, head)?;
    report.checkpoints = checkpoints.len() as u64;
    report.last_checkpoint = checkpoints.last().cloned();
    let floor = anchor.as_ref().map_or(0, |a| a.seq);

    let sled_items: Box<dyn Iterator<Item = Item>> =
        Box::new(audit.entries.iter().map(|r| match r {
            Ok((_, v)) => (
                "sled".to_owned(),
                super::decode(&v, "sled").map_err(|e| e.to_string()),
            ),
            Err(e) => ("sled".to_owned(), Err(e.to_string())),
        }));
    let file_items: Box<dyn Iterator<Item = Item>> = match files::Entries::new(&audit.dir) {
        Ok(it) => Box::new(it),
        Err(e) => {
            return Err(problem(
                AuditStore::Files,
                floor + 1,
                "unreadable",
                e.to_string(),
                "audit/",
            ))
        }
    };
    let mut sled_it = sled_items.peekable();
    let mut file_it = file_items.peekable();
    let mut sled_chain = Chain::new(AuditStore::Sled, anchor.as_ref(), &checkpoints);
    let mut file_chain = Chain::new(AuditStore::Files, anchor.as_ref(), &checkpoints);
    let mut last_file_at = "audit/".to_owned();
    loop {
        let s = if sled_chain.done(head) {
            None
        } else {
            next_item(&mut sled_it, floor)
        };
        let s_next = peek_seq(&mut sled_it);
        let f = if file_chain.done(head) {
            None
        } else {
            next_item(&mut file_it, floor)
        };
        let f_next = peek_seq(&mut file_it);
        if s.is_none() && f.is_none() {
            break;
        }
        let s_entry = match s {
            Some((at, Ok(e))) => {
                sled_chain.feed(&at, &e, s_next)?;
                Some(e)
            }
            Some((at, Err(m))) => {
                return Err(problem(
                    AuditStore::Sled,
                    sled_chain.expected_seq,
                    "unreadable",
                    m,
                    &at,
                ))
            }
            None => None,
        };
        let f_entry = match f {
            Some((at, Ok(e))) => {
                file_chain.feed(&at, &e, f_next)?;
                last_file_at = at;
                Some(e)
            }
            Some((at, Err(m))) => {
                return Err(problem(
                    AuditStore::Files,
                    file_chain.expected_seq,
                    "unreadable",
                    m,
                    &at,
                ))
            }
            None => None,
        };
        if let (Some(s), Some(f)) = (&s_entry, &f_entry) {
            if s.hash != f.hash {
                return Err(problem(
                    AuditStore::Files,
                    f.seq,
                    "mismatch",
                    format!(
                        "entry {} differs between sled and the day file: one of them was changed",
                        f.seq
                    ),
                    &last_file_at,
                ));
            }
        }
        if let Some(e) = s_entry.or(f_entry) {
            report.first_seq.get_or_insert(e.seq);
            report.last_seq = Some(e.seq);
        }
    }
    sled_chain.finish(head, "sled")?;
    file_chain.finish(head, &last_file_at)?;
    report.entries = sled_chain.seen;
    Ok(())
}

/// The anchor and the checkpoints up to `head`, each signed by our key and the same in sled and
/// in the files.
fn signed_records(
    audit: &Audit,
    head: u64,
) -> Result<(Option<AuditCheckpoint>, Vec<AuditCheckpoint>), AuditProblem> {
    let bad = |seq, kind: &str, detail: String, at: &str| {
        problem(AuditStore::Checkpoints, seq, kind, detail, at)
    };
    let sled_anchor = super::read_anchor(&audit.anchor)
        .map_err(|e| bad(0, "unreadable", e.to_string(), "sled"))?;
    let file_anchor = files::read_anchor(&audit.dir)
        .map_err(|e| bad(0, "unreadable", e.to_string(), "audit/anchor.json"))?;
    if sled_anchor != file_anchor {
        return Err(bad(
            0,
            "mismatch",
            "the retention anchor differs between sled and audit/anchor.json".into(),
            "audit/anchor.json",
        ));
    }
    if let Some(a) = &sled_anchor {
        if !audit.key.verifies("anchor", a) {
            return Err(bad(
                a.seq,
                "bad-signature",
                format!(
                    "the retention anchor at entry {} is not signed by this daemon's key",
                    a.seq
                ),
                "audit/anchor.json",
            ));
        }
    }
    let mut from_sled = Vec::new();
    for item in audit.checkpoints.iter() {
        let (_, v) = item.map_err(|e| bad(0, "unreadable", e.to_string(), "sled"))?;
        from_sled.push(
            super::decode_checkpoint(&v)
                .map_err(|e| bad(0, "unreadable", e.to_string(), "sled"))?,
        );
    }
    let from_files = files::read_checkpoints(&audit.dir)
        .map_err(|e| bad(0, "unreadable", e.to_string(), files::CHECKPOINTS))?;
    let at = format!("audit/{}", files::CHECKPOINTS);
    let mut from_files_ok = Vec::new();
    for (i, cp) in from_files.into_iter().enumerate() {
        match cp {
            Ok(cp) => from_files_ok.push(cp),
            Err(line) => {
                return Err(bad(
                    0,
                    "unreadable",
                    format!("checkpoint {} is not a checkpoint", i + 1),
                    &format!("{at} line {line}"),
                ))
            }
        }
    }
    let floor = sled_anchor.as_ref().map_or(0, |a| a.seq);
    from_files_ok.retain(|c| c.seq > floor && c.seq <= head);
    from_sled.retain(|c| c.seq > floor && c.seq <= head);
    for (i, cp) in from_sled.iter().enumerate() {
        if !audit.key.verifies("checkpoint", cp) {
            return Err(bad(
                cp.seq,
                "bad-signature",
                format!(
                    "the checkpoint at entry {} is not signed by this daemon's key",
                    cp.seq
                ),
                "sled",
            ));
        }
        if from_files_ok.get(i) != Some(cp) {
            return Err(bad(
                cp.seq,
                "mismatch",
                format!(
                    "the checkpoint at entry {} differs between sled and {at}",
                    cp.seq
                ),
                &at,
            ));
        }
    }
    if let Some(extra) = from_files_ok.get(from_sled.len()) {
        return Err(bad(
            extra.seq,
            "mismatch",
            format!(
                "{at} holds a checkpoint at entry {} that sled lacks",
                extra.seq
            ),
            &at,
        ));
    }
    Ok((sled_anchor, from_sled))
}
