//! Granted bindings in sled (tree `bindings`): one record per binding under `b/<id>`, and the
//! next id under `next_id` so that a revoked binding's id is never handed out again (audit
//! entries name bindings by id). The whole set is kept in memory as well: every request reads
//! it, and it is capped (`MAX_BINDINGS`).
//!
//! Blocking: every write goes to sled and is flushed before it returns.

use super::resolve::Binding;
use crate::state::records::binding::BindingRecord;
use crate::state::records::{self, Record};
use crate::state::{State, StateError};
use backupd_common::protocol::{Role, Subject};
use std::sync::{Arc, RwLock};

const TREE: &str = "bindings";
const PREFIX: &[u8] = b"b/";
const NEXT_ID: &[u8] = b"next_id";

/// How many granted bindings the daemon keeps; a grant beyond it is refused.
pub const MAX_BINDINGS: usize = 10_000;

#[derive(Clone)]
pub struct Store {
    tree: sled::Tree,
    state: State,
    cache: Arc<RwLock<Arc<Vec<Binding>>>>,
}

impl Store {
    /// Opens the tree and reads every binding. A record this build cannot read (damaged, or
    /// written by a newer backupd) is logged and skipped: it grants nothing, and stays stored.
    pub fn open(state: &State) -> Result<Self, StateError> {
        let tree = state.tree(TREE)?;
        let mut all = Vec::new();
        for item in tree.scan_prefix(PREFIX) {
            let (key, value) = item.map_err(|source| StateError::Open {
                path: state.path().to_owned(),
                source,
            })?;
            match records::decode::<BindingRecord>(&value).map(from_record) {
                Ok(Some(b)) => all.push(b),
                Ok(None) | Err(_) => tracing::warn!(
                    key = %String::from_utf8_lossy(&key),
                    "skipping a role binding this backupd cannot read; it grants nothing"
                ),
            }
        }
        Ok(Self {
            tree,
            state: state.clone(),
            cache: Arc::new(RwLock::new(Arc::new(all))),
        })
    }

    /// Every granted binding (a cheap `Arc` clone).
    pub fn all(&self) -> Arc<Vec<Binding>> {
        // A poisoned lock means a writer panicked between two whole-Arc swaps: the value is whole.
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn write_err(&self, source: sled::Error) -> StateError {
        StateError::Write {
            path: self.state.path().to_owned(),
            source,
        }
    }

    /// Stores a new binding under the next id; `make` builds it from that id.
    pub fn insert(&self, make: impl FnOnce(String) -> Binding) -> Result<Binding, StateError> {
        let mut guard = self.cache.write().unwrap_or_else(|p| p.into_inner());
        let next = self
            .tree
            .get(NEXT_ID)
            .map_err(|e| self.write_err(e))?
            .and_then(|raw| <[u8; 8]>::try_from(raw.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        let binding = make(format!("b{next}"));
        let mut record = to_record(&binding);
        let mut batch = sled::Batch::default();
        batch.insert(NEXT_ID, &(next + 1).to_be_bytes());
        batch.insert(key(&binding.id), records::encode(&mut record));
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.write_err(e))?;
        self.state.flush_blocking()?;
        let mut all = Vec::clone(&guard);
        all.push(binding.clone());
        *guard = Arc::new(all);
        Ok(binding)
    }

    /// Removes the granted bindings `pick` selects; returns them.
    pub fn remove(&self, pick: impl Fn(&Binding) -> bool) -> Result<Vec<Binding>, StateError> {
        let mut guard = self.cache.write().unwrap_or_else(|p| p.into_inner());
        let (gone, kept): (Vec<Binding>, Vec<Binding>) = guard.iter().cloned().partition(pick);
        if gone.is_empty() {
            return Ok(gone);
        }
        let mut batch = sled::Batch::default();
        for b in &gone {
            batch.remove(key(&b.id));
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.write_err(e))?;
        self.state.flush_blocking()?;
        *guard = Arc::new(kept);
        Ok(gone)
    }
}

fn key(id: &str) -> Vec<u8> {
    [PREFIX, id.as_bytes()].concat()
}

fn to_record(b: &Binding) -> BindingRecord {
    let (subject_kind, subject_id) = match b.subject {
        Subject::Uid(u) => ("uid", u),
        Subject::Group(g) => ("group", g),
    };
    BindingRecord {
        v: BindingRecord::VERSION,
        id: b.id.clone(),
        role: b.role.as_str().to_owned(),
        subject_kind: subject_kind.to_owned(),
        subject_id,
        repos: b.repos.clone(),
        created_ns: b.created_ns,
        expires_ns: b.expires_ns,
        // Only granted bindings are stored; declared ones live in the config file.
        granted_by: b.granted_by.unwrap_or(0),
    }
}

/// `None` for a record naming a role or subject kind this build does not know.
fn from_record(r: BindingRecord) -> Option<Binding> {
    let role: Role = r.role.parse().ok()?;
    let subject = match r.subject_kind.as_str() {
        "uid" => Subject::Uid(r.subject_id),
        "group" => Subject::Group(r.subject_id),
        _ => return None,
    };
    Some(Binding {
        id: r.id,
        role,
        subject,
        repos: r.repos,
        created_ns: r.created_ns,
        expires_ns: r.expires_ns,
        granted_by: Some(r.granted_by),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: String) -> Binding {
        Binding {
            id,
            role: Role::User,
            subject: Subject::Uid(1000),
            repos: vec!["home".into()],
            created_ns: 5,
            expires_ns: Some(10),
            granted_by: Some(0),
        }
    }

    #[test]
    fn bindings_survive_a_reopen_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let state = State::open(dir.path()).expect("open");
            let store = Store::open(&state).expect("store");
            assert_eq!(store.insert(grant).expect("insert").id, "b1");
            assert_eq!(store.insert(grant).expect("insert").id, "b2");
            let gone = store.remove(|b| b.id == "b2").expect("remove");
            assert_eq!(gone.len(), 1);
        }
        let state = State::open(dir.path()).expect("reopen");
        let store = Store::open(&state).expect("store");
        assert_eq!(*store.all(), vec![grant("b1".into())]);
        assert_eq!(store.insert(grant).expect("insert").id, "b3");
    }
}
