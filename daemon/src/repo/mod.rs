//! The repository format (docs/FORMAT.md) over a storage backend: config, key files, packs,
//! index, snapshots and locks. Knows nothing of the server or of how backups walk a tree; the
//! `engine` builds operations on top of [`Repository`].
//!
//! All functions block (disk I/O, crypto); async callers run them in `spawn_blocking`.

pub mod backend;
pub mod crypto;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod pack;
pub mod registry;
pub mod snapshot;
pub mod tree;

use backend::{BackendError, FileKind, LocalBackend};
use backupd_common::ids::{BlobId, IndexId, PackId, SnapshotId};
use crypto::MasterKeys;
use index::{Index, IndexFile, IndexedPack};
use keyfile::{Argon2Params, KeyFile, KeyFileError};
use pack::{BlobKind, PackEntry, PackError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use snapshot::Snapshot;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use tree::Tree;

/// Version of the on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub const FORMAT_NAME: &str = "backupd-repository";

pub const CHUNK_MIN: u32 = 512 * 1024;
pub const CHUNK_AVG: u32 = 1024 * 1024;
pub const CHUNK_MAX: u32 = 8 * 1024 * 1024;

/// How long an operation waits for a conflicting lock before giving up with `Busy`.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Most blob entries one index file holds (about 5 MiB sealed).
pub const INDEX_FILE_BLOBS: usize = 100_000;

/// Upper bound for decoding sealed metadata objects (trees, snapshots, index files).
const METADATA_LIMIT: usize = 512 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    /// Random repository id (hex).
    pub id: String,
    pub created: String,
    pub chunk_min: u32,
    pub chunk_avg: u32,
    pub chunk_max: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path} already holds files; a new repository needs an empty or missing directory")]
    NotEmpty { path: PathBuf },
    #[error("{path} is not a backupd repository (no readable config file): {reason}")]
    NotARepository { path: PathBuf, reason: String },
    #[error(
        "{path} has repository format version {found}; this backupd reads version {FORMAT_VERSION}"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("wrong password for repository {path}: none of its key files opens with it")]
    WrongPassword { path: PathBuf },
    #[error("repository {path} has no key files")]
    NoKeys { path: PathBuf },
    #[error("key file {name} in {path}: {source}")]
    KeyFile {
        path: PathBuf,
        name: String,
        #[source]
        source: KeyFileError,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("blob {id} is not in the index; run `backupctl repo check`")]
    MissingBlob { id: BlobId },
    #[error("blob {id} in pack {pack}: {source}")]
    DamagedBlob {
        id: BlobId,
        pack: PackId,
        #[source]
        source: Box<pack::BlobError>,
    },
    #[error("pack {pack}: {source}")]
    DamagedPack {
        pack: PackId,
        #[source]
        source: Box<PackError>,
    },
    #[error("{what} {name}: cannot decode: {reason}")]
    Corrupt {
        what: &'static str,
        name: String,
        reason: String,
    },
    #[error("snapshot {prefix:?} not found")]
    SnapshotNotFound { prefix: String },
    #[error("snapshot prefix {prefix:?} is ambiguous; give more digits")]
    AmbiguousSnapshot { prefix: String },
}

impl RepoError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Lock(lock::LockError::Busy { .. }) => true,
            Self::Backend(e) => !e.is_not_found(),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, RepoError>;

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// UTC timestamp in RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    format_rfc3339(now_ns())
}

pub fn format_rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 in hex: the name a pack, index or snapshot file must have.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

fn decode_sealed<T: serde::de::DeserializeOwned>(
    keys: &MasterKeys,
    sealed: &[u8],
    what: &'static str,
    name: &str,
) -> Result<T> {
    let corrupt = |reason: String| RepoError::Corrupt {
        what,
        name: name.to_owned(),
        reason,
    };
    let plain = keys.open(sealed).map_err(|e| corrupt(e.to_string()))?;
    let (value, _) = bincode::serde::decode_from_slice(
        &plain,
        bincode::config::standard().with_limit::<METADATA_LIMIT>(),
    )
    .map_err(|e| corrupt(e.to_string()))?;
    Ok(value)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .unwrap_or_else(|_| unreachable!("repository types always encode"))
}

/// An open repository: keys unlocked, index loaded.
#[derive(Debug)]
pub struct Repository {
    backend: LocalBackend,
    config: RepoConfig,
    keys: MasterKeys,
    index: RwLock<Index>,
}

impl Repository {
    /// Creates a repository at `path` (missing or empty directory) protected by `password`.
    pub fn init(path: &Path, password: &[u8]) -> Result<Self> {
        Self::init_with(path, password, Argon2Params::recommended())
    }

    pub fn init_with(path: &Path, password: &[u8], kdf: Argon2Params) -> Result<Self> {
        if path.exists() {
            let mut entries = std::fs::read_dir(path).map_err(|source| BackendError {
                action: "list",
                path: path.to_owned(),
                source,
            })?;
            if entries.next().is_some() {
                return Err(RepoError::NotEmpty {
                    path: path.to_owned(),
                });
            }
        }
        let backend = LocalBackend::new(path);
        backend.create_layout()?;
        let keys = MasterKeys::generate();
        let keyfile = KeyFile::wrap(&keys, password, kdf).map_err(|source| RepoError::KeyFile {
            path: path.to_owned(),
            name: "(new)".into(),
            source,
        })?;
        let key_json = keyfile.to_json();
        backend.write(FileKind::Key, &hex::encode(sha256(&key_json)), &key_json)?;
        let config = RepoConfig {
            format: FORMAT_NAME.to_owned(),
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            created: now_rfc3339(),
            chunk_min: CHUNK_MIN,
            chunk_avg: CHUNK_AVG,
            chunk_max: CHUNK_MAX,
        };
        // The config goes last: a directory without it is not (yet) a repository.
        let config_json = serde_json::to_vec_pretty(&config).unwrap_or_default();
        backend.write(FileKind::Config, "config", &config_json)?;
        Ok(Self {
            backend,
            config,
            keys,
            index: RwLock::new(Index::default()),
        })
    }

    /// Opens an existing repository: reads its config, unlocks a key file with `password`
    /// (nothing is written), loads the index.
    pub fn open(path: &Path, password: &[u8]) -> Result<Self> {
        let backend = LocalBackend::new(path);
        let config = read_config(&backend)?;
        let names = backend.list(FileKind::Key)?;
        if names.is_empty() {
            return Err(RepoError::NoKeys {
                path: path.to_owned(),
            });
        }
        let mut keys = None;
        for name in names {
            let bytes = backend.read(FileKind::Key, &name)?;
            let file = KeyFile::parse(&bytes).map_err(|source| RepoError::KeyFile {
                path: path.to_owned(),
                name: name.clone(),
                source,
            })?;
            match file.unwrap_keys(password) {
                Ok(k) => {
                    keys = Some(k);
                    break;
                }
                Err(KeyFileError::WrongPassword) => continue,
                Err(source) => {
                    return Err(RepoError::KeyFile {
                        path: path.to_owned(),
                        name,
                        source,
                    })
                }
            }
        }
        let keys = keys.ok_or_else(|| RepoError::WrongPassword {
            path: path.to_owned(),
        })?;
        let repo = Self {
            backend,
            config,
            keys,
            index: RwLock::new(Index::default()),
        };
        repo.reload_index()?;
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        self.backend.root()
    }

    pub fn backend(&self) -> &LocalBackend {
        &self.backend
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    /// Reads every index file into a fresh in-memory index. Index files superseded by another
    /// (prune crashed before deleting them) are skipped.
    pub fn reload_index(&self) -> Result<()> {
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        for name in self.backend.list(FileKind::Index)? {
            let Some(id) = IndexId::from_hex(&name) else {
                continue;
            };
            // A damaged index file must not make the repository unusable: its packs are still
            // there, `check` names it and `rebuild-index` recovers from the packs alone.
            let loaded = self
                .backend
                .read(FileKind::Index, &name)
                .map_err(RepoError::from)
                .and_then(|bytes| {
                    decode_sealed::<IndexFile>(&self.keys, &bytes, "index file", &name)
                });
            match loaded {
                Ok(file) => files.push((id, file)),
                Err(e) => {
                    tracing::warn!(index = %name, error = %e, "skipping unreadable index file; run `backupctl repo rebuild-index`");
                    unreadable.push((name, e.to_string()));
                }
            }
        }
        let superseded: HashSet<IndexId> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut index = Index::default();
        for (id, file) in &files {
            if !superseded.contains(id) {
                index.add_file(*id, file);
            }
        }
        index.set_unreadable(unreadable);
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(())
    }

    /// Brings the in-memory index up to date with the repository: loads index files written
    /// since (by other processes), or reloads everything if one was removed (a prune ran).
    pub fn refresh_index(&self) -> Result<()> {
        let on_disk: HashSet<IndexId> = self
            .backend
            .list(FileKind::Index)?
            .iter()
            .filter_map(|n| IndexId::from_hex(n))
            .collect();
        let known = self.with_index(|i| i.files().clone());
        if !known.is_subset(&on_disk) {
            return self.reload_index();
        }
        for id in on_disk.difference(&known) {
            let name = id.to_hex();
            let loaded = self
                .backend
                .read(FileKind::Index, &name)
                .map_err(RepoError::from)
                .and_then(|bytes| {
                    decode_sealed::<IndexFile>(&self.keys, &bytes, "index file", &name)
                });
            // Superseding or unreadable files: the full reload sorts them out.
            let Ok(file) = loaded else {
                return self.reload_index();
            };
            if !file.supersedes.is_empty() {
                return self.reload_index();
            }
            self.index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .add_file(*id, &file);
        }
        Ok(())
    }

    pub fn with_index<R>(&self, f: impl FnOnce(&Index) -> R) -> R {
        f(&self.index.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn has_blob(&self, id: &BlobId) -> bool {
        self.with_index(|i| i.contains(id))
    }

    /// Reads, decrypts, decompresses and verifies one blob.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self
            .with_index(|i| i.get(id).copied())
            .ok_or(RepoError::MissingBlob { id: *id })?;
        let sealed = self.backend.read_range(
            FileKind::Pack,
            &loc.pack.to_hex(),
            loc.offset as u64,
            loc.length as usize,
        )?;
        pack::decode_blob(&self.keys, &sealed, *id, loc.raw_length).map_err(|source| {
            RepoError::DamagedBlob {
                id: *id,
                pack: loc.pack,
                source: Box::new(source),
            }
        })
    }

    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        bincode::serde::decode_from_slice(
            &bytes,
            bincode::config::standard().with_limit::<METADATA_LIMIT>(),
        )
        .map(|(t, _)| t)
        .map_err(|e| RepoError::Corrupt {
            what: "tree",
            name: id.to_hex(),
            reason: e.to_string(),
        })
    }

    /// Verifies a finished pack and writes it. Its blobs become visible (and usable for dedup)
    /// only once an index file names the pack: a pack of a failed backup must never be relied on.
    pub fn write_pack(&self, bytes: &[u8], entries: &[PackEntry]) -> Result<PackId> {
        let id = PackId(sha256(bytes));
        pack::verify(&self.keys, bytes, entries).map_err(|source| RepoError::DamagedPack {
            pack: id,
            source: Box::new(source),
        })?;
        self.backend.write(FileKind::Pack, &id.to_hex(), bytes)?;
        Ok(id)
    }

    /// Writes index files covering `packs` (split so that no file grows past
    /// [`INDEX_FILE_BLOBS`] entries); the last one carries `supersedes`.
    pub fn write_index(
        &self,
        packs: Vec<IndexedPack>,
        supersedes: Vec<IndexId>,
    ) -> Result<Vec<IndexId>> {
        let mut groups: Vec<Vec<IndexedPack>> = vec![Vec::new()];
        let mut count = 0;
        for pack in packs {
            if count + pack.blobs.len() > INDEX_FILE_BLOBS && count > 0 {
                groups.push(Vec::new());
                count = 0;
            }
            count += pack.blobs.len();
            if let Some(last) = groups.last_mut() {
                last.push(pack);
            }
        }
        let n = groups.len();
        let mut ids = Vec::with_capacity(n);
        for (i, group) in groups.into_iter().enumerate() {
            let file = IndexFile {
                packs: group,
                supersedes: if i + 1 == n {
                    supersedes.clone()
                } else {
                    Vec::new()
                },
            };
            let sealed = self.keys.seal(&encode(&file));
            let id = IndexId(sha256(&sealed));
            self.backend.write(FileKind::Index, &id.to_hex(), &sealed)?;
            self.index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .add_file(id, &file);
            ids.push(id);
        }
        Ok(ids)
    }

    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let sealed = self.keys.seal(&encode(snapshot));
        let id = SnapshotId(sha256(&sealed));
        self.backend
            .write(FileKind::Snapshot, &id.to_hex(), &sealed)?;
        Ok(id)
    }

    pub fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let name = id.to_hex();
        let bytes = self.backend.read(FileKind::Snapshot, &name)?;
        decode_sealed(&self.keys, &bytes, "snapshot", &name)
    }

    /// All readable snapshots, oldest first. An unreadable snapshot file is skipped with a
    /// warning (`check` reports it), so one damaged file never blocks backups and restores.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        self.list_snapshots(false)
    }

    /// All snapshots, failing on the first unreadable one (prune must know every snapshot).
    pub fn snapshots_strict(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        self.list_snapshots(true)
    }

    fn list_snapshots(&self, strict: bool) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut out = Vec::new();
        for name in self.backend.list(FileKind::Snapshot)? {
            let Some(id) = SnapshotId::from_hex(&name) else {
                continue;
            };
            match self.read_snapshot(&id) {
                Ok(s) => out.push((id, s)),
                Err(e) if !strict => {
                    tracing::warn!(snapshot = %name, error = %e, "skipping unreadable snapshot");
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|(id, s)| (s.time_ns, *id));
        Ok(out)
    }

    /// Resolves `latest`, a full id or a unique prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        let all = self.snapshots()?;
        if spec == "latest" {
            return all.into_iter().last().ok_or(RepoError::SnapshotNotFound {
                prefix: spec.to_owned(),
            });
        }
        let mut matches = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(spec));
        match (matches.next(), matches.next()) {
            (Some(m), None) if !spec.is_empty() => Ok(m),
            (Some(_), Some(_)) => Err(RepoError::AmbiguousSnapshot {
                prefix: spec.to_owned(),
            }),
            _ => Err(RepoError::SnapshotNotFound {
                prefix: spec.to_owned(),
            }),
        }
    }

    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        Ok(self.backend.remove(FileKind::Snapshot, &id.to_hex())?)
    }

    pub fn lock(&self, exclusive: bool, purpose: &str) -> Result<lock::LockGuard> {
        Ok(lock::acquire(&self.backend, exclusive, purpose)?)
    }

    /// Takes a lock, waiting up to `max_wait` while a conflicting one is held (a backup waits
    /// for a prune to finish, and the other way round). Gives up early when `cancel` fires.
    pub fn lock_waiting(
        &self,
        exclusive: bool,
        purpose: &str,
        max_wait: std::time::Duration,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<lock::LockGuard> {
        let deadline = std::time::Instant::now() + max_wait;
        let mut logged = false;
        loop {
            match lock::acquire(&self.backend, exclusive, purpose) {
                Err(lock::LockError::Busy { .. })
                    if std::time::Instant::now() < deadline && !cancel.is_cancelled() =>
                {
                    if !logged {
                        tracing::info!(repo = %self.path().display(), purpose, "repository is locked; waiting");
                        logged = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                other => return Ok(other?),
            }
        }
    }

    /// Seals a blob for storage (compress unless it does not pay, then encrypt).
    pub fn encode_blob(&self, data: &[u8], zstd_level: i32) -> Vec<u8> {
        pack::encode_blob(&self.keys, data, zstd_level)
    }

    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        self.keys.blob_id(data)
    }

    /// Serialises a tree and returns its bytes and id.
    pub fn tree_bytes(&self, tree: &Tree) -> (Vec<u8>, BlobId) {
        let bytes = encode(tree);
        let id = self.keys.blob_id(&bytes);
        (bytes, id)
    }

    /// Kind of a blob, if indexed.
    pub fn blob_kind(&self, id: &BlobId) -> Option<BlobKind> {
        self.with_index(|i| i.get(id).map(|l| l.kind))
    }
}

fn read_config(backend: &LocalBackend) -> Result<RepoConfig> {
    let path = backend.root().to_owned();
    let bytes =
        backend
            .read(FileKind::Config, "config")
            .map_err(|e| RepoError::NotARepository {
                path: path.clone(),
                reason: e.to_string(),
            })?;
    let config: RepoConfig =
        serde_json::from_slice(&bytes).map_err(|e| RepoError::NotARepository {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if config.format != FORMAT_NAME {
        return Err(RepoError::NotARepository {
            path,
            reason: format!("format is {:?}", config.format),
        });
    }
    if config.version != FORMAT_VERSION {
        return Err(RepoError::UnsupportedVersion {
            path,
            found: config.version,
        });
    }
    // The config is not authenticated: refuse chunker sizes FastCDC would reject.
    let sizes_ok = (64..=1 << 20).contains(&config.chunk_min)
        && (256..=4 << 20).contains(&config.chunk_avg)
        && (1024..=16 << 20).contains(&config.chunk_max)
        && config.chunk_min <= config.chunk_avg
        && config.chunk_avg <= config.chunk_max;
    if !sizes_ok {
        return Err(RepoError::NotARepository {
            path,
            reason: format!(
                "chunk sizes {}/{}/{} are out of range",
                config.chunk_min, config.chunk_avg, config.chunk_max
            ),
        });
    }
    Ok(config)
}

#[cfg(test)]
pub(crate) fn test_kdf() -> Argon2Params {
    Argon2Params {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
        salt: hex::encode([1u8; 16]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::BlobKind;

    #[test]
    fn init_open_and_wrong_password_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo");
        Repository::init_with(&path, b"pw", test_kdf()).expect("init");
        assert!(matches!(
            Repository::init_with(&path, b"pw", test_kdf()),
            Err(RepoError::NotEmpty { .. })
        ));
        let before = walk(&path);
        assert!(matches!(
            Repository::open(&path, b"nope"),
            Err(RepoError::WrongPassword { .. })
        ));
        assert_eq!(
            walk(&path),
            before,
            "a wrong password must not write anything"
        );
        Repository::open(&path, b"pw").expect("open");
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(p).expect("read_dir").flatten() {
            out.push(e.path());
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn blobs_of_unindexed_packs_are_never_used_for_dedup() {
        // Regression: a failed backup's packs must not satisfy a later backup's dedup check.
        let dir = tempfile::tempdir().expect("tempdir");
        let repo =
            Repository::init_with(&dir.path().join("repo"), b"pw", test_kdf()).expect("init");
        let data = b"some chunk";
        let id = repo.blob_id(data);
        let mut b = pack::PackBuilder::new();
        b.add(id, BlobKind::Data, &repo.encode_blob(data, 1), data.len());
        let (bytes, entries) = b.finish(repo.keys());
        let pack = repo.write_pack(&bytes, &entries).expect("write pack");
        assert!(!repo.has_blob(&id), "pack written but not indexed");
        repo.write_index(
            vec![IndexedPack {
                id: pack,
                blobs: entries,
            }],
            vec![],
        )
        .expect("index");
        assert!(repo.has_blob(&id));
        assert_eq!(repo.read_blob(&id).expect("read"), data);
    }

    #[test]
    fn superseded_index_files_are_ignored_and_refresh_sees_new_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo");
        let a = Repository::init_with(&path, b"pw", test_kdf()).expect("init");
        let b = Repository::open(&path, b"pw").expect("open");
        let data = b"x";
        let id = a.blob_id(data);
        let mut pb = pack::PackBuilder::new();
        pb.add(id, BlobKind::Data, &a.encode_blob(data, 1), 1);
        let (bytes, entries) = pb.finish(a.keys());
        let pack = a.write_pack(&bytes, &entries).expect("pack");
        let first = a
            .write_index(
                vec![IndexedPack {
                    id: pack,
                    blobs: entries.clone(),
                }],
                vec![],
            )
            .expect("index");
        assert!(!b.has_blob(&id));
        b.refresh_index().expect("refresh");
        assert!(
            b.has_blob(&id),
            "refresh loads index files written by others"
        );
        // An index superseding the first, listing nothing: the blob is gone for readers even
        // though the old file is still there.
        a.write_index(vec![], first).expect("superseding index");
        b.refresh_index().expect("refresh");
        assert!(!b.has_blob(&id));
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_700_000_000 * 1_000_000_000),
            "2023-11-14T22:13:20Z"
        );
    }
}
