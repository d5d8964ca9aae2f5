//! What can go wrong with a repository, with the path or id it concerns.

use super::backend::BackendError;
use super::keyfile::KeyFileError;
use super::pack::{self, PackError};
use super::{lock, Location, FORMAT_VERSION, MIN_FORMAT_VERSION};
use backupd_common::ids::{BlobId, PackId};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(
        "{location} already holds files; a new repository needs an empty or missing directory"
    )]
    NotEmpty { location: Location },
    #[error("{location} is not a backupd repository (no readable config file): {reason}")]
    NotARepository { location: Location, reason: String },
    #[error(
        "{location} has repository format version {found}; this backupd reads versions \
         {MIN_FORMAT_VERSION} to {FORMAT_VERSION}: use a backupd that knows version {found}"
    )]
    UnsupportedVersion { location: Location, found: u32 },
    #[error("wrong password for repository {location}: none of its key files opens with it")]
    WrongPassword { location: Location },
    #[error("repository {location} has no key files")]
    NoKeys { location: Location },
    #[error("key file {name} in {location}: {source}")]
    KeyFile {
        location: Location,
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
    #[error("{what} {name}: cannot decode: {reason}; {hint}")]
    Corrupt {
        what: &'static str,
        name: String,
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    #[error(
        "{what} {object}: its content hashes to {actual}, not to its name (the file was \
         replaced or damaged); {hint}"
    )]
    NameMismatch {
        what: &'static str,
        object: String,
        actual: String,
        /// What to do about it, e.g. "run `backupctl repo rebuild-index`".
        hint: &'static str,
    },
    #[error(
        "cannot tell which snapshot is `latest`: snapshot file {object} is unreadable ({reason}) \
         and may be the newest one. Run `backupctl repo check`, then restore the file from a \
         copy or remove it with `backupctl forget {short}`; an explicit snapshot id still works"
    )]
    LatestUnknown {
        object: String,
        short: String,
        reason: String,
    },
    #[error(
        "repository {location} is unreachable: the directory does not exist (moved, deleted or \
         not mounted?); jobs retry until it is back"
    )]
    Unreachable { location: Location },
    #[error(
        "no snapshot is `latest` for {filters}: {newest}. `backupctl snapshots` lists what \
         there is; `--host`, `--tag` and `--source` narrow `latest`, an explicit id is not \
         narrowed"
    )]
    NoMatchingSnapshot {
        /// The path and filters asked for, as `SnapshotFilter::describe` writes them.
        filters: String,
        /// The newest snapshot that passed every other filter, or why there is none.
        newest: String,
    },
    #[error("snapshot {prefix:?} not found")]
    SnapshotNotFound { prefix: String },
    #[error("snapshot prefix {prefix:?} is ambiguous; give more digits")]
    AmbiguousSnapshot { prefix: String },
}

impl RepoError {
    /// What is wrong, without the advice: for messages that give their own (check's report,
    /// `latest`), so the reader is not told what to do twice.
    pub fn reason(&self) -> String {
        match self {
            Self::NameMismatch { actual, .. } => format!(
                "its content hashes to {actual}, not to its name (the file was replaced or \
                 damaged)"
            ),
            Self::Corrupt { reason, .. } => format!("cannot decode: {reason}"),
            other => other.to_string(),
        }
    }
}
