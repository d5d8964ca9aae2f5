//! What the registry does at start and on reload, in this order:
//!
//! 1. `default` is not registered (the state database is new: first start, deleted, or replaced
//!    after corruption) but its key file `<state dir>/keys/default.key` exists: the default
//!    repository existed. If it is still at `<state dir>/repository` it is registered again;
//!    if it is gone it is registered *as missing*, never created anew.
//! 2. Repositories declared in the config (`[[repository]]`) are registered; a declared entry
//!    replaces a registered one of the same name. One that was declared before and no longer is
//!    stays registered as it is, with a warning in the log.
//! 3. Only if nothing at all is registered (a true first start without declared repositories)
//!    is `default` created, with a random key.
//! 4. Every registered repository that is missing raises an alert (error log + `system health`
//!    note); jobs for it fail with `Unreachable` until it is back or replaced by an admin.
//!
//! Blocking: runs on a blocking thread; requests to the registry wait until step 4 is done.

use super::{alert_key, default_path, password, Registry, RegistryError, RepoEntry, DEFAULT_NAME};
use crate::repo::backend::Key;
use crate::repo::Location;
use crate::state::declared::{Declared, Kind};
use backupd_common::config::RepositoryConfig;

/// Whether no repository is at `location` (directory gone, empty, or a mount point not
/// mounted): it has no config object. A location that cannot be asked counts as missing.
pub fn is_missing(location: &Location) -> bool {
    !matches!(location.open_backend().exists(Key::config()), Ok(true))
}

impl Registry {
    /// Start-up work. Returns the default repository when it was created now; errors are
    /// logged (and alerted) step by step so that one cannot stop the others.
    pub fn start(&self, declared: &[RepositoryConfig]) -> Option<RepoEntry> {
        if let Err(e) = self.recover_default() {
            tracing::error!(error = %e, "cannot re-register the default repository");
        }
        self.apply_declared(declared);
        let created = match self.create_default_if_none() {
            Ok(created) => created,
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the default repository");
                None
            }
        };
        self.alert_all_missing();
        self.mark_settled();
        created
    }

    /// Step 1 (see the module doc).
    fn recover_default(&self) -> Result<(), RegistryError> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let all = self.list_now()?;
        let key = self.key_path(DEFAULT_NAME);
        if all.iter().any(|e| e.name == DEFAULT_NAME) || !key.exists() {
            return Ok(());
        }
        let location = Location::local(default_path(&self.state_dir));
        if is_missing(&location) {
            let entry = RepoEntry {
                name: DEFAULT_NAME.to_owned(),
                location,
                key_file: key,
                is_default: !all.iter().any(|e| e.is_default),
                password_command: None,
            };
            self.persist(&entry)?;
            tracing::error!(
                location = %entry.location,
                key = %entry.key_file.display(),
                "the default repository existed (its key file is still there) but is gone; \
                 it is registered as missing and NOT created again"
            );
            return Ok(());
        }
        let secret = password::read_file(&key)?;
        let entry = self.add_now_locked(DEFAULT_NAME, &location, &secret)?;
        tracing::info!(location = %entry.location, "re-registered the default repository found in the state directory");
        Ok(())
    }

    /// Step 2: registers the declared repositories; returns the names whose registration
    /// changed (for the reload report).
    pub fn apply_declared(&self, declared: &[RepositoryConfig]) -> Vec<String> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        let marks = match Declared::open(&self.state) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot read which repositories were declared");
                return changed;
            }
        };
        for d in declared {
            match self.apply_one(d, &marks) {
                Ok(true) => changed.push(d.name.clone()),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(name = %d.name, error = %e, "declared repository not registered")
                }
            }
        }
        for name in marks.names(Kind::Repository) {
            if declared.iter().any(|d| d.name == name) {
                continue;
            }
            tracing::warn!(
                name = %name,
                "repository is no longer declared in the config file; it stays registered as \
                 it was (path and passphrase source unchanged) and its snapshots are untouched"
            );
            if let Err(e) = marks.unmark(Kind::Repository, &name) {
                tracing::error!(name = %name, error = %e, "cannot update the declared marks");
            }
        }
        changed
    }

    fn apply_one(&self, d: &RepositoryConfig, marks: &Declared) -> Result<bool, RegistryError> {
        let all = self.list_now()?;
        let old = all.iter().find(|e| e.name == d.name);
        let location = Location::local(&d.path);
        location.validate()?;
        let entry = RepoEntry {
            name: d.name.clone(),
            location,
            key_file: d.key_file.clone().unwrap_or_default(),
            is_default: match old {
                Some(old) => old.is_default,
                None => !all.iter().any(|e| e.is_default),
            },
            password_command: d.password_command.clone(),
        };
        marks.mark(Kind::Repository, &d.name)?;
        if old == Some(&entry) {
            return Ok(false);
        }
        self.persist(&entry)?;
        self.forget(&entry.name);
        // Step 4 raises it again if the new registration is missing too.
        self.alerts.clear(&alert_key(&entry.name));
        match old {
            Some(old) => tracing::warn!(
                name = %entry.name,
                location = %entry.location,
                was = %old.location,
                "the config file's [[repository]] replaces the registered one of the same name"
            ),
            None => {
                tracing::info!(name = %entry.name, location = %entry.location, "registered the repository declared in the config file")
            }
        }
        Ok(true)
    }

    /// Step 3.
    fn create_default_if_none(&self) -> Result<Option<RepoEntry>, RegistryError> {
        if !self.list_now()?.is_empty() {
            return Ok(None);
        }
        let location = Location::local(default_path(&self.state_dir));
        let entry = self.init_now(DEFAULT_NAME, &location, None)?;
        Ok(Some(entry))
    }

    /// Step 4; also after a reload.
    pub fn alert_all_missing(&self) {
        match self.list_now() {
            Ok(all) => {
                for entry in all.iter().filter(|e| is_missing(&e.location)) {
                    self.alert_missing(entry);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list the registered repositories"),
        }
    }

    /// Raises the alert of a registered repository that is gone (logged once per raise).
    pub(super) fn alert_missing(&self, entry: &RepoEntry) {
        let source = match &entry.password_command {
            Some(_) => "its passphrase comes from password_command".to_owned(),
            None => format!("key file {}", entry.key_file.display()),
        };
        let message = format!(
            "repository {:?} is missing: nothing at {}, where it was registered ({source}). It is \
             unavailable: its jobs fail with Unreachable and nothing is created there. Bring it \
             back (mount or restore it there), or replace it: `backupctl repo init --name {} \
             --path DIR` for a new, empty one, `backupctl repo add --name {} --path DIR` for a \
             copy elsewhere",
            entry.name, entry.location, entry.name, entry.name
        );
        if self.alerts.raise(&alert_key(&entry.name), message.clone()) {
            tracing::error!(name = %entry.name, location = %entry.location, "{message}");
        }
    }
}

impl Registry {
    /// Registers an imported entry without opening it (its key may not be in place yet). An
    /// existing name is an error (`Exists`): imports never overwrite. `Ok(Some(caveat))` says
    /// what is not in place yet.
    pub fn import(&self, mut entry: RepoEntry) -> Result<Option<String>, RegistryError> {
        self.wait_settled();
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        self.check_new_name(&entry.name, &entry.location)?;
        // Not opened (no key yet), but its id is readable: a copy already registered under
        // another name is the same repository, as for `repo add`.
        let id = super::super::read_config(entry.location.open_backend().as_ref())
            .map(|c| c.id)
            .unwrap_or_default();
        self.check_not_registered(&entry.name, &entry.location, &id)?;
        let all = self.list_now()?;
        // The default stays the default; an imported one only becomes it if there is none.
        entry.is_default = entry.is_default && !all.iter().any(|e| e.is_default);
        self.persist(&entry)?;
        let mut caveats = Vec::new();
        if entry.password_command.is_none() && !entry.key_file.exists() {
            caveats.push(format!(
                "its key file {} does not exist; put the passphrase there",
                entry.key_file.display()
            ));
        }
        if is_missing(&entry.location) {
            caveats.push(format!("no repository at {}", entry.location));
        }
        Ok((!caveats.is_empty()).then(|| caveats.join("; ")))
    }
}
