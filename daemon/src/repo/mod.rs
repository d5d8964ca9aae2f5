//! The repository format (docs/FORMAT.md) over a storage backend: config, key files, packs,
//! index, snapshots and locks. Knows nothing of the server or of how backups walk a tree; the
//! `engine` builds operations on top of [`Repository`].
//!
//! All functions block (disk I/O, crypto); async callers run them in `spawn_blocking`.

pub mod backend;
mod clock;
mod config;
pub mod crypto;
pub mod decode;
mod error;
pub mod index;
pub mod keyfile;
pub mod keyring;
pub mod location;
pub mod lock;
pub mod pack;
pub mod registry;
pub mod sealed_file;
pub mod snapshot;
mod snapshot_file;
pub mod snapshots;
pub mod tree;

use backend::daemon_rights::DaemonRights;
use backend::{Backend, ErrorKind, FileKind, Key, LocalBackend, Presence};
use backupd_common::ids::{BlobId, IndexId, PackId, SnapshotId};
use crypto::{MasterKeys, SealFormat};
use index::{Index, IndexFile, IndexedPack};
use keyfile::{Argon2Params, KeyFile, KeyFileError};
use pack::{BlobKind, PackEntry};
use serde::Serialize;
use sha2::{Digest, Sha256};
use snapshot::Snapshot;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tree::Tree;

/// Version of the on-disk format this build writes for new repositories.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest format version this build still reads and writes (in that version's layout).
pub const MIN_FORMAT_VERSION: u32 = 1;
pub const FORMAT_NAME: &str = "backupd-repository";

pub const CHUNK_MIN: u32 = 512 * 1024;
pub const CHUNK_AVG: u32 = 1024 * 1024;
pub const CHUNK_MAX: u32 = 8 * 1024 * 1024;

/// How long an operation waits for a conflicting lock before giving up with `Busy`.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Most blob entries one index file holds (about 5 MiB sealed).
pub const INDEX_FILE_BLOBS: usize = 100_000;

/// Upper bound for decoding sealed metadata objects (trees, snapshots, index files).
pub const METADATA_LIMIT: usize = 512 * 1024 * 1024;

pub use clock::{format_rfc3339, hostname, now_ns, now_rfc3339};
pub use config::{read_config, RepoConfig};
pub use error::RepoError;
pub use location::{Location, LocationError};
pub use snapshots::{Scope, SnapshotCache};

pub type Result<T> = std::result::Result<T, RepoError>;

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 in hex: the name a pack, index or snapshot file must have.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// What to do about a damaged index file: the packs carry their own entries.
const INDEX_HINT: &str = "run `backupctl repo rebuild-index`";
/// What to do about a damaged snapshot file.
const SNAPSHOT_HINT: &str =
    "run `backupctl repo check`, then restore the file from a copy or `backupctl forget` it";
/// What to do about a damaged key file.
const KEY_HINT: &str = "restore the key file from a copy, or remove it if another key file \
                        opens the repository";

/// Opens a sealed metadata object; a failure names the object and what to do.
fn open_sealed(
    keys: &MasterKeys,
    sealed: &[u8],
    what: &'static str,
    name: &str,
    hint: &'static str,
) -> Result<Vec<u8>> {
    keys.open(sealed).map_err(|e| RepoError::Corrupt {
        what,
        name: name.to_owned(),
        reason: e.to_string(),
        hint,
    })
}

fn decode_sealed<T: serde::de::DeserializeOwned>(
    keys: &MasterKeys,
    sealed: &[u8],
    what: &'static str,
    name: &str,
    hint: &'static str,
) -> Result<T> {
    let plain = open_sealed(keys, sealed, what, name, hint)?;
    decode::bounded(&plain, METADATA_LIMIT).map_err(|reason| RepoError::Corrupt {
        what,
        name: name.to_owned(),
        reason,
        hint,
    })
}

/// Reads an object whose name is the SHA-256 of its bytes (key, index and snapshot files) and
/// checks that it is: the seal alone would accept an older, equally valid object copied over a
/// newer one (a rollback), and a name that lies would go unnoticed.
fn read_named(
    backend: &dyn Backend,
    key: Key<'_>,
    what: &'static str,
    hint: &'static str,
) -> Result<Vec<u8>> {
    let bytes = backend.get(key)?;
    let actual = sha256_hex(&bytes);
    if actual != key.name {
        return Err(RepoError::NameMismatch {
            what,
            object: backend.describe(key),
            actual,
            hint,
        });
    }
    Ok(bytes)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .unwrap_or_else(|_| unreachable!("repository types always encode"))
}

/// The snapshot files of a repository, split by whether they could be read.
#[derive(Debug, Default)]
pub struct SnapshotListing {
    /// Oldest first.
    pub readable: Vec<(SnapshotId, Snapshot)>,
    /// File name and why it could not be read.
    pub unreadable: Vec<(String, RepoError)>,
}

/// An open repository: keys unlocked, index loaded.
///
/// The backend is a trait object rather than a type parameter: which backend a repository uses
/// is decided at run time by its registered location (and tests stack the fault-injecting
/// wrapper on top), and a generic would spread `Repository<B>` through the engine, the
/// registry's cache and every job. One virtual call per object access costs nothing next to
/// the I/O it starts.
#[derive(Debug)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    keys: MasterKeys,
    index: RwLock<Index>,
    /// The daemon's snapshot catalog, once attached (see [`snapshots`]).
    catalog: std::sync::OnceLock<std::sync::Arc<dyn snapshots::SnapshotCache>>,
}

impl Repository {
    /// Creates a repository at `path` (missing or empty directory) protected by `password`.
    pub fn init(path: &Path, password: &[u8]) -> Result<Self> {
        Self::init_with(path, password, Argon2Params::recommended())
    }

    pub fn init_with(path: &Path, password: &[u8], kdf: Argon2Params) -> Result<Self> {
        Self::init_on(
            Arc::new(DaemonRights(LocalBackend::new(path))),
            password,
            kdf,
        )
    }

    /// Creates a repository of the current format on `backend`, whose location must be empty
    /// or missing.
    pub fn init_on(backend: Arc<dyn Backend>, password: &[u8], kdf: Argon2Params) -> Result<Self> {
        Self::init_on_version(backend, password, kdf, FORMAT_VERSION)
    }

    /// Creates a repository of format `version` (an older one only for tests and fixtures that
    /// need to show how that format is still read).
    pub fn init_on_version(
        backend: Arc<dyn Backend>,
        password: &[u8],
        kdf: Argon2Params,
        version: u32,
    ) -> Result<Self> {
        let seal_format =
            SealFormat::of_repository_version(version).ok_or(RepoError::UnsupportedVersion {
                location: backend.location().clone(),
                found: version,
            })?;
        let mut keys = MasterKeys::generate();
        keys.seal_format = seal_format;
        let chunks = (CHUNK_MIN, CHUNK_AVG, CHUNK_MAX);
        Self::init_with_keys(backend, password, kdf, version, keys, chunks)
    }

    /// Creates a replica of `source` on `backend` (docs/FORMAT.md, "Replicas"): the same
    /// `id_key`, `chunker_seed` and chunk sizes, so blob ids and chunk boundaries are the
    /// source's and replication copies blobs without chunking anything again. With
    /// `own_data_key` the replica gets a fresh data key (replication then seals every blob
    /// again); otherwise it holds the source's data-key versions too (packs are copied as
    /// they are). Its own passphrase either way. The source must be in the current format.
    pub fn init_replica_on(
        backend: Arc<dyn Backend>,
        password: &[u8],
        kdf: Argon2Params,
        source: &Repository,
        own_data_key: bool,
    ) -> Result<Self> {
        let config = source.config();
        if config.version != FORMAT_VERSION || config.migrating_from.is_some() {
            return Err(RepoError::UnsupportedVersion {
                location: source.location().clone(),
                found: config.version,
            });
        }
        let mut keys = source.keys().clone();
        if own_data_key {
            keys.data_keys = vec![(1, rand::random())];
            keys.current = 1;
        }
        keys.seal_format = SealFormat::default();
        let chunks = (config.chunk_min, config.chunk_avg, config.chunk_max);
        Self::init_with_keys(backend, password, kdf, FORMAT_VERSION, keys, chunks)
    }

    fn init_with_keys(
        backend: Arc<dyn Backend>,
        password: &[u8],
        kdf: Argon2Params,
        version: u32,
        keys: MasterKeys,
        (chunk_min, chunk_avg, chunk_max): (u32, u32, u32),
    ) -> Result<Self> {
        if backend.presence()? == Presence::Occupied {
            return Err(RepoError::NotEmpty {
                location: backend.location().clone(),
            });
        }
        backend.create()?;
        let keyfile = KeyFile::wrap(&keys, password, kdf).map_err(|source| RepoError::KeyFile {
            location: backend.location().clone(),
            name: "(new)".into(),
            source,
        })?;
        let key_json = keyfile.to_json();
        let key_name = hex::encode(sha256(&key_json));
        backend.put_new(Key::new(FileKind::Key, &key_name), &key_json)?;
        let config = RepoConfig {
            format: FORMAT_NAME.to_owned(),
            version,
            id: hex::encode(rand::random::<[u8; 16]>()),
            created: now_rfc3339(),
            chunk_min,
            chunk_avg,
            chunk_max,
            migrating_from: None,
        };
        // The config goes last: a directory without it is not (yet) a repository.
        let config_json = serde_json::to_vec_pretty(&config).unwrap_or_default();
        backend.put(Key::config(), &config_json)?;
        Ok(Self {
            backend,
            config,
            keys,
            index: RwLock::new(Index::default()),
            catalog: Default::default(),
        })
    }

    /// Opens an existing repository: reads its config, unlocks a key file with `password`
    /// (nothing is written), loads the index.
    pub fn open(path: &Path, password: &[u8]) -> Result<Self> {
        Self::open_on(Arc::new(DaemonRights(LocalBackend::new(path))), password)
    }

    /// Opens the repository stored on `backend`.
    pub fn open_on(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        let location = backend.location().clone();
        let config = read_config(backend.as_ref())?;
        let names = backend.list(FileKind::Key)?;
        if names.is_empty() {
            return Err(RepoError::NoKeys { location });
        }
        let mut keys = None;
        for name in names {
            let key = Key::new(FileKind::Key, &name);
            let bytes = read_named(backend.as_ref(), key, "key file", KEY_HINT)?;
            let file = KeyFile::parse(&bytes).map_err(|source| RepoError::KeyFile {
                location: location.clone(),
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
                        location: location.clone(),
                        name,
                        source,
                    })
                }
            }
        }
        let keys = keys.ok_or(RepoError::WrongPassword { location })?;
        // The file the passphrase opened may hold an older generation (a rotation that
        // crashed before deleting it): use the newest one in the repository.
        let mut keys = keyring::load(
            backend.as_ref(),
            &keys,
            keyring::rfc3339_ns(&config.created),
        )?
        .ring
        .master_keys();
        // `read_config` refused versions this build has no seal layout for.
        keys.seal_format = config.seal_format().unwrap_or_default();
        let repo = Self {
            backend,
            config,
            keys,
            index: RwLock::new(Index::default()),
            catalog: Default::default(),
        };
        repo.reload_index()?;
        Ok(repo)
    }

    /// Replaces the `config` file (one rename) and returns the repository as that config
    /// makes it: same keys and catalog, the seal format it names, the index read again. The
    /// caller holds the exclusive lock and drops `self` for the result.
    pub fn rewrite_config(&self, config: RepoConfig) -> Result<Self> {
        let json = serde_json::to_vec_pretty(&config).unwrap_or_default();
        self.backend.put(Key::config(), &json)?;
        let config = read_config(self.backend.as_ref())?;
        let mut keys = self.keys.clone();
        keys.seal_format = config.seal_format().unwrap_or_default();
        let repo = Self {
            backend: self.backend.clone(),
            config,
            keys,
            index: RwLock::new(Index::default()),
            catalog: Default::default(),
        };
        if let Some(catalog) = self.catalog.get() {
            repo.attach_snapshot_cache(catalog.clone());
        }
        repo.reload_index()?;
        Ok(repo)
    }

    pub fn location(&self) -> &Location {
        self.backend.location()
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    /// Every key file and the newest key ring (docs/FORMAT.md, "Key files"); no passphrase
    /// is needed, so this costs one read per key file.
    pub fn key_ring(&self) -> Result<keyring::Loaded> {
        keyring::load(
            self.backend(),
            &self.keys,
            keyring::rfc3339_ns(&self.config.created),
        )
    }

    /// Reads, verifies (name = hash) and decodes one index file.
    pub fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let bytes = read_named(self.backend(), Key::index(name), "index file", INDEX_HINT)?;
        decode_sealed(&self.keys, &bytes, "index file", name, INDEX_HINT)
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
            let loaded = self.read_index_file(&name);
            match loaded {
                Ok(file) => files.push((id, file)),
                Err(e) => {
                    tracing::warn!(index = %name, error = %e, "skipping unreadable index file; run `backupctl repo rebuild-index`");
                    unreadable.push((name, e.reason()));
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
            let loaded = self.read_index_file(&name);
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

    /// Where a blob is stored, from the index.
    pub fn blob_location(&self, id: &BlobId) -> Result<index::BlobLocation> {
        self.with_index(|i| i.get(id))
            .ok_or(RepoError::MissingBlob { id: *id })
    }

    /// Decrypts, decompresses and verifies a blob from its sealed bytes, read from `loc`.
    pub fn open_blob(
        &self,
        id: &BlobId,
        loc: &index::BlobLocation,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        pack::decode_blob(&self.keys, sealed, *id, loc.raw_length).map_err(|source| {
            RepoError::DamagedBlob {
                id: *id,
                pack: loc.pack,
                source: Box::new(source),
            }
        })
    }

    /// Reads, decrypts, decompresses and verifies one blob.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.blob_location(id)?;
        let pack = loc.pack.to_hex();
        let key = Key::pack(&pack);
        let sealed = if loc.kind == BlobKind::Tree {
            self.backend
                .get_metadata_range(key, loc.offset as u64, loc.length as usize)?
        } else {
            self.backend
                .get_range(key, loc.offset as u64, loc.length as usize)?
        };
        self.open_blob(id, &loc, &sealed)
    }

    /// Pack files to hold open for one long read of many blobs (a restore), when the
    /// repository keeps its packs as local files.
    pub fn open_packs(&self) -> Option<OpenPacks> {
        (!self.location().is_remote()).then(OpenPacks::default)
    }

    /// [`Self::read_blob`] through `packs`: a blob is one `pread` of a pack opened once.
    pub fn read_blob_in(&self, id: &BlobId, packs: &OpenPacks) -> Result<Vec<u8>> {
        let loc = self.blob_location(id)?;
        let key_name = loc.pack.to_hex();
        let key = Key::pack(&key_name);
        let Some(file) = packs.get(loc.pack, || self.backend.open_file(key))? else {
            return self.read_blob(id);
        };
        let sealed = backend::local::read_range(
            &file,
            || self.backend.describe(key),
            loc.offset as u64,
            loc.length as usize,
        )?;
        self.open_blob(id, &loc, &sealed)
    }

    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        decode::bounded(&bytes, METADATA_LIMIT).map_err(|reason| RepoError::Corrupt {
            what: "tree",
            name: id.to_hex(),
            reason,
            hint: "run `backupctl repo check --read-data` to see which snapshots need it",
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
        self.put_pack(id, bytes, entries)?;
        Ok(id)
    }

    /// Finishes `pack`, verifies it (against its plaintexts' checksums where the builder has
    /// them) and stores it; returns its id, entries and bytes (whose buffer may be reused).
    pub fn write_built_pack(
        &self,
        pack: pack::PackBuilder,
    ) -> Result<(PackId, Vec<PackEntry>, Vec<u8>)> {
        let (bytes, entries, checks) = pack.finish_checked(&self.keys);
        let id = PackId(sha256(&bytes));
        pack::verify_with(&self.keys, &bytes, &entries, &checks).map_err(|source| {
            RepoError::DamagedPack {
                pack: id,
                source: Box::new(source),
            }
        })?;
        self.put_pack(id, &bytes, &entries)?;
        Ok((id, entries, bytes))
    }

    fn put_pack(&self, id: PackId, bytes: &[u8], entries: &[PackEntry]) -> Result<()> {
        let name = id.to_hex();
        self.backend.put(Key::pack(&name), bytes)?;
        for e in entries.iter().filter(|e| e.kind == BlobKind::Tree) {
            let (start, end) = (e.offset as usize, e.offset as usize + e.length as usize);
            if let Some(tree) = bytes.get(start..end) {
                self.backend
                    .keep_metadata_range(Key::pack(&name), e.offset as u64, tree);
            }
        }
        Ok(())
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
            self.backend.put(Key::index(&id.to_hex()), &sealed)?;
            self.index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .add_file(id, &file);
            ids.push(id);
        }
        Ok(ids)
    }

    /// All readable snapshots, oldest first. An unreadable snapshot file is skipped with a
    /// warning (`check` reports it, and `latest` refuses to resolve while one exists), so one
    /// damaged file never blocks backups and restores of the others.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let listing = self.snapshot_listing()?;
        for (name, e) in &listing.unreadable {
            tracing::warn!(snapshot = %name, error = %e, "skipping unreadable snapshot");
        }
        Ok(listing.readable)
    }

    /// All snapshots, failing on the first unreadable one (prune must know every snapshot).
    pub fn snapshots_strict(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let listing = self.snapshot_listing()?;
        match listing.unreadable.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(listing.readable),
        }
    }

    /// Every snapshot file: the readable ones oldest first, and the unreadable ones (by name)
    /// with the reason.
    pub fn snapshot_listing(&self) -> Result<SnapshotListing> {
        let mut listing = SnapshotListing::default();
        for name in self.backend.list(FileKind::Snapshot)? {
            let Some(id) = SnapshotId::from_hex(&name) else {
                continue;
            };
            match self.read_snapshot(&id) {
                Ok(s) => listing.readable.push((id, s)),
                // A vanished file (forgotten meanwhile) is simply not there any more.
                Err(RepoError::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e) => listing.unreadable.push((name, e)),
            }
        }
        listing.readable.sort_by_key(|(id, s)| (s.time_ns, *id));
        Ok(listing)
    }

    /// The snapshot file a full id or unique prefix names, without reading it.
    pub fn resolve_snapshot_name(&self, spec: &str) -> Result<SnapshotId> {
        let names = self.backend.list(FileKind::Snapshot)?;
        let mut matches = names
            .iter()
            .filter(|n| !spec.is_empty() && n.starts_with(spec))
            .filter_map(|n| SnapshotId::from_hex(n));
        match (matches.next(), matches.next()) {
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => Err(RepoError::AmbiguousSnapshot {
                prefix: spec.to_owned(),
            }),
            _ => Err(RepoError::SnapshotNotFound {
                prefix: spec.to_owned(),
            }),
        }
    }

    /// How many snapshot files there are (without reading them).
    pub fn snapshot_count(&self) -> Result<usize> {
        Ok(self.backend.list(FileKind::Snapshot)?.len())
    }

    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.backend.delete(Key::snapshot(&id.to_hex()))?;
        if let Some(catalog) = self.catalog.get() {
            catalog.removed(id);
        }
        Ok(())
    }

    pub fn lock(&self, mode: lock::LockMode, purpose: &str) -> Result<lock::LockGuard> {
        Ok(lock::acquire(&self.backend, mode, purpose)?)
    }

    /// Takes a lock, waiting up to `max_wait` while a conflicting one is held (a backup waits
    /// for a prune to finish, and the other way round). Gives up early when `cancel` fires.
    pub fn lock_waiting(
        &self,
        mode: lock::LockMode,
        purpose: &str,
        max_wait: std::time::Duration,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<lock::LockGuard> {
        let deadline = std::time::Instant::now() + max_wait;
        let mut logged = false;
        loop {
            match lock::acquire(&self.backend, mode, purpose) {
                Err(e @ lock::LockError::Busy { .. })
                    if std::time::Instant::now() < deadline && !cancel.is_cancelled() =>
                {
                    if !logged {
                        // The reason names the holder and how to remove a lock it left.
                        tracing::warn!(repo = %self.location(), purpose, reason = %e, "repository is locked; waiting up to {} minutes", max_wait.as_secs() / 60);
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

#[cfg(test)]
pub(crate) fn test_kdf() -> Argon2Params {
    Argon2Params {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
        salt: hex::encode([1u8; 16]),
    }
}

/// Pack files held open for one reader of many blobs ([`Repository::read_blob_in`]). Packs
/// are immutable and a reader holds the repository lock that keeps prune from deleting them,
/// so a held file stays what its name says.
#[derive(Debug, Default)]
pub struct OpenPacks {
    files: Mutex<HashMap<PackId, Option<Arc<std::fs::File>>>>,
}

/// At most this many packs are held open; a restore moves through them in order.
const OPEN_PACKS: usize = 64;

impl OpenPacks {
    /// Pack `id`'s file, opened by `open` the first time (`None`: the store has no files).
    fn get(
        &self,
        id: PackId,
        open: impl FnOnce() -> backend::Result<Option<std::fs::File>>,
    ) -> Result<Option<Arc<std::fs::File>>> {
        if let Some(f) = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(f.clone());
        }
        let file = open()?.map(Arc::new);
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.len() >= OPEN_PACKS {
            files.clear();
        }
        files.insert(id, file.clone());
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::BlobKind;
    use std::path::PathBuf;

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
