//! A local cache in front of a remote backend, under the daemon's state directory
//! (`STATE_DIR/cache/<location hash>/`), so that a backup with nothing new asks the store for
//! a constant handful of things instead of every index file, snapshot and tree again.
//!
//! What is cached is what never changes once written: index and key files (their names are
//! the SHA-256 of their bytes, checked on every read from the cache) and the byte ranges of
//! tree blobs inside packs (kept with a SHA-256 of their own). Snapshot files are not: format
//! 2 names them by their plaintext and re-sealing (key rotation) replaces one in place; their
//! headers are in the daemon's snapshot catalog already, so a backup reads only its parent's. The store stays the
//! source of truth: listings always go to it, a cached object whose name is no longer listed
//! is dropped, and a cache entry that fails its check is read again from the store. Losing
//! the cache costs requests, never data.

use super::{Backend, FileKind, Key, ObjectInfo, Presence, Result};
use crate::repo::location::Location;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where caches live (`STATE_DIR/cache`), set once at start; without it nothing is cached.
static ROOT: OnceLock<PathBuf> = OnceLock::new();

pub fn set_root(dir: &Path) {
    let _ = ROOT.set(dir.to_owned());
}

/// A cache for `inner` if one can be kept, else `inner` itself. `identity` names the store
/// (its location without credentials); the cache files are the daemon's, whoever a job acts
/// for.
pub fn wrap(inner: Arc<dyn Backend>, identity: &str) -> Arc<dyn Backend> {
    match ROOT.get() {
        Some(root) => {
            let id = hex::encode(&Sha256::digest(identity.as_bytes())[..12]);
            Arc::new(super::daemon_rights::DaemonRights(Cached {
                inner,
                dir: root.join(id),
            }))
        }
        None => inner,
    }
}

#[derive(Debug)]
pub struct Cached {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
}

/// The kinds cached whole: immutable, named by the SHA-256 of their sealed bytes.
fn whole(kind: FileKind) -> bool {
    matches!(kind, FileKind::Index | FileKind::Key)
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Cached {
    fn path(&self, key: Key<'_>) -> Option<PathBuf> {
        let safe = !key.name.is_empty() && key.name.bytes().all(|c| c.is_ascii_hexdigit());
        (whole(key.kind) && safe).then(|| self.dir.join(key.kind.dir()).join(key.name))
    }

    fn range_path(&self, key: Key<'_>, offset: u64, len: usize) -> Option<PathBuf> {
        let safe = key.kind == FileKind::Pack && key.name.bytes().all(|c| c.is_ascii_hexdigit());
        safe.then(|| {
            self.dir
                .join("trees")
                .join(key.name.get(..2).unwrap_or("00"))
                .join(format!("{}-{offset}-{len}", key.name))
        })
    }

    /// Writes a cache file (temp + rename, so a reader never sees half of one). Failures only
    /// cost a later request: they are logged at debug level and otherwise ignored.
    fn store(&self, path: &Path, data: &[u8]) {
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            let dir = path.parent().unwrap_or(&self.dir);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            let temp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            let done = f
                .write_all(data)
                .and_then(|()| std::fs::rename(&temp, path));
            if done.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            done
        };
        if let Err(e) = write() {
            tracing::debug!(path = %path.display(), error = %e, "cannot write to the repository cache");
        }
    }

    /// A cached whole object, if present and intact.
    fn cached(&self, path: &Path, name: &str) -> Option<Vec<u8>> {
        let data = std::fs::read(path).ok()?;
        if sha_hex(&data) == name {
            return Some(data);
        }
        tracing::warn!(path = %path.display(), "dropping a damaged repository cache entry");
        let _ = std::fs::remove_file(path);
        None
    }

    /// Drops cached objects of `kind` that the store no longer lists.
    fn forget_unlisted(&self, kind: FileKind, listed: &[String]) {
        let dir = self.dir.join(kind.dir());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !listed.contains(name.as_ref()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Backend for Cached {
    fn location(&self) -> &Location {
        self.inner.location()
    }
    fn presence(&self) -> Result<Presence> {
        self.inner.presence()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn put(&self, key: Key<'_>, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)?;
        if let Some(p) = self.path(key) {
            self.store(&p, data);
        }
        Ok(())
    }
    fn put_new(&self, key: Key<'_>, data: &[u8]) -> Result<bool> {
        let written = self.inner.put_new(key, data)?;
        if let (true, Some(p)) = (written, self.path(key)) {
            self.store(&p, data);
        }
        Ok(written)
    }
    fn get(&self, key: Key<'_>) -> Result<Vec<u8>> {
        let Some(p) = self.path(key) else {
            return self.inner.get(key);
        };
        if let Some(data) = self.cached(&p, key.name) {
            return Ok(data);
        }
        let data = self.inner.get(key)?;
        // Only what is what its name says is kept; the reader reports the rest.
        if sha_hex(&data) == key.name {
            self.store(&p, &data);
        }
        Ok(data)
    }
    fn get_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }
    fn get_metadata_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        let Some(p) = self.range_path(key, offset, len) else {
            return self.inner.get_range(key, offset, len);
        };
        if let Ok(file) = std::fs::read(&p) {
            if file.len() == 32 + len && Sha256::digest(&file[32..])[..] == file[..32] {
                return Ok(file[32..].to_vec());
            }
            let _ = std::fs::remove_file(&p);
        }
        let data = self.inner.get_range(key, offset, len)?;
        self.keep_metadata_range(key, offset, &data);
        Ok(data)
    }
    fn keep_metadata_range(&self, key: Key<'_>, offset: u64, data: &[u8]) {
        if let Some(p) = self.range_path(key, offset, data.len()) {
            let mut file = Sha256::digest(data).to_vec();
            file.extend_from_slice(data);
            self.store(&p, &file);
        }
    }
    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        let names = self.inner.list(kind)?;
        if whole(kind) {
            self.forget_unlisted(kind, &names);
        }
        Ok(names)
    }
    fn stat(&self, key: Key<'_>) -> Result<ObjectInfo> {
        self.inner.stat(key)
    }
    fn delete(&self, key: Key<'_>) -> Result<()> {
        self.inner.delete(key)?;
        if let Some(p) = self.path(key) {
            let _ = std::fs::remove_file(p);
        }
        if key.kind == FileKind::Pack {
            let dir = self
                .dir
                .join("trees")
                .join(key.name.get(..2).unwrap_or("00"));
            if let Ok(entries) = std::fs::read_dir(dir) {
                let prefix = format!("{}-", key.name);
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&prefix) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        Ok(())
    }
    fn list_incomplete(&self) -> Result<Vec<String>> {
        self.inner.list_incomplete()
    }
    fn delete_incomplete(&self, name: &str) -> Result<()> {
        self.inner.delete_incomplete(name)
    }
    fn describe(&self, key: Key<'_>) -> String {
        self.inner.describe(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::LocalBackend;

    /// Counts the reads that reach the store.
    #[derive(Debug)]
    struct Counting(LocalBackend, std::sync::atomic::AtomicU64);

    impl Backend for Counting {
        fn location(&self) -> &Location {
            self.0.location()
        }
        fn presence(&self) -> Result<Presence> {
            self.0.presence()
        }
        fn create(&self) -> Result<()> {
            self.0.create()
        }
        fn put(&self, key: Key<'_>, data: &[u8]) -> Result<()> {
            self.0.put(key, data)
        }
        fn put_new(&self, key: Key<'_>, data: &[u8]) -> Result<bool> {
            self.0.put_new(key, data)
        }
        fn get(&self, key: Key<'_>) -> Result<Vec<u8>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.get(key)
        }
        fn get_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.get_range(key, offset, len)
        }
        fn list(&self, kind: FileKind) -> Result<Vec<String>> {
            self.0.list(kind)
        }
        fn stat(&self, key: Key<'_>) -> Result<ObjectInfo> {
            self.0.stat(key)
        }
        fn delete(&self, key: Key<'_>) -> Result<()> {
            self.0.delete(key)
        }
        fn list_incomplete(&self) -> Result<Vec<String>> {
            self.0.list_incomplete()
        }
        fn delete_incomplete(&self, name: &str) -> Result<()> {
            self.0.delete_incomplete(name)
        }
        fn describe(&self, key: Key<'_>) -> String {
            self.0.describe(key)
        }
    }

    #[test]
    fn immutable_objects_and_tree_ranges_are_read_once_and_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = LocalBackend::new(dir.path().join("repo"));
        store.create().expect("create");
        let counting = Arc::new(Counting(store, Default::default()));
        let cache = Cached {
            inner: counting.clone(),
            dir: dir.path().join("cache"),
        };
        let reads = || counting.1.load(std::sync::atomic::Ordering::SeqCst);
        let data = b"sealed index bytes".to_vec();
        let name = sha_hex(&data);
        // Written by another host: the first read fetches, the second does not.
        counting.0.put(Key::index(&name), &data).expect("put");
        assert_eq!(cache.get(Key::index(&name)).expect("get"), data);
        assert_eq!(cache.get(Key::index(&name)).expect("get"), data);
        assert_eq!(reads(), 1);
        // A damaged cache entry is dropped and read again from the store.
        let p = cache.path(Key::index(&name)).expect("cached kind");
        std::fs::write(&p, b"tampered").expect("tamper");
        assert_eq!(cache.get(Key::index(&name)).expect("get"), data);
        assert_eq!(reads(), 2);
        // Gone from the store's listing (another host's prune): gone from the cache.
        counting.0.delete(Key::index(&name)).expect("delete");
        assert!(cache.list(FileKind::Index).expect("list").is_empty());
        assert!(!p.exists());

        let pack = "ab".repeat(32);
        counting
            .0
            .put(Key::pack(&pack), b"0123456789")
            .expect("pack");
        assert_eq!(
            cache.get_metadata_range(Key::pack(&pack), 2, 4).expect("r"),
            b"2345"
        );
        assert_eq!(
            cache.get_metadata_range(Key::pack(&pack), 2, 4).expect("r"),
            b"2345"
        );
        assert_eq!(reads(), 3, "the second tree read came from the cache");
        cache.delete(Key::pack(&pack)).expect("delete pack");
        assert!(cache
            .range_path(Key::pack(&pack), 2, 4)
            .is_some_and(|p| !p.exists()));
    }
}
