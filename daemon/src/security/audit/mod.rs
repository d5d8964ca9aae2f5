//! The tamper-evident audit log: who did what, when, to what, and how it ended. Owns the sled
//! trees `audit` (entry by sequence number) and `audit_checkpoints`, and the day files under
//! `<state_dir>/audit/` (see `files`). Each entry carries the SHA-256 of the one before it; a
//! checkpoint signed with `<state_dir>/audit.key` is written every `audit.checkpoint_every`
//! entries or `audit.checkpoint_interval`. Spawns no task: appends run on the caller's thread
//! under one mutex (never held across an await), and the day file is synced before `append`
//! returns, so an audited change is durable before its reply is sent. sled is written after
//! the file and caught up from it at start if a crash came between.

pub mod chain;
pub mod classify;
pub mod files;
mod journal;
pub mod record;
mod retention;
pub mod verify;

use crate::context::SettingsHandle;
use crate::repo::{format_rfc3339, now_ns};
use crate::state::State;
use backupd_common::protocol::{
    AuditCheckpoint, AuditEntry, AuditOutcome, AuditQuery, AuditTarget, EventType, Role, Severity,
    VerifyReport, MAX_QUERY_LIMIT,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::broadcast;

pub const ENTRIES_TREE: &str = "audit";
pub const CHECKPOINTS_TREE: &str = "audit_checkpoints";
/// Holds one record, [`ANCHOR_KEY`]: the signed link to the last entry retention removed.
pub const ANCHOR_TREE: &str = "audit_anchor";
pub const ANCHOR_KEY: &[u8] = b"anchor";
/// Entries a `--follow` subscriber may fall behind before it is told it lost some.
const FOLLOW_BUFFER: usize = 1024;
const DEFAULT_QUERY_LIMIT: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}; check the state directory's disk and permissions")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit key {path}: {source}; it must be a 32-byte file readable by the daemon only")]
    Key {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit log in the state database: {0}")]
    Sled(#[from] sled::Error),
    #[error("audit log state: {0}")]
    State(#[from] crate::state::StateError),
    #[error("audit log {location}: {message}; run `backupctl security audit verify`")]
    Corrupt { location: String, message: String },
}

/// An entry before the log numbers, times and chains it.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub role: Option<Role>,
    pub permission: Option<String>,
    pub event: EventType,
    pub severity: Severity,
    pub request: String,
    pub target: AuditTarget,
    pub outcome: AuditOutcome,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

impl NewEntry {
    /// A suspicious-activity alert about `uid` (critical).
    pub fn alert(uid: u32, request: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            uid,
            gid: 0,
            pid: None,
            role: None,
            permission: None,
            event: EventType::Alert,
            severity: Severity::Critical,
            request: request.into(),
            target: AuditTarget::default(),
            outcome: AuditOutcome::Ok,
            error_code: None,
            message: Some(message.into()),
        }
    }
}

struct Head {
    next_seq: u64,
    prev: String,
    last_checkpoint: Option<(u64, i64)>,
    writer: files::Writer,
}

/// The audit log's handle.
pub struct Audit {
    head: Mutex<Head>,
    entries: sled::Tree,
    checkpoints: sled::Tree,
    anchor: sled::Tree,
    dir: PathBuf,
    key: chain::Key,
    settings: SettingsHandle,
    live: broadcast::Sender<AuditEntry>,
    journal: journal::Journal,
    /// The newest entry a stored checkpoint signed when the log was opened: `verify` expects
    /// the chain to reach at least that far, so entries cut from both stores' ends (while the
    /// daemon was stopped) are named as removed.
    signed_at_open: u64,
}

impl Audit {
    /// Opens the log under `state_dir` (creating the key and directory on first start), catches
    /// sled up with the day files, and applies retention.
    pub fn open(
        state: &State,
        state_dir: &Path,
        settings: SettingsHandle,
    ) -> Result<Self, AuditError> {
        let dir = state_dir.join("audit");
        let writer = files::Writer::open(&dir)?;
        let key = chain::Key::load_or_create(&state_dir.join("audit.key"))?;
        let entries = state.tree(ENTRIES_TREE)?;
        let checkpoints = state.tree(CHECKPOINTS_TREE)?;
        let anchor = state.tree(ANCHOR_TREE)?;
        catch_up(&entries, &dir)?;
        let (next_seq, prev) = match entries.last()? {
            Some((_, v)) => {
                let e = decode(&v, "sled")?;
                (e.seq + 1, e.hash)
            }
            None => match read_anchor(&anchor)? {
                Some(a) => (a.seq + 1, a.hash),
                None => (1, chain::GENESIS.to_owned()),
            },
        };
        let last_checkpoint = checkpoints
            .last()?
            .map(|(_, v)| decode_checkpoint(&v))
            .transpose()?
            .map(|cp| (cp.seq, cp.time_ns));
        let signed_at_open = last_checkpoint.map_or(0, |(seq, _)| seq);
        if signed_at_open >= next_seq {
            tracing::warn!(
                last_entry = next_seq - 1,
                signed = signed_at_open,
                "the audit log ends before the entry its last checkpoint signs: entries were \
                 removed; run `backupctl security audit verify`"
            );
        }
        let journal = journal::Journal::detect(settings.get().config.audit.journal);
        let (live, _) = broadcast::channel(FOLLOW_BUFFER);
        let audit = Self {
            head: Mutex::new(Head {
                next_seq,
                prev,
                last_checkpoint,
                writer,
            }),
            entries,
            checkpoints,
            anchor,
            dir,
            key,
            settings,
            live,
            journal,
            signed_at_open,
        };
        audit.apply_retention(now_ns())?;
        Ok(audit)
    }

    /// Whether the configuration records entries at all.
    pub fn enabled(&self) -> bool {
        self.settings.get().config.audit.enabled
    }

    pub fn retention_days(&self) -> u64 {
        self.settings.get().config.audit.retention_days()
    }

    /// Numbers, chains and stores `entry`; durable (day file synced) when this returns. Returns
    /// its sequence number.
    pub fn append(&self, entry: NewEntry) -> Result<u64, AuditError> {
        let config = self.settings.get().config.audit.clone();
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let time_ns = now_ns();
        let mut e = AuditEntry {
            seq: head.next_seq,
            time: format_rfc3339(time_ns),
            time_ns,
            uid: entry.uid,
            gid: entry.gid,
            pid: entry.pid,
            role: entry.role.map(|r| r.as_str().to_owned()),
            permission: entry.permission,
            event: entry.event,
            severity: entry.severity,
            request: entry.request,
            target: entry.target,
            outcome: entry.outcome,
            error_code: entry.error_code,
            message: entry.message,
            prev: head.prev.clone(),
            hash: String::new(),
        };
        e.hash = chain::entry_hash(&e);
        let line = serde_json::to_vec(&e).unwrap_or_default();
        let left = head.writer.append(&e.time[..10], &line)?;
        self.entries.insert(e.seq.to_be_bytes(), line)?;
        head.next_seq = e.seq + 1;
        head.prev = e.hash.clone();
        let due = match head.last_checkpoint {
            None => true,
            Some((seq, at)) => {
                e.seq - seq >= config.checkpoint_every
                    || time_ns - at >= config.checkpoint_interval.as_nanos() as i64
            }
        };
        if due {
            self.checkpoint_locked(&mut head, e.seq, &e.hash, time_ns)?;
        }
        if left.is_some() {
            // A new day began: yesterday's file is complete. Rare enough to do in line.
            self.apply_retention_locked(&mut head, time_ns)?;
        }
        drop(head);
        self.journal.send(&e);
        let _ = self.live.send(e.clone());
        Ok(e.seq)
    }

    fn checkpoint_locked(
        &self,
        head: &mut Head,
        seq: u64,
        hash: &str,
        time_ns: i64,
    ) -> Result<(), AuditError> {
        let cp = self.key.sign("checkpoint", seq, hash, time_ns);
        files::append_checkpoint(&self.dir, &cp)?;
        self.checkpoints.insert(
            cp.seq.to_be_bytes(),
            serde_json::to_vec(&cp).unwrap_or_default(),
        )?;
        head.last_checkpoint = Some((cp.seq, cp.time_ns));
        Ok(())
    }

    /// Signs a checkpoint over the last entry, at a clean stop. Entries after the last
    /// checkpoint could otherwise be cut from both stores while the daemon is down without
    /// `verify` noticing (the chain up to the new end is intact); with it, only the entries
    /// written after a crash can be.
    pub fn close(&self) -> Result<(), AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let last = head.next_seq.saturating_sub(1);
        if last == 0 || head.last_checkpoint.is_some_and(|(seq, _)| seq >= last) {
            return Ok(());
        }
        let prev = head.prev.clone();
        self.checkpoint_locked(&mut head, last, &prev, now_ns())?;
        self.checkpoints.flush()?;
        Ok(())
    }

    /// New entries as they are appended, for `--follow`.
    pub fn subscribe(&self) -> broadcast::Receiver<AuditEntry> {
        self.live.subscribe()
    }

    /// The newest `query.limit` stored entries matching `query`, oldest first.
    pub fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        let limit = match query.limit {
            0 => DEFAULT_QUERY_LIMIT,
            n => n.min(MAX_QUERY_LIMIT),
        } as usize;
        let mut found = Vec::new();
        for item in self.entries.iter().rev() {
            let (_, v) = item?;
            let e = decode(&v, "sled")?;
            if query.since_ns.is_some_and(|s| e.time_ns < s) {
                break;
            }
            if matches(query, &e) {
                found.push(e);
                if found.len() >= limit {
                    break;
                }
            }
        }
        found.reverse();
        Ok(found)
    }

    /// Walks sled and the day files and checks every link and checkpoint.
    pub fn verify(&self) -> VerifyReport {
        let head = {
            let head = self.head.lock().unwrap_or_else(|p| p.into_inner());
            head.next_seq.saturating_sub(1)
        };
        verify::run(self, head.max(self.signed_at_open))
    }

    fn apply_retention(&self, now: i64) -> Result<(), AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        self.apply_retention_locked(&mut head, now)
    }

    fn apply_retention_locked(&self, _head: &mut Head, now: i64) -> Result<(), AuditError> {
        let days = self.retention_days();
        retention::apply(self, now, days)
    }
}

/// Whether `e` passes every filter of `q` (the time lower bound is applied by the caller too).
pub fn matches(q: &AuditQuery, e: &AuditEntry) -> bool {
    q.since_ns.is_none_or(|s| e.time_ns >= s)
        && q.until_ns.is_none_or(|u| e.time_ns < u)
        && q.uid.is_none_or(|u| e.uid == u)
        && q.event.is_none_or(|t| e.event == t)
        && q.severity.is_none_or(|s| e.severity >= s)
}

pub fn decode(bytes: &[u8], location: &str) -> Result<AuditEntry, AuditError> {
    serde_json::from_slice(bytes).map_err(|e| AuditError::Corrupt {
        location: location.to_owned(),
        message: format!("not an audit entry: {e}"),
    })
}

/// The retention anchor in sled, if retention ever removed entries.
pub fn read_anchor(tree: &sled::Tree) -> Result<Option<AuditCheckpoint>, AuditError> {
    tree.get(ANCHOR_KEY)?
        .map(|v| decode_checkpoint(&v))
        .transpose()
}

pub fn decode_checkpoint(bytes: &[u8]) -> Result<AuditCheckpoint, AuditError> {
    serde_json::from_slice(bytes).map_err(|e| AuditError::Corrupt {
        location: "sled audit_checkpoints".to_owned(),
        message: format!("not a checkpoint: {e}"),
    })
}

/// Inserts into sled the entries the day files hold beyond sled's last one: after a crash
/// between the file's sync and sled's flush only the newest two day files can hold them; after
/// the state database was lost (moved aside as damaged), every day file is read.
fn catch_up(entries: &sled::Tree, dir: &Path) -> Result<(), AuditError> {
    let last = match entries.last()? {
        Some((k, _)) => k.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0),
        None => 0,
    };
    let days = files::list(dir)?;
    let skip = if last == 0 {
        0
    } else {
        days.len().saturating_sub(2)
    };
    let mut added = 0;
    for (_, entry) in files::Entries::from_files(days.into_iter().skip(skip).collect()) {
        // Unreadable lines are left for verify to name.
        let Ok(e) = entry else { continue };
        if e.seq > last {
            entries.insert(
                e.seq.to_be_bytes(),
                serde_json::to_vec(&e).unwrap_or_default(),
            )?;
            added += 1;
        }
    }
    if added > 0 {
        tracing::info!(
            added,
            "audit entries caught up from the day files into sled"
        );
        entries.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
