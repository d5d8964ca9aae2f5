//! The daemon's named repositories: which path each name means and where its passphrase is
//! kept (a 0600 file under the state dir, or a key file / command declared in the config),
//! persisted in sled; opened repositories are cached. Start-up work (re-registering what the
//! config and the state dir still hold, creating `default` on a first start, alerting about
//! repositories that vanished) is in [`startup`].
//!
//! A repository that is registered but missing is never created again behind the operator's
//! back: jobs fail with `Unreachable` and `system health` says so until an admin runs
//! `repo init` / `repo add` for that name, which may then replace the entry.
//!
//! Blocking (Argon2id, disk): call from a blocking thread.

mod credentials;
pub mod keys;
pub mod password;
pub mod record;
pub mod remove;
pub mod rotate;
pub mod startup;

use super::backend::Presence;
use super::keyfile::Argon2Params;
use super::{Location, LocationError, RepoError, Repository};
use crate::alerts::Alerts;
use crate::state::{State, StateError};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const TREE: &str = "repos";
pub const DEFAULT_NAME: &str = "default";

/// A registered repository as the daemon works with it (stored as [`record`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoEntry {
    pub name: String,
    pub location: Location,
    /// Empty when the passphrase comes from `password_command`.
    pub key_file: PathBuf,
    pub is_default: bool,
    /// Declared in the config with `password_command`: the daemon runs it for the passphrase.
    pub password_command: Option<String>,
}

/// Where the default repository lives: `<state dir>/repository`, beside (not inside) the state
/// database `<state dir>/state.sled`, so that discarding the database never touches it.
pub fn default_path(state_dir: &Path) -> PathBuf {
    state_dir.join("repository")
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no repository named {name:?}; known: {known}")]
    Unknown { name: String, known: String },
    #[error("a repository named {name:?} already exists (at {path})")]
    Exists { name: String, path: String },
    #[error("repository name {0:?} is invalid: use 1-64 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error(transparent)]
    Credentials(#[from] crate::repo::backend::s3::credentials::CredentialsError),
    #[error("no repositories; create one with `backupctl repo init`")]
    None,
    #[error("cannot {action} key file {path}: {source}")]
    KeyFile {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "key file {path} holds another passphrase; move it away (it may be the only copy of a \
         key) or choose another repository name"
    )]
    KeyFileTaken { path: PathBuf },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("state record for repository {name:?} is unreadable: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("cannot get the passphrase of repository {name:?}: {reason}")]
    Password { name: String, reason: String },
    #[error(
        "the repository at {location} (id {id}) is already registered as {existing:?}; use that \
         name, or unregister it first with `backupctl repo remove {existing}`"
    )]
    SameRepository {
        existing: String,
        location: String,
        id: String,
    },
    #[error("repository {name:?} is in use: {users}; {hint}")]
    InUse {
        name: String,
        users: String,
        hint: &'static str,
    },
    #[error(
        "repository {name:?} is declared in the config file ([[repository]]); remove it there \
         and reload, or it is registered again"
    )]
    Declared { name: String },
    #[error(
        "repository {name:?} takes its passphrase from password_command; change the passphrase \
         where that command reads it, after adding a key for it with `backupctl repo key add`"
    )]
    PasswordCommand { name: String },
    #[error("the new passphrase of repository {name:?} is the one it already has")]
    SamePassphrase { name: String },
    #[error(
        "repository {name:?} has no key file whose name starts with {id:?}; \
         `backupctl repo key list` shows them"
    )]
    KeyNotFound { name: String, id: String },
    #[error(
        "{id:?} names {count} key files of repository {name:?}; give more of the name \
         (`backupctl repo key list` shows them)"
    )]
    KeyAmbiguous {
        name: String,
        id: String,
        count: usize,
    },
    #[error(
        "key file {id} is the last one of repository {name:?}; it is never removed (add \
         another with `backupctl repo key add` first, if you mean to replace it)"
    )]
    LastKey { name: String, id: String },
    #[error(
        "key file {id} is the only one the daemon's passphrase opens for repository {name:?}; \
         to retire that passphrase, change it with `backupctl repo key passwd` instead"
    )]
    DaemonKey { name: String, id: String },
    #[error(
        "cannot retire data-key version 1 of repository {name:?}: version 1 key files of other \
         passphrases still hold it ({files}); add each such passphrase again with `backupctl \
         repo key add` (the new file holds no retired key) and remove the old file with \
         `backupctl repo key remove ID`, or remove it, then run the re-encryption again"
    )]
    KeyStillHeld { name: String, files: String },
    #[error(
        "data-key versions of repository {name:?} still seal objects after re-encryption \
         ({versions}), so none was retired: these are packs no index names (left by an \
         interrupted backup; `backupctl repo rebuild-index` indexes any that hold data) or \
         objects whose version could not be read (`backupctl repo check` names them); run \
         `backupctl repo key reencrypt` again afterwards"
    )]
    KeyStillUsed { name: String, versions: String },
}

#[derive(Debug)]
pub struct Registry {
    state: State,
    state_dir: PathBuf,
    alerts: Arc<Alerts>,
    open: Mutex<HashMap<String, Arc<Repository>>>,
    /// Set once the start-up work (creating `default` if needed) is done; requests wait for it
    /// so that the daemon can answer health while Argon2id runs.
    settled: (Mutex<bool>, Condvar),
    /// Held across check, key write, init and persist, so two changes cannot interleave.
    changes: Mutex<()>,
}

use backupd_common::config::declared::valid_name;

/// The alert key of a repository's availability.
fn alert_key(name: &str) -> String {
    format!("repo:{name}")
}

/// Creates `path` holding `data` the way repository objects are written, because a key file may
/// be the only copy of a passphrase: a temp file in the same directory, fsynced, linked to its
/// name (a hard link, unlike rename, never replaces an existing file), the temp name removed
/// and the directory fsynced. A crash leaves either no key file or the whole one, never an
/// empty or torn one; a missing key directory is created and made durable in its parent.
/// An error names the step that failed.
fn write_new_durably(path: &Path, data: &[u8]) -> Result<(), (&'static str, std::io::Error)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ("create the directory of", e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent).map_err(|e| ("fsync the parent directory of", e))?;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".tmp-{name}-{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| ("create a temp file for", e))?;
        f.write_all(data).map_err(|e| ("write", e))?;
        f.sync_all().map_err(|e| ("fsync", e))?;
        std::fs::hard_link(&temp, path).map_err(|e| ("link into place", e))
    })();
    let _ = std::fs::remove_file(&temp);
    result?;
    sync_dir(dir).map_err(|e| ("fsync the directory of", e))
}

/// Credentials stored for a registration that then failed are not left behind.
fn forget_created_on_error<T>(result: &Result<T, RegistryError>, created: Option<PathBuf>) {
    if let (Err(_), Some(path)) = (result, created) {
        let _ = std::fs::remove_file(path);
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Registry {
    pub fn new(state: State, state_dir: &Path, alerts: Arc<Alerts>) -> Self {
        Self {
            state,
            state_dir: state_dir.to_owned(),
            alerts,
            open: Mutex::new(HashMap::new()),
            settled: (Mutex::new(false), Condvar::new()),
            changes: Mutex::new(()),
        }
    }

    fn wait_settled(&self) {
        let (lock, cv) = &self.settled;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _ = cv
            .wait_timeout_while(guard, Duration::from_secs(120), |settled| !*settled)
            .unwrap_or_else(|p| p.into_inner());
    }

    fn mark_settled(&self) {
        let (lock, cv) = &self.settled;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    /// What no sync pair or recovery may take over or move aside: the daemon's state directory
    /// and every local repository, each resolved (symlinks followed) where it exists, with
    /// what it is in words.
    pub fn protected_paths(&self) -> Vec<(String, PathBuf)> {
        let resolved = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
        let mut out = vec![(
            "the daemon's state directory".to_owned(),
            resolved(&self.state_dir),
        )];
        for repo in self.list().unwrap_or_default() {
            if let Some(p) = repo.location.local_path() {
                out.push((format!("repository {}", repo.name), resolved(p)));
            }
        }
        out
    }

    pub fn list(&self) -> Result<Vec<RepoEntry>, RegistryError> {
        self.wait_settled();
        self.list_now()
    }

    fn list_now(&self) -> Result<Vec<RepoEntry>, RegistryError> {
        let tree = self.state.tree(TREE)?;
        let mut out = Vec::new();
        for item in tree.iter() {
            let (key, value) = item.map_err(|e| RegistryError::Corrupt {
                name: "?".into(),
                reason: e.to_string(),
            })?;
            out.push(record::decode(&key, &value)?);
        }
        Ok(out)
    }

    /// The registered repository a name refers to (`None`: the default one).
    pub fn entry(&self, name: Option<&str>) -> Result<RepoEntry, RegistryError> {
        self.wait_settled();
        let all = self.list_now()?;
        let found = match name {
            Some(n) => all.iter().find(|e| e.name == n),
            None => all.iter().find(|e| e.is_default).or(if all.len() == 1 {
                all.first()
            } else {
                None
            }),
        };
        match found {
            Some(e) => Ok(e.clone()),
            None if all.is_empty() => Err(RegistryError::None),
            None => Err(RegistryError::Unknown {
                name: name.unwrap_or(DEFAULT_NAME).to_owned(),
                known: all
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.state_dir.join("keys").join(format!("{name}.key"))
    }

    /// Stores a passphrase. An existing key file is never replaced: if it holds the same
    /// passphrase nothing is written (`Ok(false)`), otherwise this is an error. `Ok(true)` when
    /// the file was created.
    fn write_key(&self, path: &Path, password: &[u8]) -> Result<bool, RegistryError> {
        let err = |action| {
            move |source| RegistryError::KeyFile {
                action,
                path: path.to_owned(),
                source,
            }
        };
        if path.exists() {
            let existing = std::fs::read(path).map_err(err("read"))?;
            if existing == password {
                return Ok(false);
            }
            return Err(RegistryError::KeyFileTaken {
                path: path.to_owned(),
            });
        }
        write_new_durably(path, password)
            .map_err(|(action, source)| RegistryError::KeyFile {
                action,
                path: path.to_owned(),
                source,
            })
            .map(|()| true)
            .or_else(|e| match &e {
                // Another writer got there first: the same rule as above decides.
                RegistryError::KeyFile { source, .. }
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    match std::fs::read(path) {
                        Ok(existing) if existing == password => Ok(false),
                        _ => Err(RegistryError::KeyFileTaken {
                            path: path.to_owned(),
                        }),
                    }
                }
                _ => Err(e),
            })
    }

    /// Records an opened repository (the first one becomes the default) and caches it.
    fn register(
        &self,
        name: &str,
        location: &Location,
        key_file: PathBuf,
        repo: Repository,
    ) -> Result<RepoEntry, RegistryError> {
        let all = self.list_now()?;
        // A replaced (missing) repository keeps its place as the default.
        let is_default = match all.iter().find(|e| e.name == name) {
            Some(old) => old.is_default,
            None => all.is_empty(),
        };
        let entry = RepoEntry {
            name: name.to_owned(),
            location: location.clone(),
            key_file,
            is_default,
            password_command: None,
        };
        self.persist(&entry)?;
        self.cache(name, repo);
        self.alerts.clear(&alert_key(name));
        Ok(entry)
    }

    fn persist(&self, entry: &RepoEntry) -> Result<(), RegistryError> {
        let tree = self.state.tree(TREE)?;
        let bytes = record::encode(entry)?;
        tree.insert(entry.name.as_bytes(), bytes)
            .map_err(|source| StateError::Write {
                path: self.state.path().to_owned(),
                source,
            })?;
        self.state.flush_blocking()?;
        Ok(())
    }

    /// Name and location checks, and no entry of that name at all.
    fn check_new_name(&self, name: &str, location: &Location) -> Result<(), RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_owned()));
        }
        location.validate()?;
        if let Some(e) = self.list_now()?.into_iter().find(|e| e.name == name) {
            return Err(RegistryError::Exists {
                name: name.to_owned(),
                path: e.location.to_string(),
            });
        }
        Ok(())
    }

    /// Refuses a second name for one repository: two names would mean two catalogs, two key
    /// files and two sets of jobs for the same data. Another entry at the same location, or
    /// whose repository has the same id, is that repository (a missing one is compared by
    /// location only).
    fn check_not_registered(
        &self,
        name: &str,
        location: &Location,
        id: &str,
    ) -> Result<(), RegistryError> {
        for e in self.list_now()?.into_iter().filter(|e| e.name != name) {
            let same = e.location.same_place(location)
                || super::read_config(e.location.open_backend().as_ref()).is_ok_and(|c| c.id == id);
            if same {
                return Err(RegistryError::SameRepository {
                    existing: e.name,
                    location: location.to_string(),
                    id: id.to_owned(),
                });
            }
        }
        Ok(())
    }

    fn check_new(&self, name: &str, location: &Location) -> Result<(), RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_owned()));
        }
        location.validate()?;
        if let Some(e) = self.list_now()?.into_iter().find(|e| e.name == name) {
            // A registered repository that is gone may be replaced: that is the admin's
            // decision this command expresses (see the module doc).
            if !startup::is_missing(&e.location) {
                return Err(RegistryError::Exists {
                    name: name.to_owned(),
                    path: e.location.to_string(),
                });
            }
            tracing::warn!(name, old = %e.location, new = %location, "replacing the registration of a missing repository");
        }
        Ok(())
    }

    /// Creates a repository in the directory `path`; without a password a random one is
    /// generated and kept.
    pub fn init(
        &self,
        name: &str,
        path: &Path,
        password: Option<&[u8]>,
    ) -> Result<RepoEntry, RegistryError> {
        self.wait_settled();
        self.init_now(name, &Location::local(path), password)
    }

    /// Creates a repository at `location` (a directory or an object store). `credentials`
    /// (an AWS credentials file's text) are stored 0600 beside the passphrases and the
    /// location refers to them by name.
    pub fn init_at(
        &self,
        name: &str,
        location: &Location,
        password: Option<&[u8]>,
        credentials: Option<&[u8]>,
    ) -> Result<RepoEntry, RegistryError> {
        self.wait_settled();
        let (location, created) = self.with_credentials(name, location, credentials)?;
        let entry = self.init_now(name, &location, password);
        forget_created_on_error(&entry, created);
        entry
    }

    /// Registers the existing repository at `location`; see [`Self::init_at`].
    pub fn add_at(
        &self,
        name: &str,
        location: &Location,
        password: &[u8],
        credentials: Option<&[u8]>,
    ) -> Result<RepoEntry, RegistryError> {
        self.wait_settled();
        let (location, created) = self.with_credentials(name, location, credentials)?;
        let entry = self.add_now(name, &location, password);
        forget_created_on_error(&entry, created);
        entry
    }

    /// The location to register: with the given credentials stored and named in it (and the
    /// stored file, if created now).
    fn with_credentials(
        &self,
        name: &str,
        location: &Location,
        credentials: Option<&[u8]>,
    ) -> Result<(Location, Option<PathBuf>), RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_owned()));
        }
        credentials::attach(&self.state_dir.join("keys"), name, location, credentials)
    }

    /// Creates a replica of the registered repository `source` at `location` (a directory, or
    /// an object store reached with the daemon's own credentials; docs/FORMAT.md, "Replicas");
    /// without a password a random one is generated and kept.
    pub fn init_replica(
        &self,
        name: &str,
        location: &Location,
        password: Option<&[u8]>,
        source: &str,
        own_data_key: bool,
    ) -> Result<RepoEntry, RegistryError> {
        self.wait_settled();
        let (_, src) = self.open(Some(source))?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        self.init_now_with(name, location, password, |backend, password| {
            Repository::init_replica_on(
                backend,
                password,
                Argon2Params::recommended(),
                &src,
                own_data_key,
            )
        })
    }

    fn init_now_locked(
        &self,
        name: &str,
        location: &Location,
        password: Option<&[u8]>,
    ) -> Result<RepoEntry, RegistryError> {
        self.init_now_with(name, location, password, |backend, password| {
            Repository::init_on(backend, password, Argon2Params::recommended())
        })
    }

    fn init_now_with(
        &self,
        name: &str,
        location: &Location,
        password: Option<&[u8]>,
        create: impl FnOnce(
            Arc<dyn crate::repo::backend::Backend>,
            &[u8],
        ) -> crate::repo::Result<Repository>,
    ) -> Result<RepoEntry, RegistryError> {
        self.check_new(name, location)?;
        let key_file = self.key_path(name);
        let generated;
        let password = match password {
            Some(p) => p,
            // The key file of a repository that went missing is kept, never replaced: it
            // would be the only way into the old repository if it comes back. The new one
            // shares its passphrase (not its keys).
            None if key_file.exists() => {
                generated = password::read_file(&key_file)?;
                &generated
            }
            None => {
                generated = hex::encode(rand::random::<[u8; 32]>()).into_bytes();
                &generated
            }
        };
        // The key is stored first: a repository whose passphrase was lost is lost.
        let created = self.write_key(&key_file, password)?;
        let backend = location.open_backend();
        let repo = match create(backend, password) {
            Ok(r) => r,
            Err(e) => {
                if created {
                    let _ = std::fs::remove_file(&key_file);
                }
                return Err(e.into());
            }
        };
        self.register(name, location, key_file, repo)
    }

    /// Registers the existing repository in the directory `path` after proving the password
    /// opens it.
    pub fn add(
        &self,
        name: &str,
        path: &Path,
        password: &[u8],
    ) -> Result<RepoEntry, RegistryError> {
        self.wait_settled();
        self.add_now(name, &Location::local(path), password)
    }

    fn add_now_locked(
        &self,
        name: &str,
        location: &Location,
        password: &[u8],
    ) -> Result<RepoEntry, RegistryError> {
        self.check_new(name, location)?;
        let repo = Repository::open_on(location.open_backend(), password)?;
        self.check_not_registered(name, location, &repo.config().id)?;
        let key_file = self.key_path(name);
        self.write_key(&key_file, password)?;
        self.register(name, location, key_file, repo)
    }

    fn init_now(
        &self,
        name: &str,
        location: &Location,
        password: Option<&[u8]>,
    ) -> Result<RepoEntry, RegistryError> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        self.init_now_locked(name, location, password)
    }

    fn add_now(
        &self,
        name: &str,
        location: &Location,
        password: &[u8],
    ) -> Result<RepoEntry, RegistryError> {
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        self.add_now_locked(name, location, password)
    }

    fn cache(&self, name: &str, repo: Repository) -> Arc<Repository> {
        crate::state::catalog::attach(&self.state, &repo);
        let repo = Arc::new(repo);
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), repo.clone());
        repo
    }

    /// The passphrase of a repository, for `repo key export`.
    pub fn export(&self, name: &str) -> Result<(RepoEntry, Vec<u8>), RegistryError> {
        let entry = self.entry(Some(name))?;
        let password = password::read(&entry)?;
        Ok((entry, password))
    }

    /// Opens (or returns the cached) repository; `None` means the default one.
    pub fn open(&self, name: Option<&str>) -> Result<(RepoEntry, Arc<Repository>), RegistryError> {
        let entry = self.entry(name)?;
        let backend = entry.location.open_backend();
        if backend.presence().map_err(RepoError::from)? == Presence::Absent {
            // Forget the open handle: what comes back at that location is opened afresh.
            self.forget(&entry.name);
            self.alert_missing(&entry);
            return Err(RepoError::Unreachable {
                location: entry.location,
            }
            .into());
        }
        if let Some(r) = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&entry.name)
        {
            return Ok((entry, r.clone()));
        }
        let password = password::read(&entry)?;
        let repo = Repository::open_on(backend, &password)?;
        let repo = self.cache(&entry.name, repo);
        self.alerts.clear(&alert_key(&entry.name));
        Ok((entry, repo))
    }

    /// Drops the cached handle of a repository (its registration changed or it vanished).
    pub(crate) fn forget(&self, name: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_init_never_replaces_or_deletes_an_existing_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(&dir.path().join("state")).expect("state");
        let registry = Registry::new(state, &dir.path().join("state"), Arc::default());
        registry.mark_settled();
        let key = registry.key_path("foo");
        std::fs::create_dir_all(key.parent().expect("dir")).expect("mkdir");
        std::fs::write(&key, b"the only copy").expect("key");
        let occupied = dir.path().join("occupied");
        std::fs::create_dir(&occupied).expect("mkdir");
        std::fs::write(occupied.join("x"), b"x").expect("file");
        assert!(registry.init("foo", &occupied, Some(b"other")).is_err());
        assert_eq!(std::fs::read(&key).expect("key kept"), b"the only copy");
        // Same passphrase: the key file is reused, and a failing init leaves it alone.
        assert!(registry
            .init("foo", &occupied, Some(b"the only copy"))
            .is_err());
        assert_eq!(std::fs::read(&key).expect("key kept"), b"the only copy");
    }

    #[test]
    fn key_files_are_written_whole_under_their_name_and_never_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        let state = State::open(&state_dir).expect("state");
        let registry = Registry::new(state, &state_dir, Arc::default());
        registry.mark_settled();
        // What a power loss in the middle of an earlier attempt leaves behind: a torn temp file.
        let keys = state_dir.join("keys");
        std::fs::create_dir_all(&keys).expect("mkdir");
        std::fs::write(keys.join(".tmp-a.key-00000000000000aa"), b"tor").expect("temp");
        let entry = registry
            .init("a", &dir.path().join("repo-a"), None)
            .expect("init");
        let key = std::fs::read(&entry.key_file).expect("key file");
        assert_eq!(key.len(), 64, "the whole generated passphrase");
        let mode = std::fs::metadata(&entry.key_file)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<String> = std::fs::read_dir(&keys)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "the new key file and the old temp file only: {names:?}"
        );
        // Written once: a second writer with another passphrase is refused, the first kept.
        let e = registry
            .write_key(&entry.key_file, b"another")
            .expect_err("never replaced");
        assert!(e.to_string().contains("another passphrase"), "{e}");
        assert_eq!(std::fs::read(&entry.key_file).expect("kept"), key);
        assert!(!registry
            .write_key(&entry.key_file, &key)
            .expect("same passphrase"));
        // A lost keys directory is created again, with the key inside.
        std::fs::remove_dir_all(&keys).expect("rm keys");
        assert!(registry
            .write_key(&keys.join("b.key"), b"pw")
            .expect("created"));
        assert_eq!(std::fs::read(keys.join("b.key")).expect("read"), b"pw");
    }

    /// A tmpfs of `size`, unmounted on drop (tests run as root, also in CI).
    struct SmallFs(PathBuf);

    impl SmallFs {
        fn mount(dir: &Path, size: &str) -> Self {
            std::fs::create_dir_all(dir).expect("mkdir");
            let st = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir)
                .status()
                .expect("mount");
            assert!(
                st.success(),
                "mount tmpfs on {} (needs root)",
                dir.display()
            );
            Self(dir.to_owned())
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    #[test]
    fn a_key_file_that_cannot_be_written_whole_is_not_left_half_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        let state = State::open(&state_dir).expect("state");
        let registry = Registry::new(state, &state_dir, Arc::default());
        registry.mark_settled();
        let keys = state_dir.join("keys");
        let _fs = SmallFs::mount(&keys, "4k");
        // Fill the file system: the next data block written fails with ENOSPC.
        let _ = std::fs::write(keys.join("filler"), vec![1u8; 64 * 1024]);
        let key = keys.join("full.key");
        let e = registry
            .write_key(&key, b"passphrase")
            .expect_err("disk is full");
        assert!(e.to_string().contains(&keys.display().to_string()), "{e}");
        assert!(
            !key.exists(),
            "no empty or torn key file under the real name"
        );
        std::fs::remove_file(keys.join("filler")).expect("free space");
        assert!(registry.write_key(&key, b"passphrase").expect("retry"));
        assert_eq!(std::fs::read(&key).expect("read"), b"passphrase");
    }
}
