//! `backupctl security audit …`: query, follow and verify the audit log.

use super::{blocking, Outcome, Reply, StreamItem};
use crate::error::Error;
use crate::server::Services;
use backupd_common::protocol::{AuditQuery, Progress, Response, SecurityRequest};
use tokio::sync::{broadcast, mpsc};

pub async fn handle(services: &Services, request: SecurityRequest) -> Outcome {
    let audit = services.security.audit.clone();
    match request {
        SecurityRequest::Audit(query) if query.follow => follow(services, query),
        SecurityRequest::Audit(query) => Outcome::result(
            blocking(move || Ok(audit.query(&query)?))
                .await
                .map(Response::AuditEntries),
        ),
        SecurityRequest::AuditVerify => Outcome::result(
            blocking(move || Ok(audit.verify()))
                .await
                .map(|r| Response::AuditVerify(Box::new(r))),
        ),
        other => Outcome::result(Err(Error::Internal(format!(
            "`{}` reached the audit handler",
            other.name()
        )))),
    }
}

/// Streams the stored matches, then new ones as they are appended, until the client leaves or
/// the daemon stops.
fn follow(services: &Services, query: AuditQuery) -> Outcome {
    let (tx, rx) = mpsc::channel(64);
    let (audit, shutdown) = (services.security.audit.clone(), services.shutdown.clone());
    services.tasks.spawn(async move {
        // Subscribed before reading the backlog, so nothing falls between the two.
        let mut live = audit.subscribe();
        let stored = {
            let (audit, query) = (audit.clone(), query.clone());
            blocking(move || Ok(audit.query(&query)?)).await
        };
        let stored = match stored {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(StreamItem::Final(Err(e.to_reply()))).await;
                return;
            }
        };
        let mut last = stored.last().map_or(0, |e| e.seq);
        for e in stored {
            if tx.send(StreamItem::Progress(Progress::Audit(Box::new(e)))).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => return,
                next = live.recv() => match next {
                    Ok(e) if e.seq > last && crate::security::audit::matches(&query, &e) => {
                        last = e.seq;
                        if tx.send(StreamItem::Progress(Progress::Audit(Box::new(e)))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let e = Error::Internal(format!(
                            "this follower fell {n} audit entries behind and lost them; run \
                             `backupctl security audit --follow` again (the entries are stored)"
                        ));
                        let _ = tx.send(StreamItem::Final(Err(e.to_reply()))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        let _ = tx.send(StreamItem::Final(Ok(Response::Done))).await;
    });
    Outcome {
        reply: Reply::Stream(rx),
        after: None,
    }
}
