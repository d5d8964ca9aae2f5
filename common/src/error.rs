//! Structured errors as they travel on the wire: a stable code plus a human message.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes. Variants are appended, never reordered: bincode encodes the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request was understood but an argument is wrong.
    InvalidArgument,
    /// The named object (repository, snapshot, job, ...) does not exist.
    NotFound,
    /// The caller's role lacks the permission the request needs.
    PermissionDenied,
    /// The request conflicts with the current state (already exists, already running).
    Conflict,
    /// The daemon is overloaded (connection cap, rate limit); try again later.
    Busy,
    /// The daemon or a resource it needs is not available (shutting down, unreachable target).
    Unavailable,
    /// A bug or an unexpected failure inside the daemon.
    Internal,
    /// Client and daemon speak different protocol versions.
    VersionMismatch,
    /// A frame or its payload could not be decoded; the connection is closed.
    Malformed,
    /// A frame's length prefix is larger than the configured maximum; the connection is closed.
    FrameTooLarge,
    /// The peer was silent for longer than the idle or handshake timeout.
    Timeout,
    /// A file system the operation writes to (or its quota) is full. The message names the
    /// mount point and its free space; jobs retry with back-off once space is freed.
    NoSpace,
}

impl ErrorCode {
    /// The code's name as shown to users and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "InvalidArgument",
            Self::NotFound => "NotFound",
            Self::PermissionDenied => "PermissionDenied",
            Self::Conflict => "Conflict",
            Self::Busy => "Busy",
            Self::Unavailable => "Unavailable",
            Self::Internal => "Internal",
            Self::VersionMismatch => "VersionMismatch",
            Self::Malformed => "Malformed",
            Self::FrameTooLarge => "FrameTooLarge",
            Self::Timeout => "Timeout",
            Self::NoSpace => "NoSpace",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the daemon reports it to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorReply {
    pub code: ErrorCode,
    /// Says what failed, on which path or id, and what to do.
    pub message: String,
    /// For `Busy`: how long the client should wait before trying again.
    pub retry_after_ms: Option<u64>,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}
