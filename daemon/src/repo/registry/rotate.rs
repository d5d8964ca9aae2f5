//! `repo key rotate`, `repo key list` and `repo key remove`: data-key versions and the
//! passphrases' key files of a registered repository.
//!
//! A rotation adds a data-key version and rewrites every key file with the new ring, in an
//! order where a crash at any point leaves key files the daemon's passphrase opens:
//! 1. under the repository's exclusive lock, the newest ring is read and rotated (generation
//!    + 1);
//! 2. each passphrase's new key file is written beside the old one (put-if-absent): v2 files
//!    keep their wrapped part, so no passphrase is needed; v1 files the daemon's passphrase
//!    opens are written anew as v2; v1 files of other passphrases cannot be rewritten and stay
//!    (they still lead to the newest ring, see `keyring`);
//! 3. the old files are deleted and the cached repository dropped, so the next job opens the
//!    new generation and seals with the new version.
//!
//! Until 3 two generations exist; an open picks the newest (`keyring::load`). No object is
//! sealed with the new version before every new key file exists.
//!
//! Blocking: Argon2id for v1 files and for `remove`'s passphrase check, disk.

use super::keys::KeyChangeOutcome;
use super::{password, Registry, RegistryError, RepoEntry};
use crate::repo::keyfile::{manage, Argon2Params, KeyFileError};
use crate::repo::keyring::Loaded;
use crate::repo::lock::LockMode;
use crate::repo::{now_ns, RepoError, Repository};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a rotation waits for running jobs to release the repository.
const ROTATE_WAIT: Duration = Duration::from_secs(120);

/// What a rotation did.
#[derive(Debug)]
pub struct RotateOutcome {
    pub entry: RepoEntry,
    pub previous: u32,
    pub version: u32,
    pub generation: u64,
    /// Key files written (names).
    pub written: Vec<String>,
    /// Key files replaced by them and deleted.
    pub removed: Vec<String>,
    /// Version 1 key files of other passphrases, left as they are.
    pub kept_v1: Vec<String>,
}

impl Registry {
    /// Adds a data-key version to repository `name` (`None`: the default) and makes it current.
    pub fn key_rotate(
        &self,
        name: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<RotateOutcome, RegistryError> {
        let (entry, repo) = self.open(name)?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let _lock = repo.lock_waiting(LockMode::Exclusive, "key rotate", ROTATE_WAIT, cancel)?;
        let loaded = repo.key_ring()?;
        let next = loaded.ring.rotated(now_ns());
        let password = password::read(&entry)?;
        let mut written = Vec::new();
        let mut replaced_v1 = Vec::new();
        let mut kept_v1 = Vec::new();
        for f in loaded.files.iter().filter(|f| f.generation.is_none()) {
            match f.file.unwrap_keys(&password) {
                Ok(_) => {
                    if replaced_v1.is_empty() {
                        written.push(manage::put(
                            &repo,
                            &next,
                            &password,
                            Argon2Params::recommended(),
                        )?);
                    }
                    replaced_v1.push(f.name.clone());
                }
                Err(KeyFileError::WrongPassword) => kept_v1.push(f.name.clone()),
                Err(e) => return Err(key_error(&repo, &f.name, e).into()),
            }
        }
        let (rewritten, mut removed) = manage::rewrite_rings(&repo, &loaded, &next)?;
        written.extend(rewritten);
        for name in &replaced_v1 {
            manage::remove(&repo, name)?;
        }
        removed.extend(replaced_v1);
        self.forget(&entry.name);
        for name in &kept_v1 {
            tracing::warn!(repo = %entry.name, key = %name, "a version 1 key file of another passphrase was not rewritten; add that passphrase again with `backupctl repo key add` and remove this file with `backupctl repo key remove`");
        }
        tracing::info!(repo = %entry.name, version = next.current, generation = next.generation, key_files = written.len(), "data key rotated");
        Ok(RotateOutcome {
            entry,
            previous: loaded.ring.current,
            version: next.current,
            generation: next.generation,
            written,
            removed,
            kept_v1,
        })
    }

    /// Destroys the key material of data-key versions `versions` (never the current one) in
    /// every key file of repository `name`: the crypto-shredding step after a re-encryption left
    /// nothing sealed by them. Refused while a version 1 key file of another passphrase still
    /// holds version 1. Returns the versions retired now (already retired ones are skipped).
    pub fn key_retire(
        &self,
        name: Option<&str>,
        versions: &[u32],
        cancel: &CancellationToken,
    ) -> Result<RetireOutcome, RegistryError> {
        let (entry, repo) = self.open(name)?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let _lock = repo.lock_waiting(LockMode::Exclusive, "key retire", ROTATE_WAIT, cancel)?;
        let loaded = repo.key_ring()?;
        let retiring: Vec<u32> = loaded
            .ring
            .versions
            .iter()
            .filter(|v| {
                v.key.is_some() && v.version != loaded.ring.current && versions.contains(&v.version)
            })
            .map(|v| v.version)
            .collect();
        if retiring.is_empty() {
            // A retirement that crashed after writing the new generation left older copies,
            // which still hold the keys: finish it.
            let newest = loaded.ring.generation;
            let stale = loaded
                .files
                .iter()
                .any(|f| f.generation.is_some_and(|g| g < newest));
            let (written, removed) = if stale {
                let done = manage::rewrite_rings(&repo, &loaded, &loaded.ring)?;
                self.forget(&entry.name);
                done
            } else {
                Default::default()
            };
            return Ok(RetireOutcome {
                entry,
                retired: Vec::new(),
                written,
                removed,
            });
        }
        let v1_files: Vec<&str> = loaded
            .files
            .iter()
            .filter(|f| f.generation.is_none())
            .map(|f| f.name.as_str())
            .collect();
        if retiring.contains(&1) && !v1_files.is_empty() {
            return Err(RegistryError::KeyStillHeld {
                name: entry.name,
                files: v1_files.join(", "),
            });
        }
        let next = loaded.ring.retired(&retiring);
        let (written, removed) = manage::rewrite_rings(&repo, &loaded, &next)?;
        self.forget(&entry.name);
        tracing::info!(repo = %entry.name, versions = ?retiring, generation = next.generation, "data-key versions retired: their key material is destroyed");
        Ok(RetireOutcome {
            entry,
            retired: retiring,
            written,
            removed,
        })
    }

    /// The key files and the newest key ring of repository `name`.
    pub fn key_files(
        &self,
        name: Option<&str>,
    ) -> Result<(RepoEntry, Arc<Repository>, Loaded), RegistryError> {
        let (entry, repo) = self.open(name)?;
        let loaded = repo.key_ring()?;
        Ok((entry, repo, loaded))
    }

    /// Removes the key file whose name starts with `id` (and stale copies of it), never the
    /// last passphrase and never the only file the daemon's passphrase opens.
    pub fn key_remove(
        &self,
        name: Option<&str>,
        id: &str,
    ) -> Result<KeyChangeOutcome, RegistryError> {
        let (entry, repo) = self.open(name)?;
        let _one = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let loaded = repo.key_ring()?;
        let matching: Vec<_> = loaded
            .files
            .iter()
            .filter(|f| !id.is_empty() && f.name.starts_with(id))
            .collect();
        let target = match matching.as_slice() {
            [one] => *one,
            [] => {
                return Err(RegistryError::KeyNotFound {
                    name: entry.name,
                    id: id.to_owned(),
                })
            }
            many => {
                return Err(RegistryError::KeyAmbiguous {
                    name: entry.name,
                    id: id.to_owned(),
                    count: many.len(),
                })
            }
        };
        // Other passphrases: a stale copy of the same wrapped key is the same passphrase.
        let others: Vec<_> = loaded
            .files
            .iter()
            .filter(|f| f.file.wrapped != target.file.wrapped)
            .collect();
        if others.is_empty() {
            return Err(RegistryError::LastKey {
                name: entry.name,
                id: target.name.clone(),
            });
        }
        let password = password::read(&entry)?;
        if target.file.unwrap_keys(&password).is_ok()
            && !others.iter().any(|f| f.file.unwrap_keys(&password).is_ok())
        {
            return Err(RegistryError::DaemonKey {
                name: entry.name,
                id: target.name.clone(),
            });
        }
        let mut removed = Vec::new();
        for f in loaded
            .files
            .iter()
            .filter(|f| f.file.wrapped == target.file.wrapped)
        {
            manage::remove(&repo, &f.name)?;
            removed.push(f.name.clone());
        }
        tracing::info!(repo = %entry.name, key = %target.name, "key file removed from the repository");
        Ok(KeyChangeOutcome {
            key_files: manage::count(&repo)?,
            entry,
            added: String::new(),
            removed,
        })
    }
}

/// What a retirement did.
#[derive(Debug)]
pub struct RetireOutcome {
    pub entry: RepoEntry,
    pub retired: Vec<u32>,
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

fn key_error(repo: &Repository, name: &str, source: KeyFileError) -> RepoError {
    RepoError::KeyFile {
        location: repo.location().clone(),
        name: name.to_owned(),
        source,
    }
}
