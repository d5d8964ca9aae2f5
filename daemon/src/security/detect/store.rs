//! What detection keeps in sled: alerts (tree `security.alerts`, keyed by id big-endian),
//! lockouts (`security.lockouts`, keyed by uid), denials counted per day, uid and missing
//! permission (`security.denials`), and when the last recovery drills ran
//! (`security.drills`). Records are JSON with a `v` field, apart from the wire types.
//!
//! Bounded: at most [`MAX_ALERTS`] alerts (the oldest go first), denial counters older than
//! [`DENIAL_DAYS`] days are pruned at start, and one day holds at most [`DENIALS_PER_DAY`]
//! counters (further uids are counted under uid [`OTHER_UID`]).
//!
//! Blocking: single sled reads and writes; callers on async threads keep to those.

use crate::state::records::{self, versioned, RecordError};
use crate::state::{State, StateError};
use backupd_common::protocol::{AlertInfo, Pattern};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

const ALERTS: &str = "security.alerts";
const LOCKOUTS: &str = "security.lockouts";
const DENIALS: &str = "security.denials";
const DRILLS: &str = "security.drills";
pub const MAX_ALERTS: usize = 10_000;
pub const DENIAL_DAYS: u32 = 400;
pub const DENIALS_PER_DAY: u64 = 20_000;
/// Where denials of uids beyond a day's cap are counted.
pub const OTHER_UID: u32 = u32::MAX;
const DAY_NS: i64 = 86_400 * 1_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the security state tree `{tree}` cannot be written or read: {source}")]
    Sled {
        tree: &'static str,
        source: sled::Error,
    },
    #[error("record {key} in tree `{tree}` is unreadable: {source}")]
    Record {
        tree: &'static str,
        key: String,
        source: RecordError,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AlertRecord {
    v: u32,
    id: u64,
    time_ns: i64,
    uid: u32,
    pattern: String,
    count: u64,
    threshold: u64,
    window_secs: u64,
    detail: String,
    locked_until_ns: Option<i64>,
    acked_by: Option<u32>,
    acked_ns: Option<i64>,
}
versioned!(AlertRecord, 1);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LockRecord {
    v: u32,
    until_ns: i64,
    alert: u64,
}
versioned!(LockRecord, 1);

/// A lockout in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    pub until_ns: i64,
    pub alert: u64,
}

fn pattern_of(name: &str) -> Pattern {
    Pattern::ALL
        .iter()
        .copied()
        .find(|p| p.as_str() == name)
        .unwrap_or(Pattern::BruteForce)
}

impl From<&AlertInfo> for AlertRecord {
    fn from(a: &AlertInfo) -> Self {
        Self {
            v: 1,
            id: a.id,
            time_ns: a.time_ns,
            uid: a.uid,
            pattern: a.pattern.as_str().to_owned(),
            count: a.count,
            threshold: a.threshold,
            window_secs: a.window_secs,
            detail: a.detail.clone(),
            locked_until_ns: a.locked_until_ns,
            acked_by: a.acked_by,
            acked_ns: a.acked_ns,
        }
    }
}

impl From<AlertRecord> for AlertInfo {
    fn from(r: AlertRecord) -> Self {
        Self {
            id: r.id,
            time_ns: r.time_ns,
            uid: r.uid,
            pattern: pattern_of(&r.pattern),
            count: r.count,
            threshold: r.threshold,
            window_secs: r.window_secs,
            detail: r.detail,
            locked_until_ns: r.locked_until_ns,
            acked_by: r.acked_by,
            acked_ns: r.acked_ns,
        }
    }
}

pub struct Store {
    alerts: sled::Tree,
    lockouts: sled::Tree,
    denials: sled::Tree,
    drills: sled::Tree,
    next_id: AtomicU64,
}

fn sled_err(tree: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |source| StoreError::Sled { tree, source }
}

/// Days since the epoch: the denial counters' bucket.
pub fn day_of(ns: i64) -> u32 {
    ns.div_euclid(DAY_NS).max(0) as u32
}

fn denial_key(day: u32, uid: u32, permission: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + permission.len());
    k.extend_from_slice(&day.to_be_bytes());
    k.extend_from_slice(&uid.to_be_bytes());
    k.extend_from_slice(permission.as_bytes());
    k
}

impl Store {
    pub fn open(state: &State, now_ns: i64) -> Result<Self, StoreError> {
        let alerts = state.tree(ALERTS)?;
        let next_id = match alerts.last().map_err(sled_err(ALERTS))? {
            Some((k, _)) => k.as_ref().try_into().map_or(0, u64::from_be_bytes) + 1,
            None => 1,
        };
        let store = Self {
            alerts,
            lockouts: state.tree(LOCKOUTS)?,
            denials: state.tree(DENIALS)?,
            drills: state.tree(DRILLS)?,
            next_id: AtomicU64::new(next_id),
        };
        let oldest = day_of(now_ns).saturating_sub(DENIAL_DAYS);
        for key in store.denials.range(..oldest.to_be_bytes().to_vec()).keys() {
            store
                .denials
                .remove(key.map_err(sled_err(DENIALS))?)
                .map_err(sled_err(DENIALS))?;
        }
        Ok(store)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes (or rewrites) an alert and drops the oldest beyond [`MAX_ALERTS`].
    pub fn put_alert(&self, alert: &AlertInfo) -> Result<(), StoreError> {
        let mut record = AlertRecord::from(alert);
        self.alerts
            .insert(alert.id.to_be_bytes(), records::encode(&mut record))
            .map_err(sled_err(ALERTS))?;
        while self.alerts.len() > MAX_ALERTS {
            if self.alerts.pop_min().map_err(sled_err(ALERTS))?.is_none() {
                break;
            }
        }
        self.alerts.flush().map_err(sled_err(ALERTS))?;
        Ok(())
    }

    pub fn alert(&self, id: u64) -> Result<Option<AlertInfo>, StoreError> {
        let Some(bytes) = self
            .alerts
            .get(id.to_be_bytes())
            .map_err(sled_err(ALERTS))?
        else {
            return Ok(None);
        };
        decode_alert(id, &bytes).map(Some)
    }

    /// Alerts newest first, at most `limit`, keeping those `keep` accepts.
    pub fn alerts(
        &self,
        limit: usize,
        keep: impl Fn(&AlertInfo) -> bool,
    ) -> Result<Vec<AlertInfo>, StoreError> {
        let mut out = Vec::new();
        for item in self.alerts.iter().rev() {
            let (k, v) = item.map_err(sled_err(ALERTS))?;
            let id = k.as_ref().try_into().map_or(0, u64::from_be_bytes);
            let alert = decode_alert(id, &v)?;
            if keep(&alert) {
                out.push(alert);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn put_lock(&self, uid: u32, lock: Lock) -> Result<(), StoreError> {
        let mut record = LockRecord {
            v: 1,
            until_ns: lock.until_ns,
            alert: lock.alert,
        };
        self.lockouts
            .insert(uid.to_be_bytes(), records::encode(&mut record))
            .map_err(sled_err(LOCKOUTS))?;
        self.lockouts.flush().map_err(sled_err(LOCKOUTS))?;
        Ok(())
    }

    pub fn remove_lock(&self, uid: u32) -> Result<(), StoreError> {
        self.lockouts
            .remove(uid.to_be_bytes())
            .map_err(sled_err(LOCKOUTS))?;
        self.lockouts.flush().map_err(sled_err(LOCKOUTS))?;
        Ok(())
    }

    /// Every stored lockout (expired ones too; the caller drops those).
    pub fn locks(&self) -> Result<Vec<(u32, Lock)>, StoreError> {
        let mut out = Vec::new();
        for item in self.lockouts.iter() {
            let (k, v) = item.map_err(sled_err(LOCKOUTS))?;
            let Ok(uid) = k.as_ref().try_into().map(u32::from_be_bytes) else {
                continue;
            };
            let record: LockRecord = records::decode(&v).map_err(|source| StoreError::Record {
                tree: LOCKOUTS,
                key: uid.to_string(),
                source,
            })?;
            let lock = Lock {
                until_ns: record.until_ns,
                alert: record.alert,
            };
            out.push((uid, lock));
        }
        Ok(out)
    }

    /// Counts one denial of `uid` for lack of `permission` on the day of `now_ns`.
    pub fn count_denial(&self, uid: u32, permission: &str, now_ns: i64, today_keys: &AtomicU64) {
        let day = day_of(now_ns);
        let mut key = denial_key(day, uid, permission);
        if self.denials.get(&key).ok().flatten().is_none()
            && today_keys.fetch_add(1, Ordering::Relaxed) >= DENIALS_PER_DAY
        {
            key = denial_key(day, OTHER_UID, permission);
        }
        let bumped = self.denials.update_and_fetch(&key, |old| {
            let n = old
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            Some((n + 1).to_be_bytes().to_vec())
        });
        if let Err(e) = bumped {
            tracing::warn!(error = %e, "cannot count a denial in the security state");
        }
    }

    /// Denials from day `since_day` on: (uid, permission, count).
    pub fn denials(&self, since_day: u32) -> Result<Vec<(u32, String, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.denials.range(since_day.to_be_bytes().to_vec()..) {
            let (k, v) = item.map_err(sled_err(DENIALS))?;
            if k.len() < 8 {
                continue;
            }
            let uid = u32::from_be_bytes([k[4], k[5], k[6], k[7]]);
            let permission = String::from_utf8_lossy(&k[8..]).into_owned();
            let count = v.as_ref().try_into().map_or(0, u64::from_be_bytes);
            out.push((uid, permission, count));
        }
        Ok(out)
    }

    /// Records that drill `what` (e.g. `restore`, `check-read-data:NAME`) succeeded at `ns`.
    pub fn put_drill(&self, what: &str, ns: i64) -> Result<(), StoreError> {
        self.drills
            .insert(what.as_bytes(), &ns.to_be_bytes())
            .map_err(sled_err(DRILLS))?;
        Ok(())
    }

    pub fn drill(&self, what: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .drills
            .get(what.as_bytes())
            .map_err(sled_err(DRILLS))?
            .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes)))
    }
}

fn decode_alert(id: u64, bytes: &[u8]) -> Result<AlertInfo, StoreError> {
    records::decode::<AlertRecord>(bytes)
        .map(AlertInfo::from)
        .map_err(|source| StoreError::Record {
            tree: ALERTS,
            key: id.to_string(),
            source,
        })
}
