//! `backupctl security encrypt|decrypt`: hands the passed descriptors to
//! `security::file_crypt` on a blocking thread of the task tracker and streams its progress.
//! The reply is streamed so that the connection keeps reading: a client that leaves (Ctrl-C)
//! drops the receiver, and the work stops at its next chunk or wait.

use super::{Outcome, Reply, StreamItem};
use crate::error::Error;
use crate::security::file_crypt::{self, Crypt, Direction};
use crate::server::frames::Passed;
use crate::server::Services;
use backupd_common::protocol::{OperationProgress, Progress, Response, SecurityRequest};
use tokio::sync::mpsc;

pub fn handle(services: &Services, request: SecurityRequest, passed: Passed) -> Outcome {
    let (direction, request) = match request {
        SecurityRequest::Encrypt(r) => (Direction::Encrypt, r),
        SecurityRequest::Decrypt(r) => (Direction::Decrypt, r),
        other => {
            return Outcome::err(&Error::Internal(format!(
                "`{}` reached the file handler",
                other.name()
            )))
        }
    };
    // Progress frames are dropped rather than waited for when the client reads slowly; the
    // final reply is always sent.
    let (tx, rx) = mpsc::channel(4);
    let (registry, shutdown) = (services.repos.clone(), services.shutdown.clone());
    services.tasks.spawn_blocking(move || {
        let stop = || {
            if tx.is_closed() {
                Some("the client left")
            } else if shutdown.is_cancelled() {
                Some("the daemon is stopping")
            } else {
                None
            }
        };
        let mut progress = |p: OperationProgress| {
            let _ = tx.try_send(StreamItem::Progress(Progress::Operation(p)));
        };
        let crypt = Crypt {
            direction,
            repo: request.repo.as_deref(),
            input_name: &request.input,
            output_name: &request.output,
            fds: passed.fds,
            overflow: passed.overflow,
        };
        let result = file_crypt::run(&registry, crypt, &stop, &mut progress)
            .map(|r| match direction {
                Direction::Encrypt => Response::Encrypted(r),
                Direction::Decrypt => Response::Decrypted(r),
            })
            .map_err(|e| Error::from(e).to_reply());
        let _ = tx.blocking_send(StreamItem::Final(result));
    });
    Outcome {
        reply: Reply::Stream(rx),
        after: None,
    }
}
