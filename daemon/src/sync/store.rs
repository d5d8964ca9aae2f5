//! The sync service's sled trees: the pairs, and per pair the state of every file as of the
//! last sync, interrupted transfers, conflicts and runs (record types in
//! `state::records::sync`). The per-file state is read whole at every run, so it is a compact
//! binary record (a version byte, then bincode of [`Known`]) instead of JSON: decoding 20,000
//! of them must cost a few milliseconds.

use super::plan::Known;
use super::SyncError;
use crate::state::records;
use crate::state::records::sync::{ConflictRecord, PartialRecord, RunRecord, SyncPairRecord};
use crate::state::State;
use std::collections::HashMap;

const PAIRS: &str = "sync_pairs";
/// The version byte of a per-file record.
const FILE_V1: u8 = 1;
/// Runs kept per pair.
const HISTORY_KEEP: usize = 500;

#[derive(Clone)]
pub struct Store {
    state: State,
    pairs: sled::Tree,
}

fn tree_name(kind: &str, pair: &str) -> String {
    format!("sync_{kind}/{pair}")
}

impl Store {
    pub fn open(state: &State) -> Result<Self, SyncError> {
        Ok(Self {
            pairs: state.tree(PAIRS)?,
            state: state.clone(),
        })
    }

    fn tree(&self, kind: &str, pair: &str) -> Result<sled::Tree, SyncError> {
        Ok(self.state.tree(&tree_name(kind, pair))?)
    }

    pub fn pairs(&self) -> Vec<SyncPairRecord> {
        self.pairs
            .iter()
            .filter_map(|item| {
                let (key, value) = item.ok()?;
                match records::decode::<SyncPairRecord>(&value) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(pair = %String::from_utf8_lossy(&key), error = %e, "sync pair record unreadable; skipped");
                        None
                    }
                }
            })
            .collect()
    }

    pub fn pair(&self, name: &str) -> Result<SyncPairRecord, SyncError> {
        let bytes = self
            .pairs
            .get(name.as_bytes())?
            .ok_or_else(|| SyncError::Unknown(name.to_owned()))?;
        records::decode(&bytes).map_err(|e| SyncError::Record {
            what: format!("sync pair {name}"),
            reason: e.to_string(),
        })
    }

    pub fn put_pair(&self, mut record: SyncPairRecord) -> Result<(), SyncError> {
        self.pairs
            .insert(record.name.clone().as_bytes(), records::encode(&mut record))?;
        self.pairs.flush()?;
        Ok(())
    }

    /// Drops the pair and everything kept for it.
    pub fn remove_pair(&self, name: &str) -> Result<(), SyncError> {
        self.pairs.remove(name.as_bytes())?;
        for kind in ["files", "partial", "conflicts", "history"] {
            self.tree(kind, name)?.clear()?;
        }
        self.pairs.flush()?;
        Ok(())
    }

    pub fn known(&self, pair: &str) -> Result<HashMap<Vec<u8>, Known>, SyncError> {
        let tree = self.tree("files", pair)?;
        let mut out = HashMap::with_capacity(tree.len());
        let config = bincode::config::standard();
        for item in tree.iter() {
            let (key, value) = item?;
            // An unreadable or newer record is as if unknown: the file is compared again.
            if let Some((&FILE_V1, rest)) = value.split_first() {
                if let Ok((k, _)) = bincode::serde::decode_from_slice::<Known, _>(rest, config) {
                    out.insert(key.to_vec(), k);
                }
            }
        }
        Ok(out)
    }

    pub fn files_count(&self, pair: &str) -> u64 {
        self.tree("files", pair)
            .map(|t| t.len() as u64)
            .unwrap_or(0)
    }

    /// Applies per-file changes: `Some` records, `None` forgets.
    pub fn update_known(
        &self,
        pair: &str,
        changes: Vec<(Vec<u8>, Option<Known>)>,
    ) -> Result<(), SyncError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tree = self.tree("files", pair)?;
        let mut batch = sled::Batch::default();
        let config = bincode::config::standard();
        for (path, known) in changes {
            match known {
                Some(k) => {
                    let mut bytes = vec![FILE_V1];
                    // Plain integers and arrays: always encodes.
                    if let Ok(body) = bincode::serde::encode_to_vec(k, config) {
                        bytes.extend_from_slice(&body);
                        batch.insert(path, bytes);
                    }
                }
                None => batch.remove(path),
            }
        }
        tree.apply_batch(batch)?;
        tree.flush()?;
        Ok(())
    }

    pub fn partial(&self, pair: &str, path: &[u8]) -> Option<PartialRecord> {
        let bytes = self.tree("partial", pair).ok()?.get(path).ok()??;
        records::decode(&bytes).ok()
    }

    pub fn put_partial(
        &self,
        pair: &str,
        path: &[u8],
        mut record: PartialRecord,
    ) -> Result<(), SyncError> {
        // Not flushed here: sled writes it out within its flush interval. A record lost to a
        // crash costs a resume from an earlier chunk, never a wrong file (each chunk is read
        // back and checked against its hash before a resume trusts it).
        let tree = self.tree("partial", pair)?;
        tree.insert(path, records::encode(&mut record))?;
        Ok(())
    }

    pub fn remove_partial(&self, pair: &str, path: &[u8]) -> Result<(), SyncError> {
        self.tree("partial", pair)?.remove(path)?;
        Ok(())
    }

    pub fn conflicts(&self, pair: &str) -> Result<Vec<(Vec<u8>, ConflictRecord)>, SyncError> {
        Ok(self
            .tree("conflicts", pair)?
            .iter()
            .filter_map(|item| {
                let (k, v) = item.ok()?;
                Some((k.to_vec(), records::decode::<ConflictRecord>(&v).ok()?))
            })
            .collect())
    }

    pub fn put_conflict(
        &self,
        pair: &str,
        path: &[u8],
        mut record: ConflictRecord,
    ) -> Result<(), SyncError> {
        let tree = self.tree("conflicts", pair)?;
        tree.insert(path, records::encode(&mut record))?;
        tree.flush()?;
        Ok(())
    }

    pub fn remove_conflict(&self, pair: &str, path: &[u8]) -> Result<(), SyncError> {
        self.tree("conflicts", pair)?.remove(path)?;
        Ok(())
    }

    pub fn push_run(&self, pair: &str, mut run: RunRecord) -> Result<(), SyncError> {
        let tree = self.tree("history", pair)?;
        tree.insert(run.started_ns.to_be_bytes(), records::encode(&mut run))?;
        while tree.len() > HISTORY_KEEP {
            if tree.pop_min()?.is_none() {
                break;
            }
        }
        tree.flush()?;
        Ok(())
    }

    /// Newest first.
    pub fn runs(&self, pair: &str, limit: usize) -> Result<Vec<RunRecord>, SyncError> {
        Ok(self
            .tree("history", pair)?
            .iter()
            .rev()
            .filter_map(|item| records::decode::<RunRecord>(&item.ok()?.1).ok())
            .take(limit)
            .collect())
    }
}
