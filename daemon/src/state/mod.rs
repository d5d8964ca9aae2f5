//! The daemon's sled database under the state directory (`<state dir>/state.sled`). It holds
//! the repository registry, the sources and the job history; the repositories stay the source
//! of truth for the data, and the config file can declare repositories and sources so that a
//! lost database can be rebuilt (see [`recover`] and `docs/OPERATIONS.md`). Opening checks the
//! schema version so an older backupd never misreads a newer layout.
//!
//! Blocking: `open` and `flush_blocking` do disk I/O; async callers use [`State::flush`].

pub mod catalog;
pub mod declared;
pub mod history;
pub mod migrate;
pub mod records;
pub mod recover;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Layout version of the sled trees. Bump it with a migration ([`migrate`]) when a tree's
/// meaning changes. 1: backupd 0.1 (protocol types as JSON); 2: versioned records, job history,
/// snapshot catalog.
pub const SCHEMA_VERSION: u32 = 2;

const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema_version";
pub const DB_DIR: &str = "state.sled";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}; check the path and its permissions")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "state database {path} is locked by another process; is another backupd using this \
         state directory?"
    )]
    Locked { path: PathBuf },
    #[error("cannot open state database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error(
        "state database {path} has schema version {found}, this backupd supports up to \
         {supported}; run a newer backupd"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("state database {path}: corrupt schema version record")]
    CorruptSchema { path: PathBuf },
    #[error("state database {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "state database {path} is corrupt ({reason}) and could not be moved aside to {aside}: \
         {source}; move it away by hand"
    )]
    MoveAside {
        path: PathBuf,
        aside: PathBuf,
        reason: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write state database {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
}

impl StateError {
    /// Whether restarting the daemon can help: not when the directory cannot be created, the
    /// database is newer than this backupd, or a corrupt one cannot be moved aside. `main` exits
    /// with a status systemd does not restart on for these.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            Self::CreateDir { .. } | Self::NewerSchema { .. } | Self::MoveAside { .. }
        )
    }
}

#[derive(Clone, Debug)]
pub struct State {
    db: sled::Db,
    path: PathBuf,
}

impl State {
    /// Creates the state directory (0700) if needed and opens the database in it. A corrupt
    /// database is an error here; [`recover::open_or_recover`] moves it aside instead.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        create_dir(state_dir)?;
        Self::open_db(&state_dir.join(DB_DIR))
    }

    fn open_db(path: &Path) -> Result<Self, StateError> {
        let path = path.to_owned();
        // Whether sled finds data from an earlier run: see `check_schema`.
        let existed = std::fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0);
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(32 * 1024 * 1024)
            .open()
            .map_err(|source| match &source {
                // sled wraps the flock failure in an `Other` error carrying this text.
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    StateError::Locked { path: path.clone() }
                }
                _ => StateError::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        let state = Self { db, path };
        state.check_schema(existed)?;
        Ok(state)
    }

    /// Records the schema version in a new database, or checks it in an existing one.
    fn check_schema(&self, existed: bool) -> Result<(), StateError> {
        let write_err = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        let meta = self.db.open_tree(META_TREE).map_err(write_err)?;
        match meta.get(SCHEMA_KEY).map_err(write_err)? {
            // sled does not report every kind of damage: where its log fails a checksum it
            // silently keeps only what came before. The schema record is the first one ever
            // written, so an existing database without it lost everything.
            None if existed => Err(StateError::Damaged {
                path: self.path.clone(),
                reason: "its records are gone: sled discarded damaged data while opening it"
                    .to_owned(),
            }),
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(write_err)?;
                self.flush_blocking()
            }
            Some(raw) => {
                let bytes: [u8; 4] =
                    raw.as_ref()
                        .try_into()
                        .map_err(|_| StateError::CorruptSchema {
                            path: self.path.clone(),
                        })?;
                let found = u32::from_be_bytes(bytes);
                if found > SCHEMA_VERSION {
                    return Err(StateError::NewerSchema {
                        path: self.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    migrate::run(self, found)?;
                    meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                        .map_err(write_err)?;
                    self.flush_blocking()?;
                }
                Ok(())
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every record of every tree, so that damage anywhere shows at start rather than in
    /// the middle of a job (sled reads pages lazily). The database is small (job history is
    /// capped by `queue.history_max_jobs`) but for the audit entries, which grow with their
    /// retention: they are left to `security audit verify`, which walks them and says which
    /// entry is damaged, so that a year of audit log does not slow every start.
    fn read_everything(&self) -> Result<(), StateError> {
        let err = |source| StateError::Open {
            path: self.path.clone(),
            source,
        };
        let skipped = crate::security::audit::ENTRIES_TREE.as_bytes();
        for name in self
            .db
            .tree_names()
            .into_iter()
            .filter(|n| &n[..] != skipped)
        {
            let tree = self.db.open_tree(&name).map_err(err)?;
            for item in tree.iter() {
                item.map_err(err)?;
            }
        }
        Ok(())
    }

    /// Opens (creating if needed) a named tree; services own their trees.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StateError> {
        self.db.open_tree(name).map_err(|source| StateError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// A new id, unique for the life of the database.
    pub fn generate_id(&self) -> sled::Result<u64> {
        self.db.generate_id()
    }

    pub fn flush_blocking(&self) -> Result<(), StateError> {
        self.db
            .flush()
            .map(drop)
            .map_err(|source| StateError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// Flushes everything written so far to disk; call before acknowledging durable changes.
    pub async fn flush(&self) -> Result<(), StateError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.flush_blocking())
            .await
            .unwrap_or_else(|e| {
                Err(StateError::Write {
                    path: self.path.clone(),
                    source: sled::Error::ReportableBug(format!("flush task failed: {e}")),
                })
            })
    }
}

fn create_dir(state_dir: &Path) -> Result<(), StateError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|source| StateError::CreateDir {
            path: state_dir.to_owned(),
            source,
        })?;
    // A directory we may not write (read-only mount, wrong owner) fails here with a clear
    // message instead of deep inside sled.
    nix::unistd::access(state_dir, nix::unistd::AccessFlags::W_OK).map_err(|e| {
        StateError::CreateDir {
            path: state_dir.to_owned(),
            source: std::io::Error::from(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_state_records_the_schema_version_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("open");
        drop(state);
        let state = State::open(dir.path()).expect("reopen");
        let stored = state
            .tree(META_TREE)
            .expect("tree")
            .get(SCHEMA_KEY)
            .expect("read")
            .expect("a schema version is recorded");
        assert_eq!(stored.as_ref(), SCHEMA_VERSION.to_be_bytes());
    }

    #[test]
    fn newer_schema_is_refused_with_both_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let state = State::open(dir.path()).expect("open");
            state
                .tree(META_TREE)
                .expect("tree")
                .insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
                .expect("insert");
            state.flush_blocking().expect("flush");
        }
        let err = State::open(dir.path()).expect_err("newer schema");
        let text = err.to_string();
        assert!(
            text.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{text}"
        );
        assert!(
            text.contains(&format!("supports up to {SCHEMA_VERSION}")),
            "{text}"
        );
    }

    #[test]
    fn second_open_of_the_same_dir_reports_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = State::open(dir.path()).expect("open");
        match State::open(dir.path()) {
            Err(StateError::Locked { .. }) => {}
            other => panic!("expected Locked, got {other:?}"),
        }
    }
}
