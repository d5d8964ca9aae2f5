//! `ls`, `find`, `diff`, `cat`: browsing snapshots through `engine::browse`, answered directly
//! on a blocking thread (as `snapshots` is), never queued. A caller who does not administer the
//! daemon sees only the snapshots made for them (`snapshots::scope`). `cat` streams the file in
//! `Progress::Content` frames from a blocking thread of the task tracker, with back-pressure: a
//! client that reads slowly slows the reading of the repository, and one that leaves drops the
//! receiver, which stops the walk at its next piece.

use super::snapshots::scope;
use super::{blocking, Outcome, Reply, StreamItem};
use crate::engine::browse::{self, View};
use crate::error::Error;
use crate::repo::registry::Registry;
use crate::repo::Scope;
use crate::server::Services;
use backupd_common::protocol::{BrowseRequest, CatRequest, Identity, Progress, Response};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub async fn handle(services: &Services, identity: &Identity, request: BrowseRequest) -> Outcome {
    let (registry, scope) = (services.repos.clone(), scope(identity));
    let cancel = services.shutdown.child_token();
    let request = match request {
        BrowseRequest::Cat(r) => return cat(services, scope, *r),
        other => other,
    };
    Outcome::result(
        blocking(move || {
            let (_, repo) = registry.open(request.repo())?;
            let mut view = View::open(&repo, scope, request.name(), &cancel)?;
            Ok(match &request {
                BrowseRequest::Ls(r) => Response::Listing(Box::new(browse::ls(&mut view, r)?)),
                BrowseRequest::Find(r) => Response::Found(Box::new(browse::find(&mut view, r)?)),
                BrowseRequest::Diff(r) => Response::Diff(Box::new(browse::diff(&mut view, r)?)),
                BrowseRequest::Cat(_) => {
                    return Err(Error::Internal("`cat` reached the listing path".into()))
                }
            })
        })
        .await,
    )
}

fn cat(services: &Services, scope: Scope, r: CatRequest) -> Outcome {
    // Two pieces in flight: the connection writes one while the next is read.
    let (tx, rx) = mpsc::channel(2);
    let registry: Arc<Registry> = services.repos.clone();
    let shutdown: CancellationToken = services.shutdown.clone();
    services.tasks.spawn_blocking(move || {
        let cancel = shutdown.child_token();
        let result = (|| -> Result<Response, Error> {
            let (_, repo) = registry.open(r.repo.as_deref())?;
            let mut view = View::open(&repo, scope, "cat", &cancel)?;
            let mut send = |piece: Vec<u8>| {
                !shutdown.is_cancelled()
                    && tx
                        .blocking_send(StreamItem::Progress(Progress::Content(piece)))
                        .is_ok()
            };
            Ok(Response::Cat(browse::cat(&mut view, &r, &mut send)?))
        })();
        let _ = tx.blocking_send(StreamItem::Final(result.map_err(|e| e.to_reply())));
    });
    Outcome {
        reply: Reply::Stream(rx),
        after: None,
    }
}
