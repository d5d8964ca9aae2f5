//! `sync` group: directory sync pairs (runs are `sync` jobs, submitted through the queue).

use super::{blocking, Outcome};
use crate::server::Services;
use backupd_common::protocol::{Response, SyncRequest};

pub async fn handle(services: &Services, request: SyncRequest) -> Outcome {
    let pairs = services.pairs.clone();
    let result = blocking(move || {
        Ok(match request {
            SyncRequest::Add(spec) => Response::SyncPair(Box::new(pairs.add(*spec)?)),
            SyncRequest::List => Response::SyncPairs(pairs.list()),
            SyncRequest::Show { name } => Response::SyncPair(Box::new(pairs.get(&name)?)),
            SyncRequest::Remove { name } => Response::SyncPair(Box::new(pairs.remove(&name)?)),
            SyncRequest::Pause { name } => {
                Response::SyncPair(Box::new(pairs.set_paused(&name, true)?))
            }
            SyncRequest::Resume { name } => {
                Response::SyncPair(Box::new(pairs.set_paused(&name, false)?))
            }
            SyncRequest::History { name, limit } => {
                Response::SyncHistory(pairs.history(&name, limit)?)
            }
            SyncRequest::Conflicts { name } => Response::SyncConflicts(pairs.conflicts(&name)?),
            SyncRequest::Resolve { name, path, take } => {
                Response::SyncConflicts(pairs.resolve(&name, &path, take)?)
            }
        })
    })
    .await;
    Outcome::result(result)
}
