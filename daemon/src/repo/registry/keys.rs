//! `repo key add` and `repo key passwd`: more passphrases for a repository, and changing the
//! one the daemon uses. The key file format does not change: each passphrase has its own key
//! file in the repository (docs/FORMAT.md, "Key files"), all wrapping the same master keys.
//!
//! Changing the daemon's passphrase runs in an order where a crash at any point leaves a
//! passphrase that opens the repository in the daemon's key file:
//! 1. a key file for the new passphrase is written into the repository;
//! 2. the daemon's key file is replaced atomically (temp file, fsync, rename, fsync dir);
//! 3. the repository's key files the old passphrase opens are deleted.
//!
//! Until 3 both passphrases open it; after 3 only the new one does.
//!
//! Blocking: Argon2id for every key file tried, disk.

use super::{password, Registry, RegistryError, RepoEntry};
use crate::repo::keyfile::{manage, Argon2Params};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a key change did.
#[derive(Debug)]
pub struct KeyChangeOutcome {
    pub entry: RepoEntry,
    pub added: String,
    pub removed: Vec<String>,
    pub key_files: usize,
}

/// Replaces `path` with `data`: temp file in the same directory (mode 0600), fsync, rename
/// over the old one, fsync the directory. A crash leaves the old file or the new one, whole.
fn replace_durably(path: &Path, data: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".tmp-{name}-{:016x}", rand::random::<u64>()));
    let err = |action| {
        move |source| RegistryError::KeyFile {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(err("create a temp file for"))?;
        f.write_all(data).map_err(err("write"))?;
        f.sync_all().map_err(err("fsync"))?;
        std::fs::rename(&temp, path).map_err(err("rename into place"))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    super::sync_dir(dir).map_err(err("fsync the directory of"))
}

impl Registry {
    /// Adds a key file for `password` to the repository `name` (`None`: the default). The
    /// daemon keeps using its own passphrase.
    pub fn key_add(
        &self,
        name: Option<&str>,
        password: &[u8],
    ) -> Result<KeyChangeOutcome, RegistryError> {
        let (entry, repo) = self.open(name)?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let added = manage::add(&repo, password, Argon2Params::recommended())?;
        tracing::info!(name = %entry.name, key = %added, "key file added to the repository");
        Ok(KeyChangeOutcome {
            key_files: manage::count(&repo)?,
            entry,
            added,
            removed: Vec::new(),
        })
    }

    /// Replaces the passphrase the daemon uses for `name` with `new` (see the module doc).
    pub fn key_passwd(
        &self,
        name: Option<&str>,
        new: &[u8],
    ) -> Result<KeyChangeOutcome, RegistryError> {
        let (entry, repo) = self.open(name)?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        if entry.password_command.is_some() {
            return Err(RegistryError::PasswordCommand { name: entry.name });
        }
        let old = password::read(&entry)?;
        if old == new {
            return Err(RegistryError::SamePassphrase { name: entry.name });
        }
        let old_keys = manage::opened_by(&repo, &old)?;
        let added = manage::add(&repo, new, Argon2Params::recommended())?;
        replace_durably(&entry.key_file, new)?;
        for key in &old_keys {
            manage::remove(&repo, key)?;
        }
        tracing::info!(name = %entry.name, added = %added, removed = old_keys.len(), key_file = %entry.key_file.display(), "repository passphrase changed");
        Ok(KeyChangeOutcome {
            key_files: manage::count(&repo)?,
            entry,
            added,
            removed: old_keys,
        })
    }
}
