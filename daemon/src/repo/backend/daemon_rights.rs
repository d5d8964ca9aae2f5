//! The repository's storage is the daemon's, whoever a job acts for: every call of the wrapped
//! backend runs with the daemon's own file-system identity ([`fsid::as_daemon`]), also on a
//! worker thread that acts for a user (a backup by a user reads the user's files and writes
//! the daemon's packs on the same threads). On a thread acting for nobody the wrapper costs a
//! thread-local read.

use super::{Backend, BackendError, Cause, ErrorKind, FileKind, Key, ObjectInfo, Presence, Result};
use crate::repo::location::Location;
use crate::security::fsid;

#[derive(Debug)]
pub struct DaemonRights<B>(pub B);

impl<B: Backend> DaemonRights<B> {
    fn run<T>(&self, action: &'static str, f: impl FnOnce(&B) -> Result<T>) -> Result<T> {
        let _daemon = fsid::as_daemon().map_err(|e| {
            BackendError::new(
                ErrorKind::Denied,
                action,
                self.0.location().to_string(),
                Cause::Io(std::io::Error::other(e)),
            )
        })?;
        f(&self.0)
    }
}

impl<B: Backend> Backend for DaemonRights<B> {
    fn location(&self) -> &Location {
        self.0.location()
    }
    fn presence(&self) -> Result<Presence> {
        self.run("inspect", |b| b.presence())
    }
    fn create(&self) -> Result<()> {
        self.run("create", |b| b.create())
    }
    fn put(&self, key: Key<'_>, data: &[u8]) -> Result<()> {
        self.run("write", |b| b.put(key, data))
    }
    fn put_new(&self, key: Key<'_>, data: &[u8]) -> Result<bool> {
        self.run("write", |b| b.put_new(key, data))
    }
    fn get(&self, key: Key<'_>) -> Result<Vec<u8>> {
        self.run("read", |b| b.get(key))
    }
    fn get_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.run("read", |b| b.get_range(key, offset, len))
    }
    fn get_metadata_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.run("read", |b| b.get_metadata_range(key, offset, len))
    }
    fn open_file(&self, key: Key<'_>) -> Result<Option<std::fs::File>> {
        self.run("open", |b| b.open_file(key))
    }
    fn keep_metadata_range(&self, key: Key<'_>, offset: u64, data: &[u8]) {
        if let Ok(_daemon) = fsid::as_daemon() {
            self.0.keep_metadata_range(key, offset, data);
        }
    }
    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        self.run("list", |b| b.list(kind))
    }
    fn stat(&self, key: Key<'_>) -> Result<ObjectInfo> {
        self.run("stat", |b| b.stat(key))
    }
    fn delete(&self, key: Key<'_>) -> Result<()> {
        self.run("delete", |b| b.delete(key))
    }
    fn list_incomplete(&self) -> Result<Vec<String>> {
        self.run("list", |b| b.list_incomplete())
    }
    fn delete_incomplete(&self, name: &str) -> Result<()> {
        self.run("delete", |b| b.delete_incomplete(name))
    }
    fn describe(&self, key: Key<'_>) -> String {
        self.0.describe(key)
    }
    fn size(&self, key: Key<'_>) -> Result<u64> {
        self.run("stat", |b| b.size(key))
    }
    fn exists(&self, key: Key<'_>) -> Result<bool> {
        self.run("stat", |b| b.exists(key))
    }
}
