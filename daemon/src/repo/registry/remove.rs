//! `repo remove`: unregistering a repository. Only the daemon's own records go (the registry
//! entry, the open handle, the alert and the snapshot catalog); the repository's files are
//! never touched, and neither is the daemon's key file, which may be the only copy of a
//! generated passphrase and lets `repo add` bring the repository back.
//!
//! Blocking: sled, and reading the repository's config for its id.

use super::{alert_key, Registry, RegistryError, RepoEntry, TREE};
use crate::state::declared::{Declared, Kind};
use crate::state::StateError;

impl Registry {
    /// Removes the registration of `name`. `users` names what still uses the entry (queued
    /// or running jobs, watched sources); it is asked under the registry's change lock, and a
    /// non-empty answer refuses the removal.
    pub fn remove(
        &self,
        name: &str,
        users: &dyn Fn(&RepoEntry) -> Vec<String>,
    ) -> Result<RepoEntry, RegistryError> {
        let entry = self.entry(Some(name))?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        if Declared::open(&self.state)?
            .names(Kind::Repository)
            .iter()
            .any(|n| n == name)
        {
            return Err(RegistryError::Declared {
                name: name.to_owned(),
            });
        }
        let using = users(&entry);
        if !using.is_empty() {
            return Err(RegistryError::InUse {
                name: name.to_owned(),
                users: using.join(", "),
                hint: "cancel the jobs (`backupctl queue cancel ID`) or wait for them, and \
                       remove the sources (`backupctl source remove NAME`) first",
            });
        }
        // The catalog is keyed by the repository's id: from the open handle, else the config.
        let id = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|r| r.config().id.clone())
            .or_else(|| {
                crate::repo::read_config(entry.location.open_backend().as_ref())
                    .ok()
                    .map(|c| c.id)
            });
        let tree = self.state.tree(TREE)?;
        tree.remove(name.as_bytes())
            .map_err(|source| StateError::Write {
                path: self.state.path().to_owned(),
                source,
            })?;
        self.forget(name);
        self.alerts.clear(&alert_key(name));
        match id {
            Some(id) => crate::state::catalog::forget(&self.state, &id)?,
            // Unreachable now: its catalog stays until it is added again (then reused).
            None => {
                tracing::warn!(name, location = %entry.location, "repository unreachable; its snapshot catalog is kept")
            }
        }
        self.state.flush_blocking()?;
        tracing::info!(name, location = %entry.location, key = %entry.key_file.display(), "repository unregistered; its files and key file are untouched");
        Ok(entry)
    }
}
