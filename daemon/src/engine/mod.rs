//! Operations over a repository: backup, restore, check, forget/prune. Each takes the open
//! repository, its options, a [`progress::Progress`] to update and a cancellation token it
//! checks at safe points (between files, between packs). All of it blocks: callers run it on
//! a blocking thread. Never sees a socket.

pub mod backup;
pub mod check;
pub mod chunker;
pub mod excludes;
pub mod forget;
pub mod fsmeta;
pub mod incremental;
pub mod progress;
pub mod rebuild;
pub mod restore;
pub mod sources;

use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Exclude(#[from] excludes::ExcludeError),
    #[error("{path}: {reason}")]
    Source { path: String, reason: String },
    #[error("restore target {path}: {reason}")]
    Target { path: String, reason: String },
    #[error("path {path:?} is not in snapshot {snapshot}")]
    NotInSnapshot { path: String, snapshot: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<crate::repo::backend::BackendError> for EngineError {
    fn from(e: crate::repo::backend::BackendError) -> Self {
        Self::Repo(e.into())
    }
}

impl EngineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Repo(e) => e.is_retryable(),
            _ => false,
        }
    }
}
