//! Jobs in sled: tree `jobs` maps the big-endian job id to the JSON of its [`JobInfo`] (JSON, so
//! fields added later with defaults still read old records); tree `queue` holds the next id.
//! Every transition is written here and flushed before anyone is told about it.

use crate::state::{State, StateError};
use backupd_common::protocol::{JobId, JobInfo};

const JOBS_TREE: &str = "jobs";
const META_TREE: &str = "queue";
const NEXT_ID_KEY: &[u8] = b"next_id";

#[derive(Clone, Debug)]
pub struct Store {
    jobs: sled::Tree,
    meta: sled::Tree,
    state: State,
}

impl Store {
    pub fn open(state: &State) -> Result<Self, StateError> {
        Ok(Self {
            jobs: state.tree(JOBS_TREE)?,
            meta: state.tree(META_TREE)?,
            state: state.clone(),
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
            match serde_json::from_slice::<JobInfo>(&value) {
                Ok(job) => jobs.push(job),
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

    /// Writes a job (not yet durable: call [`Store::flush`]).
    pub fn put(&self, job: &JobInfo) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(job).map_err(|e| {
            self.write_err(sled::Error::ReportableBug(format!(
                "cannot encode job {}: {e}",
                job.id
            )))
        })?;
        self.jobs
            .insert(job.id.to_be_bytes(), bytes)
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    pub fn set_next_id(&self, next: JobId) -> Result<(), StateError> {
        self.meta
            .insert(NEXT_ID_KEY, &next.to_be_bytes())
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    pub fn remove(&self, id: JobId) -> Result<(), StateError> {
        self.jobs
            .remove(id.to_be_bytes())
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StateError> {
        self.jobs
            .flush_async()
            .await
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }
}
