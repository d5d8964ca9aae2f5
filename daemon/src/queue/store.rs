//! Jobs in sled: tree `jobs` maps the big-endian job id to its [`JobRecord`] (a versioned
//! state record, not the protocol's `JobInfo`); tree `queue` holds the next id. Every
//! transition is written here and flushed before anyone is told about it. A job written in a
//! final state is also appended to the job history ([`History`]), which outlives the job's
//! place in the live queue.

use crate::state::history::History;
use crate::state::migrate::JOBS_TREE;
use crate::state::records;
use crate::state::records::history::HistoryRecord;
use crate::state::records::job::JobRecord;
use crate::state::{State, StateError};
use backupd_common::config::HistoryConfig;
use backupd_common::protocol::{HistoryEntry, HistoryQuery, JobId, JobInfo};
use std::sync::{Arc, OnceLock};

/// Called with every job written in a final state (after its history entry), before anyone is
/// told about it: the analytics take it in here.
pub type FinishedHook = Arc<dyn Fn(&HistoryRecord, &JobInfo) + Send + Sync>;

const META_TREE: &str = "queue";
const NEXT_ID_KEY: &[u8] = b"next_id";

#[derive(Clone)]
pub struct Store {
    jobs: sled::Tree,
    meta: sled::Tree,
    history: Arc<History>,
    state: State,
    finished: Arc<OnceLock<FinishedHook>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub fn open(state: &State) -> Result<Self, StateError> {
        Ok(Self {
            jobs: state.tree(JOBS_TREE)?,
            meta: state.tree(META_TREE)?,
            history: Arc::new(History::open(state)?),
            state: state.clone(),
            finished: Arc::default(),
        })
    }

    fn write_err(&self, source: sled::Error) -> StateError {
        StateError::Write {
            path: self.state.path().to_owned(),
            source,
        }
    }

    /// Every readable job and the next free id. Unreadable records are reported and left in
    /// place (a newer backupd may have written them).
    pub fn load(&self) -> Result<(Vec<JobInfo>, JobId), StateError> {
        let mut jobs = Vec::new();
        let mut max_id = 0;
        for item in self.jobs.iter() {
            let (key, value) = item.map_err(|e| self.write_err(e))?;
            let id = key
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or_default();
            max_id = max_id.max(id);
            match records::decode::<JobRecord>(&value) {
                Ok(job) => jobs.push(job.into()),
                Err(e) => tracing::warn!(
                    job = id,
                    error = %e,
                    "job record unreadable; skipped (it stays in the state database)"
                ),
            }
        }
        let stored_next = self
            .meta
            .get(NEXT_ID_KEY)
            .map_err(|e| self.write_err(e))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(1);
        Ok((jobs, stored_next.max(max_id + 1)))
    }

    /// Writes a job, and appends it to the history when it is final (not yet durable: call
    /// [`Store::flush`]). Writing the same final job again rewrites its history entry.
    pub fn put(&self, job: &JobInfo) -> Result<(), StateError> {
        let mut record = JobRecord::from(job);
        let entry = HistoryRecord::of(&record);
        self.jobs
            .insert(job.id.to_be_bytes(), records::encode(&mut record))
            .map_err(|e| self.write_err(e))?;
        if let Some(entry) = entry {
            self.history.append(entry.clone())?;
            if let Some(hook) = self.finished.get() {
                hook(&entry, job);
            }
        }
        Ok(())
    }

    /// Every backup in the history, oldest first.
    pub fn each_backup(&self, f: impl FnMut(&HistoryRecord)) -> Result<u64, StateError> {
        self.history.each_backup(f)
    }

    /// Sets the hook called with every final job; the first one set stays.
    pub fn on_finished(&self, hook: FinishedHook) {
        let _ = self.finished.set(hook);
    }

    pub fn set_next_id(&self, next: JobId) -> Result<(), StateError> {
        self.meta
            .insert(NEXT_ID_KEY, &next.to_be_bytes())
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    /// Removes a job from the live queue; its history entry stays.
    pub fn remove(&self, id: JobId) -> Result<(), StateError> {
        self.jobs
            .remove(id.to_be_bytes())
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    /// The history entries `query` asks for, newest first.
    pub fn history(&self, query: &HistoryQuery, now: i64) -> Result<Vec<HistoryEntry>, StateError> {
        Ok(self
            .history
            .query(query, now)?
            .into_iter()
            .map(HistoryEntry::from)
            .collect())
    }

    /// Applies the `[history]` retention (at start and on reload); returns how many went.
    pub fn set_history_retention(
        &self,
        config: &HistoryConfig,
        now: i64,
    ) -> Result<u64, StateError> {
        self.history.set_retention(config, now)
    }

    /// Makes every write so far durable, blocking the thread: for the few transitions that must
    /// be on disk before the queue's own state shows them.
    pub fn flush_blocking(&self) -> Result<(), StateError> {
        self.jobs.flush().map_err(|e| self.write_err(e))?;
        Ok(())
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StateError> {
        // sled flushes the whole database, history trees included.
        self.jobs
            .flush_async()
            .await
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }
}
