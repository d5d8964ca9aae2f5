//! Recovery: everything about getting data back rather than putting it away.
//!
//! - which snapshot to recover from ([`fitness`], selection) and recovering it through a stored
//!   **plan** whose steps run as `recovery` jobs and can be undone until committed ([`steps`],
//!   [`swap`]). [`Recovery`] owns sled tree `recovery_plans` (records in
//!   `state::records::recovery`) and spawns one task, [`Recovery::run`], that commits plans
//!   whose rollback copy has been kept for [`KEEP_ROLLBACK`]; it stops with its token. Plans
//!   never delete anything of the target: what a recovery replaces is moved into the rollback
//!   copy, and only `commit` (or the retention) deletes that;
//! - recovery **drills** ([`drill`], [`drills`], [`sample`]: a sample of a snapshot restored into
//!   scratch space, verified, measured and deleted; the `drill` job kind in `ops::drill`, fired
//!   by the scheduler too) and the recovery **objectives** ([`objectives`]: RPO achieved against
//!   its target, the RTO estimated from the measured restore throughput, [`throughput`]).
//!
//! Blocking API (repositories, sled, files): callers run it off the async workers.

pub mod drill;
pub mod drills;
pub mod fitness;
pub mod objectives;
pub mod sample;
mod select;
mod selection;
mod steps;
pub mod swap;
pub mod throughput;

use crate::queue::Queue;
use crate::replication::Replications;
use crate::repo::registry::Registry;
use crate::repo::Scope;
use crate::state::records::recovery::{PlanRecord, SwapJournal};
use crate::state::records::{self};
use crate::state::{State, StateError};
use backupd_common::protocol::{
    FitnessReport, FitnessRequest, PlanInfo, PlanRequest, PlanState, Selection,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use steps::act;

const TREE: &str = "recovery_plans";
/// How long a finished plan keeps its rollback copy before it is committed on its own.
pub const KEEP_ROLLBACK: Duration = Duration::from_secs(7 * 24 * 3600);
/// The targets fitness measures against for a snapshot of no known source (a source's own are
/// its `--rpo` and `--rto`).
pub const DEFAULT_RPO: Duration = Duration::from_secs(3600);
pub const DEFAULT_RTO: Duration = backupd_common::protocol::DEFAULT_RTO;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("no recovery plan {plan} (see `backupctl recovery list`)")]
    NotFound { plan: String },
    #[error("no snapshot {what} (see `backupctl snapshots`)")]
    NoSnapshot { what: String },
    #[error("{0}")]
    Invalid(String),
    #[error("plan {plan} is {state}: {hint}")]
    State {
        plan: String,
        state: &'static str,
        hint: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StateError),
    #[error("cannot store the recovery plan: {0}")]
    Sled(#[from] sled::Error),
}

pub struct Recovery {
    tree: sled::Tree,
    state: State,
    repos: Arc<Registry>,
    replications: Arc<Replications>,
    queue: Arc<Queue>,
    sources: Arc<crate::watch::Sources>,
    /// Serialises read-modify-write of records (ids, step states).
    write: Mutex<()>,
}

impl Recovery {
    /// Opens the plans; a plan whose step was running when the daemon stopped becomes
    /// `interrupted`, with that step.
    pub fn open(
        state: &State,
        repos: Arc<Registry>,
        replications: Arc<Replications>,
        queue: Arc<Queue>,
        sources: Arc<crate::watch::Sources>,
    ) -> Result<Self, StateError> {
        let me = Self {
            tree: state.tree(TREE)?,
            state: state.clone(),
            repos,
            replications,
            queue,
            sources,
            write: Mutex::new(()),
        };
        for mut rec in me.records() {
            if rec.plan_state() == PlanState::Running {
                rec.state = "interrupted".into();
                for s in rec.steps.iter_mut().filter(|s| s.state == "running") {
                    s.state = "interrupted".into();
                    s.detail = Some("the daemon stopped while this step ran".into());
                }
                if let Err(e) = me.put(&mut rec) {
                    tracing::warn!(plan = rec.id, error = %e, "cannot mark the plan interrupted");
                }
            }
        }
        Ok(me)
    }

    fn records(&self) -> Vec<PlanRecord> {
        self.tree
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| !k.contains(&b'/'))
            .filter_map(|(k, v)| match records::decode::<PlanRecord>(&v) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(plan = %String::from_utf8_lossy(&k), error = %e, "unreadable recovery plan skipped");
                    None
                }
            })
            .collect()
    }

    fn get(&self, id: &str) -> Result<PlanRecord, RecoveryError> {
        let bytes = self
            .tree
            .get(id.as_bytes())?
            .ok_or_else(|| RecoveryError::NotFound { plan: id.into() })?;
        records::decode(&bytes)
            .map_err(|e| RecoveryError::Invalid(format!("recovery plan {id} cannot be read: {e}")))
    }

    /// Stores `rec` and flushes: a step's state must survive a crash right after.
    fn put(&self, rec: &mut PlanRecord) -> Result<(), RecoveryError> {
        let key = rec.id.clone();
        self.tree.insert(key.as_bytes(), records::encode(rec))?;
        self.state.flush_blocking()?;
        Ok(())
    }

    /// Applies `f` to the stored plan and stores the result.
    fn update(
        &self,
        id: &str,
        f: impl FnOnce(&mut PlanRecord),
    ) -> Result<PlanRecord, RecoveryError> {
        let _g = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.get(id)?;
        f(&mut rec);
        self.put(&mut rec)?;
        Ok(rec)
    }

    fn journal(&self, id: &str) -> Result<Option<SwapJournal>, RecoveryError> {
        match self.tree.get(format!("{id}/swap"))? {
            Some(b) => Ok(Some(records::decode(&b).map_err(|e| {
                RecoveryError::Invalid(format!("plan {id}: swap journal unreadable: {e}"))
            })?)),
            None => Ok(None),
        }
    }

    fn put_journal(&self, id: &str, j: &mut SwapJournal) -> Result<(), RecoveryError> {
        self.tree.insert(format!("{id}/swap"), records::encode(j))?;
        self.state.flush_blocking()?;
        Ok(())
    }

    /// The paths a selective plan restores (relative to its path), if it is limited to some.
    fn only(&self, id: &str) -> Result<Option<Arc<HashSet<Vec<u8>>>>, RecoveryError> {
        Ok(match self.tree.get(format!("{id}/only"))? {
            Some(b) => {
                let list: Vec<Vec<u8>> = serde_json::from_slice(&b).map_err(|e| {
                    RecoveryError::Invalid(format!("plan {id}: selection unreadable: {e}"))
                })?;
                Some(Arc::new(list.into_iter().collect()))
            }
            None => None,
        })
    }

    pub fn status(&self, id: &str) -> Result<PlanInfo, RecoveryError> {
        Ok(self.info(&self.get(id)?))
    }

    /// Every plan, newest first.
    pub fn list(&self) -> Vec<PlanInfo> {
        let mut all = self.records();
        all.sort_by_key(|r| std::cmp::Reverse(r.created_ns));
        all.iter().map(|r| self.info(r)).collect()
    }

    fn info(&self, rec: &PlanRecord) -> PlanInfo {
        let mut info = rec.info();
        let kept = matches!(
            rec.plan_state(),
            PlanState::Done | PlanState::Failed | PlanState::Interrupted
        ) && rec.swapped_ns.is_some();
        if kept {
            let mut dir = rec.target.clone();
            dir.push(b'/');
            dir.extend_from_slice(&swap::work_name(&rec.id));
            dir.extend_from_slice(b"/rollback");
            info.rollback_dir = Some(dir);
        }
        info
    }

    /// Scores the snapshots `r` names, best first.
    pub fn fitness(
        &self,
        r: &FitnessRequest,
        scope: Scope,
    ) -> Result<Vec<FitnessReport>, crate::error::Error> {
        select::fitness(self, r, scope)
    }

    pub fn select(
        &self,
        r: &FitnessRequest,
        scope: Scope,
    ) -> Result<Selection, crate::error::Error> {
        select::select(self, r, scope)
    }

    /// Works out and stores a plan for `r`; nothing on disk changes.
    pub fn plan(&self, r: PlanRequest, uid: u32) -> Result<PlanInfo, crate::error::Error> {
        let mut rec = select::plan(self, r, uid)?;
        let _g = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let next = self
            .records()
            .iter()
            .filter_map(|r| r.id.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        rec.record.id = next.to_string();
        if let Some(only) = &rec.only {
            let mut list: Vec<&Vec<u8>> = only.iter().collect();
            list.sort();
            let bytes = serde_json::to_vec(&list)
                .map_err(|e| RecoveryError::Invalid(format!("selection: {e}")))?;
            self.tree
                .insert(format!("{next}/only"), bytes)
                .map_err(RecoveryError::from)?;
        }
        self.put(&mut rec.record)?;
        Ok(self.info(&rec.record))
    }

    /// Commits every finished plan whose rollback copy is older than `keep`.
    pub fn expire(&self, keep: Duration, now_ns: i64) {
        for rec in self.records() {
            let old = rec
                .swapped_ns
                .is_some_and(|t| now_ns.saturating_sub(t) > keep.as_nanos() as i64);
            if rec.plan_state() == PlanState::Done && old {
                match steps::commit(self, &rec.id) {
                    Ok(_) => tracing::info!(
                        plan = rec.id,
                        "rollback copy of a finished recovery deleted after its retention"
                    ),
                    Err(e) => {
                        tracing::warn!(plan = rec.id, error = %e, "cannot delete an expired rollback copy")
                    }
                }
            }
        }
    }

    /// Deletes expired rollback copies once an hour until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                me.expire(KEEP_ROLLBACK, crate::repo::now_ns())
            })
            .await;
        }
    }
}
