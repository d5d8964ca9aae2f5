//! Request handlers, one file per command group. A handler returns an [`Outcome`]: the reply
//! (single or streamed) and, for shutdown, what to do once the reply is out.

pub mod analytics;
pub mod browse;
pub mod perf;
pub mod queue;
pub mod recovery;
pub mod repo;
pub mod repo_keys;
pub mod repo_replicate;
pub mod security_alerts;
pub mod security_audit;
pub mod security_files;
pub mod security_roles;
pub mod snapshots;
pub mod source;
pub mod sync;
pub mod system;

use crate::error::Error;
use backupd_common::error::ErrorReply;
use backupd_common::protocol::{Progress, Response};
use tokio::sync::mpsc;

/// One frame of a streamed reply.
#[derive(Debug)]
pub enum StreamItem {
    Progress(Progress),
    Final(Result<Response, ErrorReply>),
}

// A reply is built once per request and moved straight to the connection's writer: boxing the
// immediate response to shrink the enum would only add an allocation to every request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Reply {
    Now(Result<Response, ErrorReply>),
    /// Frames until a `Final` (or the sender is dropped, which the server reports as an error).
    Stream(mpsc::Receiver<StreamItem>),
}

/// Work done after the reply has been sent ("reply first, then act").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Shutdown,
}

#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    pub after: Option<After>,
}

impl Outcome {
    pub fn ok(response: Response) -> Self {
        Self {
            reply: Reply::Now(Ok(response)),
            after: None,
        }
    }

    pub fn err(error: &Error) -> Self {
        Self {
            reply: Reply::Now(Err(error.to_reply())),
            after: None,
        }
    }

    pub fn result(result: Result<Response, Error>) -> Self {
        match result {
            Ok(r) => Self::ok(r),
            Err(e) => Self::err(&e),
        }
    }
}

/// Runs a short blocking call (registry lookups, listing) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|source| {
            Err(Error::TaskFailed {
                task: "the request's blocking task".into(),
                source,
            })
        })
}
