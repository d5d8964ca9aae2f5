//! Job history: every job that reaches a final state is appended to tree `history`, keyed by
//! (finished time, id) big-endian, so that "the last N days, newest first" is one range scan
//! read backwards. Three index trees (`history.source`, `history.repo`, `history.kind`) map
//! `name 0x00 key` to nothing, so that a filter on one source, repository or kind scans only
//! that name's range too. Entry and index keys are written in one transaction.
//!
//! Retention (`[history]`: max age, max entries) is its own, independent of the live queue's
//! `queue.history_max_*`: the queue forgets a finished job long before the history does.
//! Nothing is pruned until the retention is set from the config (so a default can never cut
//! what the config wants kept).
//!
//! Blocking: sled I/O; callers on async threads keep to single appends and small queries.

use super::records::history::HistoryRecord;
use super::records::{self, RecordError};
use super::{State, StateError};
use backupd_common::config::HistoryConfig;
use backupd_common::protocol::HistoryQuery;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub const TREE: &str = "history";
const BY_SOURCE: &str = "history.source";
const BY_REPO: &str = "history.repo";
const BY_KIND: &str = "history.kind";

/// (finished time, id), big-endian: byte order is time order.
fn key(finished_ns: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(finished_ns.max(0) as u64).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

fn index_key(name: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1 + key.len());
    k.extend_from_slice(name.as_bytes());
    // Names are letters, digits, `.`, `_`, `-`: a 0 byte never occurs in them.
    k.push(0);
    k.extend_from_slice(key);
    k
}

#[derive(Debug)]
pub struct History {
    entries: sled::Tree,
    by_source: sled::Tree,
    by_repo: sled::Tree,
    by_kind: sled::Tree,
    state: State,
    count: AtomicU64,
    retention: Mutex<Option<HistoryConfig>>,
}

impl History {
    /// Opens the trees and counts the entries (one pass over the keys, at start only).
    pub fn open(state: &State) -> Result<Self, StateError> {
        let entries = state.tree(TREE)?;
        let count = entries.len() as u64;
        Ok(Self {
            entries,
            by_source: state.tree(BY_SOURCE)?,
            by_repo: state.tree(BY_REPO)?,
            by_kind: state.tree(BY_KIND)?,
            state: state.clone(),
            count: AtomicU64::new(count),
            retention: Mutex::new(None),
        })
    }

    fn err(&self, source: sled::Error) -> StateError {
        StateError::Write {
            path: self.state.path().to_owned(),
            source,
        }
    }

    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends (or, for the same finished time and id, rewrites) an entry, then applies the
    /// retention. Not yet durable: the caller flushes.
    pub fn append(&self, mut record: HistoryRecord) -> Result<(), StateError> {
        let k = key(record.finished_ns, record.id);
        let value = records::encode(&mut record);
        let result: Result<Option<sled::IVec>, TransactionError<()>> =
            (&self.entries, &self.by_source, &self.by_repo, &self.by_kind).transaction(
                |(entries, by_source, by_repo, by_kind)| {
                    let old = entries.insert(&k[..], value.as_slice())?;
                    if let Some(s) = &record.source {
                        by_source.insert(index_key(s, &k), &[])?;
                    }
                    if let Some(r) = &record.repo {
                        by_repo.insert(index_key(r, &k), &[])?;
                    }
                    by_kind.insert(index_key(&record.kind, &k), &[])?;
                    Ok::<_, ConflictableTransactionError<()>>(old)
                },
            );
        let old = result.map_err(|e| match e {
            TransactionError::Storage(e) => self.err(e),
            TransactionError::Abort(()) => unreachable!("the transaction never aborts"),
        })?;
        if old.is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        self.prune(crate::repo::now_ns())?;
        Ok(())
    }

    /// Calls `f` with every backup in the history, oldest first (a scan of the backups'
    /// index, for the analytics' one-time replay); returns how many there were.
    pub fn each_backup(&self, mut f: impl FnMut(&HistoryRecord)) -> Result<u64, StateError> {
        let prefix = index_key("backup", &[]);
        let mut n = 0;
        for item in self.by_kind.scan_prefix(&prefix) {
            let (ik, _) = item.map_err(|e| self.err(e))?;
            let k = &ik[prefix.len()..];
            let Some(value) = self.entries.get(k).map_err(|e| self.err(e))? else {
                continue; // pruned meanwhile
            };
            match records::decode::<HistoryRecord>(&value) {
                Ok(r) => {
                    f(&r);
                    n += 1;
                }
                Err(e) => warn_unreadable(k, &e),
            }
        }
        Ok(n)
    }

    /// Sets the retention from the config and applies it; returns how many entries went.
    pub fn set_retention(&self, config: &HistoryConfig, now: i64) -> Result<u64, StateError> {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner()) = Some(config.clone());
        self.prune(now)
    }

    /// Removes the oldest entries beyond the retention's age and count.
    fn prune(&self, now: i64) -> Result<u64, StateError> {
        let Some(config) = self
            .retention
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return Ok(0);
        };
        let oldest_kept = if config.max_age.is_zero() {
            0
        } else {
            now.saturating_sub(config.max_age.as_nanos().min(i64::MAX as u128) as i64)
        };
        let mut removed = 0;
        loop {
            let over = config.max_entries > 0 && self.len() > config.max_entries;
            let Some((k, v)) = self.entries.first().map_err(|e| self.err(e))? else {
                break;
            };
            let time = k
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes) as i64;
            if !over && time >= oldest_kept {
                break;
            }
            self.remove(&k, &v)?;
            removed += 1;
        }
        if removed > 0 {
            tracing::debug!(removed, "old job history entries removed");
        }
        Ok(removed)
    }

    fn remove(&self, k: &[u8], value: &[u8]) -> Result<(), StateError> {
        if let Ok(r) = records::decode::<HistoryRecord>(value) {
            if let Some(s) = &r.source {
                self.by_source
                    .remove(index_key(s, k))
                    .map_err(|e| self.err(e))?;
            }
            if let Some(repo) = &r.repo {
                self.by_repo
                    .remove(index_key(repo, k))
                    .map_err(|e| self.err(e))?;
            }
            self.by_kind
                .remove(index_key(&r.kind, k))
                .map_err(|e| self.err(e))?;
        }
        if self.entries.remove(k).map_err(|e| self.err(e))?.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The entries `query` asks for, newest first. Reads only the range it needs: the time
    /// range of the main tree, or of one name in an index tree (the most selective filter:
    /// source, then repository, then kind); the other filters are checked per entry.
    pub fn query(&self, query: &HistoryQuery, now: i64) -> Result<Vec<HistoryRecord>, StateError> {
        let since_ns = query.since.map_or(0, |d| {
            now.saturating_sub(d.as_nanos().min(i64::MAX as u128) as i64)
        });
        let lower = key(since_ns, 0);
        let upper = key(i64::MAX, u64::MAX);
        let limit = query.limit as usize;
        let mut out = Vec::new();
        let mut take = |k: &[u8], value: Option<sled::IVec>| -> bool {
            let Some(value) = value else {
                return true; // pruned meanwhile
            };
            match records::decode::<HistoryRecord>(&value) {
                Ok(r) if matches(&r, query) => out.push(r),
                Ok(_) => {}
                Err(e) => warn_unreadable(k, &e),
            }
            out.len() < limit
        };
        if limit == 0 {
            return Ok(out);
        }
        let index = [
            (&self.by_source, &query.source),
            (&self.by_repo, &query.repo),
            (&self.by_kind, &query.kind),
        ]
        .into_iter()
        .find_map(|(tree, name)| Some((tree, name.as_deref()?)));
        match index {
            Some((tree, name)) => {
                let range = index_key(name, &lower)..=index_key(name, &upper);
                let skip = name.len() + 1;
                for item in tree.range(range).rev() {
                    let (ik, _) = item.map_err(|e| self.err(e))?;
                    let k = &ik[skip..];
                    let value = self.entries.get(k).map_err(|e| self.err(e))?;
                    if !take(k, value) {
                        break;
                    }
                }
            }
            None => {
                for item in self.entries.range(lower..=upper).rev() {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    if !take(&k, Some(v)) {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn matches(r: &HistoryRecord, q: &HistoryQuery) -> bool {
    let is =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    is(&q.source, r.source.as_deref())
        && is(&q.repo, r.repo.as_deref())
        && is(&q.kind, Some(&r.kind))
}

fn warn_unreadable(k: &[u8], e: &RecordError) {
    tracing::warn!(key = %hex::encode(k), error = %e, "history entry unreadable; skipped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::job::StateRecord;
    use std::time::Duration;

    const DAY: i64 = 86_400 * 1_000_000_000;
    const NOW: i64 = 1_000 * DAY;

    fn entry(
        id: u64,
        finished_ns: i64,
        kind: &str,
        source: Option<&str>,
        repo: &str,
    ) -> HistoryRecord {
        HistoryRecord {
            v: 1,
            id,
            kind: kind.into(),
            repo: Some(repo.into()),
            source: source.map(str::to_owned),
            outcome: StateRecord::Succeeded,
            error_class: None,
            error: None,
            attempts: 1,
            submitted_ns: finished_ns - 1,
            finished_ns,
            duration_ms: 1,
            files: id,
            bytes_read: 0,
            bytes_added: 0,
            bytes_stored: 0,
            compression_ratio: None,
            snapshot: None,
            files_read: 0,
            bytes_total: 0,
        }
    }

    fn ids(h: &History, q: HistoryQuery) -> Vec<u64> {
        h.query(&q, NOW)
            .expect("query")
            .iter()
            .map(|r| r.id)
            .collect()
    }

    /// Jobs 1..=30, one a day ending today; every third a backup of source `s`, the rest
    /// noops; even ids on repository `b`.
    fn filled() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("state");
        let h = History::open(&state).expect("history");
        for id in 1..=30u64 {
            let backup = id.is_multiple_of(3);
            h.append(entry(
                id,
                NOW - (30 - id as i64) * DAY,
                if backup { "backup" } else { "noop" },
                backup.then_some("s"),
                if id.is_multiple_of(2) { "b" } else { "a" },
            ))
            .expect("append");
        }
        (dir, h)
    }

    #[test]
    fn queries_read_newest_first_within_their_range_and_filters() {
        let (_dir, h) = filled();
        let q = |limit| HistoryQuery {
            limit,
            ..HistoryQuery::default()
        };
        assert_eq!(ids(&h, q(3)), [30, 29, 28]);
        assert_eq!(h.len(), 30);
        let since = HistoryQuery {
            since: Some(Duration::from_secs(86_400 * 2)),
            ..q(100)
        };
        assert_eq!(ids(&h, since), [30, 29, 28]);
        let source = HistoryQuery {
            source: Some("s".into()),
            ..q(4)
        };
        assert_eq!(ids(&h, source), [30, 27, 24, 21]);
        let source_on_repo = HistoryQuery {
            source: Some("s".into()),
            repo: Some("b".into()),
            since: Some(Duration::from_secs(86_400 * 10)),
            ..q(100)
        };
        assert_eq!(ids(&h, source_on_repo), [30, 24]);
        let kind = HistoryQuery {
            kind: Some("noop".into()),
            ..q(3)
        };
        assert_eq!(ids(&h, kind), [29, 28, 26]);
        let nobody = HistoryQuery {
            source: Some("none".into()),
            ..q(10)
        };
        assert!(ids(&h, nobody).is_empty());
        // Writing a finished job again rewrites its entry, not a second one.
        h.append(entry(30, NOW, "backup", Some("s"), "b"))
            .expect("again");
        assert_eq!(h.len(), 30);
    }

    #[test]
    fn retention_cuts_by_age_and_count_and_takes_the_index_entries_along() {
        let (_dir, h) = filled();
        let keep_week = HistoryConfig {
            max_age: Duration::from_secs(86_400 * 7),
            max_entries: 0,
        };
        // Nothing is pruned until the retention is known.
        assert_eq!(h.len(), 30);
        assert_eq!(h.set_retention(&keep_week, NOW).expect("age"), 22);
        assert_eq!(h.len(), 8);
        let keep_three = HistoryConfig {
            max_age: Duration::ZERO,
            max_entries: 3,
        };
        assert_eq!(h.set_retention(&keep_three, NOW).expect("count"), 5);
        let all = HistoryQuery {
            limit: 100,
            ..HistoryQuery::default()
        };
        assert_eq!(ids(&h, all), [30, 29, 28]);
        assert_eq!(h.by_source.len(), 1, "only job 30's source index is left");
        assert_eq!(h.by_kind.len(), 3);
        // An append beyond the count pushes the oldest out.
        h.append(entry(31, NOW, "noop", None, "a")).expect("append");
        assert_eq!(h.len(), 3);
    }
}
