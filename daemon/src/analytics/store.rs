//! The anomalies raised (tree `analytics.anomalies`, keyed by time and id, newest last, at most
//! [`MAX_ANOMALIES`]), the retention holds (tree `analytics.holds`, one per source) and whether
//! the job history was taken in (tree `analytics.meta`).

use super::AnalyticsError;
use crate::state::records;
use crate::state::records::analytics::{AnomalyRecord, HoldRecord};
use crate::state::State;
use backupd_common::protocol::{AnomalyInfo, HoldInfo};

const ANOMALIES: &str = "analytics.anomalies";
const HOLDS: &str = "analytics.holds";
const META: &str = "analytics.meta";
const REPLAYED: &[u8] = b"replayed";
/// Anomalies kept; the oldest go first.
pub const MAX_ANOMALIES: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Store {
    anomalies: sled::Tree,
    holds: sled::Tree,
    meta: sled::Tree,
    state: State,
}

fn key(time_ns: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(time_ns.max(0) as u64).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

impl Store {
    pub fn open(state: &State) -> Result<Self, AnalyticsError> {
        Ok(Self {
            anomalies: state.tree(ANOMALIES)?,
            holds: state.tree(HOLDS)?,
            meta: state.tree(META)?,
            state: state.clone(),
        })
    }

    fn err(&self) -> impl FnOnce(sled::Error) -> AnalyticsError + '_ {
        |source| AnalyticsError::Storage {
            path: self.state.path().to_owned(),
            source,
        }
    }

    /// Stores an anomaly under a fresh id (which it returns) and drops the oldest beyond the cap.
    pub fn add_anomaly(&self, mut record: AnomalyRecord) -> Result<u64, AnalyticsError> {
        record.id = self.state.generate_id().map_err(self.err())?;
        self.anomalies
            .insert(key(record.time_ns, record.id), records::encode(&mut record))
            .map_err(self.err())?;
        while self.anomalies.len() > MAX_ANOMALIES {
            match self.anomalies.pop_min().map_err(self.err())? {
                Some(_) => {}
                None => break,
            }
        }
        Ok(record.id)
    }

    /// Anomalies from `since_ns` on, of `source` if given, newest first; unreadable entries
    /// are skipped with a warning.
    pub fn anomalies(
        &self,
        since_ns: i64,
        source: Option<&str>,
    ) -> Result<Vec<AnomalyInfo>, AnalyticsError> {
        let mut out = Vec::new();
        for item in self.anomalies.range(key(since_ns, 0)..).rev() {
            let (_, value) = item.map_err(self.err())?;
            match records::decode::<AnomalyRecord>(&value) {
                Ok(r) if source.is_none_or(|s| s == r.source) => out.push(info(r)),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "anomaly record unreadable; skipped"),
            }
        }
        Ok(out)
    }

    /// Places a hold unless the source has one already (the first anomaly's earlier state is
    /// the one worth keeping). True when it was placed.
    pub fn hold(&self, mut record: HoldRecord) -> Result<bool, AnalyticsError> {
        let value = records::encode(&mut record);
        let placed = self
            .holds
            .compare_and_swap(record.source.as_bytes(), None as Option<&[u8]>, Some(value))
            .map_err(self.err())?;
        Ok(placed.is_ok())
    }

    /// The holds in force, by source.
    pub fn holds(&self) -> Result<Vec<HoldRecord>, AnalyticsError> {
        let mut out = Vec::new();
        for item in self.holds.iter() {
            let (_, value) = item.map_err(self.err())?;
            match records::decode::<HoldRecord>(&value) {
                Ok(r) => out.push(r),
                // A hold that cannot be read still holds: refuse to guess which snapshots.
                Err(e) => return Err(AnalyticsError::Record(e.to_string())),
            }
        }
        Ok(out)
    }

    /// Removes the source's hold and returns it.
    pub fn release(&self, source: &str) -> Result<HoldRecord, AnalyticsError> {
        let old = self.holds.remove(source).map_err(self.err())?;
        let Some(old) = old else {
            return Err(AnalyticsError::NoHold {
                source_name: source.to_owned(),
            });
        };
        records::decode::<HoldRecord>(&old).map_err(|e| AnalyticsError::Record(e.to_string()))
    }

    /// The job history was taken in already.
    pub fn replayed(&self) -> Result<bool, AnalyticsError> {
        self.meta.contains_key(REPLAYED).map_err(self.err())
    }

    pub fn set_replayed(&self) -> Result<(), AnalyticsError> {
        self.meta.insert(REPLAYED, &[1u8]).map_err(self.err())?;
        Ok(())
    }

    pub async fn flush(&self) -> Result<(), AnalyticsError> {
        Ok(self.state.flush().await?)
    }
}

pub fn info(r: AnomalyRecord) -> AnomalyInfo {
    let AnomalyRecord {
        v: _,
        id,
        time_ns,
        source,
        repo,
        job,
        snapshot,
        metric,
        value,
        expected,
        low,
        high,
        sigmas,
        critical,
        detail,
    } = r;
    AnomalyInfo {
        id,
        time_ns,
        source,
        repo,
        job,
        snapshot,
        metric,
        value,
        expected,
        low,
        high,
        sigmas,
        critical,
        detail,
    }
}

pub fn hold_info(r: &HoldRecord) -> HoldInfo {
    HoldInfo {
        source: r.source.clone(),
        repo: r.repo.clone(),
        placed_ns: r.placed_ns,
        before_ns: r.before_ns,
        job: r.job,
        snapshot: r.snapshot.clone(),
        reason: r.reason.clone(),
    }
}
